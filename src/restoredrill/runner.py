"""`restoredrill run`: the drills under pytest, then the verdict from the evidence records.

pytest's own exit code says whether test items failed; the records say why. The run's exit code is
0 only when every drill of this run passed (1: a backup is bad, 3: something could not be verified).
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from restoredrill.config import config_path, load_config
from restoredrill.durations import format_duration
from restoredrill.errors import ConfigError
from restoredrill.evidence import DrillRecord, load_records, new_run_id, overall_exit_code
from restoredrill.folders import writable_folder
from restoredrill.report.commands import after_run, before_run
from restoredrill.targets.local import workdir_base

PROJECT = Path(__file__).resolve().parents[2]
DRILLS = PROJECT / "drills"
_STYLE = {"passed": "bold green", "failed": "bold red", "could_not_verify": "bold yellow"}


def run_drills(config_file: str | None, pytest_args: list[str]) -> int:
    import pytest

    path = config_path(config_file).resolve()
    config = load_config(path)  # one sentence and exit 2 before anything starts
    if not DRILLS.is_dir():
        raise ConfigError(
            f"the drills folder {DRILLS} is missing: run restoredrill from its checkout (pip install -e .)"
        )
    run_id = new_run_id()
    reports = writable_folder(config.reports_dir, "the reports folder")
    workdir_base(config.target.workdir)  # a usage error (exit 2) here, not a failed drill later
    before_run(reports, run_id, path)  # a bad signing key stops here; records the suite's commit for the report
    os.environ["RESTOREDRILL_RUN_ID"] = run_id
    os.environ["RESTOREDRILL_CONFIG"] = str(path)
    args = [
        str(DRILLS),
        f"--rootdir={PROJECT}",
        "-p",
        "no:cacheprovider",
        # Plugins the drills do not use cost ~1 s of start-up (hypothesis re-rewrites its modules each run).
        "-p",
        "no:benchmark",
        "-p",
        "no:hypothesispytest",
        # All items of one drill stay on one xdist worker: one restore per database, one complete record.
        "--dist=loadgroup",
        "-rfEs",
        "--tb=line",
        f"--junitxml={reports / 'junit' / f'{run_id}.xml'}",
        f"--alluredir={reports / 'allure-results'}",
        "-o",
        "junit_family=xunit2",
        "-o",
        "log_cli=true",
        "--log-cli-level=INFO",
        "--log-cli-format=%(asctime)s %(message)s",
        "--log-cli-date-format=%H:%M:%S",
        *pytest_args,
    ]
    console = Console(stderr=False, width=None if os.isatty(1) else 150)
    console.print(f"[bold]restoredrill[/] run {run_id}: {path}")
    code = pytest.main(args)
    records = load_records(reports, run_id)
    _summary(console, records, reports)
    reported = after_run(
        lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True), reports, run_id, path, config
    )
    if code == pytest.ExitCode.INTERRUPTED:
        return 130
    if code == pytest.ExitCode.USAGE_ERROR:
        return 2
    verdict = overall_exit_code(records)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        console.print("[bold yellow]no drill was selected: nothing was verified[/]")
        return 3
    if code == pytest.ExitCode.TESTS_FAILED and verdict == 0:
        return 1  # an item failed that no record explains: never report green
    if code == pytest.ExitCode.INTERNAL_ERROR and verdict == 0:
        return 3
    return verdict if reported or verdict else 3  # green needs the audit report too


def _summary(console: Console, records: list[DrillRecord], reports: Path) -> None:
    if not records:
        console.print("[bold yellow]COULD NOT VERIFY[/]: no drill left a record")
        return
    table = Table(title="restore drills", show_lines=False)
    for column in ("database", "layer", "verdict", "RTO / objective", "RPO / objective", "reason"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.database,
            r.layer + (f" ({r.variant})" if r.variant else ""),
            f"[{_STYLE[r.verdict]}]{r.verdict.upper()}[/]",
            f"{format_duration(r.rto_s)} / {format_duration(r.objectives.rto_s)}",
            f"{format_duration(r.rpo_s)} / {format_duration(r.objectives.rpo_s)}",
            r.reason or "",
        )
    console.print(table)
    console.print(f"evidence: {reports / 'evidence'}  junit: {reports / 'junit'}  allure: {reports / 'allure-results'}")
