"""The report's "Backup policy" and "Storage cost" tables: every policy check and the RDS settings audit under
one heading, a failed rule shown as failed with its finding, and each layer's monthly cost once per layer."""

from __future__ import annotations

import html as html_mod
from pathlib import Path

from restoredrill import cost
from restoredrill.config import CostPrices
from restoredrill.evidence import CheckRecord
from restoredrill.report import build_report
from tests.report.factory import NOW, healthy, run_id_at, write

RUN = run_id_at(NOW, "pol001")


def test_policy_and_cost_tables(tmp_path: Path) -> None:
    prices = CostPrices()
    logical = healthy("shop", RUN, NOW)
    logical.checks.append(
        CheckRecord(name="policy_daily_dumps", outcome="failed", detail="no dump on 1 of 9 day(s): missing 2026-10-30")
    )
    logical.verdict, logical.reason = "failed", "policy_daily_dumps: missing 2026-10-30"
    logical.storage = cost.priced("S3 Standard", 2 * cost.GIB, "4 dump(s) listed", prices.s3_gb_month, prices)
    latest = healthy("shop", RUN, NOW, layer="pgbackrest", variant="latest")
    immediate = healthy("shop", RUN, NOW, layer="pgbackrest", variant="immediate")
    for record in (latest, immediate):  # one repository: counted once
        record.storage = cost.pgbackrest_storage("posix", [10 * cost.GIB], 0, prices)
    latest.checks.append(CheckRecord(name="policy_retention", outcome="passed", detail="repo1-retention-full=2"))
    rds = healthy("shop", RUN, NOW, layer="rds")
    rds.checks.append(CheckRecord(name="deletion_protection", outcome="passed", detail="DeletionProtection is True"))
    write(tmp_path, [logical, latest, immediate, rds])
    page = html_mod.unescape(build_report(tmp_path).html.read_text())
    policy = page[page.index('<section id="policy">') : page.index('<section id="cost">')]
    for shown in ("policy_daily_dumps", "missing 2026-10-30", "FAILED", "policy_retention"):
        assert shown in policy
    assert "deletion_protection" in policy  # the RDS audit, under the same heading
    table = page[page.index('<section id="cost">') :].split("</section>")[0]
    assert table.count("block volume (EBS gp3)") == 1
    assert "S3 Standard" in table
    assert "0.05 USD" in table  # 2 GiB at 0.023
    assert "0.88 USD" in table  # 10 GiB at 0.088
    assert "0.93 USD" in table  # the total
