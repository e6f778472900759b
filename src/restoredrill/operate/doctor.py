"""`restoredrill doctor`: is this machine ready to drill this configuration? One line per finding.

It checks what a drill would find missing hours in: server and client binaries per major, pgBackRest,
the Docker engine, credentials reaching each backup store and the RDS API (with the same discovery code
`list` uses), free disk in the workdir against the largest restore, and the configuration itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

from restoredrill import pgtools, proc
from restoredrill.config import DrillConfig, load_config
from restoredrill.errors import CouldNotVerify, RestoreDrillError
from restoredrill.operate import listing, preflight
from restoredrill.targets.local import workdir_base

Status = Literal["ok", "warn", "problem"]
SERVER_TOOLS = ("postgres", "initdb", "pg_ctl")
CLIENT_TOOLS = ("pg_dump", "pg_restore", "pg_amcheck", "psql")


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str


def _config(path: str | None) -> tuple[DrillConfig | None, Finding]:
    try:
        config = load_config(path)
    except RestoreDrillError as exc:
        return None, Finding("config", "problem", str(exc))
    layers = sorted({layer for _db, layer in listing.cells(config)})
    return config, Finding("config", "ok", f"{len(config.databases)} database(s); layers: {', '.join(layers)}")


def _binaries(config: DrillConfig | None) -> list[Finding]:
    found = pgtools.available_bindirs(config.target.pg_bindir if config else None)
    if not found:
        return [Finding("postgresql", "problem", "no PostgreSQL server binaries found (install postgresql-<major>)")]
    findings = []
    for major, bindir in sorted(found.items()):
        missing = [t for t in (*SERVER_TOOLS, *CLIENT_TOOLS) if not (bindir / t).exists()]
        version = proc.run([bindir / "postgres", "--version"], timeout=15).stdout.strip()
        if missing:
            findings.append(Finding(f"postgresql {major}", "problem", f"{bindir} lacks {', '.join(missing)}"))
        else:
            findings.append(Finding(f"postgresql {major}", "ok", f"{version} in {bindir}"))
    return findings


def _pgbackrest(config: DrillConfig | None) -> Finding:
    needed = config is not None and any(layer == "pgbackrest" for _db, layer in listing.cells(config))
    try:
        version = proc.run([proc.which("pgbackrest"), "version"], timeout=30).stdout.strip()
    except CouldNotVerify as exc:
        return Finding("pgbackrest", "problem" if needed else "warn", str(exc))
    return Finding("pgbackrest", "ok", version)


def _docker(config: DrillConfig | None) -> Finding:
    from restoredrill.targets import container

    kind = config.target.kind if config else "auto"
    if container.engine_available():
        return Finding("docker", "ok", "a Docker engine answers")
    if kind == "container":
        return Finding("docker", "problem", "target.kind is 'container' but no Docker engine answers")
    if kind == "auto":
        return Finding("docker", "warn", "no Docker engine answers: target 'auto' restores into local instances")
    return Finding("docker", "ok", "not needed (target.kind is 'local')")


_WHAT = {"logical": "dump store", "pgbackrest": "pgBackRest repository", "rds": "RDS API"}


def _reach(row: listing.Newest) -> Finding:
    name = f"{row.database}/{row.layer}"
    if row.problem is not None:
        return Finding(name, "problem", row.problem)
    detail = f"{_WHAT[row.layer]} reachable: {row.backups} backup(s), newest {row.backup_id}"
    if row.status == "stale":
        return Finding(name, "warn", f"{detail}, older than the RPO")
    return Finding(name, "ok", detail)


def room_needed(config: DrillConfig, row: listing.Newest) -> preflight.Estimate | None:
    if row.layer == "logical" and row.size_bytes is not None:
        return preflight.logical_estimate(row.size_bytes, row.database_size_bytes, config.disk_reserve_mb)
    if row.layer == "pgbackrest" and row.database_size_bytes is not None:
        return preflight.pgbackrest_estimate(row.database_size_bytes, 0, config.disk_reserve_mb)
    return None  # RDS restores into AWS, not into the workdir


def _disk(config: DrillConfig | None, rows: list[listing.Newest]) -> Finding:
    folder = workdir_base(config.target.workdir if config else None)
    free = preflight.free_bytes(folder)
    estimates = [e for row in rows if config and (e := room_needed(config, row)) is not None]
    if not estimates:
        return Finding("disk", "ok", f"{preflight.human(free)} free in {folder}")
    largest = max(estimates, key=lambda e: e.needed_bytes)
    status: Status = "ok" if free >= largest.needed_bytes else "problem"
    return Finding(
        "disk",
        status,
        f"{preflight.human(free)} free in {folder}; the largest restore needs about "
        f"{preflight.human(largest.needed_bytes)} ({largest.basis})",
    )


def diagnose(config_path: str | None) -> list[Finding]:
    config, config_finding = _config(config_path)
    findings = [config_finding, *_binaries(config), _pgbackrest(config), _docker(config)]
    rows = listing.list_backups(config) if config else []
    findings += [_reach(row) for row in rows]
    with contextlib.suppress(OSError):
        findings.append(_disk(config, rows))
    return findings


def render(findings: list[Finding]) -> str:
    mark = {"ok": "ok     ", "warn": "warn   ", "problem": "PROBLEM"}
    width = max(len(f.name) for f in findings)
    return proc.redact("\n".join(f"{mark[f.status]} {f.name:<{width}}  {f.detail}" for f in findings))


def exit_code(findings: list[Finding]) -> int:
    """0 ready; 2 the configuration is unusable; 1 any other problem."""
    if any(f.name == "config" and f.status == "problem" for f in findings):
        return 2
    return 1 if any(f.status == "problem" for f in findings) else 0
