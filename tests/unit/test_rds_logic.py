"""Pure RDS logic: which snapshot, the restore window, names, the settings audit, AWS errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.exceptions
import pytest

from restoredrill.config import RdsPolicy
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.layers.rds_api import audit, choose_snapshot, explain, restore_window, temporary_identifier

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def snap(name: str, hours_ago: float, status: str = "available", kind: str = "automated") -> dict:
    return {
        "DBSnapshotIdentifier": name,
        "SnapshotCreateTime": NOW - timedelta(hours=hours_ago),
        "Status": status,
        "SnapshotType": kind,
    }


def test_newest_available_snapshot_of_the_wanted_kind() -> None:
    snapshots = [snap("a", 30), snap("b", 6), snap("m", 1, kind="manual")]
    assert choose_snapshot(snapshots, "any", "db").snapshot["DBSnapshotIdentifier"] == "m"
    assert choose_snapshot(snapshots, "automated", "db").snapshot["DBSnapshotIdentifier"] == "b"
    with pytest.raises(BackupDefect, match="no manual snapshot of db exists"):
        choose_snapshot([snap("a", 3)], "manual", "db")


def test_a_snapshot_still_being_created_falls_back_with_a_note() -> None:
    choice = choose_snapshot([snap("old", 24), snap("new", 0.1, status="creating")], "any", "db")
    assert choice.snapshot["DBSnapshotIdentifier"] == "old"
    assert choice.note is not None
    assert "still being created" in choice.note


@pytest.mark.parametrize("status", ["failed", "incompatible-restore", "deleting"])
def test_a_newest_snapshot_that_is_not_available_fails(status: str) -> None:
    with pytest.raises(BackupDefect, match=f"the newest snapshot new of db is '{status}', not available"):
        choose_snapshot([snap("old", 24), snap("new", 1, status=status)], "any", "db")


def test_restore_window_from_retention_and_latest_restorable_time() -> None:
    instance = {
        "DBInstanceIdentifier": "db",
        "LatestRestorableTime": NOW - timedelta(minutes=5),
        "BackupRetentionPeriod": 7,
        "InstanceCreateTime": NOW - timedelta(days=100),
    }
    window = restore_window(instance, [], NOW)
    assert window.earliest == NOW - timedelta(days=7)
    assert window.resolve("latest") is None
    assert window.resolve("1h") == NOW - timedelta(minutes=65)
    with pytest.raises(BackupDefect, match="outside the restore window"):
        window.resolve((NOW - timedelta(days=8)).isoformat())
    with pytest.raises(BackupDefect, match="outside the restore window"):
        window.resolve((NOW + timedelta(hours=1)).isoformat())
    with pytest.raises(ConfigError, match="restore_time 'soon'"):
        window.resolve("soon")
    with pytest.raises(BackupDefect, match="no LatestRestorableTime"):
        restore_window({"DBInstanceIdentifier": "db"}, [], NOW)


def test_temporary_identifier_is_a_valid_rds_name() -> None:
    name = temporary_identifier("Shop_Prod.EU", NOW)
    assert name == "restoredrill-shop-prod-eu-20261126120000"
    assert len(temporary_identifier("x" * 200, NOW)) <= 63


def test_audit_passes_and_fails_each_setting() -> None:
    healthy = {
        "BackupRetentionPeriod": 35,
        "StorageEncrypted": True,
        "KmsKeyId": "arn:key",
        "DeletionProtection": True,
        "CopyTagsToSnapshot": True,
        "MultiAZ": True,
        "DBInstanceAutomatedBackupsReplications": [
            {"DBInstanceAutomatedBackupsArn": "arn:aws:rds:eu-central-1:1:auto-backup:ab-x"}
        ],
    }
    policy = RdsPolicy(retention_days=30, production=True, dr_region="eu-central-1")
    assert all(f.ok for f in audit(healthy, policy))
    assert {f.name for f in audit(healthy, policy)} == {
        "backup_retention",
        "storage_encrypted_kms",
        "copy_tags_to_snapshot",
        "deletion_protection",
        "multi_az",
        "cross_region_backups",
    }
    broken = {"BackupRetentionPeriod": 7, "StorageEncrypted": False}
    assert not any(f.ok for f in audit(broken, policy))
    dev = RdsPolicy(production=False)
    assert {f.name for f in audit(broken, dev)} == {
        "backup_retention",
        "storage_encrypted_kms",
        "copy_tags_to_snapshot",
    }


def test_access_denied_names_the_permission() -> None:
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "no"}}, "RestoreDBInstanceFromDBSnapshot"
    )
    message = str(explain(error))
    assert isinstance(explain(error), CouldNotVerify)
    assert message == (
        "AWS denied rds:RestoreDBInstanceFromDBSnapshot (AccessDenied): grant "
        "rds:RestoreDBInstanceFromDBSnapshot to the drill role"
    )
