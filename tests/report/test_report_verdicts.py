"""Honest verdicts in the report: a partial selection is PARTIAL and lists what did not run; each control is
judged from the evidence it covers; cadence counts months; trends compare shares of the objective."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from restoredrill.evidence import CheckRecord
from restoredrill.report import build_report
from restoredrill.report.history import load_history
from restoredrill.report.model import drill_view
from restoredrill.report.overview import control_rows
from restoredrill.verdicts import PlannedDrill
from tests.report.factory import NOW, healthy, run_id_at, stale, write

RUN = run_id_at(NOW, "cur001")
PLAN = [PlannedDrill("shop", "logical"), PlannedDrill("shop", "pgbackrest", "latest")]


def _text(html: str, section: str) -> str:
    """The visible text of one <section id=...> of the report, tags stripped."""
    found = re.search(rf'<section[^>]*id="{section}".*?</section>', html, re.S)
    assert found, section
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


def _controls(html: str) -> dict[str, str]:
    rows = re.findall(r'<tr class="control"[^>]*data-ref="([^"]+)"[^>]*data-state="([^"]+)"', html)
    return dict(rows)


def test_a_selection_that_left_a_layer_out_is_partial(tmp_path: Path) -> None:
    write(tmp_path, [healthy("shop", RUN, NOW)])
    built = build_report(tmp_path, expected=PLAN)
    html = built.html.read_text()
    assert built.verdict == "partial"
    assert 'data-verdict="partial"' in html
    verdict = _text(html, "verdict")
    assert "PARTIAL" in verdict
    assert "shop / pgbackrest (latest) (not run)" in verdict
    assert "every one within its RTO and RPO" not in verdict
    controls = _controls(html)
    assert controls
    assert "passed" not in controls.values()
    assert "pgBackRest (base backup + WAL): NOT TESTED" in _text(html, "controls")


def test_a_drill_with_checks_left_out_is_partial_and_names_them(tmp_path: Path) -> None:
    record = healthy("shop", RUN, NOW)
    record.checks = [c for c in record.checks if c.name == "amcheck"]
    record.verdict, record.left_out = "partial", ["restore", "rto", "sequences"]
    record.reason = "partial drill: 3 of 4 checks did not run: restore, rto, sequences"
    write(tmp_path, [record])
    built = build_report(tmp_path, expected=PLAN[:1])
    html = built.html.read_text()
    assert built.verdict == "partial"
    verdict = _text(html, "verdict")
    assert "passed every check" not in verdict
    assert "shop / logical: 3 check(s) not run (restore, rto, sequences)" in verdict
    assert "PARTIAL" in _text(html, "matrix")


def _rows(records, plan=None, history_dir: Path | None = None):  # type: ignore[no-untyped-def]
    history = load_history(history_dir or Path("/nonexistent"), records, up_to_run=RUN)
    views = [
        drill_view(i, r, "f", "s", history.series.get((r.database, r.layer, r.variant), []))
        for i, r in enumerate(records)
    ]
    return {row.control.ref: row for row in control_rows(views, plan or PLAN[:1], history, NOW)}


def test_a_breached_objective_is_an_exception_of_the_objectives_control_only() -> None:
    rows = _rows([stale("shop", RUN, NOW)])
    assert rows["A.5.30"].state == "failed"
    assert rows["A.8.13"].state == "passed"  # the backup copy restored and every data check passed


def test_a_failed_data_check_is_no_objective_exception() -> None:
    record = healthy("shop", RUN, NOW)
    record.verdict, record.reason = "failed", "amcheck: heap corruption"
    record.add_check(CheckRecord(name="amcheck", outcome="failed", detail="heap corruption"))
    rows = _rows([record])
    assert rows["A.5.30"].state == "passed"
    assert rows["A.8.13"].state == "failed"
    assert rows["A1.3"].state == "failed"


def test_a_layer_that_was_not_drilled_is_not_tested() -> None:
    rows = _rows([healthy("shop", RUN, NOW)], PLAN)
    for row in rows.values():
        assert row.state != "passed"
        assert dict((s.layer, s.state) for s in row.layers)["pgbackrest"] == "not_tested"


def test_cadence_counts_months_not_runs(tmp_path: Path) -> None:
    for hour in range(1, 5):  # four earlier runs on the same day
        at = NOW - timedelta(hours=hour)
        write(tmp_path, [healthy("shop", run_id_at(at, f"same{hour:02d}"), at)])
    rows = _rows([healthy("shop", RUN, NOW)], history_dir=tmp_path)
    assert "1 month(s)" in rows["A.8.13"].status
    assert "5 run" not in rows["A.8.13"].status


def test_trend_delta_compares_shares_of_the_objective() -> None:
    earlier = run_id_at(NOW - timedelta(days=30), "old001")
    before = healthy("shop", earlier, NOW - timedelta(days=30), rto=0.5)
    now = healthy("shop", RUN, NOW, rto=3.0)
    history = load_history(Path("/nonexistent"), [before, now], up_to_run=RUN)
    view = drill_view(1, now, "f", "s", history.series[("shop", "logical", None)])
    delta = view.delta("rto_s")
    assert delta is not None
    assert "%" not in delta.replace("<0.1%", "")  # tiny shares of a 1h objective: no percentage change
    assert "+500%" not in delta
    before.objectives.rto_s = 10
    now.objectives.rto_s = 60
    history = load_history(Path("/nonexistent"), [before, now], up_to_run=RUN)
    view = drill_view(1, now, "f", "s", history.series[("shop", "logical", None)])
    assert view.delta("rto_s") == "5.0% of its objective, was 5.0% on 2026-10-02"


def test_largest_tables_show_exact_counts_and_mark_estimates(tmp_path: Path) -> None:
    write(tmp_path, [healthy("shop", RUN, NOW)])
    details = _text(build_report(tmp_path).html.read_text(), "drills")
    assert "public.orders ≈ 20,000 (estimate, pg_class.reltuples)" in details
    assert "public.users 2,000 (exact count)" in details


def test_the_job_summary_says_partial_and_lists_what_did_not_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    reports = tmp_path / "reports"
    write(reports, [healthy("shop", RUN, NOW)])
    build_report(reports, expected=PLAN)
    text = summary.read_text()
    assert "Restore drills: PARTIAL" in text
    assert "Not run: shop / pgbackrest (latest) (not run)" in text
