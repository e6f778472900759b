"""pgBackRest layer drill, as the runbook reads, once per recovery target (latest, immediate, time):

1. read the repository with the user's own config (`pgbackrest info`), list every set and the WAL archive;
2. `pgbackrest restore --archive-mode=off` the newest set into a new data directory (never the source's);
3. start it privately, let it recover to the target, wait until it is promoted; RTO stops there;
4. check: recovery reached its target, archive_mode is off, the heartbeat marker proves how far WAL was
   replayed, WAL continuity and `pgbackrest verify` (latest), amcheck, sequences, configured checks.
"""

from __future__ import annotations

import allure

from fixtures.items import run_item
from restoredrill.layers.pgbackrest import PgBackRestDrill


@allure.epic("restore drills")
@allure.feature("pgBackRest")
def test_pgbackrest(pgbackrest_case: tuple[str, str, str], pgbackrest_drill: PgBackRestDrill) -> None:
    database, kind, check = pgbackrest_case
    allure.dynamic.story(f"{database} ({kind})")
    run_item(
        pgbackrest_drill, check, f"{database} {kind}: {check}", log_name="pgbackrest restore and server log (tail)"
    )
