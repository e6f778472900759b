"""The layer-1 backup job: pg_dump -Fc, verify, upload with SSE and metadata, manifest, retention.

What a typical hand-written daily backup script does, done properly:
- the manifest (exact row counts, structure fingerprint) is read in the SAME snapshot as the dump,
  through an exported snapshot that pg_dump joins with --snapshot;
- the archive is proved readable (`pg_restore --list`) BEFORE anything is uploaded;
- the manifest is uploaded before the dump, so a dump never appears without it;
- pruning removes whole date folders older than the retention, never the newest dumps.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from restoredrill import manifest as manifest_mod
from restoredrill import pgtools, proc
from restoredrill.errors import BackupDefect, ConfigError, CouldNotVerify
from restoredrill.layers.logical_keys import dump_key, parse_key
from restoredrill.stores import LocalStore, Store, open_store, sha256_file

Log = Callable[[str], None]


@dataclass
class BackupResult:
    key: str
    location: str
    size_bytes: int
    sha256: str
    taken_at: datetime
    tables: int
    rows: int
    uploaded: bool
    pruned: list[str] = field(default_factory=list)


def _split_secret(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the password as PGPASSWORD: never on a command line."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"--dbname is not a valid connection string: {proc.redact(str(exc))}") from None
    password = params.pop("password", None)
    env = {}
    if password:
        proc.register_secret(str(password))
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def _connect(dsn: str, env: dict[str, str]) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, password=env.get("PGPASSWORD"), connect_timeout=15)
    except psycopg.OperationalError as exc:
        raise CouldNotVerify(f"cannot connect to the source database: {proc.redact(str(exc)).strip()}") from None


def prune(store: Store, prefix: str, retention_days: int, now: datetime, *, dry_run: bool) -> list[str]:
    """Delete date folders older than the retention; the folder holding each database's newest dump stays."""
    cutoff = (now - timedelta(days=retention_days)).date()
    dumps = [d for d in (parse_key(prefix, o.key, o.size) for o in store.list(prefix)) if d is not None]
    newest: dict[str, datetime] = {}
    for d in dumps:
        newest[d.database] = max(newest.get(d.database, d.taken_at), d.taken_at)
    protected = {f"{t:%Y-%m-%d}" for t in newest.values()}
    doomed = []
    for obj in store.list(prefix):
        folder = obj.key[len(prefix) :].split("/", 1)[0]
        try:
            day = datetime.strptime(folder, "%Y-%m-%d").date()
        except ValueError:
            continue  # not ours: never touch keys outside the date-folder layout
        if day < cutoff and folder not in protected:
            doomed.append(obj.key)
    if doomed and not dry_run:
        store.delete(doomed)
    return doomed


def backup_logical(
    dsn: str,
    destination: str,
    *,
    name: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    sse: str | None = "AES256",
    kms_key_id: str | None = None,
    retention_days: int = 30,
    dry_run: bool = False,
    now: datetime | None = None,
    log: Log = print,
    timeout: float = 6 * 3600,
    pg_dump_args: Sequence[str] = (),
    content_hash_max_bytes: int | None = manifest_mod.CONTENT_HASH_DEFAULT_MAX_BYTES,
    content_algorithm: str | None = None,
) -> BackupResult:
    """`content_hash_max_bytes`: hash the content of tables up to this size (None: no content hashes).
    `content_algorithm`: one of manifest.CONTENT_HASH_SQL (None: the fastest this source supports, see
    manifest.content_algorithm_for)."""
    if content_algorithm is not None and content_algorithm not in manifest_mod.CONTENT_HASH_SQL:
        raise ConfigError(
            f"unknown content-hash algorithm {content_algorithm!r} (known: {', '.join(manifest_mod.CONTENT_HASH_SQL)})"
        )
    if retention_days < 1:
        raise ConfigError(f"the retention must be at least 1 day, not {retention_days}: it decides what is deleted")
    conninfo, env = _split_secret(dsn)
    store, prefix = open_store(
        destination, endpoint_url=endpoint_url, region=region, profile=profile, sse=sse, kms_key_id=kms_key_id
    )
    work = Path(tempfile.mkdtemp(prefix="restoredrill-backup-"))
    try:
        with _connect(conninfo, env) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = conn.execute(
                "SELECT pg_export_snapshot(), current_database(), current_setting('server_version'), now(), "
                "pg_database_size(current_database())"
            ).fetchone()
            assert row is not None
            snapshot, database, server_version = str(row[0]), str(row[1]), str(row[2])
            database_size = int(row[4])  # the room a restore needs (the drill's disk-space preflight)
            taken_at = (now or row[3]).astimezone(UTC).replace(microsecond=0)
            label = name or database
            key = dump_key(prefix, label, taken_at)
            dump_path = work / Path(key).name
            bindir = pgtools.bindir_for(pgtools.major_of(server_version))
            pg_dump = pgtools.client_tool("pg_dump", bindir)
            log(f"dumping {database} (snapshot {snapshot}) to {dump_path.name}")
            with ThreadPoolExecutor(max_workers=1) as pool:
                dumping = pool.submit(
                    proc.run,
                    [pg_dump, "-Fc", *pg_dump_args, f"--snapshot={snapshot}", "-f", str(dump_path), "-d", conninfo],
                    timeout=timeout,
                    env=env,
                    what="pg_dump",
                )
                counts = manifest_mod.row_counts(conn)
                structure = manifest_mod.structure(conn)
                matviews = manifest_mod.populated_matviews(conn)
                algorithm, content = manifest_mod.MD5_64_SUM, {}
                if content_hash_max_bytes is not None:
                    algorithm = content_algorithm or manifest_mod.content_algorithm_for(
                        conn, pgtools.major_of(server_version)
                    )
                    content = manifest_mod.content_hashes(conn, content_hash_max_bytes, algorithm)
                dumped = dumping.result()
            conn.rollback()
        if dumped.returncode != 0:
            raise BackupDefect(f"pg_dump failed: {dumped.tail(3)}")
        listing = pgtools.list_dump(pgtools.client_tool("pg_restore", bindir), dump_path)
        size, digest = dump_path.stat().st_size, sha256_file(dump_path)
        pg_dump_version = listing.pg_dump_version or ""
        record = manifest_mod.Manifest(
            database=label,
            taken_at=taken_at.isoformat(),
            server_version=server_version,
            pg_dump_version=pg_dump_version,
            row_counts=counts,
            structure=structure,
            matviews_populated=matviews,
            content=content,
            content_max_bytes=content_hash_max_bytes,
            content_algorithm=algorithm,
            dump={
                "key": key,
                "size_bytes": size,
                "sha256": digest,
                "toc_entries": len(listing.entries),
                "database_size_bytes": database_size,
            },
        )
        manifest_text = record.to_json()
        metadata = {
            "db": label,
            "taken-at": taken_at.isoformat(),
            "sha256": digest,
            "size-bytes": str(size),
            "server-version": server_version,
            "pg-dump-version": pg_dump_version,
            "source-database": database,
            "structure-sha256": record.structure_sha256,
            # Of the manifest file exactly as uploaded: the drill refuses a manifest edited afterwards.
            "manifest-sha256": hashlib.sha256(manifest_text.encode()).hexdigest(),
        }
        manifest_key = key.removesuffix(".dump") + ".manifest.json"
        if dry_run:
            log(f"dry run: would upload {store.location(key)} ({size} bytes, sha256 {digest})")
        else:
            store.put_text(manifest_key, manifest_text, {"db": label, "taken-at": taken_at.isoformat()})
            store.upload(dump_path, key, metadata)
            log(f"uploaded {store.location(key)} ({size} bytes, sha256 {digest[:12]}...)")
        pruned = (
            []  # a dry run to a folder not made yet: nothing to prune (a real run has just created it)
            if dry_run and isinstance(store, LocalStore) and not store.root.is_dir()
            else prune(store, prefix, retention_days, now or datetime.now(UTC), dry_run=dry_run)
        )
        for gone in pruned:
            log(("dry run: would delete " if dry_run else "pruned ") + store.location(gone))
        return BackupResult(
            key, store.location(key), size, digest, taken_at, len(counts), sum(counts.values()), not dry_run, pruned
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
