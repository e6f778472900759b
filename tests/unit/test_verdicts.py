"""The run's verdict from the evidence, held against the plan: a selection that left drills or checks out is
PARTIAL (exit 4), never a whole pass. A drill's verdict from its typed check outcomes."""

from __future__ import annotations

from fixtures.scheduling import drill_scope
from restoredrill.config import DrillConfig
from restoredrill.errors import BackupDefect, CouldNotVerify
from restoredrill.evidence import CheckRecord, DrillRecord, Objectives, Outcome
from restoredrill.verdicts import EXIT_CODES_HELP, PlannedDrill, drill_verdict, judge, planned_drills


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


def _judged_drill(*checks: tuple[str, str], failure: Exception | None = None) -> tuple[str, str | None]:
    record = _record("could_not_verify", checks=[CheckRecord(name=n, outcome=o, detail=o) for n, o in checks])
    verdict = drill_verdict(record, failure=failure, restored=failure is None, database_checks={"amcheck"}, planned=3)
    return verdict.verdict, verdict.reason


def test_a_drill_verdict_counts_only_what_ran_and_proved_something() -> None:
    assert _judged_drill(("restore", "passed"), ("amcheck", "passed"), ("toc_tables", "not_applicable"))[0] == "passed"
    # Checks that did not apply or never ran prove nothing: alone they never make a pass.
    assert _judged_drill(("restore", "passed"), ("amcheck", "not_applicable")) == (
        "could_not_verify",
        "no check of the restored database ran",
    )
    assert _judged_drill(("restore", "passed"), ("amcheck", "passed"), ("test_x.py::test_y", "error"))[0] == (
        "could_not_verify"
    )
    # The most significant failure is the reason: lost data before a finding before a missed objective.
    assert _judged_drill(("rto", "failed"), ("test_x.py::test_y", "failed"), ("toc_tables", "failed"))[1] == (
        "toc_tables: failed"
    )
    assert _judged_drill(("amcheck", "not_run"), failure=BackupDefect("the dump is truncated")) == (
        "failed",
        "the dump is truncated",
    )
    assert _judged_drill(("amcheck", "not_run"), failure=CouldNotVerify("no server"))[0] == "could_not_verify"


def test_records_written_before_outcomes_were_typed_read_as_not_run() -> None:
    old = CheckRecord.model_validate({"name": "amcheck", "outcome": "error", "detail": "not run: no server"})
    assert old.outcome == Outcome.NOT_RUN
    assert CheckRecord.model_validate({"name": "amcheck", "outcome": "error", "detail": "x"}).outcome == Outcome.ERROR


def test_a_drills_tests_are_scheduled_by_the_drill_id_leading_their_item_id() -> None:
    drills = ["shop-logical", "shop-eu-logical", "shop-pgbackrest-latest"]
    assert drill_scope("drills/test_every_drill.py::test_amcheck[shop-logical]", drills) == "shop-logical"
    assert drill_scope("drills/test_every_drill.py::test_sql[shop-logical-sql:a-b]", drills) == "shop-logical"
    assert drill_scope("x/test_mine.py::TestA::test_b[shop-eu-logical-3]", drills) == "shop-eu-logical"
    assert drill_scope("drills/test_pgbackrest.py::test_recovery[shop-pgbackrest-latest]", drills) == (
        "shop-pgbackrest-latest"
    )
    assert drill_scope("tests/unit/test_x.py::test_y[shop-logicalish]", drills) is None
    assert drill_scope("tests/unit/test_x.py::test_y", drills) is None
