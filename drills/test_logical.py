"""Logical layer (pg_dump), as the runbook reads. Before these, test_every_drill.py's `test_restore`:
the newest dump found, fetched (streamed, SHA-256 against what the backup job recorded), its table of
contents read, and pg_restore -j run into a fresh database of a throwaway PostgreSQL of the dump's major.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.restored import BuiltinCheck

pytestmark = [pytest.mark.drill(layer="logical"), allure.epic("restore drills"), allure.feature("logical (pg_dump)")]


def test_rpo_newest_age(builtin: BuiltinCheck) -> None:
    """The newest dump is younger than the RPO: the backups are not stale."""
    builtin.verify()


def test_rpo_largest_gap(builtin: BuiltinCheck) -> None:
    """No two consecutive dumps of the retention window are further apart than the RPO: no day is missing."""
    builtin.verify()


def test_restore_errors(builtin: BuiltinCheck) -> None:
    """pg_restore exited 0 and printed no error: an error it ignored is a table or index that is missing."""
    builtin.verify()


def test_toc_tables(builtin: BuiltinCheck) -> None:
    """Every table the dump's table of contents lists exists after the restore."""
    builtin.verify()


def test_manifest_row_counts(builtin: BuiltinCheck) -> None:
    """Every table holds exactly the rows the manifest counted at backup time: no table came back short."""
    builtin.verify()


def test_manifest_structure(builtin: BuiltinCheck) -> None:
    """The restored schema (tables, columns, constraints, indexes, ...) matches the manifest's fingerprint."""
    builtin.verify()


def test_manifest_content(builtin: BuiltinCheck) -> None:
    """Each table's content hash equals the one of backup time: same counts can hide altered rows."""
    builtin.verify()


def test_matviews_populated(builtin: BuiltinCheck) -> None:
    """Materialized views populated at backup time are populated after the restore (a lost data entry
    restores them empty without any error)."""
    builtin.verify()


# ----- the backup policy ([policy.logical], read-only: listing and head_object, never a write) -----------------


def test_policy_daily_dumps(builtin: BuiltinCheck) -> None:
    """One dump per day inside the retention window, with no missing day: a nightly job that silently stopped
    on some days fails here, naming the days."""
    builtin.verify()


def test_policy_pruning(builtin: BuiltinCheck) -> None:
    """Nothing is older than the retention window plus the grace period: pruning works (storage costs and
    data-retention promises both depend on it)."""
    builtin.verify()


def test_policy_encryption(builtin: BuiltinCheck) -> None:
    """Every object under the prefix has server-side encryption (head_object), with the configured KMS key
    when one is set: an unencrypted dump is named."""
    builtin.verify()


def test_policy_bucket_versioning(builtin: BuiltinCheck) -> None:
    """The bucket keeps versions, so an overwritten or deleted dump can still be recovered."""
    builtin.verify()


def test_policy_object_lock(builtin: BuiltinCheck) -> None:
    """The bucket has object lock, so a dump cannot be deleted or overwritten before its retention ends."""
    builtin.verify()
