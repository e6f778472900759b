"""The RDS drill against a moto server over HTTP, with a real local PostgreSQL behind `connect_via`
standing in for the restored instance. It passes on a healthy source and FAILS, naming the defect, on
every broken one; the temporary instance is deleted whatever happens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from restoredrill import pgtools
from restoredrill.demo import load_shop
from restoredrill.targets.local import LocalInstance
from restoredrill.waiting import wait_until
from tests.conftest import AWS_ENV, MotoServer, free_port, run_cli, start_moto, traversable_tempdir

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("rds")]
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
HEALTHY = {
    "BackupRetentionPeriod": 30,
    "StorageEncrypted": True,
    "KmsKeyId": KMS,
    "DeletionProtection": True,
    "CopyTagsToSnapshot": True,
    "MultiAZ": True,
}


@pytest.fixture(scope="module")
def stand_in() -> Iterator[LocalInstance]:
    """The data a restored instance would hold, reachable the way a bastion tunnel would make it."""
    base = traversable_tempdir("rd-rds-db-")
    with LocalInstance(pgtools.bindir_for(15), run_id="rds-stand-in", base=base, label="rds-stand-in") as instance:
        load_shop(instance)
        yield instance
    base.rmdir()


@dataclass
class Case:
    root: Path
    moto: MotoServer
    source_id: str
    database: str
    stand_in: LocalInstance

    @property
    def rds(self) -> Any:
        import boto3

        return boto3.client(
            "rds",
            endpoint_url=self.moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing-key",
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def create_source(self, snapshot: bool = True, **settings: Any) -> None:
        merged = {key: value for key, value in {**HEALTHY, **settings}.items() if value is not None}
        self.rds.create_db_instance(
            DBInstanceIdentifier=self.source_id,
            DBInstanceClass="db.m5.large",
            Engine="postgres",
            MasterUsername="postgres",
            MasterUserPassword="MasterPass123",
            AllocatedStorage=20,
            **merged,
        )
        if snapshot:
            self.rds.create_db_snapshot(
                DBInstanceIdentifier=self.source_id, DBSnapshotIdentifier=f"{self.source_id}-m1"
            )

    def write_config(self, extra: str = "", policy: str = "", connect_via: str | None = None) -> Path:
        assert self.stand_in.connection is not None
        via = connect_via or f"host=127.0.0.1 port={self.stand_in.connection.port} user=postgres sslmode=disable"
        config = self.root / "drills.toml"
        config.write_text(
            f'reports_dir = "{self.root / "reports"}"\n'
            '[objectives.rds]\nrpo = "10m"\nrto = "1h"\n'
            f"[databases.{self.database}.rds]\n"
            f'source_instance = "{self.source_id}"\nregion = "us-east-1"\nendpoint_url = "{self.moto.endpoint}"\n'
            f'dbname = "shop"\npassword_env = "STAND_IN_PASSWORD"\nconnect_via = "{via}"\npoll_interval = "0.2s"\n'
            f"{extra}\n[databases.{self.database}.rds.policy]\nretention_days = 30\n{policy}\n"
        )
        return config

    def run(self) -> tuple[int, str]:
        assert self.stand_in.connection is not None
        result = run_cli(
            "run",
            "--config",
            str(self.root / "drills.toml"),
            timeout=240,
            env={"STAND_IN_PASSWORD": self.stand_in.connection.password},
        )
        return result.returncode, result.output

    def record(self) -> dict:
        (path,) = (self.root / "reports" / "evidence").glob("*.json")
        return json.loads(path.read_text())

    def drill_instances(self) -> list[dict[str, Any]]:
        return [
            i
            for i in self.rds.describe_db_instances()["DBInstances"]
            if i["DBInstanceIdentifier"].startswith(f"restoredrill-{self.database.replace('_', '-')}")
        ]


@pytest.fixture
def case(moto: MotoServer, stand_in: LocalInstance) -> Iterator[Case]:
    tag = uuid.uuid4().hex[:8]
    root = traversable_tempdir("rd-rds-case-")
    yield Case(root, moto, f"shop-prod-{tag}", f"shop_{tag}", stand_in)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def check(record: dict, name: str) -> dict:
    return next(c for c in record["checks"] if c["name"] == name)


def test_healthy_snapshot_restore_passes_is_private_and_deleted(case: Case) -> None:
    case.create_source()
    case.write_config(extra=f'[[databases.{case.database}.checks.min_rows]]\ntable = "public.users"\nmin = 2000')
    code, output = case.run()
    assert code == 0, output
    record = case.record()
    assert record["verdict"] == "passed"
    assert record["target"] == "rds"
    instance = record["target_info"]["instance"]
    assert instance["identifier"].startswith(f"restoredrill-shop-{case.database[5:]}")
    assert instance["class"] == "db.t3.micro"
    assert instance["multi_az"] is False
    assert instance["deletion_protection"] is False
    assert instance["tags"]["restoredrill"] == "true"
    assert instance["tags"]["restoredrill-run-id"] == record["run_id"]
    assert datetime.fromisoformat(instance["tags"]["restoredrill-expires-at"].replace("Z", "+00:00")) > datetime.now(
        UTC
    )
    assert record["backup"]["id"] in {f"{case.source_id}-m1"} or record["backup"]["id"].startswith("rds:")
    for name in (
        "backup_retention",
        "storage_encrypted_kms",
        "copy_tags_to_snapshot",
        "deletion_protection",
        "multi_az",
        "rpo_latest_restorable",
        "amcheck",
        "sequences",
    ):
        assert check(record, name)["outcome"] == "passed", name
    storage = record["storage"]  # every snapshot of the source at its AllocatedStorage (20 GiB each)
    assert storage["storage"] == "RDS backup storage"
    assert storage["size_bytes"] >= 20 * 1024**3
    assert storage["size_bytes"] % (20 * 1024**3) == 0
    assert storage["monthly"] == pytest.approx(storage["size_bytes"] / 1024**3 * 0.095)
    assert case.drill_instances() == [], "the temporary instance is always deleted"
    assert "Traceback" not in output


def test_point_in_time_restore_passes(case: Case) -> None:
    case.create_source()
    case.write_config(extra='restore_from = "point_in_time"\nrestore_time = "latest"')
    code, output = case.run()
    assert code == 0, output
    assert case.record()["recovery_target"] == "latest"
    assert case.drill_instances() == []


def test_no_snapshot_fails(case: Case) -> None:
    case.create_source(snapshot=False)
    case.write_config(extra='snapshot_type = "manual"')
    code, output = case.run()
    assert code == 1, output
    assert f"no manual snapshot of {case.source_id} exists" in case.record()["reason"]
    assert case.drill_instances() == []


def test_pitr_target_outside_the_window_fails(case: Case) -> None:
    case.create_source()
    early = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    case.write_config(extra=f'restore_from = "point_in_time"\nrestore_time = "{early}"')
    code, output = case.run()
    assert code == 1, output
    assert "is outside the restore window" in case.record()["reason"]
    assert case.drill_instances() == []


def test_instance_that_never_becomes_usable_times_out_and_is_deleted(case: Case) -> None:
    case.create_source()
    case.write_config(extra='available_timeout = "3s"', connect_via=f"host=127.0.0.1 port={free_port()} user=postgres")
    code, output = case.run()
    assert code == 3, output
    assert "never became usable within 3.0s" in case.record()["reason"]
    assert case.drill_instances() == [], "deleted on timeout too"


def test_failing_check_fails_and_the_instance_is_still_deleted(case: Case) -> None:
    case.create_source()
    case.write_config(extra=f'[[databases.{case.database}.checks.min_rows]]\ntable = "public.users"\nmin = 1000000')
    code, output = case.run()
    assert code == 1, output
    assert "min_rows:public.users" in case.record()["reason"]
    assert case.drill_instances() == []


@pytest.mark.parametrize(
    ("settings", "policy", "name", "words"),
    [
        ({"BackupRetentionPeriod": 7}, "", "backup_retention", "kept 7 day(s) (policy 30)"),
        ({"StorageEncrypted": False, "KmsKeyId": None}, "", "storage_encrypted_kms", "NOT encrypted"),
        ({}, 'dr_region = "eu-central-1"', "cross_region_backups", "no automated backup replication to the DR region"),
    ],
)
def test_settings_audit_fails_naming_the_setting(
    case: Case, settings: dict, policy: str, name: str, words: str
) -> None:
    case.create_source(**settings)
    case.write_config(policy=policy)
    code, output = case.run()
    assert code == 1, output
    finding = check(case.record(), name)
    assert finding["outcome"] == "failed"
    assert words in finding["detail"]
    assert case.drill_instances() == []


def test_access_denied_names_the_missing_permission(stand_in: LocalInstance) -> None:
    """IAM enforced after the setup calls: the drill role may describe but not restore."""
    strict = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "5"})
    root = traversable_tempdir("rd-rds-denied-")
    try:
        import boto3

        admin = {
            "endpoint_url": strict.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "y",
        }
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="drill")
        key = iam.create_access_key(UserName="drill")["AccessKey"]
        iam.put_user_policy(
            UserName="drill",
            PolicyName="describe-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["rds:Describe*", "rds:ListTagsForResource"], "Resource": "*"}
                    ],
                }
            ),
        )
        rds = boto3.client("rds", **admin)
        rds.create_db_instance(
            DBInstanceIdentifier="shop-denied",
            DBInstanceClass="db.m5.large",
            Engine="postgres",
            MasterUsername="postgres",
            MasterUserPassword="MasterPass123",
            AllocatedStorage=20,
            **HEALTHY,
        )
        rds.create_db_snapshot(DBInstanceIdentifier="shop-denied", DBSnapshotIdentifier="shop-denied-m1")
        case = Case(root, strict, "shop-denied", "shop_denied", stand_in)
        case.write_config()
        assert stand_in.connection is not None
        result = run_cli(
            "run",
            "--config",
            str(root / "drills.toml"),
            timeout=240,
            env={
                "STAND_IN_PASSWORD": stand_in.connection.password,
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
        )
        assert result.returncode == 3, result.output
        reason = case.record()["reason"]
        assert "AWS denied rds:RestoreDBInstanceFromDBSnapshot (AccessDenied)" in reason, reason
        assert key["SecretAccessKey"] not in result.output
    finally:
        strict.process.terminate()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_interrupted_drill_leaves_an_instance_the_janitor_removes(case: Case) -> None:
    case.create_source()
    case.write_config(
        extra='available_timeout = "120s"\nttl = "1s"', connect_via=f"host=127.0.0.1 port={free_port()} user=postgres"
    )
    planted = f"restoredrill-{case.database.replace('_', '-')}-planted"
    case.rds.create_db_instance(
        DBInstanceIdentifier=planted,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="postgres",
        MasterUserPassword="MasterPass123",
        AllocatedStorage=20,
        Tags=[{"Key": "restoredrill", "Value": "true"}],
    )  # no run id: never ours
    assert case.stand_in.connection is not None
    env = {**os.environ, **AWS_ENV, "STAND_IN_PASSWORD": case.stand_in.connection.password}
    drill = subprocess.Popen(
        [sys.executable, "-m", "restoredrill.cli", "run", "--config", str(case.root / "drills.toml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def shaped() -> bool:
        # moto copies MultiAZ/DeletionProtection from the source at restore, and the drill switches them off
        # right after (AWS would honour the restore call's own values): kill once that is done.
        return any(
            i["DBInstanceIdentifier"] != planted and not i["MultiAZ"] and not i["DeletionProtection"]
            for i in case.drill_instances()
        )

    wait_until(
        shaped,
        timeout=60,
        interval=0.2,
        timed_out=lambda: "the drill never made its instance single-AZ and unprotected",
        error=AssertionError,
    )
    drill.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
    drill.wait(30)
    leftover = next(i for i in case.drill_instances() if i["DBInstanceIdentifier"] != planted)
    # The restore call's parameters and tags, read back from the API:
    tags = {t["Key"]: t["Value"] for t in leftover["TagList"]}
    assert tags["restoredrill"] == "true"
    assert tags["restoredrill-run-id"]
    assert leftover["DBInstanceClass"] == "db.t3.micro"
    assert leftover["MultiAZ"] is False
    assert leftover["DeletionProtection"] is False
    time.sleep(1.5)  # ttl passed
    case.write_config()
    code, output = case.run()
    assert code == 0, output
    remaining = [i["DBInstanceIdentifier"] for i in case.drill_instances()]
    assert remaining == [planted], "the janitor deleted the expired drill instance and nothing else"
    case.rds.delete_db_instance(DBInstanceIdentifier=planted, SkipFinalSnapshot=True)


def test_the_janitor_command_deletes_expired_drill_instances_of_the_configured_accounts(case: Case) -> None:
    """`restoredrill janitor` (not only the next run) sweeps the RDS accounts the configuration reaches."""
    case.write_config()
    expired = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    base = {"DBInstanceClass": "db.t3.micro", "Engine": "postgres", "MasterUsername": "postgres"}
    leftover, foreign = f"restoredrill-{uuid.uuid4().hex[:8]}", f"app-{uuid.uuid4().hex[:8]}"
    case.rds.create_db_instance(
        DBInstanceIdentifier=leftover,
        MasterUserPassword="MasterPass123",
        AllocatedStorage=20,
        Tags=[
            {"Key": "restoredrill", "Value": "true"},
            {"Key": "restoredrill-run-id", "Value": "crashed-run"},
            {"Key": "restoredrill-expires-at", "Value": expired},
        ],
        **base,
    )
    case.rds.create_db_instance(
        DBInstanceIdentifier=foreign, MasterUserPassword="MasterPass123", AllocatedStorage=20, **base
    )
    result = run_cli("janitor", "--config", str(case.root / "drills.toml"), timeout=120)
    assert result.returncode == 0, result.output
    assert f"RDS instance {leftover}" in result.output
    names = {i["DBInstanceIdentifier"] for i in case.rds.describe_db_instances()["DBInstances"]}
    assert leftover not in names
    assert foreign in names, "an instance without the drill's tags is never touched"
    case.rds.delete_db_instance(DBInstanceIdentifier=foreign, SkipFinalSnapshot=True)
