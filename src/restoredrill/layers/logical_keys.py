"""The key layout of logical dumps, the newest dump, and the RPO it implies.

Layout written by the backup job: `<prefix><YYYY-MM-DD>/<db>-<YYYY-MM-DDTHH-MM-SS>.dump` (UTC).
The newest dump is chosen by the time in its key, never by LastModified (1 s resolution, and a
re-upload changes it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

KEY_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"
_DUMP = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})/(?P<db>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})\.dump$")


@dataclass(frozen=True, order=True)
class DumpKey:
    taken_at: datetime
    database: str
    key: str
    size: int = 0

    @property
    def manifest_key(self) -> str:
        return self.key.removesuffix(".dump") + ".manifest.json"


def dump_key(prefix: str, database: str, taken_at: datetime) -> str:
    taken_at = taken_at.astimezone(UTC)
    return f"{prefix}{taken_at:%Y-%m-%d}/{database}-{taken_at.strftime(KEY_TIME_FORMAT)}.dump"


def parse_key(prefix: str, key: str, size: int = 0) -> DumpKey | None:
    """A DumpKey for keys of the layout, None for anything else (manifests, stray files)."""
    if not key.startswith(prefix):
        return None
    match = _DUMP.match(key[len(prefix) :])
    if not match:
        return None
    try:
        taken_at = datetime.strptime(match["ts"], KEY_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    if match["date"] != f"{taken_at:%Y-%m-%d}":
        return None
    return DumpKey(taken_at, match["db"], key, size)


def dumps_of(prefix: str, database: str, objects: Iterable[tuple[str, int]]) -> list[DumpKey]:
    """Every dump of one database under a prefix, oldest first."""
    found = (parse_key(prefix, key, size) for key, size in objects)
    return sorted(d for d in found if d is not None and d.database == database)


@dataclass(frozen=True)
class RecoveryPoint:
    """How much data a restore of the newest dump would lose, measured now."""

    newest_age_s: float
    largest_gap_s: float | None
    gap_from: datetime | None
    gap_to: datetime | None
    dumps_in_window: int


def recovery_point(dumps: list[DumpKey], now: datetime, retention_days: int) -> RecoveryPoint:
    """Age of the newest dump, and the largest gap between consecutive dumps inside the retention window."""
    if not dumps:
        raise ValueError("no dumps")
    newest = dumps[-1]
    window_start = now - timedelta(days=retention_days)
    in_window = [d for d in dumps if d.taken_at >= window_start]
    largest: tuple[float, DumpKey, DumpKey] | None = None
    for earlier, later in itertools.pairwise(in_window):
        gap = (later.taken_at - earlier.taken_at).total_seconds()
        if largest is None or gap > largest[0]:
            largest = (gap, earlier, later)
    return RecoveryPoint(
        newest_age_s=max(0.0, (now - newest.taken_at).total_seconds()),
        largest_gap_s=largest[0] if largest else None,
        gap_from=largest[1].taken_at if largest else None,
        gap_to=largest[2].taken_at if largest else None,
        dumps_in_window=len(in_window),
    )
