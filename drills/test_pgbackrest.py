"""pgBackRest layer drill, as the runbook reads, once per recovery target (latest, immediate, time):

1. read the repository with the user's own config (`pgbackrest info`), list every set and the WAL archive;
2. `pgbackrest restore --archive-mode=off` the newest set into a new data directory (never the source's);
3. start it privately, let it recover to the target, wait until it is promoted; RTO stops there;
4. check: recovery reached its target, archive_mode is off, the heartbeat marker proves how far WAL was
   replayed, WAL continuity and `pgbackrest verify` (latest), amcheck, sequences, configured checks.
"""

from __future__ import annotations

import allure
import pytest

from restoredrill.checks import NotApplicable
from restoredrill.layers.physical import PhysicalDrill


@allure.epic("restore drills")
@allure.feature("physical (pgBackRest)")
def test_pgbackrest(pgbackrest_case: tuple[str, str, str], pgbackrest_drill: PhysicalDrill) -> None:
    database, kind, check = pgbackrest_case
    allure.dynamic.story(f"{database} ({kind})")
    allure.dynamic.title(f"{database} {kind}: {check}")
    if check == "restore":
        record = pgbackrest_drill.restore_outcome()
        allure.attach(
            pgbackrest_drill.restore_log_tail() or "(pgbackrest printed nothing)",
            name="pgbackrest restore and server log (tail)",
            attachment_type=allure.attachment_type.TEXT,
        )
    else:
        try:
            record = pgbackrest_drill.check(check)
        except NotApplicable as exc:
            pytest.skip(f"not applicable to this backup: {exc}")
    if record.sql:
        allure.attach(record.sql, name="sql", attachment_type=allure.attachment_type.TEXT)
    assert record.outcome == "passed", f"{check} {record.outcome}: {record.detail}"
