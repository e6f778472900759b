"""`restoredrill report --allure`: a real single-file Allure 2 report (the Allure command line and Java),
with the five failure categories, environment properties and history carried from the previous run."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.report.conftest import cli
from tests.report.factory import NOW, corrupt, could_not_verify, healthy, run_id_at, stale, write

EARLIER = NOW - timedelta(days=30)


def embedded(html: str, name: str) -> Any:
    """A data file Allure's single-file mode embeds as base64."""
    match = re.search(rf"d\('{re.escape(name)}','([A-Za-z0-9+/=]*)'\)", html)
    assert match, f"{name} is not embedded"
    return json.loads(base64.b64decode(match.group(1)))


def test_allure_report_with_categories_environment_and_carried_history(
    tmp_path: Path,
    allure_cli: str,
    open_report,  # type: ignore[no-untyped-def]
) -> None:
    reports = tmp_path / "reports"
    first = run_id_at(EARLIER, "first1")
    write(reports, [healthy("shop", first, EARLIER), healthy("billing", first, EARLIER)])
    made = cli("report", "--reports", str(reports), "--allure", cwd=tmp_path)
    assert made.returncode == 0, made.output
    assert (reports / "allure-history" / "history-trend.json").is_file()

    run = run_id_at(NOW, "second")
    write(
        reports,
        [
            healthy("shop", run, NOW),
            corrupt("billing", run, NOW),
            could_not_verify("ledger", run, NOW),
            stale("audit", run, NOW),
        ],
    )
    made = cli("report", "--reports", str(reports), "--allure", cwd=tmp_path)
    assert made.returncode == 0, made.output
    path = reports / "allure-report-2026-11-01.html"
    assert f"allure: {path}" in made.output
    html = path.read_text()
    assert not re.search(r"googletagmanager|google-analytics|gtag\(", html, re.IGNORECASE)

    categories = {c["name"]: c["statistic"] for c in embedded(html, "widgets/categories.json")["items"]}
    assert set(categories) == {"Backup corrupt", "Could not verify", "Stale backup"}
    assert categories["Backup corrupt"]["failed"] == 1
    assert categories["Could not verify"]["broken"] == 1  # ledger's restore; its other checks never ran
    environment = {e["name"]: e["values"] for e in embedded(html, "widgets/environment.json")}
    assert environment["run"] == [run]
    assert "tool.pg_restore" in environment
    trend = embedded(html, "history/history-trend.json")
    assert len(trend) == 2  # this run and the carried previous one
    assert trend[1]["data"]["passed"] == 2 * 14  # the first run: two healthy drills of 14 checks
    assert json.loads((reports / "drill-report-2026-11-01.manifest.json").read_text())["files"][-1]["path"] == (
        "allure-report-2026-11-01.html"
    )

    opened = open_report(path)
    opened.page.wait_for_selector("text=test cases", timeout=15000)
    assert opened.external_requests == []


def test_without_allure_it_says_so_and_fails(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    write(reports, [healthy("shop", run_id_at(NOW), NOW)])
    result = cli(
        "report", "--reports", str(reports), "--allure", cwd=tmp_path, env={"RESTOREDRILL_ALLURE": "/nonexistent"}
    )
    assert result.returncode == 3, result.output
    assert "no Allure report: the Allure command line is not available" in result.output
    assert "Traceback" not in result.output
    assert (reports / "drill-report-2026-11-01.html").is_file()  # the audit report itself is still written
    assert not list(reports.glob("allure-report-*"))
