"""`restoredrill list`: the newest backup of every database and layer, its age against the RPO and the
restore window, read with each layer's own discovery code and without restoring anything.

Read-only: a dump store is listed, pgBackRest answers `info` and `repo-ls`, RDS answers `describe_*`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from restoredrill import proc
from restoredrill.config import DrillConfig, Layer
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, RestoreDrillError
from restoredrill.evidence import iso, utcnow
from restoredrill.layers.logical_keys import dumps_of, recovery_point
from restoredrill.manifest import Manifest
from restoredrill.stores import open_store
from restoredrill.targets.local import PREFIX, workdir_base

LAYERS: tuple[Layer, ...] = ("logical", "pgbackrest", "rds")


@dataclass
class Newest:
    """What one layer of one database holds right now, or why it could not be read."""

    database: str
    layer: Layer
    rpo_objective_s: float
    backup_id: str | None = None
    taken_at: str | None = None
    age_s: float | None = None  # the layer's RPO measure: dump age, newest WAL age, now - LatestRestorableTime
    size_bytes: int | None = None  # what a fetch moves (dump, repository size, snapshot storage)
    database_size_bytes: int | None = None  # what a restore writes, when the backup recorded it
    backups: int = 0
    window_from: str | None = None  # oldest restorable point
    window_to: str | None = None  # newest restorable point
    problem: str | None = None
    problem_kind: str | None = None  # "defect" (a backup is missing) or "could_not_verify" (not readable)

    @property
    def status(self) -> str:
        if self.problem is not None:
            return "missing" if self.problem_kind == "defect" else "unreadable"
        return "fresh" if self.age_s is not None and self.age_s <= self.rpo_objective_s else "stale"

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "status": self.status}


def _logical(config: DrillConfig, found: Newest) -> None:
    source = config.databases[found.database].logical
    assert source is not None
    store, prefix = open_store(
        source.source, endpoint_url=source.endpoint_url, region=source.region, profile=source.profile
    )
    name = source.dump_name or found.database
    dumps = dumps_of(prefix, name, [(o.key, o.size) for o in store.list(prefix)])
    if not dumps:
        raise BackupDefect(f"no dump of '{name}' found under {source.source}")
    newest = dumps[-1]
    point = recovery_point(dumps, utcnow(), source.retention_days)
    found.backup_id, found.taken_at, found.size_bytes = newest.key, iso(newest.taken_at), newest.size
    found.age_s, found.backups = round(point.newest_age_s, 1), len(dumps)
    found.window_from, found.window_to = iso(dumps[0].taken_at), iso(newest.taken_at)
    found.database_size_bytes = recorded_database_size(store.read_text(newest.manifest_key))


def recorded_database_size(manifest_text: str | None) -> int | None:
    """pg_database_size() as the backup job recorded it in the manifest (None for older manifests)."""
    if manifest_text is None:
        return None
    try:
        value = Manifest.from_json(manifest_text).dump.get("database_size_bytes")
    except (ValueError, KeyError, TypeError):
        return None
    return int(value) if isinstance(value, int | float) and value >= 0 else None


def _pgbackrest(config: DrillConfig, found: Newest) -> None:
    from restoredrill.layers.pgbackrest_repo import PgBackRest

    source = config.databases[found.database].pgbackrest
    assert source is not None
    run_as = proc.RunAs.for_server(config.target.run_as)
    work = Path(tempfile.mkdtemp(prefix=PREFIX + "list-", dir=workdir_base(config.target.workdir)))
    try:
        if run_as:
            work.chmod(0o711)  # traverse only: pgBackRest, run as the server user, reaches its lock folder
        repo = PgBackRest(
            source.stanza,
            config=source.config,
            options=source.options,
            cipher_pass_env=source.cipher_pass_env,
            workdir=work,
            run_as=run_as,
            segment_mb=source.wal_segment_mb,
        )
        info = repo.info()
        if not info.backups:
            raise BackupDefect(f"stanza '{info.stanza}' has no backup set")
        if info.archive_id:
            info.wal = repo.archived_wal(info.archive_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    newest = info.newest
    found.backup_id, found.taken_at, found.backups = newest.label, iso(newest.stopped_at), len(info.backups)
    found.size_bytes, found.database_size_bytes = newest.repo_size_bytes, newest.size_bytes
    found.window_from = iso(info.backups[0].stopped_at)
    newest_wal = info.newest_wal
    if newest_wal is None:
        raise BackupDefect(f"stanza '{info.stanza}' has no archived WAL: no backup can be recovered")
    found.window_to = iso(newest_wal.archived_at)
    found.age_s = round(max(0.0, (utcnow() - newest_wal.archived_at).total_seconds()), 1)


def _rds(config: DrillConfig, found: Newest) -> None:
    from restoredrill.layers import rds_api

    source = config.databases[found.database].rds
    assert source is not None
    try:
        rds = rds_api.client(source)
        now = utcnow()
        instance = rds.describe_db_instances(DBInstanceIdentifier=source.source_instance)["DBInstances"][0]
        snapshots = list(
            rds_api.paginate(rds, "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=source.source_instance)
        )
        automated = rds_api.automated_backups(rds, source.source_instance)
    except RestoreDrillError:
        raise
    except Exception as exc:  # botocore errors become one sentence
        raise rds_api.explain(exc) from None
    available = sorted(
        (s for s in snapshots if s.get("Status") == "available" and s.get("SnapshotCreateTime")),
        key=lambda s: s["SnapshotCreateTime"],
    )
    found.backups = len(available)
    if available:
        newest = available[-1]
        found.backup_id, found.taken_at = newest["DBSnapshotIdentifier"], iso(newest["SnapshotCreateTime"])
        found.size_bytes = int(newest.get("AllocatedStorage") or 0) * 1024**3 or None
    latest: datetime | None = instance.get("LatestRestorableTime")
    if latest is not None:
        window = rds_api.restore_window(instance, automated, now)
        found.window_from, found.window_to = iso(window.earliest), iso(window.latest)
        found.age_s = round(max(0.0, (now - window.latest).total_seconds()), 1)
    elif available:
        found.age_s = round(max(0.0, (now - available[-1]["SnapshotCreateTime"]).total_seconds()), 1)
    else:
        raise BackupDefect(f"{source.source_instance} has neither a snapshot nor a point in time to restore")


_DISCOVER = {"logical": _logical, "pgbackrest": _pgbackrest, "rds": _rds}


def newest(config: DrillConfig, database: str, layer: Layer) -> Newest:
    """The newest backup of one layer; a problem becomes one sentence in the row, never an exception."""
    found = Newest(database=database, layer=layer, rpo_objective_s=config.objective(database, layer).rpo)
    try:
        _DISCOVER[layer](config, found)
    except RestoreDrillError as exc:
        found.problem = str(exc)
        found.problem_kind = "defect" if isinstance(exc, BackupDefect) else "could_not_verify"
    return found


def cells(config: DrillConfig, databases: list[str] | None = None) -> list[tuple[str, Layer]]:
    """(database, layer) pairs the configuration names, in its order."""
    return [
        (name, layer)
        for name in config.databases
        if databases is None or name in databases
        for layer in LAYERS
        if getattr(config.databases[name], layer) is not None
    ]


def list_backups(config: DrillConfig, databases: list[str] | None = None) -> list[Newest]:
    return [newest(config, name, layer) for name, layer in cells(config, databases)]


def exit_code(rows: list[Newest]) -> int:
    """0 every layer has a backup within its RPO; 1 one is stale or missing; 3 one could not be read."""
    if any(r.status in {"stale", "missing"} for r in rows):
        return 1
    if any(r.status == "unreadable" for r in rows):
        return 3
    return 0


def _size(value: int | None) -> str:
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def render_json(rows: list[Newest]) -> str:
    return proc.redact(json.dumps([r.as_json() for r in rows], indent=2))


def render_table(rows: list[Newest]) -> None:
    from rich.console import Console
    from rich.table import Table

    style = {"fresh": "green", "stale": "bold red", "missing": "bold red", "unreadable": "bold yellow"}
    table = Table(title="newest backups")
    for column in ("database", "layer", "newest backup", "age / RPO", "status", "restore window", "size", "note"):
        table.add_column(column)
    for r in rows:
        window = f"{r.window_from} .. {r.window_to}" if r.window_from or r.window_to else "n/a"
        table.add_row(
            r.database,
            r.layer,
            f"{r.backup_id or 'none'}" + (f"\n{r.taken_at}" if r.taken_at else ""),
            f"{format_duration(r.age_s)} / {format_duration(r.rpo_objective_s)}",
            f"[{style[r.status]}]{r.status.upper()}[/]",
            window,
            _size(r.size_bytes) + (f" (db {_size(r.database_size_bytes)})" if r.database_size_bytes else ""),
            proc.redact(r.problem or (f"{r.backups} backup(s)" if r.backups else "")),
        )
    Console(width=None if Console().is_terminal else 200).print(table)
