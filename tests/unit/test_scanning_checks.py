"""The whole-database scans of a drill run side by side (up to `jobs`), only when the selection runs them,
and each test still gets its own check's record, a NotApplicable included."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from restoredrill.checks import NotApplicable, Restored
from restoredrill.evidence import CheckRecord, DrillRecord, Objectives, Outcome
from restoredrill.layers.base import SCANNING_CHECKS, LayerDrill


class ScanDrill(LayerDrill):
    """The engine's scheduling of checks, with checks that only say when they ran (no database)."""

    layer = "logical"

    def __init__(self, checks: dict[str, Any], jobs: int = 2, ran: list[str] | None = None) -> None:
        self._checks = checks  # no configuration: nothing to read
        self._ran = ran if ran is not None else []
        self._scan_pool = None
        self._scans = {}
        self._checks_started = None
        self.extra_checks = []
        self.failure = None
        self.record = DrillRecord(run_id="r", database="db", layer="logical", objectives=Objectives(rto_s=1, rpo_s=1))
        self.restored = Restored(
            connection=None,  # type: ignore[arg-type]
            dbname="db",
            bindir=Path("."),
            listing=None,
            manifest=None,
            taken_at=datetime.now(UTC),
            rpo_s=1,
            restore_returncode=0,
            restore_errors=[],
            jobs=jobs,
        )

    def database_checks(self) -> dict[str, Any]:
        return self._checks

    def _prepare_scans(self, names: list[str]) -> None:  # the real one installs amcheck in the database
        self._ran.append(f"prepare {' '.join(names)}")

    def _cleanup(self) -> None:
        pass


def _passing(name: str, ran: list[str], meet: threading.Barrier | None = None) -> Any:
    def check(_db: Restored) -> CheckRecord:
        ran.append(name)
        if meet is not None:
            meet.wait(timeout=10)  # both scans must be running at once to get past this
        return CheckRecord(name=name, outcome=Outcome.PASSED, detail=f"{name} ok")

    return check


def test_two_scans_run_at_the_same_time_and_each_test_takes_its_own_record() -> None:
    ran: list[str] = []
    meet = threading.Barrier(2)
    drill = ScanDrill(
        {
            "manifest_content": _passing("manifest_content", ran, meet),
            "amcheck": _passing("amcheck", ran, meet),
            "toc_tables": _passing("toc_tables", ran),
        },
        ran=ran,
    )
    assert drill.start_scans(["manifest_content", "amcheck", "toc_tables"]) == ["manifest_content", "amcheck"]
    assert ran[0] == "prepare manifest_content amcheck", "what scans need is done before any of them starts"
    assert drill.check("amcheck").detail == "amcheck ok"
    assert drill.check("toc_tables").detail == "toc_tables ok"  # not a scan: run by its test, when it comes
    assert drill.check("manifest_content").detail == "manifest_content ok"
    assert [c.name for c in drill.record.checks] == ["amcheck", "toc_tables", "manifest_content"]
    assert not meet.broken, "the two scans ran one after the other"
    drill.finish()


def test_a_scan_the_selection_leaves_out_never_runs() -> None:
    ran: list[str] = []
    drill = ScanDrill({name: _passing(name, ran) for name in SCANNING_CHECKS})
    started = drill.start_scans(["manifest_row_counts", "drift"])  # e.g. -k 'not amcheck and not content'
    assert started == ["manifest_row_counts", "drift"]
    drill.check("manifest_row_counts")
    drill.check("drift")
    drill.finish()
    assert sorted(ran) == ["drift", "manifest_row_counts"]
    assert set(drill.record.left_out) >= {"amcheck", "manifest_content"}


def test_a_scan_that_does_not_apply_is_skipped_by_its_own_test() -> None:
    def no_manifest(_db: Restored) -> CheckRecord:
        raise NotApplicable("the dump has no manifest")

    ran: list[str] = []
    drill = ScanDrill({"manifest_content": no_manifest, "amcheck": _passing("amcheck", ran)})
    drill.start_scans(["manifest_content", "amcheck"])
    with pytest.raises(NotApplicable, match="no manifest"):
        drill.check("manifest_content")
    assert drill.check("amcheck").outcome == Outcome.PASSED
    assert [(c.name, c.outcome) for c in drill.record.checks] == [
        ("manifest_content", Outcome.NOT_APPLICABLE),
        ("amcheck", Outcome.PASSED),
    ]
    drill.finish()


def test_one_scan_alone_runs_in_its_test_as_before() -> None:
    ran: list[str] = []
    drill = ScanDrill({"amcheck": _passing("amcheck", ran)})
    assert drill.start_scans(["amcheck"]) == []
    assert ran == []
    assert drill.check("amcheck").outcome == Outcome.PASSED
    drill.finish()


def test_the_checks_stage_is_wall_time_not_the_sum_of_overlapping_checks() -> None:
    def slow(name: str) -> Any:
        def check(_db: Restored) -> CheckRecord:
            time.sleep(0.3)
            return CheckRecord(name=name, outcome=Outcome.PASSED, detail=f"{name} ok")

        return check

    drill = ScanDrill({"manifest_content": slow("manifest_content"), "amcheck": slow("amcheck")})
    drill.start_scans(["manifest_content", "amcheck"])
    drill.check("manifest_content")
    drill.check("amcheck")
    record = drill.finish()
    own = sum(c.duration_s or 0 for c in record.checks)
    assert own >= 0.6, record.checks
    assert record.stages.checks_s is not None
    assert 0.3 <= record.stages.checks_s < own - 0.2, f"checks_s {record.stages.checks_s} s, the checks' own {own} s"
