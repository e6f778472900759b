"""RDS layer drill, as the runbook reads:

1. describe the source instance; audit its backup settings against the strategy (each its own item);
2. pick the newest available snapshot (or a point in time inside the restore window);
3. restore it into a temporary, private, single-AZ instance restoredrill-<db>-<time>, tagged with the run;
4. wait until it accepts connections (RTO), run the same checks as the other layers;
5. delete it, whatever happened.
"""

from __future__ import annotations

import allure
import pytest

from restoredrill.checks import NotApplicable
from restoredrill.layers.rds import RdsDrill


@allure.epic("restore drills")
@allure.feature("RDS")
def test_rds(rds_case: tuple[str, str], rds_drill: RdsDrill) -> None:
    database, check = rds_case
    allure.dynamic.story(database)
    allure.dynamic.title(f"{database}: {check}")
    if check == "restore":
        record = rds_drill.restore_outcome()
    else:
        try:
            record = rds_drill.check(check)
        except NotApplicable as exc:
            pytest.skip(f"not applicable to this backup: {exc}")
    if record.sql:
        allure.attach(record.sql, name="sql", attachment_type=allure.attachment_type.TEXT)
    assert record.outcome == "passed", f"{check} {record.outcome}: {record.detail}"
