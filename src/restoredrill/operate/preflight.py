"""The disk-space preflight: a drill refuses to start a restore the workdir has no room for.

A restore that fills the disk fails hours in, and can take the host down with it; the estimate is cheap and
made before anything is fetched. What a restore writes:
- logical: the fetched dump, plus the restored database. The backup job records pg_database_size() in the
  manifest; without it the dump size times EXPANSION is used. A pg_dump -Fc archive is compressed table
  data without indexes: 3-10x is common, very repetitive data far more (pgbench: ~50x), so the factor is a
  floor, and a manifest with the recorded size is the reliable estimate.
- pgBackRest: the set's database size (`pgbackrest info` size), plus the archived WAL replayed after it.
A `disk_reserve_mb` (drills.toml) is kept free on top of the estimate, for the server's own WAL and logs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from restoredrill.errors import ConfigError

EXPANSION = 10  # restored database size per byte of a -Fc dump, when the manifest does not record it
MB = 1024 * 1024


class NoRoom(ConfigError):
    """The workdir cannot hold the restore: a setup problem (exit 2), never a verdict on the backup."""


@dataclass(frozen=True)
class Estimate:
    needed_bytes: int
    basis: str  # how the estimate was made, for the sentence and the evidence


def logical_estimate(dump_bytes: int, database_bytes: int | None, reserve_mb: int) -> Estimate:
    if database_bytes is not None:
        restored, basis = database_bytes, "the database size the backup job recorded"
    else:
        restored, basis = dump_bytes * EXPANSION, f"{EXPANSION}x the dump size (the manifest records no database size)"
    return Estimate(dump_bytes + restored + reserve_mb * MB, f"dump + {basis} + {reserve_mb} MB reserve")


def pgbackrest_estimate(database_bytes: int, wal_bytes: int, reserve_mb: int) -> Estimate:
    return Estimate(
        database_bytes + wal_bytes + reserve_mb * MB,
        f"the set's database size + {wal_bytes // MB} MB of WAL to replay + {reserve_mb} MB reserve",
    )


def human(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def require_room(folder: Path, estimate: Estimate, what: str) -> None:
    """Raise NoRoom with one sentence when `folder` lacks the room the estimate asks for."""
    free = free_bytes(folder)
    if free < estimate.needed_bytes:
        raise NoRoom(
            f"not enough free disk in {folder} to restore {what}: {human(free)} free, about "
            f"{human(estimate.needed_bytes)} needed ({estimate.basis}); free space, point target.workdir "
            "at a larger disk, or lower disk_reserve_mb"
        )
