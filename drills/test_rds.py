"""RDS layer, as the runbook reads. Before these, test_every_drill.py's `test_restore`: the source
instance described, the newest snapshot (or a point in time inside the restore window) restored into a
temporary, private, single-AZ instance tagged with the run, usable within the RTO; it is deleted whatever
happens when the drill finishes.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.restored import BuiltinCheck

pytestmark = [pytest.mark.drill(layer="rds"), allure.epic("restore drills"), allure.feature("RDS")]


def test_rpo_latest_restorable(builtin: BuiltinCheck) -> None:
    """LatestRestorableTime is within the RPO: point-in-time recovery reaches close enough to now."""
    builtin.verify()


def test_backup_retention(builtin: BuiltinCheck) -> None:
    """Automated backups are kept at least as many days as the policy asks."""
    builtin.verify()


def test_storage_encrypted_kms(builtin: BuiltinCheck) -> None:
    """Storage (and so every snapshot and backup) is encrypted with a KMS key."""
    builtin.verify()


def test_copy_tags_to_snapshot(builtin: BuiltinCheck) -> None:
    """Snapshots carry the instance's tags, so ownership and retention rules follow them."""
    builtin.verify()


def test_deletion_protection(builtin: BuiltinCheck) -> None:
    """A production instance cannot be deleted by mistake (policy: production)."""
    builtin.verify()


def test_multi_az(builtin: BuiltinCheck) -> None:
    """A production instance runs Multi-AZ (policy: production)."""
    builtin.verify()


def test_cross_region_backups(builtin: BuiltinCheck) -> None:
    """Backups are replicated to another region, as the policy asks."""
    builtin.verify()
