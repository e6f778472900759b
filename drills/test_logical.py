"""Logical layer drill, as the runbook reads:

1. find the newest pg_dump of the database and measure the RPO (age, and gaps in the retention window);
2. fetch it (streamed, SHA-256 against what the backup job recorded), read its table of contents;
3. pg_restore -j into a fresh database of a throwaway PostgreSQL of the dump's major, measure the RTO;
4. check the restored database; every check is one item below, all sharing that one restore.

Select one database with `-k <name>`.
"""

from __future__ import annotations

import allure

from fixtures.items import run_item
from restoredrill.layers.logical import LogicalDrill


@allure.epic("restore drills")
@allure.feature("logical (pg_dump)")
def test_logical(logical_case: tuple[str, str], logical_drill: LogicalDrill) -> None:
    database, check = logical_case
    allure.dynamic.story(database)
    run_item(logical_drill, check, f"{database}: {check}", log_name="pg_restore log (tail)")
