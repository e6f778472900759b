"""RTO/RPO over earlier runs: from the evidence records still in reports/evidence/ (they name the variant,
e.g. pgBackRest latest / immediate / time), and from reports/history.jsonl (one line per drill, carried
between runs) for runs whose records are gone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from restoredrill.evidence import DrillRecord
from restoredrill.history_chain import read_history

if TYPE_CHECKING:
    from restoredrill.evidence_store import EvidenceStore

Key = tuple[str, str, str | None]  # (database, layer, variant)


@dataclass(frozen=True)
class Point:
    run_id: str
    at: datetime
    verdict: str
    rto_s: float | None
    rpo_s: float | None
    rto_objective_s: float | None
    rpo_objective_s: float | None
    # the restored database's shape (names and counts), kept for drift against the next drill
    shape: dict[str, object] | None = field(default=None, compare=False, hash=False)

    @property
    def month(self) -> str:
        return f"{self.at:%Y-%m}"


@dataclass(frozen=True)
class History:
    series: dict[Key, list[Point]]
    unreadable_lines: int
    runs: int
    first: datetime | None
    head: tuple[int, str] | None = None  # the chain's last entry as read (seq, sha256): the manifest records it


def parse_time(text: str | None, run_id: str = "") -> datetime | None:
    for candidate in (text, run_id.split("-", 1)[0]):
        if not candidate:
            continue
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y%m%dT%H%M%S%z"):
            try:
                return datetime.strptime(candidate.replace("Z", "+0000"), fmt).astimezone(UTC)
            except ValueError:
                continue
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _point(line: dict[str, object]) -> tuple[Key, Point] | None:
    run_id, database, layer = line.get("run_id"), line.get("database"), line.get("layer")
    if not (isinstance(run_id, str) and isinstance(database, str) and isinstance(layer, str)):
        return None
    variant = line.get("variant") if isinstance(line.get("variant"), str) else None
    finished = line.get("finished_at")
    at = parse_time(finished if isinstance(finished, str) else None, run_id)
    if at is None:
        return None
    found = line.get("objectives")
    objectives: dict[str, object] = found if isinstance(found, dict) else {}
    return (database, layer, variant), Point(
        run_id=run_id,
        at=at,
        verdict=str(line.get("verdict", "could_not_verify")),
        rto_s=_number(line.get("rto_s")),
        rpo_s=_number(line.get("rpo_s")),
        rto_objective_s=_number(objectives.get("rto_s")),
        rpo_objective_s=_number(objectives.get("rpo_s")),
        shape=shape if isinstance(shape := line.get("shape"), dict) else None,
    )


def _when(point: Point) -> tuple[datetime, str]:
    return point.at, point.run_id


def key_of(record: DrillRecord) -> Key:
    """One trend line per database, layer and variant (e.g. pgBackRest latest / immediate / time)."""
    return (record.database, record.layer, record.variant)


def record_point(record: DrillRecord) -> Point:
    return Point(
        run_id=record.run_id,
        at=parse_time(record.finished_at or record.started_at, record.run_id) or datetime.now(UTC),
        verdict=record.verdict,
        rto_s=record.rto_s,
        rpo_s=record.rpo_s,
        rto_objective_s=record.objectives.rto_s,
        rpo_objective_s=record.objectives.rpo_s,
        shape=record.shape.model_dump() if record.shape is not None else None,
    )


def _from_evidence(reports_dir: Path) -> tuple[dict[Key, dict[str, Point]], set[tuple[str, str, str]]]:
    series: dict[Key, dict[str, Point]] = {}
    covered: set[tuple[str, str, str]] = set()  # (run, database, layer) a record speaks for
    for path in sorted((reports_dir / "evidence").glob("*--*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # the run's own records are validated elsewhere; an old broken one only loses a point
        found = _point(data) if isinstance(data, dict) else None
        if found is not None:
            key, point = found
            series.setdefault(key, {})[point.run_id] = point
            covered.add((point.run_id, key[0], key[1]))
    return series, covered


def load_history(
    reports_dir: Path, current: list[DrillRecord], up_to_run: str | None = None, store: EvidenceStore | None = None
) -> History:
    """Every drill's points up to (and including) the current run; the current records always win."""
    series, covered = _from_evidence(reports_dir)
    log = read_history(reports_dir, store)
    unreadable = len(log.unreadable)
    for line in log.entries:
        found = _point(line.data)
        if found is None:
            unreadable += 1
            continue
        key, point = found
        if (point.run_id, key[0], key[1]) not in covered:
            series.setdefault(key, {})[point.run_id] = point
    for record in current:
        series.setdefault(key_of(record), {})[record.run_id] = record_point(record)
    ordered = {
        key: sorted((p for p in points.values() if up_to_run is None or p.run_id <= up_to_run), key=_when)
        for key, points in series.items()
    }
    all_points = [p for points in ordered.values() for p in points]
    return History(
        series=ordered,
        unreadable_lines=unreadable,
        runs=len({p.run_id for p in all_points}),
        first=min((p.at for p in all_points), default=None),
        head=log.head,
    )
