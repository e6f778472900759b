"""`restoredrill run`: the drills under pytest, then the verdict from the evidence records.

pytest's own exit code says whether test items failed; the records say why. The run's exit code is
0 only when every configured drill ran whole and passed (1: a backup is bad, 3: something could not be
verified, 4: PARTIAL, what ran passed but the selection left drills or checks out).
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from restoredrill import evidence_store
from restoredrill.config import config_path, load_config
from restoredrill.durations import format_duration
from restoredrill.errors import ConfigError
from restoredrill.evidence import DrillRecord, Outcome, load_records, new_run_id
from restoredrill.folders import writable_folder
from restoredrill.report.commands import after_run, before_run
from restoredrill.report.model import VERDICT_LABEL
from restoredrill.targets.local import workdir_base
from restoredrill.verdicts import (
    EXIT_COULD_NOT_VERIFY,
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_PASSED,
    EXIT_USAGE,
    Judgement,
    evidence_exit_code,
    judge,
    planned_drills,
)

PROJECT = Path(__file__).resolve().parents[2]
DRILLS = PROJECT / "drills"
_STYLE = {"passed": "bold green", "partial": "bold yellow", "failed": "bold red", "could_not_verify": "bold yellow"}


class _PytestStatus:
    """pytest's own exit status, before the drill session turns it into the evidence's verdict."""

    status: int | None = None

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.status = int(exitstatus)  # the value the hook was called with: pytest's, not the rewritten one


def split_junitxml(pytest_args: list[str]) -> tuple[list[str], Path | None]:
    """The user's --junitxml taken out of the pytest arguments: pytest writes one JUnit file only, and the
    run's own (reports/junit/<run>.xml) is part of the report's manifest. The user's copy is written after."""
    rest: list[str] = []
    wanted: Path | None = None
    args = iter(pytest_args)
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in ("--junitxml", "--junit-xml"):
            value = value if equals else next(args, "")
            if not value:
                raise ConfigError(f"{name} needs a file path")
            wanted = Path(value).expanduser().resolve()
        else:
            rest.append(arg)
    return rest, wanted


# The plugins the drills use: xdist (`-n`, --dist=loadgroup, here and in its workers) and Allure
# (--alluredir). Not pytest-timeout: drills obey only their own timeouts (target.*_timeout).
DRILL_PLUGINS = ("xdist.plugin", "allure_pytest.plugin")


class _ProjectTimeoutSetting:
    """pyproject.toml's `timeout` belongs to pytest-timeout, for the project's own tests; drills run without
    that plugin, so the setting is declared here instead of being warned about as an unknown option."""

    def pytest_addoption(self, parser: Any) -> None:
        parser.addini("timeout", "pytest-timeout's setting for the project's own tests (drills ignore it)")


def plugin_args() -> list[str]:
    """No plugin autoload: scanning every installed package's entry points and importing (and assertion-
    rewriting) plugins the drills never use cost ~0.1-0.2 s of every run. The variable is inherited by
    xdist's workers. `PYTEST_DISABLE_PLUGIN_AUTOLOAD=` (empty) turns autoload back on (fixtures/
    drill_session.py then turns pytest-timeout off for drill items); `-p NAME` adds one plugin."""
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # unraisableexception runs two full garbage collections at exit to report exceptions raised in __del__:
    # tens of ms for a process that exits right after.
    args = ["-p", "no:unraisableexception"]
    if not os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]:
        # Autoload loads these under their entry-point names; -p would register them a second time.
        return [*args, "-p", "no:benchmark", "-p", "no:hypothesispytest"]
    return [*args, *(arg for plugin in DRILL_PLUGINS for arg in ("-p", plugin))]


def run_drills(config_file: str | None, pytest_args: list[str]) -> int:
    import pytest

    path = config_path(config_file).resolve()
    config = load_config(path)  # one sentence and exit 2 before anything starts
    if not DRILLS.is_dir():
        raise ConfigError(
            f"the drills folder {DRILLS} is missing: run restoredrill from its checkout (pip install -e .)"
        )
    pytest_args, users_junit = split_junitxml(pytest_args)
    planned = planned_drills(config)
    run_id = new_run_id()
    reports = writable_folder(config.reports_dir, "the reports folder")
    workdir_base(config.target.workdir)  # a usage error (exit 2) here, not a failed drill later
    before_run(reports, run_id, path, planned)  # a bad signing key stops here; records the plan and the commit
    console = Console(stderr=False, width=None if os.isatty(1) else 150)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    opened = evidence_store.start(config, reports, say)  # exit 3 here, not after hours of drills
    os.environ["RESTOREDRILL_RUN_ID"] = run_id
    os.environ["RESTOREDRILL_CONFIG"] = str(path)
    junit = reports / "junit" / f"{run_id}.xml"
    args = [
        str(DRILLS),
        f"--rootdir={PROJECT}",
        "-p",
        "no:cacheprovider",
        *plugin_args(),
        # Under -n, all tests of one drill stay on one xdist worker whatever --dist says (fixtures/scheduling.py).
        # A check's failure is evidence, not a traceback: the summary below prints one line per finding
        # (pytest's short summary of failures would repeat each one, cut to the terminal width). Errors (a bug,
        # not a finding) and skips keep pytest's line with their reason.
        "-rEs",
        "--tb=no",
        f"--junitxml={junit}",
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
    console.print(f"[bold]restoredrill[/] run {escape(run_id)}: {escape(str(path))}")
    status = _PytestStatus()
    autoload = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") == ""  # turned back on by the user
    returned = pytest.main(args, plugins=[status] if autoload else [status, _ProjectTimeoutSetting()])
    code = int(returned) if status.status is None else status.status
    if users_junit is not None and junit.is_file():
        users_junit.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(junit, users_junit)
    judged = judge(load_records(reports, run_id), planned)
    _summary(console, judged, reports, code, pytest_args)
    stored = evidence_store.publish_history(opened, reports, say)
    reported = after_run(say, reports, run_id, path, config)
    stored = evidence_store.publish_run(opened, reports, run_id, say) and stored
    if code == pytest.ExitCode.INTERRUPTED:
        return EXIT_INTERRUPTED
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_USAGE
    verdict = evidence_exit_code(code, judged)
    if verdict is None:  # nothing collected: nothing was verified
        return EXIT_COULD_NOT_VERIFY
    if not (reported and stored) and verdict in (EXIT_PASSED, EXIT_PARTIAL):
        return EXIT_COULD_NOT_VERIFY  # green needs the audit report, and its evidence kept where configured
    return verdict


def _why_nothing_ran(judged: Judgement, code: int, pytest_args: list[str]) -> str:
    import pytest

    if not judged.planned:
        return "the configuration plans no drill (no database has a logical, pgbackrest or rds layer)"
    planned = ", ".join(drill.label for drill in judged.planned)
    selection = f" (pytest arguments: {shlex.join(pytest_args)})" if pytest_args else ""
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        why = f"the selection{selection} matched none of their items"
    elif code == pytest.ExitCode.INTERRUPTED:
        why = "the run was interrupted before any drill finished"
    elif code == pytest.ExitCode.USAGE_ERROR:
        why = "pytest refused the arguments or the configuration (see above)"
    else:
        why = f"no drill item ran{selection}"
    return f"the configuration plans {len(judged.planned)} drill(s): {planned}; {why}"


def _headline(judged: Judgement) -> str:
    records = judged.records
    left_out = "; ".join(judged.left_out())
    if judged.verdict == "passed":
        return f"[bold green]PASSED[/]: every configured drill ran ({len(records)}), with every check, and passed"
    if judged.verdict == "partial":
        return (
            f"[bold yellow]PARTIAL[/]: everything that ran passed, but this selection left out: {escape(left_out)}. "
            "Nothing is proven for what did not run (exit 4)"
        )
    failed = sum(1 for r in records if r.verdict == "failed")
    unverified = sum(1 for r in records if r.verdict == "could_not_verify")
    if judged.verdict == "failed":
        line = f"[bold red]FAILED[/]: {failed} of {len(records)} drill(s) failed"
    else:
        line = f"[bold yellow]COULD NOT VERIFY[/]: {unverified} of {len(records)} drill(s) could not verify"
    return line + (f"; also not run: {escape(left_out)}" if left_out else "")


def _summary(console: Console, judged: Judgement, reports: Path, code: int, pytest_args: list[str]) -> None:
    """The table of drills, then one verdict line; every text from a record is escaped (it is not markup)."""
    if not judged.records:
        why = _why_nothing_ran(judged, code, pytest_args)
        console.print(f"[bold yellow]COULD NOT VERIFY[/]: no drill left a record: {escape(why)}", soft_wrap=True)
        return
    table = Table(title="restore drills", show_lines=False)
    for column in ("database", "layer", "verdict", "RTO / objective", "RPO / objective", "reason"):
        table.add_column(column)
    for r in judged.records:
        table.add_row(
            escape(r.database),
            escape(r.layer + (f" ({r.variant})" if r.variant else "")),
            f"[{_STYLE[r.verdict]}]{VERDICT_LABEL[r.verdict]}[/]",
            f"{format_duration(r.rto_s)} / {format_duration(r.objectives.rto_s)}",
            f"{format_duration(r.rpo_s)} / {format_duration(r.objectives.rpo_s)}",
            escape(r.reason or ""),
        )
    console.print(table)
    for line in findings(judged.records):  # soft wrap: one finding stays one line, whatever the width
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(_headline(judged), highlight=False, soft_wrap=True)
    console.print(
        escape(f"evidence: {reports / 'evidence'}  junit: {reports / 'junit'}  allure: {reports / 'allure-results'}")
    )


def findings(records: list[DrillRecord]) -> list[str]:
    """One line per check that failed or could not run (checks the drill never reached are its reason)."""
    lines = []
    for r in records:
        drill = f"{r.database} / {r.layer}" + (f" ({r.variant})" if r.variant else "")
        for c in r.checks:
            if c.outcome in (Outcome.FAILED, Outcome.ERROR):
                word = "FAILED" if c.outcome == Outcome.FAILED else "COULD NOT VERIFY"
                lines.append(f"  {word}  {drill}: {c.name} {c.outcome}: {c.detail}")
    return lines
