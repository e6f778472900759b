"""`restoredrill premigration`: rehearse a risky migration on a restored copy of production's newest backup.

Right before a migration an engineer wants three facts: there IS a recent rollback point, the backup behind
it restores, and the migration works (and how long it takes) on production-sized data. So:
1. refuse when the newest backup is older than --max-backup-age ("take a backup first"), or take one first
   with the project's own logical backup job (--take-backup --source-dsn);
2. restore it with the drill engine (the same LogicalDrill / PgBackRestDrill `restoredrill run` uses);
3. run the checks that vouch for the BACKUP (restore errors, tables of the TOC, manifest, recovery) on the
   untouched copy: after the migration a changed structure would be a false alarm;
4. run the command against the copy, timed, with PG* and DATABASE_URL pointing at the copy and every
   inherited libpq variable removed, so it can never reach production;
5. run the checks that vouch for the DATABASE (amcheck, sequences, materialized views, configured checks)
   on the migrated copy; a failing migration fails the rehearsal, with its stderr tail (redacted);
6. record the rollback point, the migration's duration and exit status in the evidence and the report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from restoredrill import proc
from restoredrill.checks import NotApplicable, Restored
from restoredrill.config import DrillConfig, Layer, config_path, load_config
from restoredrill.durations import format_duration
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.evidence import BackupInfo, CheckRecord, DrillRecord, Outcome, new_run_id
from restoredrill.layers.base import LayerDrill
from restoredrill.libpq_env import forget_inherited_servers, points_at_a_server
from restoredrill.operate import listing, notify
from restoredrill.report.commands import before_run
from restoredrill.verdicts import drill_of, judge

VARIANT = "premigration"
# Checks that compare the restored copy with what the backup recorded: they run BEFORE the migration.
BACKUP_CHECKS = {
    "restore_errors",
    "toc_tables",
    "manifest_row_counts",
    "manifest_structure",
    "manifest_content",
    "matviews_populated",
    "recovery",
    "archive_mode_off",
    "replay_proof",
    "ledger_pitr",
    "drift",
}
STDERR_LINES = 20


@dataclass(frozen=True)
class Request:
    database: str
    layer: Layer | None
    max_backup_age_s: float | None
    command: str | None
    take_backup: bool
    source_dsn: str | None
    timeout_s: float | None


def choose_layer(config: DrillConfig, request: Request) -> Layer:
    if request.database not in config.databases:
        raise ConfigError(f"database '{request.database}' is not in the configuration")
    database = config.databases[request.database]
    if request.layer is not None:
        if request.layer == "rds":
            raise ConfigError("premigration rehearses on the logical or pgbackrest layer, not rds")
        if getattr(database, request.layer) is None:
            raise ConfigError(f"database '{request.database}' has no {request.layer} layer")
        return request.layer
    for layer in ("logical", "pgbackrest"):
        if getattr(database, layer) is not None:
            return layer  # type: ignore[return-value]
    raise ConfigError(f"database '{request.database}' has neither a logical nor a pgbackrest layer to rehearse on")


def take_backup(config: DrillConfig, request: Request, say: Callable[[str], None]) -> None:
    from restoredrill.backup import backup_logical

    source = config.databases[request.database].logical
    if source is None:
        raise ConfigError("--take-backup runs the logical backup job: the database needs a logical layer")
    if not request.source_dsn:
        raise ConfigError("--take-backup needs --source-dsn (or RESTOREDRILL_SOURCE_DSN): the database to dump")
    result = backup_logical(
        request.source_dsn,
        source.source,
        name=source.dump_name or request.database,
        endpoint_url=source.endpoint_url,
        region=source.region,
        profile=source.profile,
        sse="AES256" if source.source.startswith("s3://") else None,
        retention_days=source.retention_days,
        log=lambda _m: None,
    )
    say(f"backup taken: {result.location} ({result.size_bytes} bytes)")


def listing_say(text: str) -> None:
    print(f"premigration: {proc.redact(text)}", flush=True)


def require_fresh(config: DrillConfig, request: Request, layer: Layer) -> listing.Newest:
    newest = listing.newest(config, request.database, layer)
    if newest.problem is not None:
        error = BackupDefect if newest.problem_kind == "defect" else CouldNotVerify
        raise error(f"no rollback point: {newest.problem}")
    if request.max_backup_age_s is not None and (newest.age_s or 0) > request.max_backup_age_s:
        raise ConfigError(
            f"the newest {layer} backup of {request.database} ({newest.backup_id}) is "
            f"{format_duration(newest.age_s)} old, more than --max-backup-age "
            f"{format_duration(request.max_backup_age_s)}: take a backup first (or pass --take-backup)"
        )
    return newest


def rollback_point(layer: Layer, newest: listing.Newest, restored: BackupInfo | None = None) -> str:
    """The backup restored (a newer one may have landed since the listing), and the window to recover to."""
    backup_id = restored.id if restored is not None and restored.id else newest.backup_id
    taken_at = restored.taken_at if restored is not None and restored.id else newest.taken_at
    if layer == "pgbackrest":
        return (
            f"rollback point: pgBackRest set {backup_id} (stopped {taken_at}); point-in-time "
            f"recovery window {newest.window_from} .. {newest.window_to}"
        )
    return f"rollback point: dump {backup_id} taken {taken_at}"


def copy_environment(restored: Restored) -> dict[str, str]:
    """The whole environment of the command: ours without any libpq variable, plus the copy's.

    Every PG* variable libpq reads (PGHOSTADDR overrides PGHOST, PGSERVICE names another server) and
    DATABASE_URL are removed first, so nothing inherited can point the migration at production.
    """
    kept = {k: v for k, v in os.environ.items() if not points_at_a_server(k)}
    c = restored.connection
    user, password, dbname = (quote(part, safe="") for part in (c.user, c.password, restored.dbname))
    proc.register_secret(password)  # the URL-quoted form is another spelling of the secret
    url = f"postgresql://{user}:{password}@{c.host}:{c.port}/{dbname}"
    return {
        **kept,
        "PGHOST": c.host,
        "PGPORT": str(c.port),
        "PGUSER": c.user,
        "PGPASSWORD": c.password,
        "PGDATABASE": restored.dbname,
        "PGSSLMODE": c.sslmode,
        "DATABASE_URL": f"{url}?sslmode={c.sslmode}",
    }


def run_migration(drill: LayerDrill, command: str, timeout_s: float) -> CheckRecord:
    assert drill.restored is not None
    result = proc.run(
        ["/bin/sh", "-c", command],
        timeout=timeout_s,
        env=copy_environment(drill.restored),
        inherit_env=False,
        what="the migration",
    )
    took = format_duration(result.duration_s)
    backup = drill.record.backup
    if result.returncode == 0:
        detail = f"the migration exited 0 after {took} on a restored copy of {backup.id}"
    else:
        tail = proc.redact(result.tail(STDERR_LINES))
        detail = f"the migration exited {result.returncode} after {took} on a restored copy of {backup.id}: {tail}"
    record = CheckRecord(
        name="migration",
        outcome="passed" if result.returncode == 0 else "failed",
        detail=detail,
        sql=proc.redact(command),
        duration_s=round(result.duration_s, 3),
    )
    drill.record.rpo_detail.update({"migration_exit_status": result.returncode, "migration_s": record.duration_s})
    drill.record.notes.append(f"migration: exit status {result.returncode}, {took} on production-sized data")
    return record


def _checks(drill: LayerDrill, names: list[str]) -> None:
    for name in names:
        try:
            drill.check(name)
        except NotApplicable:
            continue  # recorded as not applicable by the drill, as in a regular run


def make_drill(config: DrillConfig, database: str, layer: Layer, run_id: str) -> LayerDrill:
    from restoredrill.layers.logical import LogicalDrill
    from restoredrill.layers.pgbackrest import PgBackRestDrill

    drill: LayerDrill
    if layer == "logical":
        drill = LogicalDrill(config, database, run_id, log=listing_say)
    else:
        drill = PgBackRestDrill(config, database, "latest", run_id, log=listing_say)  # replay to the newest WAL
    drill.record.variant = VARIANT
    return drill


def rehearse(config_file: str | None, request: Request) -> int:
    path = config_path(config_file).resolve()
    config = load_config(path)
    layer = choose_layer(config, request)
    if request.take_backup:
        take_backup(config, request, listing_say)  # the one connection to production: the backup job's
    forget_inherited_servers()
    newest = require_fresh(config, request, layer)
    listing_say(rollback_point(layer, newest))
    run_id = new_run_id()
    before_run(config.reports_dir, run_id, path)  # a bad signing key stops here, before anything is restored
    drill = make_drill(config, request.database, layer, run_id)
    try:
        drill.prepare()
        drill.record.notes.insert(0, rollback_point(layer, newest, drill.record.backup))
        drill.record.rpo_detail["rollback_point"] = drill.record.backup.id or newest.backup_id
        drill.restore_outcome()
        names = drill.check_names()
        _checks(drill, [n for n in names if n in drill.timing_checks or n in BACKUP_CHECKS])
        if request.command is not None and drill.restored is not None:
            listing_say(f"running the migration against the restored copy of {drill.record.backup.id}")
            timeout = request.timeout_s or config.target.restore_timeout
            drill.record.add_check(run_migration(drill, request.command, timeout))
        elif request.command is not None:
            reason = str(drill.failure) if drill.failure else "the restore did not complete"
            drill.record.add_check(CheckRecord(name="migration", outcome=Outcome.NOT_RUN, detail=f"not run: {reason}"))
        _checks(drill, [n for n in names if n not in drill.timing_checks and n not in BACKUP_CHECKS])
    finally:
        record = drill.finish(config.reports_dir)
    code = judge([record], None).exit_code
    html = _report(config, path, record)
    _summary(record, html)
    notify.send(config, code, [record], run_id, html)
    return code


def _report(config: DrillConfig, path: Path, record: DrillRecord) -> Path | None:
    from restoredrill.report.build import build_report

    try:
        built = build_report(config.reports_dir, run_id=record.run_id, config_file=path, expected=[drill_of(record)])
    except Exception as exc:  # the rehearsal's verdict survives a report problem, said in one sentence
        print(f"restoredrill: the report could not be written: {proc.redact(str(exc))}", file=sys.stderr)
        return None
    return built.html


def _summary(record: DrillRecord, html: Path | None) -> None:
    migration = next((c for c in record.checks if c.name == "migration"), None)
    lines = [f"premigration {record.database}/{record.layer}: {record.verdict.replace('_', ' ').upper()}"]
    lines += [f"  {note}" for note in record.notes if note.startswith(("rollback point", "migration"))]
    if migration is not None and migration.outcome != "passed":
        lines.append(f"  {migration.detail}")
    if record.reason:
        lines.append(f"  reason: {record.reason}")
    if html is not None:
        lines.append(f"  report: {html}")
    print(proc.redact("\n".join(lines)), flush=True)
