"""Logical layer drill, as the runbook reads:

1. find the newest pg_dump of the database and measure the RPO (age, and gaps in the retention window);
2. fetch it (streamed, SHA-256 against what the backup job recorded), read its table of contents;
3. pg_restore -j into a fresh database of a throwaway PostgreSQL of the dump's major, measure the RTO;
4. check the restored database; every check is one item below, all sharing that one restore.

Select one database with `-k <name>`.
"""

from __future__ import annotations

import allure
import pytest

from restoredrill.checks import NotApplicable
from restoredrill.layers.logical import LogicalDrill


@allure.epic("restore drills")
@allure.feature("logical (pg_dump)")
def test_logical(logical_case: tuple[str, str], logical_drill: LogicalDrill) -> None:
    database, check = logical_case
    allure.dynamic.story(database)
    allure.dynamic.title(f"{database}: {check}")
    if check == "restore":
        record = logical_drill.restore_outcome()
        allure.attach(
            logical_drill.restore_log_tail() or "(pg_restore printed nothing)",
            name="pg_restore log (tail)",
            attachment_type=allure.attachment_type.TEXT,
        )
    else:
        try:
            record = logical_drill.check(check)
        except NotApplicable as exc:
            pytest.skip(f"not applicable to this backup: {exc}")
    if record.sql:
        allure.attach(record.sql, name="sql", attachment_type=allure.attachment_type.TEXT)
    assert record.outcome == "passed", f"{check} {record.outcome}: {record.detail}"
