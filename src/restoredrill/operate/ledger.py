"""`restoredrill coverage`: the coverage ledger of a configuration, printed; non-zero when a drill is overdue."""

from __future__ import annotations

import json
from pathlib import Path

from restoredrill.config import load_config
from restoredrill.coverage import LedgerRow, exit_code, ledger
from restoredrill.durations import format_duration
from restoredrill.errors import ConfigError
from restoredrill.evidence import iso
from restoredrill.evidence_store import open_evidence_store
from restoredrill.report.history import load_history
from restoredrill.verdicts import planned_drills

STATUS_WORD = {"covered": "covered", "overdue": "OVERDUE", "never": "NEVER PASSED"}


def _due(row: LedgerRow) -> str:
    if row.due_at is None:
        return "now: no passing drill on record"
    return f"{'was due' if row.status == 'overdue' else 'due by'} {row.due_at:%Y-%m-%d %H:%M}Z"


def _last_run(row: LedgerRow) -> str:
    last = row.last_run
    if last is None or last is row.last_passed:
        return ""
    return f"last run {last.at:%Y-%m-%d} {last.verdict.replace('_', ' ')}"


def render_table(rows: list[LedgerRow], reports_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    style = {"covered": "green", "overdue": "bold red", "never": "bold red"}
    table = Table(title=f"coverage ledger ({reports_dir})")
    for column in ("database", "layer", "last passing drill", "age / cadence", "status", "due", "note"):
        table.add_column(column)
    for r in rows:
        passed = r.last_passed
        layer = r.drill.layer + (f" ({r.drill.variant})" if r.drill.variant else "")
        table.add_row(
            r.drill.database,
            layer,
            f"{passed.at:%Y-%m-%d %H:%M}Z\n{passed.run_id}" if passed else "none",
            f"{format_duration(r.age_s) if r.age_s is not None else 'n/a'} / {format_duration(r.cadence_s)}",
            f"[{style[r.status]}]{STATUS_WORD[r.status]}[/]",
            _due(r),
            _last_run(r),
        )
    Console(width=None if Console().is_terminal else 200).print(table)
    overdue = [r for r in rows if r.status != "covered"]
    if overdue:
        names = ", ".join(r.drill.label for r in overdue)
        print(f"OVERDUE: {len(overdue)} of {len(rows)} drill(s) have no passing drill within their cadence: {names}")
    else:
        print(f"covered: every configured drill ({len(rows)}) passed within its cadence")


def render_json(rows: list[LedgerRow]) -> str:
    return json.dumps(
        [
            {
                **r.drill.as_dict(),
                "status": r.status,
                "cadence_s": r.cadence_s,
                "last_passed_at": iso(r.last_passed.at) if r.last_passed else None,
                "last_passed_run": r.last_passed.run_id if r.last_passed else None,
                "age_s": round(r.age_s, 1) if r.age_s is not None else None,
                "due_at": iso(r.due_at),
                "last_run_verdict": r.last_run.verdict if r.last_run else None,
            }
            for r in rows
        ],
        indent=1,
    )


def coverage(config_file: str | None, reports: Path | None, as_json: bool) -> int:
    config = load_config(config_file)
    reports_dir = reports if reports is not None else config.reports_dir
    if reports is not None and not reports.is_dir():
        raise ConfigError(f"the reports folder {reports} does not exist")
    # the evidence store's history too, when configured: coverage must outlive the CI artifacts
    rows = ledger(
        planned_drills(config), load_history(reports_dir, [], store=open_evidence_store(config)), config.cadence
    )
    if as_json:
        print(render_json(rows))
    else:
        render_table(rows, reports_dir)
    return exit_code(rows)
