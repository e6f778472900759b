"""RDS layer drill, as the runbook reads:

1. describe the source instance; audit its backup settings against the strategy (each its own item);
2. pick the newest available snapshot (or a point in time inside the restore window);
3. restore it into a temporary, private, single-AZ instance restoredrill-<db>-<time>, tagged with the run;
4. wait until it accepts connections (RTO), run the same checks as the other layers;
5. delete it, whatever happened.
"""

from __future__ import annotations

import allure

from fixtures.items import run_item
from restoredrill.layers.rds import RdsDrill


@allure.epic("restore drills")
@allure.feature("RDS")
def test_rds(rds_case: tuple[str, str], rds_drill: RdsDrill) -> None:
    database, check = rds_case
    allure.dynamic.story(database)
    run_item(rds_drill, check, f"{database}: {check}")
