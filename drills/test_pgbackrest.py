"""pgBackRest layer (physical + WAL), as the runbook reads, once per recovery target (latest, immediate,
time). Before these, test_every_drill.py's `test_restore`: the repository read with the user's own config,
the newest set restored with `--archive-mode=off` into a new data directory (never the source's), started
privately and recovered to the target until promoted; the RTO stops there.
"""

from __future__ import annotations

import allure
import pytest

from fixtures.restored import BuiltinCheck

pytestmark = [
    pytest.mark.drill(layer="pgbackrest"),
    allure.epic("restore drills"),
    allure.feature("pgBackRest"),
]


def test_rpo_newest_wal(builtin: BuiltinCheck) -> None:
    """The newest archived WAL segment is younger than the RPO: WAL archiving has not stalled (latest)."""
    builtin.verify()


def test_wal_continuity(builtin: BuiltinCheck) -> None:
    """The archived WAL is continuous from the oldest retained full backup: every point of the window can
    be recovered (latest)."""
    builtin.verify()


def test_pgbackrest_verify(builtin: BuiltinCheck) -> None:
    """`pgbackrest verify` finds no invalid or missing file, read from its output: it exits 0 even on errors
    (latest)."""
    builtin.verify()


def test_recovery(builtin: BuiltinCheck) -> None:
    """Recovery reached its target, proven by the replay LSN and by the server's own log lines, and the
    server was promoted."""
    builtin.verify()


def test_archive_mode_off(builtin: BuiltinCheck) -> None:
    """The restored copy runs with archive_mode off: it cannot push WAL into the production repository."""
    builtin.verify()


def test_replay_proof(builtin: BuiltinCheck) -> None:
    """The heartbeat marker (or a freshness column) proves how far WAL was replayed: not short of the
    target (data missing), not past it (recovery went too far)."""
    builtin.verify()


def test_ledger_pitr(builtin: BuiltinCheck) -> None:
    """Random point-in-time restores each hold exactly the ledger rows committed at or before their target
    (latest, when a ledger is configured)."""
    builtin.verify()


# ----- the backup policy ([policy.pgbackrest], latest; read-only: settings, `info`, pg_stat_archiver) ----------


def test_policy_retention(builtin: BuiltinCheck) -> None:
    """The repository's retention settings (full and diff counts or days, archive retention), as pgBackRest
    would read them for `expire`, keep at least what the policy asks: a setting below it is named."""
    builtin.verify()


def test_policy_full_age(builtin: BuiltinCheck) -> None:
    """The newest full backup is no older than the policy allows: a weekly full that stopped is caught."""
    builtin.verify()


def test_policy_diff_age(builtin: BuiltinCheck) -> None:
    """The newest differential (or full) backup is no older than the policy allows."""
    builtin.verify()


def test_policy_encryption(builtin: BuiltinCheck) -> None:
    """The repository is encrypted (a cipher other than none) when the policy requires it."""
    builtin.verify()


def test_policy_archive_health(builtin: BuiltinCheck) -> None:
    """On the source, through a read-only connection, pg_stat_archiver shows the newest WAL archived within
    the RPO, no failure after the last success, and failed_count not rising since the last drill."""
    builtin.verify()
