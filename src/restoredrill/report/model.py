"""What one drill looks like in the report: the record, laid out for reading (no HTML here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from restoredrill.durations import format_duration
from restoredrill.evidence import CheckRecord, DrillRecord, Outcome
from restoredrill.report.charts import Chart, trend_chart
from restoredrill.report.classify import Category, check_category, check_hint, drill_category, drill_hint
from restoredrill.report.history import Point

VERDICT_LABEL = {"passed": "PASSED", "partial": "PARTIAL", "failed": "FAILED", "could_not_verify": "COULD NOT VERIFY"}
OUTCOME_LABEL = {
    "passed": "passed",
    "failed": "FAILED",
    "error": "could not run",
    "skipped": "not applicable",
    "left_out": "not selected",
}
LAYER_LABEL = {"logical": "logical (pg_dump)", "pgbackrest": "pgBackRest (base backup + WAL)", "rds": "RDS"}
VERDICT_RANK = {"failed": 0, "could_not_verify": 1, "partial": 2, "passed": 3}
VARIANTS = ("latest", "immediate", "time")
STAGES = (("fetch_s", "fetch"), ("restore_s", "restore"), ("recovery_s", "recovery"), ("checks_s", "checks"))


def variant_rank(variant: str | None) -> tuple[int, str]:
    return (VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS), variant or "")


def order_key(record: DrillRecord) -> tuple[int, str, str, tuple[int, str]]:
    """Drills that did not pass first, then by database, layer and variant."""
    return (VERDICT_RANK[record.verdict], record.database, record.layer, variant_rank(record.variant))


@dataclass(frozen=True)
class Gauge:
    """A measured duration against its objective."""

    measured: float | None
    objective: float | None

    @property
    def share(self) -> float | None:
        if self.measured is None or not self.objective:
            return None
        return self.measured / self.objective

    @property
    def state(self) -> str:
        share = self.share
        if share is None:
            return "unknown"
        return "over" if share > 1 else "warn" if share > 0.8 else "ok"

    @property
    def width(self) -> float:
        share = self.share
        return 0.0 if share is None else round(max(1.5, min(share, 1.0) * 100), 1)

    @property
    def text(self) -> str:
        return f"{format_duration(self.measured)} of {format_duration(self.objective)}"


@dataclass(frozen=True)
class StageBar:
    name: str
    seconds: float
    width: float


@dataclass(frozen=True)
class CheckView:
    name: str
    outcome: str
    label: str
    detail: str
    sql: str | None
    duration_s: float | None
    category: Category | None
    hint: str | None
    not_run: bool = False  # never ran because the drill stopped earlier: the reason is the drill's


@dataclass
class DrillView:
    index: int
    record: DrillRecord
    evidence_file: str
    evidence_sha256: str
    category: Category | None
    hint: str | None
    rto: Gauge
    rpo: Gauge
    gap: Gauge
    stages: list[StageBar]
    cleanup_s: float | None
    checks: list[CheckView]
    checksum_state: str
    target_rows: list[tuple[str, str]]
    rpo_rows: list[tuple[str, str]]
    rto_chart: Chart
    rpo_chart: Chart
    previous: Point | None
    months: dict[str, Point] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return f"drill-{self.index}"

    @property
    def title(self) -> str:
        variant = f" ({self.record.variant})" if self.record.variant else ""
        return f"{self.record.database} / {self.record.layer}{variant}"

    @property
    def verdict(self) -> str:
        return self.record.verdict

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABEL[self.record.verdict]

    @property
    def layer_label(self) -> str:
        return LAYER_LABEL.get(self.record.layer, self.record.layer)

    def count(self, outcome: str) -> int:
        """Checks with this outcome; "not_run" counts those that never ran because the drill stopped."""
        if outcome == "not_run":
            return sum(1 for c in self.checks if c.not_run)
        return sum(1 for c in self.checks if c.outcome == outcome and not (outcome == "error" and c.not_run))

    def delta(self, which: str) -> str | None:
        """This run against the previous one, like with like: each as a share of its own objective (the
        objective may have changed), e.g. '12% of its objective, was 9% on 2026-10-01'. A change in percent of
        a tiny previous value would shout "+500%" about two seconds."""
        if self.previous is None:
            return None
        now, before = getattr(self.record, which), getattr(self.previous, which)
        now_objective = getattr(self.record.objectives, which)
        before_objective = getattr(self.previous, which.replace("_s", "_objective_s"))
        when = f"{self.previous.at:%Y-%m-%d}"
        if now is None or before is None or not now_objective or not before_objective:
            return f"previous run {when}: {format_duration(before)}"
        was = format_share(before / before_objective)
        return f"{format_share(now / now_objective)} of its objective, was {was} on {when}"


def format_share(share: float | None) -> str:
    if share is None:
        return "n/a"
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _checksum_state(record: DrillRecord) -> str:
    backup = record.backup
    if backup.sha256 and backup.sha256_expected:
        return "match" if backup.sha256 == backup.sha256_expected else "mismatch"
    if backup.sha256:
        return "computed"
    return "unknown"


def shown(key: str, value: object) -> str:
    """A value of a record for reading: durations as durations, nested data as `key value` pairs."""
    if key.endswith("_s") and isinstance(value, int | float) and not isinstance(value, bool):
        return format_duration(float(value))
    if isinstance(value, dict):
        return ", ".join(
            f"{k.replace('_', ' ')} {shown(k, v)}" for k, v in value.items() if v not in (None, "", {}, [])
        )
    if isinstance(value, list):
        return ", ".join(shown("", v) for v in value)
    return str(value)


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (key.removesuffix("_s").replace("_", " "), shown(key, value))
        for key, value in data.items()
        if value not in (None, "", {}, [])
    ]


def _stages(record: DrillRecord) -> list[StageBar]:
    timed = [(label, getattr(record.stages, key)) for key, label in STAGES]
    timed = [(label, float(s)) for label, s in timed if s is not None]
    total = sum(s for _label, s in timed) or 1.0
    return [StageBar(label, s, round(max(0.8, 100 * s / total), 2)) for label, s in timed]


# The report's own words for outcomes: a check that did not apply is shown as "skipped", one that never ran
# beside those that could not run (marked `not_run`), so the page reads as it always did.
VIEW_OUTCOME = {Outcome.NOT_APPLICABLE: "skipped", Outcome.NOT_RUN: "error"}


def _check(record: DrillRecord, c: CheckRecord) -> CheckView:
    not_run = c.outcome == Outcome.NOT_RUN
    outcome = VIEW_OUTCOME.get(c.outcome, str(c.outcome))
    detail = c.detail
    if not_run and record.reason and record.reason in detail:
        detail = "not run: the drill stopped before this check (reason above)"
    return CheckView(
        name=c.name,
        outcome=outcome,
        label="not run" if not_run else OUTCOME_LABEL[outcome],
        detail=detail,
        sql=c.sql,
        duration_s=c.duration_s,
        category=check_category(c),
        hint=check_hint(c) if outcome not in ("passed", "skipped") and not not_run else None,
        not_run=not_run,
    )


def _checks(record: DrillRecord) -> list[CheckView]:
    # Checks that did not apply to this backup are listed with the rest, never counted as passed.
    views = [_check(record, c) for c in record.checks]
    for name in record.left_out:  # never ran: the selection left it out; shown so nobody reads it as passed
        detail = "left out by the selection (-k or node ids): this check did not run, nothing is proven by it"
        views.append(CheckView(name, "left_out", OUTCOME_LABEL["left_out"], detail, None, None, None, None))
    return views


def _months(points: list[Point]) -> dict[str, Point]:
    """The last run of each month: what "compared with previous months" is read from."""
    last: dict[str, Point] = {}
    for point in points:
        last[point.month] = point
    return last


def drill_view(index: int, record: DrillRecord, file: str, sha256: str, points: list[Point]) -> DrillView:
    earlier = [p for p in points if p.run_id < record.run_id]
    gap = record.rpo_detail.get("largest_gap_s")
    return DrillView(
        index=index,
        record=record,
        evidence_file=file,
        evidence_sha256=sha256,
        category=drill_category(record),
        hint=drill_hint(record),
        rto=Gauge(record.rto_s, record.objectives.rto_s),
        rpo=Gauge(record.rpo_s, record.objectives.rpo_s),
        gap=Gauge(float(gap) if isinstance(gap, int | float) else None, record.objectives.rpo_s),
        stages=_stages(record),
        cleanup_s=record.stages.cleanup_s,
        checks=_checks(record),
        checksum_state=_checksum_state(record),
        target_rows=[("recovery target", record.recovery_target), *_rows(record.target_info.model_dump())],
        rpo_rows=_rows(record.rpo_detail),
        rto_chart=trend_chart("RTO", points, lambda p: p.rto_s, lambda p: p.rto_objective_s),
        rpo_chart=trend_chart("RPO", points, lambda p: p.rpo_s, lambda p: p.rpo_objective_s),
        previous=earlier[-1] if earlier else None,
        months=_months(points),
    )
