"""Run verdicts a new user can trust, through the CLI and plain pytest against real PostgreSQL: a partial
selection is PARTIAL (exit 4), the exit status agrees with the evidence, the console stays one line per
finding and survives any text, and the user's own --junitxml does not take the run's JUnit file away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AWS_ENV, DrillScenario

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


def _records(drill: DrillScenario) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((drill.reports / "evidence").glob("*.json"))]


def _with_pgbackrest(drill: DrillScenario) -> None:
    """The logical layer, plus a pgBackRest layer that a `-k logical` selection leaves out."""
    drill.write_config(
        extra=(
            '\n[databases.shop.pgbackrest]\nstanza = "main"\nrecovery_targets = ["latest", "time"]\n'
            '[objectives.pgbackrest]\nrpo = "15m"\nrto = "1h"\n'
        )
    )


def test_selecting_one_layer_is_partial_everywhere(drill: DrillScenario) -> None:
    _with_pgbackrest(drill)
    result = drill.run("-k", "logical")
    assert result.returncode == 4, result.output
    verdict = [line for line in result.output.splitlines() if line.startswith(("PASSED:", "PARTIAL:"))]
    assert len(verdict) == 1, result.output
    assert verdict[0].startswith("PARTIAL: everything that ran passed, but this selection left out:")
    assert "shop / pgbackrest (latest) (not run)" in result.output
    assert "shop / pgbackrest (time) (not run)" in result.output
    (record,) = _records(drill)
    assert record["verdict"] == "passed"  # the logical drill itself ran whole
    html = next(drill.reports.glob("drill-report-*.html")).read_text()
    assert 'data-verdict="partial"' in html
    assert "NOT TESTED" in html
    context = json.loads(next((drill.reports / "runs").glob("*.json")).read_text())
    assert {"database": "shop", "layer": "pgbackrest", "variant": "time"} in context["planned"]


def test_selecting_some_checks_is_partial_and_names_what_did_not_run(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run("-k", "logical and amcheck")
    assert result.returncode == 4, result.output
    record = drill.record()
    assert record["verdict"] == "partial"
    assert [c["name"] for c in record["checks"]] == ["amcheck"]
    assert "rto" in record["left_out"]
    assert "restore" in record["left_out"]
    assert len(record["left_out"]) == 13  # the restore, every other built-in check, and drills/test_shop.py's
    assert "within its RTO and RPO" not in result.output
    assert "PARTIAL" in result.output


@pytest.mark.parametrize("workers", ["0", "2"])  # in-process, and the xdist controller that runs no item itself
def test_plain_pytest_exit_status_agrees_with_the_evidence(drill: DrillScenario, workers: str) -> None:
    """Only the restore item: no check of the restored database ran, so nothing is verified (exit 3)."""
    config = drill.write_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTOREDRILL_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "drills/",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--config={config}",
            "-k",
            "test_restore[shop-logical]",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(drill.workdir)},
        check=False,
    )
    output = result.stdout + result.stderr
    record = drill.record()
    assert record["verdict"] == "could_not_verify", output
    assert result.returncode == 3, output


def test_a_reason_with_brackets_is_printed_and_reported(drill: DrillScenario) -> None:
    drill.write_config(
        extra='[[databases.shop.checks.sql]]\nname = "orders [/] [bold]paid[/bold]"\nsql = "SELECT 1"\nexpect = 2\n'
    )
    result = drill.run()
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert "MarkupError" not in result.output
    assert "orders [/] [bold]paid[/bold]" in result.output
    assert list(drill.reports.glob("drill-report-*.html"))


def test_a_failed_check_is_one_line_without_a_traceback_location(drill: DrillScenario) -> None:
    drill.write_config(extra='[[databases.shop.checks.sql]]\nname = "never"\nsql = "SELECT 1"\nexpect = 2\n')
    result = drill.run()
    assert result.returncode == 1, result.output
    assert "AssertionError" not in result.output
    # no traceback location beside a finding (pytest's skip summary names where a not-applicable check, e.g. the
    # first drill's drift baseline, was skipped: that is not a failure's location)
    assert not [line for line in result.output.splitlines() if "items.py" in line and "SKIPPED" not in line]
    finding = [line for line in result.output.splitlines() if "sql:never failed: returned 1, expected 2" in line]
    assert finding == ["  FAILED  shop / logical: sql:never failed: returned 1, expected 2"], result.output
    assert not [line for line in result.output.splitlines() if line.startswith("FAILED drills/")]  # no repeat


def test_users_junitxml_is_written_and_the_runs_own_stays_in_the_manifest(drill: DrillScenario, tmp_path: Path) -> None:
    drill.write_config()
    mine = tmp_path / "mine.xml"
    result = drill.run("-k", "logical", f"--junitxml={mine}")
    assert result.returncode == 0, result.output
    assert mine.is_file()
    (own,) = (drill.reports / "junit").glob("*.xml")
    manifest = json.loads(next(drill.reports.glob("drill-report-*.manifest.json")).read_text())
    assert f"junit/{own.name}" in json.dumps(manifest)


def test_nothing_selected_names_what_was_configured_and_why(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run("-k", "no_such_database")
    assert result.returncode == 3, result.output
    assert "shop / logical" in result.output
    assert "no_such_database" in result.output
