"""The durable evidence store against the moto S3 server over HTTP: a real logical drill writes its records,
history and report there write-once, reads the history back after the local reports are gone, and a store
that cannot be reached or written makes the run could-not-verify (exit 3), never a silent pass."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import boto3
import pytest

from restoredrill import history_chain
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence_store import BucketStatus, EvidenceStore
from tests.conftest import AWS_ENV, AWS_SECRET, DrillScenario, MotoServer, free_port, run_cli, start_moto


def _bucket(moto: MotoServer, *, lock: bool = False) -> str:
    name = f"evidence-{uuid.uuid4().hex[:10]}"
    client = moto.client()
    if lock:  # object lock turns versioning on; a default retention every put must respect
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )
    else:
        client.create_bucket(Bucket=name)
    return name


def _configure(drill: DrillScenario, url: str, endpoint: str) -> None:
    path = drill.write_config()
    store = (
        f'evidence_store = "{url}"\nevidence_store_endpoint_url = "{endpoint}"\nevidence_store_region = "us-east-1"\n'
    )
    path.write_text(store + path.read_text())


def _keys(moto: MotoServer, bucket: str) -> list[str]:
    listed = moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_a_healthy_run_stores_its_evidence_and_history_survives_the_local_reports(
    drill: DrillScenario, moto: MotoServer, tmp_path: Path
) -> None:
    bucket = _bucket(moto, lock=True)
    _configure(drill, f"s3://{bucket}/drills", moto.endpoint)
    first = drill.run()
    assert first.returncode == 0, first.output
    assert f"evidence store s3://{bucket}/drills: versioning Enabled, object lock GOVERNANCE, 1 days by default" in (
        first.output
    )
    assert "0 history line(s) read back" in first.output
    run_id = json.loads(next((drill.reports / "evidence").glob("*.json")).read_text())["run_id"]
    keys = _keys(moto, bucket)
    assert "drills/history/00000001.json" in keys
    run_keys = [k for k in keys if k.startswith(f"drills/reports/{run_id}/")]
    for part in ("evidence/", "runs/", "junit/", ".html", ".manifest.json", "history.jsonl", "evidence-store.json"):
        assert any(part in k for k in run_keys), (part, run_keys)
    receipt = json.loads(
        moto.client().get_object(Bucket=bucket, Key=f"drills/reports/{run_id}/evidence-store.json")["Body"].read()
    )
    assert receipt["object_lock"] == "GOVERNANCE, 1 days by default"

    # The run's folder, downloaded from the store alone, verifies (records, report, history chain).
    audit = tmp_path / "audit"
    for key in run_keys:
        target = audit / key.removeprefix(f"drills/reports/{run_id}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    verified = run_cli("verify-report", str(audit))
    assert verified.returncode == 0, verified.output
    assert "history: 1 hash-chained line(s) intact" in verified.output

    shutil.rmtree(drill.reports)  # the CI artifact expired
    second = drill.run()
    assert second.returncode == 0, second.output
    assert "1 history line(s) read back" in second.output
    lines = [json.loads(line) for line in (drill.reports / "history.jsonl").read_text().splitlines()]
    assert lines[0]["run_id"] == run_id  # the first run came back from the store
    assert [line["seq"] for line in lines] == [1, 2]
    assert "drills/history/00000002.json" in _keys(moto, bucket)
    local = run_cli("verify-report", str(drill.reports))
    assert local.returncode == 0, local.output
    assert "history: 2 hash-chained line(s) intact" in local.output

    # The auditor checks the store itself, then someone deletes the first run's history object.
    audit_store = ("verify-report", "--evidence-store", f"s3://{bucket}/drills", "--endpoint-url", moto.endpoint)
    intact = run_cli(*audit_store)
    assert intact.returncode == 0, intact.output
    assert f"history: 2 hash-chained line(s) intact in s3://{bucket}/drills" in intact.output
    moto.client().delete_object(Bucket=bucket, Key="drills/history/00000001.json")  # a delete marker (versioned)
    deleted = run_cli(*audit_store)
    assert deleted.returncode == 1, deleted.output
    assert "TAMPERED: history entry #1 is missing: 1 line(s) were deleted at the start" in deleted.output
    assert AWS_SECRET not in first.output + second.output


def test_an_object_already_in_the_store_is_never_overwritten(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = _bucket(moto)
    store = EvidenceStore(f"s3://{bucket}/p", moto.endpoint, "us-east-1", None)
    assert store.status() == BucketStatus("off", "off")
    assert "enable versioning and object lock" in store.status().sentence()
    assert store.put_once("a.json", b"one") == "written"
    assert store.put_once("a.json", b"one") == "present"  # a retried publish
    assert store.put_once("a.json", b"two") == "conflict"
    assert moto.client().get_object(Bucket=bucket, Key="p/a.json")["Body"].read() == b"one"

    reports = tmp_path / "reports"
    (reports / "evidence").mkdir(parents=True)
    record = reports / "evidence" / "20261101T000000Z-abcdef--shop--logical.json"
    record.write_text('{"verdict": "passed"}')
    store.put_once("reports/20261101T000000Z-abcdef/evidence/" + record.name, b'{"verdict": "failed"}')
    with pytest.raises(CouldNotVerify, match=r"already holds .* with other content: it is write-once"):
        store.publish_run(reports, "20261101T000000Z-abcdef", [record], store.status())

    # Two runs racing for the same history entry: the second chains after the first, nothing is overwritten.
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        history_chain.append(tmp_path / name, {"run_id": name})
    store.publish_history(tmp_path / "one")
    store.publish_history(tmp_path / "two")
    chained = history_chain.read_history(tmp_path / "two", store)
    assert [entry.run for entry in chained.entries] == ["one", "two"]
    assert history_chain.verify(chained).problems == []


def test_an_unreachable_or_missing_store_could_not_verify_before_any_drill(
    drill: DrillScenario, moto: MotoServer
) -> None:
    _configure(drill, "s3://evidence/drills", f"http://127.0.0.1:{free_port()}")
    unreachable = drill.run()
    assert unreachable.returncode == 3, unreachable.output
    assert "the evidence store s3://evidence/drills cannot be used: cannot reach the S3 endpoint" in unreachable.output
    assert not list((drill.reports / "evidence").glob("*.json"))  # no drill ran: nothing to keep

    _configure(drill, "s3://no-such-evidence-bucket/drills", moto.endpoint)
    missing = drill.run()
    assert missing.returncode == 3, missing.output
    assert "bucket no-such-evidence-bucket does not exist" in missing.output
    assert "Traceback" not in unreachable.output + missing.output


def test_a_store_that_refuses_writes_makes_a_passing_run_could_not_verify(drill: DrillScenario) -> None:
    strict = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "4"})  # then every request needs a known key and a policy
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=strict.endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_SECRET,
        )
        bucket = _bucket(strict)  # 1
        iam.create_user(UserName="auditor")  # 2
        iam.put_user_policy(  # 3
            UserName="auditor",
            PolicyName="read-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="auditor")["AccessKey"]  # 4
        _configure(drill, f"s3://{bucket}/drills", strict.endpoint)
        env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        result = drill.run(env=env)
    finally:
        strict.process.terminate()
    assert result.returncode == 3, result.output
    assert drill.record()["verdict"] == "passed"  # the drill itself passed; its evidence could not be kept
    assert (
        f"COULD NOT VERIFY: the evidence store s3://{bucket}/drills cannot be used: S3 denied access" in result.output
    )
    assert key["SecretAccessKey"] not in result.output
    assert AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in result.output
