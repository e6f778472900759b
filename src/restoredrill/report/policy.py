"""The report's "Backup policy" and "Storage cost" tables, from the drill records.

Policy rows are every `policy_...` check of the logical and pgBackRest drills and the RDS settings audit
(one heading for the strategy's rules, whichever layer enforces them). Cost rows are each database x layer's
measured storage: the pgBackRest drills of one database share one repository, so it is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from restoredrill.config import RdsPolicy
from restoredrill.evidence import StorageCost
from restoredrill.layers.rds_api import audit
from restoredrill.report.model import CheckView, DrillView


@cache
def rds_audit_names() -> frozenset[str]:
    """The RDS audit's check names, every optional one included (asked of the audit itself, not copied)."""
    return frozenset(f.name for f in audit({}, RdsPolicy(production=True, dr_region="any")))


def is_policy(name: str) -> bool:
    return name.startswith("policy_") or name in rds_audit_names()


@dataclass(frozen=True)
class PolicyRow:
    drill: DrillView
    check: CheckView


@dataclass(frozen=True)
class CostRow:
    drill: DrillView
    cost: StorageCost


def policy_rows(drills: list[DrillView]) -> list[PolicyRow]:
    return [PolicyRow(d, c) for d in drills for c in d.checks if is_policy(c.name)]


def cost_rows(drills: list[DrillView]) -> list[CostRow]:
    rows, seen = [], set()
    for drill in drills:
        record = drill.record
        if record.storage is None or (record.database, record.layer) in seen:
            continue
        seen.add((record.database, record.layer))
        rows.append(CostRow(drill, record.storage))
    return rows


def cost_totals(rows: list[CostRow]) -> dict[str, float]:
    """Monthly total per currency (prices may be configured in another currency)."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row.cost.currency] = round(totals.get(row.cost.currency, 0.0) + row.cost.monthly, 4)
    return totals
