"""The whole run as the report shows it: verdict, matrix, environment, controls, integrity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from restoredrill import __version__
from restoredrill.config import Coverage
from restoredrill.coverage import LedgerRow, MonthState, audit_months, ledger, months_covered
from restoredrill.durations import format_duration
from restoredrill.report.context import RunContext
from restoredrill.report.controls import (
    CONTROLS,
    SCOPE_NOTE,
    STATE_LABEL,
    Control,
    LayerStatus,
    control_state,
    layer_status,
)
from restoredrill.report.history import History, parse_time
from restoredrill.report.model import LAYER_LABEL, VERDICT_LABEL, DrillView, shown, variant_rank
from restoredrill.report.policy import CostRow, PolicyRow, cost_rows, cost_totals, policy_rows
from restoredrill.verdicts import Judgement, PlannedDrill, judge

LAYER_ORDER = ("logical", "pgbackrest", "rds")
MONTHS_SHOWN = 6


@dataclass(frozen=True)
class Cell:
    drills: list[DrillView]
    expected: bool  # configured for this database (a missing record then means "not run")


@dataclass(frozen=True)
class ControlRow:
    control: Control
    state: str
    layers: list[LayerStatus]

    @property
    def label(self) -> str:
        return STATE_LABEL[self.state]

    @property
    def status(self) -> str:
        return "; ".join(f"{s.label}: {s.word} ({s.text})" for s in self.layers)


@dataclass(frozen=True)
class CoverageRow:
    """One planned drill over the audit period: which months had a passing drill, and its ledger status."""

    row: LedgerRow
    months: dict[str, MonthState]

    @property
    def covered(self) -> int:
        return sum(1 for state in self.months.values() if state == "passed")


def coverage_rows(
    planned: list[PlannedDrill],
    drills: list[DrillView],
    history: History,
    run_date: datetime,
    cadence_s: Callable[[str], float],
) -> tuple[list[str], list[CoverageRow]]:
    """The audit period (the 12 months to the run) and, per planned drill (else per drill of the run), its months."""
    months = audit_months(run_date)
    wanted = planned or sorted({PlannedDrill(d.record.database, d.record.layer, d.record.variant) for d in drills})
    finished = [parse_time(d.record.finished_at) for d in drills]
    as_of = max([run_date, *(moment for moment in finished if moment is not None)])  # this run's drills count
    rows = ledger(wanted, history, cadence_s, as_of)
    return months, [CoverageRow(r, months_covered(history, r.drill, months)) for r in rows]


def default_cadence(_database: str) -> float:
    return Coverage().cadence


@dataclass
class ReportView:
    title: str
    run_id: str
    run_date: datetime
    generated_at: str
    verdict: str
    verdict_label: str
    headline: str
    drills: list[DrillView]
    databases: list[str]
    layers: list[tuple[str, str]]
    matrix: dict[tuple[str, str], Cell]
    left_out: list[str]  # planned drills and checks that did not run, one phrase each
    environment: list[tuple[str, list[str]]]
    controls: list[ControlRow]
    scope_note: str
    history: History
    integrity: list[tuple[str, str, int]]
    signing: str
    manifest_name: str
    failures: list[DrillView] = field(default_factory=list)
    audit_months: list[str] = field(default_factory=list)
    coverage: list[CoverageRow] = field(default_factory=list)
    cadence_source: str = ""
    generator: str = f"restoredrill {__version__}"

    @property
    def policy(self) -> list[PolicyRow]:
        return policy_rows(self.drills)

    @property
    def costs(self) -> list[CostRow]:
        return cost_rows(self.drills)

    @property
    def cost_totals(self) -> dict[str, float]:
        return cost_totals(self.costs)

    @property
    def months(self) -> list[str]:
        return sorted({m for d in self.drills for m in d.months})[-MONTHS_SHOWN:]

    def count(self, verdict: str) -> int:
        return sum(1 for d in self.drills if d.verdict == verdict)

    @property
    def checks_total(self) -> int:
        return sum(len([c for c in d.checks if c.outcome != "skipped"]) for d in self.drills)

    def checks_with(self, outcome: str) -> int:
        return sum(d.count(outcome) for d in self.drills)


def _names(drills: list[DrillView], limit: int = 4) -> str:
    named = [f"{d.title} ({d.category})" if d.verdict == "failed" and d.category else d.title for d in drills]
    return ", ".join(named[:limit]) + (f" and {len(named) - limit} more" if len(named) > limit else "")


def headline(judged: Judgement, drills: list[DrillView]) -> str:
    total = len(drills)
    left_out = "; ".join(judged.left_out())
    if judged.verdict == "passed":
        within = all(d.rto.state in ("ok", "warn") and d.rpo.state in ("ok", "warn") for d in drills)
        tail = ", every one within its RTO and RPO" if within else ""
        return f"All {total} drill{'s' if total != 1 else ''} restored the newest backup and passed every check{tail}."
    if judged.verdict == "partial":  # the list of what was left out follows the headline
        checks = sum(len(r.left_out) for r in judged.partial)
        return (
            f"Everything that ran passed, but the selection left out {len(judged.not_run)} planned drill(s) and "
            f"{checks} check(s) of the drills that ran: nothing is proven for them."
        )
    failed = [d for d in drills if d.verdict == "failed"]
    unverified = [d for d in drills if d.verdict == "could_not_verify"]
    parts = []
    if failed:
        parts.append(f"{len(failed)} of {total} drills failed: {_names(failed)}.")
    if unverified:
        parts.append(
            f"{len(unverified)} of {total} could not be verified, so nothing is proven for them: {_names(unverified)}."
        )
    if left_out:
        parts.append(f"Not run: {left_out}.")
    return " ".join(parts)


def matrix(
    drills: list[DrillView], planned: list[PlannedDrill]
) -> tuple[list[str], list[tuple[str, str]], dict[tuple[str, str], Cell]]:
    expected = {(p.database, p.layer) for p in planned}
    databases = sorted({d.record.database for d in drills} | {db for db, _ in expected})
    present = {d.record.layer for d in drills} | {layer for _, layer in expected}
    layers = [name for name in LAYER_ORDER if name in present] + sorted(present - set(LAYER_ORDER))
    cells = {}
    for db in databases:
        for layer in layers:
            mine = sorted(
                (d for d in drills if d.record.database == db and d.record.layer == layer),
                key=lambda d: variant_rank(d.record.variant),
            )
            cells[(db, layer)] = Cell(mine, (db, layer) in expected)
    return databases, [(name, LAYER_LABEL.get(name, name)) for name in layers], cells


def _unique(values: list[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]


def environment(drills: list[DrillView], context: RunContext) -> list[tuple[str, list[str]]]:
    records = [d.record for d in drills]
    started = min((r.started_at for r in records), default="")
    finished = max((r.finished_at or "" for r in records), default="")
    begin, end = parse_time(started), parse_time(finished)
    took = f" ({format_duration((end - begin).total_seconds())})" if begin and end else ""
    rows: list[tuple[str, list[str]]] = [
        ("run", [f"{context.run_id}: {started} to {finished or 'unfinished'}{took}"]),
        ("run by", _unique([r.run_by for r in records])),
    ]
    ci = context.ci
    if ci:
        described = ", ".join(f"{k} {v}" for k, v in ci.items() if k not in {"run_url", "provider"})
        rows.append(("CI", _unique([f"{ci.get('provider', 'ci')}: {described}", ci.get("run_url", "")])))
    rows.append(("host", _unique([r.host for r in records])))
    at_run = context.captured_when == "run start"
    machine = f"{context.platform}, Python {context.python}"
    rows.append(("platform", [machine if at_run else f"{machine} (the machine that rendered this report)"]))
    commit = context.git_commit or "unknown (not a git checkout)"
    if context.git_dirty:
        commit += " with uncommitted changes"
    rows.append(("suite", [f"restoredrill {context.suite_version}, commit {commit}"]))
    if context.command and at_run:
        rows.append(("command", [context.command]))
    if context.config_path:
        rows.append(("configuration", [f"{context.config_path}", f"sha256 {context.config_sha256 or 'unreadable'}"]))
    targets = []
    for r in records:
        info = r.target_info.model_dump(exclude_none=True)
        kind = info.pop("kind", r.target)
        info.pop("startup_s", None)  # differs per drill; the drill details show it
        targets.append(f"{kind}: {shown('', info)}")
    rows.append(("targets", _unique(targets)))
    tools: dict[str, list[str]] = {}
    for r in records:
        for tool, version in r.tool_versions.items():
            tools.setdefault(tool, []).append(version)
    rows += [(f"tool: {tool}", _unique(versions)) for tool, versions in sorted(tools.items())]
    rows.append(("context recorded", [f"{context.captured_at}, at {context.captured_when}"]))
    return rows


def control_rows(
    drills: list[DrillView], planned: list[PlannedDrill], history: History, run_date: datetime
) -> list[ControlRow]:
    """Each control, layer by layer, from the evidence it covers (see controls.py)."""
    records = [d.record for d in drills]
    layers = [name for name in LAYER_ORDER if name in {r.layer for r in records} | {p.layer for p in planned}]
    ran = {(r.database, r.layer, r.variant) for r in records}
    rows = []
    for control in CONTROLS:
        statuses = [
            layer_status(
                control,
                layer,
                LAYER_LABEL.get(layer, layer),
                [r for r in records if r.layer == layer],
                sum(1 for p in planned if p.layer == layer and (p.database, p.layer, p.variant) not in ran),
                history,
                run_date,
            )
            for layer in layers
        ]
        rows.append(ControlRow(control, control_state([s.state for s in statuses]), statuses))
    return rows


def report_view(
    *,
    drills: list[DrillView],
    planned: list[PlannedDrill] | None,
    context: RunContext,
    history: History,
    generated_at: str,
    integrity: list[tuple[str, str, int]],
    signing: str,
    manifest_name: str,
    cadence_s: Callable[[str], float] = default_cadence,
    cadence_source: str = "the default cadence (31 days)",
) -> ReportView:
    judged = judge([d.record for d in drills], planned)
    run_date = parse_time(None, context.run_id) or parse_time(generated_at)
    assert run_date is not None
    databases, layers, cells = matrix(drills, planned or [])
    months, coverage = coverage_rows(planned or [], drills, history, run_date, cadence_s)
    return ReportView(
        title=f"Restore drill report, {run_date.day} {run_date:%B %Y}",
        run_id=context.run_id,
        run_date=run_date,
        generated_at=generated_at,
        verdict=judged.verdict,
        verdict_label=VERDICT_LABEL[judged.verdict],
        headline=headline(judged, drills),
        drills=drills,
        databases=databases,
        layers=layers,
        matrix=cells,
        left_out=judged.left_out(),
        environment=environment(drills, context),
        controls=control_rows(drills, planned or [], history, run_date),
        scope_note=SCOPE_NOTE,
        history=history,
        integrity=integrity,
        signing=signing,
        manifest_name=manifest_name,
        failures=[d for d in drills if d.verdict not in ("passed", "partial")],
        audit_months=months,
        coverage=coverage,
        cadence_source=cadence_source,
    )
