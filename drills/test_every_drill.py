"""What every drill proves, whatever the layer: the restore, the RTO, and the restored database itself.

Each test is one check of the engine (src/restoredrill), run on the drill's one restore and recorded in
its evidence. Adding a built-in check is three lines: the engine plans a check named <name> (a layer's
`database_checks()` or `timing_checks`), and a test named `test_<name>` that takes `builtin` runs it on
every drill that plans it (configured checks `<name>:<what>` get one item each):

    def test_new_check(builtin: BuiltinCheck) -> None:
        \"\"\"What it proves, in one sentence a reviewer can hold the backup to.\"\"\"
        builtin.verify()

An engine check no test is named after yet still runs, through `test_engine_check` (test_unwrapped.py).
A team's own checks take `restored` instead (README, "Writing your own drill").
"""

from __future__ import annotations

import allure

from fixtures.restored import BuiltinCheck

pytestmark = allure.epic("restore drills")


def test_restore(builtin: BuiltinCheck) -> None:
    """The newest backup restores into a throwaway PostgreSQL that accepts connections: a backup that was
    never restored is a hope, not a backup. Every other check of the drill runs on this one restore."""
    builtin.verify()


def test_rto(builtin: BuiltinCheck) -> None:
    """The restore (fetch, restore, recovery, until the database answers) took no longer than the RTO."""
    builtin.verify()


def test_amcheck(builtin: BuiltinCheck) -> None:
    """pg_amcheck reads every heap page and btree index of the restored database: corruption the restore
    itself did not notice (a torn page, an index that lost entries) fails here."""
    builtin.verify()


def test_sequences(builtin: BuiltinCheck) -> None:
    """Every sequence that feeds a column (serial, identity, or a DEFAULT nextval()) is past the column's
    values: a sequence behind its column makes every insert fail on a duplicate key after a restore."""
    builtin.verify()


def test_min_rows(builtin: BuiltinCheck) -> None:
    """Each table configured with `min_rows` exists and holds at least that many rows."""
    builtin.verify()


def test_freshness(builtin: BuiltinCheck) -> None:
    """The newest value of each configured timestamp column is within its allowed lag (default: the RPO)
    of the backup: the data is as recent as the backup claims."""
    builtin.verify()


def test_sql(builtin: BuiltinCheck) -> None:
    """Each configured SQL query returns its expected value on the restored database."""
    builtin.verify()


def test_drift(builtin: BuiltinCheck) -> None:
    """The restored database has the shape of the last passing drill of the same database, layer and variant:
    no table lost more rows than `[drift]` allows, no schema, table, column, index, constraint, sequence, view or
    function vanished, and the database did not shrink past its tolerance. Works without a manifest; the first
    drill of a database records its baseline and says so (not applicable, never a pass)."""
    builtin.verify()
