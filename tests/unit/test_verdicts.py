"""The run's verdict from the evidence, held against the plan: a selection that left drills or checks out is
PARTIAL (exit 4), never a whole pass."""

from __future__ import annotations

from restoredrill.config import DrillConfig
from restoredrill.evidence import DrillRecord, Objectives
from restoredrill.verdicts import EXIT_CODES_HELP, PlannedDrill, judge, planned_drills


def _record(verdict: str, database: str = "shop", layer: str = "logical", **fields: object) -> DrillRecord:
    return DrillRecord(
        run_id="r",
        database=database,
        layer=layer,  # type: ignore[arg-type]
        verdict=verdict,  # type: ignore[arg-type]
        objectives=Objectives(rto_s=1, rpo_s=1),
        **fields,  # type: ignore[arg-type]
    )


PLAN = [PlannedDrill("shop", "logical"), PlannedDrill("shop", "pgbackrest", "latest")]


def test_exit_codes_by_precedence() -> None:
    assert judge([_record("passed")], None).exit_code == 0
    assert judge([_record("passed"), _record("failed"), _record("could_not_verify")], None).exit_code == 1
    assert judge([_record("passed"), _record("could_not_verify")], None).exit_code == 3
    assert judge([], None).exit_code == 3
    assert judge([], PLAN).exit_code == 3


def test_a_planned_drill_without_a_record_makes_the_run_partial() -> None:
    judged = judge([_record("passed")], PLAN)
    assert judged.verdict == "partial"
    assert judged.exit_code == 4
    assert judged.not_run == [PlannedDrill("shop", "pgbackrest", "latest")]
    assert judged.left_out() == ["shop / pgbackrest (latest) (not run)"]


def test_a_drill_with_checks_left_out_makes_the_run_partial() -> None:
    record = _record("partial", left_out=["restore", "rto"])
    judged = judge([record], PLAN[:1])
    assert judged.verdict == "partial"
    assert judged.left_out() == ["shop / logical: 2 check(s) not run (restore, rto)"]


def test_failures_outrank_partial_but_the_left_out_list_stays() -> None:
    judged = judge([_record("failed")], PLAN)
    assert judged.verdict == "failed"
    assert judged.left_out() == ["shop / pgbackrest (latest) (not run)"]


def test_the_plan_has_one_drill_per_pgbackrest_recovery_target() -> None:
    config = DrillConfig.model_validate(
        {
            "objectives": {"logical": {"rpo": "1d", "rto": "1h"}, "pgbackrest": {"rpo": "1h", "rto": "1h"}},
            "databases": {
                "shop": {
                    "logical": {"source": "file:///nowhere/"},
                    "pgbackrest": {"stanza": "main", "recovery_targets": ["latest", "time"]},
                }
            },
        }
    )
    assert planned_drills(config) == [
        PlannedDrill("shop", "logical"),
        PlannedDrill("shop", "pgbackrest", "latest"),
        PlannedDrill("shop", "pgbackrest", "time"),
    ]


def test_exit_codes_are_documented_in_run_help_and_readme() -> None:
    from pathlib import Path

    from restoredrill import cli

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "**4** PARTIAL" in readme
    assert "4    PARTIAL" in EXIT_CODES_HELP
    assert EXIT_CODES_HELP in cli._parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
