"""Drift against the last passing drill (pure comparison, baseline choice) and the coverage ledger (pure, and the
`restoredrill coverage` command on a real history folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from restoredrill.checks import NotApplicable
from restoredrill.config import Drift, parse_config
from restoredrill.coverage import audit_months, ledger, months_covered
from restoredrill.drift import Baseline, drift_check, last_passing
from restoredrill.evidence import Shape
from restoredrill.report.history import load_history
from restoredrill.verdicts import PlannedDrill
from tests.report.factory import healthy, run_id_at, write

NOW = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
OBJECTS = {
    "schemas": ["public", "sales"],
    "tables": ["public.orders", "public.users", "sales.leads"],
    "columns": ["public.orders.id", "public.users.id", "sales.leads.id"],
    "indexes": ["public.orders_created_at_idx", "public.orders_pkey", "sales.leads_pkey"],
    "constraints": ["orders_pkey on public.orders", "leads_pkey on sales.leads"],
}


def shape(rows: dict[str, int] | None = None, size: int = 100 * 1024 * 1024, **objects: list[str]) -> Shape:
    return Shape(
        database_size_bytes=size,
        rows=rows if rows is not None else {"public.orders": 5000, "public.users": 2000, "sales.leads": 40},
        objects={**OBJECTS, **objects},
    )


BASELINE = Baseline("20261020T050000Z-aaa111", NOW - timedelta(days=31), shape())


def test_an_emptied_table_fails_naming_it_and_both_counts() -> None:
    now = shape({"public.orders": 0, "public.users": 2000, "sales.leads": 40})
    record = drift_check(now, BASELINE, Drift())
    assert record.outcome == "failed"
    assert "table public.orders: 5000 rows at the last passing drill, 0 now (-100%)" in record.detail
    assert "20261020T050000Z-aaa111" in record.detail


def test_shrink_within_tolerance_and_growth_pass() -> None:
    now = shape({"public.orders": 4600, "public.users": 2600, "sales.leads": 12})  # -8 %; small table shrinks
    record = drift_check(now, BASELINE, Drift())
    assert record.outcome == "passed", record.detail
    assert "no table lost more than 10% of its rows" in record.detail
    assert drift_check(now, BASELINE, Drift(max_table_shrink=0.05)).outcome == "failed"
    emptied_small = shape({"public.orders": 5000, "public.users": 2000, "sales.leads": 0})
    assert (
        "table sales.leads: 40 rows at the last passing drill, 0 now"
        in drift_check(emptied_small, BASELINE, Drift()).detail
    )


def test_a_vanished_index_constraint_and_schema_are_named_once() -> None:
    objects = {**OBJECTS}
    now = shape(
        {"public.orders": 5000, "public.users": 2000},
        schemas=["public"],
        tables=["public.orders", "public.users"],
        columns=["public.orders.id", "public.users.id"],
        indexes=["public.orders_pkey"],
        constraints=["orders_pkey on public.orders"],
    )
    record = drift_check(now, BASELINE, Drift())
    assert record.outcome == "failed"
    assert "index public.orders_created_at_idx: present at the last passing drill, missing now" in record.detail
    assert "schema sales: present at the last passing drill, missing now" in record.detail
    assert "leads_pkey" not in record.detail
    assert "sales.leads.id" not in record.detail
    assert objects == OBJECTS
    assert drift_check(now, BASELINE, Drift(objects_may_vanish=True)).outcome == "passed"
    ignored = Drift(ignore=["sales*", "public.orders_created_at_idx"])
    assert drift_check(now, BASELINE, ignored).outcome == "passed"


def test_a_lost_half_of_the_database_size_fails() -> None:
    record = drift_check(shape(size=40 * 1024 * 1024), BASELINE, Drift())
    assert "database size: 100.0 MB at the last passing drill, 40.0 MB now (-60%)" in record.detail


def test_a_random_recovery_target_compares_objects_not_rows() -> None:
    now = shape({"public.orders": 10, "public.users": 2000, "sales.leads": 40})
    record = drift_check(now, BASELINE, Drift(), variant="random")
    assert record.outcome == "passed"
    assert "row counts not compared" in record.detail


def test_the_first_drill_records_a_baseline_and_claims_no_comparison() -> None:
    with pytest.raises(NotApplicable, match="recorded as the baseline"):
        drift_check(shape(), None, Drift())


def test_the_baseline_is_the_last_passing_drill_with_a_shape(tmp_path: Path) -> None:
    good, bad, old = (
        healthy("shop", run_id_at(NOW - timedelta(days=d), f"r{d}"), NOW - timedelta(days=d)) for d in (2, 1, 40)
    )
    good.shape, old.shape = shape(), shape({"public.orders": 1})
    bad.shape, bad.verdict = shape({"public.orders": 0}), "failed"
    write(tmp_path, [old, good, bad])
    points = load_history(tmp_path, []).series[("shop", "logical", None)]
    found = last_passing(points, run_id="current")
    assert found is not None
    assert found.run_id == good.run_id
    assert found.shape.rows["public.orders"] == 5000
    history_line = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[0])
    assert history_line["shape"]["rows"] == {"public.orders": 1}  # names and counts, no row content
    assert last_passing(points, run_id=good.run_id).run_id == old.run_id  # never itself


def test_per_database_tolerances_override_the_defaults() -> None:
    config = parse_config(
        {
            "objectives": {"logical": {"rpo": "26h", "rto": "1h"}},
            "drift": {"max_table_shrink": 0.2},
            "coverage": {"cadence": "8d"},
            "databases": {
                "shop": {"logical": {"source": "file:///b/"}, "drift": {"ignore": ["public.sessions"]}},
                "billing": {"logical": {"source": "file:///b/"}, "coverage": {"cadence": "40d"}},
            },
        }
    )
    assert config.drift_policy("shop") == Drift(max_table_shrink=0.2, ignore=["public.sessions"])
    assert config.drift_policy("billing") == Drift(max_table_shrink=0.2)
    assert (config.cadence("shop"), config.cadence("billing")) == (8 * 86400, 40 * 86400)


def _history(folder: Path, database: str, days_ago: list[int], verdict: str = "passed") -> None:
    records = []
    for days in days_ago:
        at = NOW - timedelta(days=days)
        record = healthy(database, run_id_at(at, f"{database[:3]}{days:03d}"), at)
        record.verdict = verdict  # type: ignore[assignment]
        records.append(record)
    write(folder, records)


def test_ledger_names_the_overdue_drill_and_the_months_covered(tmp_path: Path) -> None:
    _history(tmp_path, "shop", [70, 40, 10])
    _history(tmp_path, "billing", [45])
    _history(tmp_path, "billing", [5], verdict="failed")  # it runs, but has not passed within the cadence
    history = load_history(tmp_path, [])
    planned = [PlannedDrill("shop", "logical"), PlannedDrill("billing", "logical"), PlannedDrill("crm", "logical")]
    rows = ledger(planned, history, lambda _db: 31 * 86400.0, NOW)
    assert [r.status for r in rows] == ["covered", "overdue", "never"]
    assert rows[1].last_run is not None
    assert rows[1].last_run.verdict == "failed"
    months = audit_months(NOW)
    assert months[0] == "2025-12"
    assert months[-1] == "2026-11"
    assert len(months) == 12
    shop = months_covered(history, planned[0], months)
    assert [m for m, state in shop.items() if state == "passed"] == ["2026-09", "2026-10", "2026-11"]
    billing = months_covered(history, planned[1], months)
    assert (billing["2026-10"], billing["2026-11"], billing["2026-09"]) == ("passed", "failed", "none")


CONFIG = """reports_dir = "reports"
[objectives.logical]
rpo = "26h"
rto = "1h"
[databases.shop.logical]
source = "file:///backups/"
[databases.billing.logical]
source = "file:///backups/"
"""


def _coverage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "restoredrill.cli", "coverage", *args], capture_output=True, text=True, timeout=60
    )


def test_coverage_command_exits_non_zero_naming_the_overdue_database(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text(CONFIG)
    recent = datetime.now(UTC) - timedelta(days=3)
    write(tmp_path / "reports", [healthy("shop", run_id_at(recent, "shop01"), recent)])
    old = datetime.now(UTC) - timedelta(days=50)
    write(tmp_path / "reports", [healthy("billing", run_id_at(old, "bill01"), old)])
    result = _coverage("--config", str(tmp_path / "drills.toml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "OVERDUE: 1 of 2 drill(s) have no passing drill within their cadence: billing / logical" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    rows = json.loads(_coverage("--config", str(tmp_path / "drills.toml"), "--json").stdout)
    assert {r["database"]: r["status"] for r in rows} == {"shop": "covered", "billing": "overdue"}

    write(tmp_path / "reports", [healthy("billing", run_id_at(recent, "bill02"), recent)])
    covered = _coverage("--config", str(tmp_path / "drills.toml"))
    assert covered.returncode == 0, covered.stdout + covered.stderr
    assert "covered: every configured drill (2) passed within its cadence" in covered.stdout


def test_coverage_bad_input_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "drills.toml").write_text(CONFIG.replace('rto = "1h"', 'rto = "soon"'))
    result = _coverage("--config", str(tmp_path / "drills.toml"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "objectives.logical.rto" in result.stderr
    (tmp_path / "drills.toml").write_text(CONFIG)
    missing = _coverage("--config", str(tmp_path / "drills.toml"), "--reports", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
