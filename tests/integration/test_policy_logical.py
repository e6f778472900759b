"""The logical policy checks against a real S3 API (moto over HTTP): the healthy bucket passes every item;
a missing daily dump, an object stored without encryption, the wrong KMS key, a bucket without versioning
or object lock each FAIL naming the defect. All reads: the bucket is the same before and after a drill."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from restoredrill.layers import logical_policy
from restoredrill.layers.logical_keys import dumps_of
from restoredrill.stores import S3Store
from tests.conftest import AWS_SECRET, DrillScenario, MotoServer

pytestmark = pytest.mark.integration
PREFIX = "postgres/logical/"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/policy-test"


def upload(moto: MotoServer, folder: Path, *, lock_days: int | None = None, **encryption: str) -> str:
    """The template's dumps and manifests in a new bucket, each with its recorded metadata; returns the bucket.
    `lock_days`: the bucket has object lock with a default COMPLIANCE retention of that many days."""
    client = moto.client()
    bucket = f"policy-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=lock_days is not None)
    if lock_days is not None:  # set while the bucket is empty, as S3 requires
        client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": lock_days}},
            },
        )
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.endswith(".meta.json"):
            continue
        sidecar = path.with_name(path.name + ".meta.json")
        metadata = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        key = path.relative_to(folder).as_posix()
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata=metadata, **encryption)
    return bucket


def store_of(moto: MotoServer, bucket: str) -> tuple[S3Store, list[str]]:
    import os

    from tests.conftest import AWS_ENV

    os.environ.update(AWS_ENV)  # boto3's default chain, as a drill uses it
    store = S3Store(f"s3://{bucket}", endpoint_url=moto.endpoint, region="us-east-1")
    objects = list(store.list(PREFIX))
    dumps = dumps_of(PREFIX, "shop", [(o.key, o.size) for o in objects])
    listed = {o.key for o in objects}
    return store, [k for d in dumps for k in (d.key, d.manifest_key) if k in listed]


def test_every_object_encrypted_with_the_configured_key_passes(moto: MotoServer, backup_template: Path) -> None:
    bucket = upload(moto, backup_template, ServerSideEncryption="aws:kms", SSEKMSKeyId=KMS_KEY)
    store, keys = store_of(moto, bucket)
    assert len(keys) == 8  # four dumps and their manifests
    record = logical_policy.encryption(store, keys, "policy-test")
    assert record.outcome == "passed", record.detail
    assert "all 8 object(s) are server-side encrypted (aws:kms) with the KMS key policy-test" in record.detail


def test_an_object_without_encryption_fails_naming_it(moto: MotoServer, backup_template: Path) -> None:
    bucket = upload(moto, backup_template, ServerSideEncryption="AES256")
    store, keys = store_of(moto, bucket)
    clear = keys[2]
    moto.client().put_object(Bucket=bucket, Key=clear, Body=b"re-uploaded by hand, without SSE")
    record = logical_policy.encryption(store, keys, None)
    assert record.outcome == "failed"
    assert f"1 of 8 object(s) have NO server-side encryption: {clear}" in record.detail
    wrong = logical_policy.encryption(store, [keys[0]], KMS_KEY)
    assert wrong.outcome == "failed"
    assert f"not encrypted with the KMS key {KMS_KEY}: {keys[0]} (AES256, key none)" in wrong.detail


def test_versioning_and_object_lock_read_from_the_bucket(moto: MotoServer, backup_template: Path) -> None:
    plain = upload(moto, backup_template, ServerSideEncryption="AES256")
    store, _ = store_of(moto, plain)
    assert "versioning of s3://" in logical_policy.versioning(store).detail
    assert logical_policy.versioning(store).outcome == "failed"
    unlocked = logical_policy.object_lock(store)
    assert unlocked.outcome == "failed"
    assert "object lock of s3://" in unlocked.detail
    assert "is NOT enabled" in unlocked.detail
    locked_bucket = upload(moto, backup_template, lock_days=35, ServerSideEncryption="AES256")
    locked, _ = store_of(moto, locked_bucket)
    assert logical_policy.versioning(locked).outcome == "passed"  # object lock turns versioning on
    found = logical_policy.object_lock(locked)
    assert found.outcome == "passed", found.detail
    assert "default retention COMPLIANCE for 35 day(s)" in found.detail


def policy_config(drill: DrillScenario, moto: MotoServer, bucket: str) -> None:
    drill.write_config(
        source=f"s3://{bucket}/{PREFIX}",
        extra=f'endpoint_url = "{moto.endpoint}"\nregion = "us-east-1"\n'
        "[databases.shop.logical.policy]\nencryption = true\nversioning = false\n",
    )


def outcomes(record: dict) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["outcome"], c["detail"]) for c in record["checks"] if c["name"].startswith("policy_")}


def test_healthy_bucket_passes_the_policy_and_its_cost_is_recorded(
    drill: DrillScenario, moto: MotoServer, backup_template: Path
) -> None:
    bucket = upload(moto, backup_template, ServerSideEncryption="AES256")
    policy_config(drill, moto, bucket)
    before = moto.client().list_objects_v2(Bucket=bucket)["Contents"]
    result = drill.run()
    assert result.returncode == 0, result.output
    assert moto.client().list_objects_v2(Bucket=bucket)["Contents"] == before, "a drill must never write"
    record = drill.record()
    assert record["verdict"] == "passed", record["reason"]
    found = outcomes(record)
    assert set(found) == {"policy_daily_dumps", "policy_pruning", "policy_encryption"}
    assert {outcome for outcome, _ in found.values()} == {"passed"}, found
    storage = record["storage"]
    assert storage["storage"] == "S3 Standard"
    assert storage["size_bytes"] == sum(
        p.stat().st_size for p in (backup_template / PREFIX).rglob("shop-*") if not p.name.endswith(".meta.json")
    )
    assert storage["monthly"] == pytest.approx(storage["size_bytes"] / 1024**3 * 0.023, abs=1e-4)
    assert AWS_SECRET not in result.output


def test_a_missing_day_and_an_unencrypted_dump_fail_each_named(
    drill: DrillScenario, moto: MotoServer, backup_template: Path
) -> None:
    bucket = upload(moto, backup_template, ServerSideEncryption="AES256")
    client = moto.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    dumps = [k for k in keys if k.endswith(".dump")]
    missing_day = dumps[1].split("/")[2]
    client.delete_object(Bucket=bucket, Key=dumps[1])
    clear = dumps[2]
    body = client.get_object(Bucket=bucket, Key=clear)
    client.put_object(Bucket=bucket, Key=clear, Body=body["Body"].read(), Metadata=body["Metadata"])  # no SSE
    policy_config(drill, moto, bucket)
    result = drill.run()
    assert result.returncode == 1, result.output
    record = drill.record()
    assert record["verdict"] == "failed"
    found = outcomes(record)
    assert found["policy_daily_dumps"][0] == "failed"
    assert f"missing {missing_day}" in found["policy_daily_dumps"][1]
    assert found["policy_encryption"][0] == "failed"
    assert f"have NO server-side encryption: {clear}" in found["policy_encryption"][1]
    assert found["policy_pruning"][0] == "passed"
    assert "Traceback" not in result.output
