"""The HTML drill report rendered from evidence records, read in a real Chromium: verdicts, objectives and
checks are visible, nothing is fetched, hostile names stay text, and a big report is fast and small."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from restoredrill.evidence import CheckRecord
from restoredrill.report import build_report
from restoredrill.report.classify import check_category, drill_category
from restoredrill.report.history import load_history
from restoredrill.verdicts import PlannedDrill
from tests.report.factory import (
    NOW,
    corrupt,
    could_not_verify,
    healthy,
    monthly_history,
    run_id_at,
    stale,
    write,
)

HOSTILE = "<script>alert(1)</script>"
RUN = run_id_at(NOW, "cur001")
GREEN = "rgb(26, 127, 55)"


def test_categories_name_why_a_drill_did_not_pass() -> None:
    assert drill_category(healthy("a", RUN, NOW)) is None
    assert drill_category(corrupt("a", RUN, NOW)) == "backup corrupt"
    assert drill_category(stale("a", RUN, NOW)) == "stale backup"
    assert drill_category(could_not_verify("a", RUN, NOW)) == "could not verify"
    assert check_category(CheckRecord(name="restore_errors", outcome="failed", detail="x")) == "restore failed"
    assert check_category(CheckRecord(name="min_rows:t", outcome="failed", detail="x")) == "check failed"
    assert check_category(CheckRecord(name="amcheck", outcome="error", detail="x")) == "could not verify"
    assert check_category(CheckRecord(name="amcheck", outcome="passed", detail="x")) is None


def test_history_keeps_variants_apart_and_counts_unreadable_lines(tmp_path: Path) -> None:
    earlier = run_id_at(NOW - timedelta(days=30), "old001")
    write(tmp_path, [healthy("shop", earlier, NOW - timedelta(days=30), layer="pgbackrest", variant="time", rto=50)])
    write(tmp_path, [healthy("shop", earlier, NOW - timedelta(days=30), layer="pgbackrest", variant="latest", rto=40)])
    with (tmp_path / "history.jsonl").open("a") as history:
        history.write("{not json\n")
    current = healthy("shop", RUN, NOW, layer="pgbackrest", variant="time", rto=70)
    found = load_history(tmp_path, [current], up_to_run=RUN)
    assert [p.rto_s for p in found.series[("shop", "pgbackrest", "time")]] == [50, 70]
    assert [p.rto_s for p in found.series[("shop", "pgbackrest", "latest")]] == [40]
    assert found.unreadable_lines == 1
    assert found.runs == 2


def _mixed(reports: Path) -> Path:
    monthly_history(reports, ["billing", "shop", HOSTILE, "ledger"], 6, NOW)
    write(
        reports,
        [
            healthy("billing", RUN, NOW, rto=130),
            corrupt("shop", RUN, NOW),
            could_not_verify(HOSTILE, RUN, NOW),
            stale("ledger", RUN, NOW),
        ],
    )
    return build_report(reports).html


def test_failing_report_in_chromium(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    opened = open_report(_mixed(tmp_path))
    assert opened.text("#verdict .verdict-word") == "FAILED"
    assert opened.color("#verdict .verdict-word") != GREEN
    headline = opened.text("#verdict .headline")
    assert "2 of 4 drills failed" in headline
    assert "shop / logical (backup corrupt)" in headline
    assert "1 of 4 could not be verified" in headline
    failures = opened.text("#failures")
    assert "checksum mismatch" in failures
    assert "What to do: Take a fresh backup now" in failures
    assert "the backups are stale" in failures
    objectives = opened.text("#objectives")
    assert "2m10s of 1h" in objectives  # billing's RTO against its objective
    assert "3d of 1d2h" in objectives  # ledger's stale RPO
    assert opened.page.locator("#objectives .g-over").count() == 1
    assert opened.page.get_by_text("manifest_row_counts").first.is_visible()
    assert opened.page.get_by_text("SELECT count(*) FROM ONLY <each table>").first.is_visible()
    assert "tested in 7 month(s) of the 12 to 2026-11-01" in opened.text("#controls")
    assert opened.external_requests == []
    assert opened.dialogs == []


def test_hostile_database_name_is_text_and_nothing_executes(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    html = _mixed(tmp_path)
    assert HOSTILE not in html.read_text()  # escaped in the source
    opened = open_report(html)
    assert opened.page.get_by_text(HOSTILE, exact=True).first.is_visible()  # the matrix row
    assert opened.page.get_by_text(HOSTILE).count() >= 4  # objectives, failures, details, trends ...
    assert HOSTILE in opened.text("#matrix")
    assert opened.page.locator("script").count() == 0
    assert opened.dialogs == []
    assert opened.external_requests == []


def test_healthy_report_is_green_and_shows_trends(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    monthly_history(tmp_path, ["shop"], 3, NOW)
    write(tmp_path, [healthy("shop", RUN, NOW, rto=80)])
    opened = open_report(build_report(tmp_path).html)
    assert opened.text("#verdict .verdict-word") == "PASSED"
    assert opened.color("#verdict .verdict-word") == GREEN
    assert "passed every check, every one within its RTO and RPO" in opened.text("#verdict")
    assert "4 runs since" in opened.text("#trends")
    dots = opened.page.locator("#trends svg circle.dot")
    assert dots.count() == 8  # RTO and RPO, 4 runs each
    assert "2026-11" in opened.text("#trends table.months")
    assert opened.external_requests == []


def test_could_not_verify_is_never_green(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, [healthy("shop", RUN, NOW), could_not_verify("billing", RUN, NOW)])
    opened = open_report(build_report(tmp_path).html)
    assert opened.text("#verdict .verdict-word") == "COULD NOT VERIFY"
    assert opened.color("#verdict .verdict-word") != GREEN
    assert "nothing is proven" in opened.text("#verdict")
    assert "S3 denied access" in opened.text("#failures")
    assert "NOT EVIDENCED" in opened.text("#controls")
    assert opened.external_requests == []


def test_configured_drill_without_a_record_is_shown_as_not_run(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, [healthy("shop", RUN, NOW)])
    built = build_report(tmp_path, expected=[PlannedDrill("shop", "logical"), PlannedDrill("billing", "logical")])
    opened = open_report(built.html)
    assert "billing / logical" in opened.text("#verdict .notice")
    assert "NOT RUN" in opened.text("#matrix")


def test_fifty_drills_render_without_a_hang_and_under_two_megabytes(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    databases = [f"db{i:02d}" for i in range(50)]
    monthly_history(tmp_path, databases, 12, NOW)
    write(tmp_path, [healthy(db, RUN, NOW) if i % 10 else corrupt(db, RUN, NOW) for i, db in enumerate(databases)])
    started = time.perf_counter()
    built = build_report(tmp_path)
    rendered = time.perf_counter() - started
    size = built.html.stat().st_size
    print(f"50-drill report: rendered in {rendered:.3f} s, {size / 1024:.0f} KiB")
    assert built.drills == 50
    assert rendered < 20.0  # a hang guard; the figure above is the measurement (0.3 s on a quiet machine)
    assert size < 2 * 1024 * 1024
    opened = open_report(built.html)
    loaded = opened.page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
    print(f"50-drill report: loaded and laid out by Chromium in {loaded:.3f} s")
    assert 0 < loaded < 20.0
    assert opened.page.locator("article.drill").count() == 50
    assert opened.text("#verdict .verdict-word") == "FAILED"


def test_every_value_is_escaped(tmp_path: Path) -> None:
    record = healthy('x" onmouseover="alert(1)', RUN, NOW)
    record.checks[0].detail = "</td></tr></table><img src=x onerror=alert(1)>"
    record.checks[5].sql = "SELECT '<b>bold</b>'"
    write(tmp_path, [record])
    html = build_report(tmp_path).html.read_text()
    assert "<img" not in html
    assert "<b>bold" not in html
    assert 'onmouseover="alert' not in html
    assert re.search(r"&lt;img src=x onerror=alert\(1\)&gt;", html)


@pytest.mark.parametrize("name", ["drill-report-2026-11-01.html", "drill-report-2026-11-01T051700Z.html"])
def test_a_second_run_on_the_same_day_keeps_the_first_report(tmp_path: Path, name: str) -> None:
    first = run_id_at(NOW - timedelta(hours=2), "first1")
    write(tmp_path, [healthy("shop", first, NOW - timedelta(hours=2))])
    assert build_report(tmp_path).html.name == "drill-report-2026-11-01.html"
    write(tmp_path, [healthy("shop", RUN, NOW)])
    second = build_report(tmp_path)
    assert second.html.name == "drill-report-2026-11-01T051700Z.html"
    assert (tmp_path / name).is_file()
    assert build_report(tmp_path, run_id=first).html.name == "drill-report-2026-11-01.html"  # same run: same file


def test_the_report_redacts_what_a_record_leaked(tmp_path: Path) -> None:
    """Defence in depth: a secret from the configuration that reached a record never reaches the report."""
    config = tmp_path / "drills.toml"
    config.write_text(
        '[objectives.logical]\nrpo = "26h"\nrto = "1h"\n[databases.shop.logical]\nsource = "s3://b/p/"\n'
        'endpoint_url = "https://reader:Leaky-Secret-42@s3.internal"\n'
        'options = ["--repo1-s3-key-secret=Option-Secret-77"]\ncipher_pass_env = "MY_CIPHER"\n'
    )
    record = could_not_verify("shop", RUN, NOW)
    record.reason = (
        "cannot reach the S3 endpoint https://reader:Leaky-Secret-42@s3.internal; Option-Secret-77; Env-Secret-55"
    )
    reports = tmp_path / "reports"
    write(reports, [record])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MY_CIPHER", "Env-Secret-55")
        built = build_report(reports, config_file=config)
    html = built.html.read_text()
    for secret in ("Leaky-Secret-42", "Option-Secret-77", "Env-Secret-55"):
        assert secret not in html
        assert secret not in built.manifest.read_text()
    assert "https://reader:***@s3.internal" in html


def test_coverage_shows_the_months_of_the_audit_period_and_the_overdue_drill(tmp_path: Path, open_report) -> None:  # type: ignore[no-untyped-def]
    monthly_history(tmp_path, ["shop"], 3, NOW)  # 2026-08, -09, -10
    write(tmp_path, [healthy("shop", RUN, NOW)])
    failed = stale("billing", run_id_at(NOW - timedelta(days=60), "old001"), NOW - timedelta(days=60))
    write(tmp_path, [failed])  # billing ran in September, and failed: never passed
    built = build_report(tmp_path, expected=[PlannedDrill("shop", "logical"), PlannedDrill("billing", "logical")])
    opened = open_report(built.html)
    assert "audit period 2025-12 to 2026-11" in opened.text("#coverage h2")
    shop = opened.page.locator('#coverage tr.ledger[data-drill="shop / logical"]')
    assert shop.get_attribute("data-status") == "covered"
    assert shop.get_attribute("data-covered") == "4"
    assert "2026-11-01\nthis run, cadence 31d" in shop.inner_text()  # the run's own pass counts
    covered = shop.locator('td[data-state="passed"]')
    assert [covered.nth(i).get_attribute("data-month") for i in range(covered.count())] == [
        "2026-08",
        "2026-09",
        "2026-10",
        "2026-11",
    ]
    assert shop.locator('td[data-month="2026-07"]').get_attribute("data-state") == "none"
    billing = opened.page.locator('#coverage tr.ledger[data-drill="billing / logical"]')
    assert billing.get_attribute("data-status") == "never"
    assert "NEVER PASSED" in billing.inner_text()
    assert billing.locator('td[data-month="2026-09"]').get_attribute("data-state") == "failed"
    assert opened.external_requests == []
