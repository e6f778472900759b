"""The coverage ledger: every configured drill must have PASSED within its cadence.

A monthly drill that silently stopped running (a disabled workflow, an expired token, a cell dropped from the
matrix) leaves no failing run behind: only the absence of a recent pass shows it. The ledger holds each planned
drill (database, layer and, for pgBackRest, recovery target) against the history every report reads, and calls
it overdue once its last passing drill is older than the cadence (or it never passed). The report shows, over
the audit period (the 12 months to the run), which months had a passing drill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from restoredrill.verdicts import PlannedDrill

if TYPE_CHECKING:  # the report package renders the ledger: importing it here would be circular
    from restoredrill.report.history import History, Point

Status = Literal["covered", "overdue", "never"]
AUDIT_MONTHS = 12
MonthState = Literal["passed", "failed", "not_passed", "none"]


@dataclass(frozen=True)
class LedgerRow:
    drill: PlannedDrill
    cadence_s: float
    now: datetime
    last_passed: Point | None
    last_run: Point | None  # any verdict: a drill that runs but fails is not "stopped", it is failing

    @property
    def age_s(self) -> float | None:
        return (self.now - self.last_passed.at).total_seconds() if self.last_passed else None

    @property
    def due_at(self) -> datetime | None:
        return self.last_passed.at + timedelta(seconds=self.cadence_s) if self.last_passed else None

    @property
    def status(self) -> Status:
        if self.last_passed is None:
            return "never"
        return "overdue" if (self.age_s or 0) > self.cadence_s else "covered"


def _points(history: History, drill: PlannedDrill) -> list[Point]:
    return history.series.get((drill.database, drill.layer, drill.variant), [])


def ledger(
    planned: list[PlannedDrill], history: History, cadence: Callable[[str], float], now: datetime | None = None
) -> list[LedgerRow]:
    """One row per planned drill, in the plan's order."""
    moment = now or datetime.now(UTC)
    rows = []
    for drill in planned:
        points = [p for p in _points(history, drill) if p.at <= moment]
        passed = [p for p in points if p.verdict == "passed"]
        rows.append(
            LedgerRow(
                drill=drill,
                cadence_s=cadence(drill.database),
                now=moment,
                last_passed=passed[-1] if passed else None,
                last_run=points[-1] if points else None,
            )
        )
    return rows


def exit_code(rows: list[LedgerRow]) -> int:
    """0 when every planned drill passed within its cadence; 1 when one is overdue or never passed."""
    return 1 if any(r.status != "covered" for r in rows) else 0


def audit_months(run_date: datetime, count: int = AUDIT_MONTHS) -> list[str]:
    """The `count` calendar months ending with the run's month, oldest first (YYYY-MM)."""
    year, month = run_date.year, run_date.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def months_covered(history: History, drill: PlannedDrill, months: list[str]) -> dict[str, MonthState]:
    """Per month: `passed` (a drill passed that month), `failed`/`not_passed` (it ran, none passed), or `none`."""
    by_month: dict[str, set[str]] = {}
    for point in _points(history, drill):
        by_month.setdefault(point.month, set()).add(point.verdict)
    found: dict[str, MonthState] = {}
    for month in months:
        verdicts = by_month.get(month, set())
        if "passed" in verdicts:
            found[month] = "passed"
        elif "failed" in verdicts:
            found[month] = "failed"
        else:
            found[month] = "not_passed" if verdicts else "none"
    return found
