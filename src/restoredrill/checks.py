"""Sanity checks on a restored database. Each returns a CheckRecord whose outcome can really fail.

Generic checks need no configuration; configured ones (min_rows, freshness, sql) come from drills.toml.
A check that cannot run reports `error`, never `passed`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from restoredrill import manifest as manifest_mod
from restoredrill import pgtools, proc
from restoredrill.config import Checks
from restoredrill.durations import format_duration
from restoredrill.evidence import CheckRecord
from restoredrill.manifest import Manifest
from restoredrill.pgtools import DumpListing
from restoredrill.targets.connection import Connection


class NotApplicable(Exception):
    """The check does not apply to this backup (e.g. a dump made by another tool has no manifest)."""


@dataclass
class Restored:
    """A restored database and what we know about the backup it came from."""

    connection: Connection
    dbname: str
    bindir: Path
    listing: DumpListing | None
    manifest: Manifest | None
    taken_at: datetime
    rpo_s: float
    restore_returncode: int
    restore_errors: list[str]
    require_manifest: bool = False
    check_timeout: float = 1800
    jobs: int = 2
    cache: dict[str, Any] = field(default_factory=dict)
    # Checks may run in worker threads at once (layers/base.py SCANNING_CHECKS): what they share in `cache` is
    # computed under this lock, once.
    cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def connect(self) -> psycopg.Connection[Any]:
        conn = self.connection.connect(self.dbname)
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(int(self.check_timeout * 1000))))
        return conn


def _record(name: str, passed: bool, detail: str, query: str | None = None) -> CheckRecord:
    return CheckRecord(name=name, outcome="passed" if passed else "failed", detail=detail, sql=query)


def _listed(items: list[str], limit: int = 8) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def _split_table(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", name)


def _table_sql(name: str) -> sql.Composed:
    schema, table = _split_table(name)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def restore_errors(db: Restored) -> CheckRecord:
    if db.restore_errors or db.restore_returncode != 0:
        count = len(db.restore_errors)
        first = _listed(db.restore_errors, 3) or "no message"
        return _record(
            "restore_errors", False, f"pg_restore exited {db.restore_returncode} with {count} error(s): {first}"
        )
    return _record("restore_errors", True, "pg_restore finished with exit code 0 and printed no error")


TOC_SQL = "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL"
TOC_SQL_SHOWN = TOC_SQL.replace("%%", "%")  # as PostgreSQL receives it, for the evidence


def toc_tables(db: Restored) -> CheckRecord:
    if db.listing is None:
        raise NotApplicable("a physical backup has no table of contents")
    wanted = db.listing.tables()
    if not wanted:
        return _record("toc_tables", False, "the dump's table of contents lists no table at all")
    with db.connect() as conn:
        missing = [f"{s}.{t}" for s, t in wanted if not conn.execute(TOC_SQL, (s, t)).fetchone()[0]]  # type: ignore[index]
    if missing:
        return _record(
            "toc_tables",
            False,
            f"{len(missing)} of {len(wanted)} tables of the dump are missing after restore: {_listed(missing)}",
            TOC_SQL_SHOWN,
        )
    return _record("toc_tables", True, f"all {len(wanted)} tables of the dump's table of contents exist", TOC_SQL_SHOWN)


def _require_manifest(db: Restored, name: str) -> Manifest | CheckRecord:
    if db.manifest is not None:
        return db.manifest
    if db.require_manifest:
        return _record(name, False, "the dump has no manifest, and this database requires one")
    raise NotApplicable("the dump has no manifest (made by another tool), so there is nothing to compare with")


def exact_row_counts(db: Restored, conn: psycopg.Connection[Any]) -> dict[str, int]:
    """count(*) of every table of the restore (ONLY: a partition on its own), scanned once per restore:
    manifest_row_counts and drift both read them, and each pass is a sequential scan of the whole database."""
    with db.cache_lock:
        if "row_counts" not in db.cache:
            db.cache["row_counts"] = manifest_mod.row_counts(conn)
        counts: dict[str, int] = db.cache["row_counts"]
    return counts


def manifest_row_counts(db: Restored) -> CheckRecord:
    expected = _require_manifest(db, "manifest_row_counts")
    if isinstance(expected, CheckRecord):
        return expected
    with db.connect() as conn:
        actual = exact_row_counts(db, conn)
    problems = []
    for table, want in sorted(expected.row_counts.items()):
        have = actual.get(table)
        if have is None:
            problems.append(f"{table}: in the manifest with {want} rows, missing after restore")
        elif have != want:
            problems.append(f"{table}: manifest {want} rows, restored {have} ({have - want:+d})")
    problems += [
        f"{t}: restored with {n} rows, not in the manifest"
        for t, n in sorted(actual.items())
        if t not in expected.row_counts
    ]
    query = "SELECT count(*) FROM ONLY <each table>"
    if problems:
        return _record(
            "manifest_row_counts",
            False,
            f"row counts differ from the manifest captured at backup time: {_listed(problems)}",
            query,
        )
    total = sum(actual.values())
    return _record(
        "manifest_row_counts",
        True,
        f"{len(actual)} tables, {total} rows: exactly the counts captured at backup time",
        query,
    )


def manifest_structure(db: Restored) -> CheckRecord:
    expected = _require_manifest(db, "manifest_structure")
    if isinstance(expected, CheckRecord):
        return expected
    with db.connect() as conn:
        actual = manifest_mod.structure(conn)
    problems = manifest_mod.compare_structure(expected.structure, actual)
    if problems:
        return _record(
            "manifest_structure", False, f"the restored schema differs from the manifest: {_listed(problems)}"
        )
    objects = sum(len(v) for v in actual.values())
    return _record(
        "manifest_structure",
        True,
        f"structure fingerprint {manifest_mod.fingerprint(actual)[:12]} matches the manifest ({objects} objects)",
    )


def manifest_content(db: Restored) -> CheckRecord:
    """Same row counts can hide altered rows: the content hash of each table must equal the one of backup time,
    computed with the algorithm the manifest names."""
    expected = _require_manifest(db, "manifest_content")
    if isinstance(expected, CheckRecord):
        return expected
    if expected.content_max_bytes is None:
        raise NotApplicable("the backup job took no content hashes for this dump")
    algorithm = expected.content_algorithm
    if algorithm not in manifest_mod.CONTENT_HASH_SQL:
        return CheckRecord(
            name="manifest_content",
            outcome="error",
            detail=f"the manifest's content hashes use algorithm {algorithm!r}, which this restoredrill does not "
            f"know (it knows {', '.join(manifest_mod.CONTENT_HASH_SQL)}): the rows could not be compared; a "
            "newer restoredrill wrote this manifest?",
        )
    shown = manifest_mod.content_hash_sql_shown(algorithm)
    differ, missing = [], []
    with db.connect() as conn:
        if algorithm == manifest_mod.HASHTEXTEXTENDED_SUM:
            probe = manifest_mod.hash_probe(conn)
            if probe != manifest_mod.HASH_PROBE_LITTLE_ENDIAN:
                return CheckRecord(
                    name="manifest_content",
                    outcome="error",
                    detail=f"this server's hashtextextended differs from the one the backup job used (probe "
                    f"{probe}, not {manifest_mod.HASH_PROBE_LITTLE_ENDIAN}: a big-endian machine?): its content "
                    f"hashes ({algorithm}) could not be compared",
                    sql=manifest_mod.HASH_PROBE_SQL.replace("%s", repr(manifest_mod.HASH_PROBE)),
                )
        manifest_mod.use_content_settings(conn)
        for table, want in sorted(expected.content.items()):
            if not conn.execute(MISSING_TABLE_SQL, (_table_sql(table).as_string(conn),)).fetchone()[0]:  # type: ignore[index]
                if manifest_mod.content_hash(conn, table, algorithm) != want:
                    differ.append(table)
            else:
                missing.append(table)
    if differ or missing:
        problems = [f"{t}: rows differ from backup time" for t in differ] + [f"{t}: missing" for t in missing]
        return _record(
            "manifest_content", False, f"table content differs from the manifest: {_listed(problems)}", shown
        )
    return _record(
        "manifest_content",
        True,
        f"{len(expected.content)} table(s) hold exactly the rows of backup time (content hashes, {algorithm}; "
        f"tables over {expected.content_max_bytes} bytes are only counted)",
        shown,
    )


MATVIEW_SQL = (
    "SELECT schemaname, matviewname, format('%s.%s', quote_ident(schemaname), quote_ident(matviewname)), "
    "ispopulated FROM pg_matviews"
)


def matviews_populated(db: Restored) -> CheckRecord:
    if db.listing is None:
        raise NotApplicable("a physical backup keeps materialized views as they were")
    with db.connect() as conn:
        rows = conn.execute(MATVIEW_SQL).fetchall()
    quoted = {(str(s), str(n)): str(q) for s, n, q, _p in rows}
    populated = {str(q): bool(p) for _s, _n, q, p in rows}
    # Populated at backup time: those with a data entry in the archive, and (from the manifest) those populated at
    # the source: a dump that lost a view's data entry restores it empty without any error.
    expected = {
        quoted.get((e.schema, e.name), f"{e.schema}.{e.name}")
        for e in db.listing.entries
        if e.kind == "MATERIALIZED VIEW DATA"
    }
    if db.manifest is not None:
        expected |= set(db.manifest.matviews_populated or [])
    empty = sorted(name for name in expected if not populated.get(name, False))
    if empty:
        return _record(
            "matviews_populated",
            False,
            f"materialized views not populated after restore: {_listed(empty)}",
            MATVIEW_SQL,
        )
    if not rows:
        raise NotApplicable("the database has no materialized view")
    return _record(
        "matviews_populated",
        True,
        f"{len(expected)} materialized view(s) populated at backup time are populated ({len(rows)} in all)",
        MATVIEW_SQL,
    )


AMCHECK_INSTALL_SQL = "CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA pg_catalog"


def install_amcheck(db: Restored) -> None:
    """Install amcheck where `pg_amcheck --install-missing` would, before the scans start side by side.

    Installing it adds catalog rows, so the database grows by a page or so: done while `drift` measures the
    size, the measurement would depend on which thread came first. Done here, every run measures the same
    database. A failure is left for pg_amcheck to report (it tries again and says why)."""
    with contextlib.suppress(psycopg.Error), db.connect() as conn:
        conn.execute(AMCHECK_INSTALL_SQL)


def amcheck(db: Restored) -> CheckRecord:
    tool = pgtools.client_tool("pg_amcheck", db.bindir)
    c = db.connection
    args = [
        tool,
        "--install-missing",
        "--jobs",
        str(max(1, db.jobs)),
        "-h",
        c.host,
        "-p",
        str(c.port),
        "-U",
        c.user,
        db.dbname,
    ]
    result = proc.run(args, timeout=db.check_timeout, env=c.env(), what="pg_amcheck")
    command = "pg_amcheck --install-missing (heap and btree, every relation)"
    if result.returncode == 0 and not result.stdout.strip():
        return _record("amcheck", True, "pg_amcheck found no heap or btree corruption", command)
    lines = [ln for ln in (result.stdout + "\n" + result.stderr).splitlines() if ln.strip()]
    if result.returncode == 2 or result.stdout.strip():
        return _record("amcheck", False, f"pg_amcheck reports corruption: {_listed(lines, 5)}", command)
    return CheckRecord(
        name="amcheck", outcome="error", detail=f"pg_amcheck could not run: {_listed(lines, 3)}", sql=command
    )


# Every way a sequence feeds a column: OWNED BY (serial, 'a'), an identity column ('i'), or only a column DEFAULT
# calling nextval() (a dependency of the default expression). Partitions share their parent's column: the parent's
# max covers them. Only integer columns can be compared with a sequence.
FEEDING_SEQUENCES_SQL = """
    WITH feeds AS (
        SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum,
               CASE d.deptype WHEN 'i' THEN 'identity' ELSE 'owned by' END AS how
        FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
        UNION
        SELECT d.refobjid, ad.adrelid, ad.adnum, 'default nextval'
        FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
        WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
    )
    SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', cn.nspname, c.relname), quote_ident(a.attname),
           string_agg(DISTINCT f.how, ', '), ps.seqincrement, ps.seqcycle
    FROM feeds f
    JOIN pg_class s ON s.oid = f.seq AND s.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_sequence ps ON ps.seqrelid = s.oid
    JOIN pg_class c ON c.oid = f.rel AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    JOIN pg_namespace cn ON cn.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = f.attnum AND NOT a.attisdropped
    WHERE a.atttypid IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype)
    GROUP BY 1, 2, 3, 5, 6
    ORDER BY 1, 2, 3
"""


def sequences(db: Restored) -> CheckRecord:
    """Each sequence must hand out a value its column does not hold yet (above the max; below the min when it
    counts down): a sequence behind its column makes every insert fail on a duplicate key after a restore."""
    behind, checked, cycling = [], 0, []
    with db.connect() as conn:
        for seq, table, column, how, increment, cycles in conn.execute(FEEDING_SEQUENCES_SQL).fetchall():
            if cycles:  # a cycling sequence may have wrapped: values above it are expected, nothing to compare
                cycling.append(seq)
                continue
            state = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone()
            edge = "min" if increment < 0 else "max"
            query = sql.SQL("SELECT {}({}) FROM {}").format(sql.SQL(edge), sql.SQL(column), sql.SQL(table))
            top = conn.execute(query).fetchone()
            checked += 1
            if state is None or top is None or top[0] is None:
                continue
            last_value, is_called = state
            next_value = last_value + increment if is_called else last_value
            if (increment > 0 and next_value <= top[0]) or (increment < 0 and next_value >= top[0]):
                behind.append(
                    f"{seq} ({how} {table}.{column}) would hand out {next_value} but the column's {edge} "
                    f"is already {top[0]}"
                )
    shown = FEEDING_SEQUENCES_SQL.strip()
    if behind:
        return _record(
            "sequences",
            False,
            f"sequences behind their column (inserts would fail on duplicates): {_listed(behind)}",
            shown,
        )
    if not checked:
        raise NotApplicable("no sequence feeds a column")
    skipped = f"; {len(cycling)} cycling sequence(s) not compared ({_listed(cycling, 3)})" if cycling else ""
    return _record(
        "sequences",
        True,
        f"{checked} sequence-fed column(s) (owned by, identity or default nextval): every sequence is past its "
        f"column's values{skipped}",
        shown,
    )


MISSING_TABLE_SQL = "SELECT to_regclass(%s) IS NULL"


def _missing_table(db: Restored, name: str, table: str) -> CheckRecord | None:
    """A table the configuration expects but the restore lacks: the backup is missing it (a defect)."""
    with db.connect() as conn:
        row = conn.execute(MISSING_TABLE_SQL, (_table_sql(table).as_string(conn),)).fetchone()
    if row and row[0]:
        return _record(name, False, f"{table} is missing after the restore: the backup does not hold it")
    return None


def min_rows(db: Restored, table: str, minimum: int) -> CheckRecord:
    name = f"min_rows:{table}"
    if missing := _missing_table(db, name, table):
        return missing
    query = sql.SQL("SELECT count(*) FROM {}").format(_table_sql(table))
    with db.connect() as conn:
        text = query.as_string(conn)
        row = conn.execute(query).fetchone()
    count = int(row[0]) if row else 0
    return _record(name, count >= minimum, f"{table} has {count} rows (minimum {minimum})", text)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"{type(value).__name__} is not a date or timestamp")


def freshness(db: Restored, table: str, column: str, max_lag_s: float | None) -> CheckRecord:
    name = f"freshness:{table}.{column}"
    allowed = max_lag_s if max_lag_s is not None else db.rpo_s
    if missing := _missing_table(db, name, table):
        return missing
    query = sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), _table_sql(table))
    with db.connect() as conn:
        text = query.as_string(conn)
        row = conn.execute(query).fetchone()
    newest = row[0] if row else None
    if newest is None:
        return _record(name, False, f"{table}.{column} holds no value at all: nothing proves the data is recent", text)
    try:
        newest_at = _as_datetime(newest)
    except TypeError as exc:
        return CheckRecord(name=name, outcome="error", detail=f"{table}.{column}: {exc}", sql=text)
    lag = (db.taken_at - newest_at).total_seconds()
    detail = (
        f"newest {table}.{column} is {format_duration(max(lag, 0))} older than the backup "
        f"(allowed {format_duration(allowed)})"
    )
    return _record(name, lag <= allowed, detail, text)


def _matches(value: Any, expected: str | int | float | bool) -> bool:
    if isinstance(expected, bool):
        return str(value).lower() in ({"true", "t", "1"} if expected else {"false", "f", "0"})
    try:
        return Decimal(str(value)) == Decimal(str(expected))
    except InvalidOperation:
        return str(value) == str(expected)


def custom_sql(db: Restored, name: str, query: str, expected: str | int | float | bool) -> CheckRecord:
    check = f"sql:{name}"
    with db.connect() as conn:
        conn.execute("SET default_transaction_read_only = on")
        try:
            row = conn.execute(query).fetchone()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            return _record(
                check,
                False,
                f"the query failed on the restored database: {proc.redact(str(exc)).strip().splitlines()[0]}",
                query,
            )
    value = row[0] if row else None
    return _record(
        check, row is not None and _matches(value, expected), f"returned {value!r}, expected {expected!r}", query
    )


def configured_checks(checks: Checks) -> dict[str, Callable[[Restored], CheckRecord]]:
    """Name -> function for each check written in drills.toml for one database."""
    found: dict[str, Callable[[Restored], CheckRecord]] = {}
    for m in checks.min_rows:
        found[f"min_rows:{m.table}"] = lambda db, m=m: min_rows(db, m.table, m.min)
    for f in checks.freshness:
        found[f"freshness:{f.table}.{f.column}"] = lambda db, f=f: freshness(db, f.table, f.column, f.max_lag)
    for q in checks.sql:
        found[f"sql:{q.name}"] = lambda db, q=q: custom_sql(db, q.name, q.sql, q.expect)
    return found


GENERIC: dict[str, Callable[[Restored], CheckRecord]] = {
    "restore_errors": restore_errors,
    "toc_tables": toc_tables,
    "manifest_row_counts": manifest_row_counts,
    "manifest_structure": manifest_structure,
    "manifest_content": manifest_content,
    "matviews_populated": matviews_populated,
    "amcheck": amcheck,
    "sequences": sequences,
}


def run_check(name: str, func: Callable[[Restored], CheckRecord], db: Restored) -> CheckRecord:
    """Run one check, timing it; a database error makes the outcome `error`, never `passed`."""
    started = time.monotonic()
    try:
        record = func(db)
    except NotApplicable:
        raise
    except (psycopg.Error, OSError) as exc:
        message = proc.redact(str(exc)).strip().splitlines()
        record = CheckRecord(
            name=name,
            outcome="error",
            detail=f"the check could not run: {message[0] if message else type(exc).__name__}",
        )
    except Exception as exc:  # a check must never crash the drill; its failure is evidence
        record = CheckRecord(name=name, outcome="error", detail=f"the check could not run: {proc.redact(str(exc))}")
    record.duration_s = round(time.monotonic() - started, 3)
    return record


# By size on disk, which every restore keeps. Live-tuple statistics do not survive a physical restore
# (crash recovery resets pg_stat counters: every table read 0 rows), and pg_restore runs no ANALYZE.
LARGEST_TABLES_SQL = """
    SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname, pg_table_size(c.oid), c.reltuples::bigint,
           s.n_live_tup
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY pg_table_size(c.oid) DESC, 1 LIMIT 5
"""
EXACT_COUNT_UP_TO_BYTES = 256 * 1024 * 1024  # counting this much takes well under a second


def largest_tables(db: Restored, exact_up_to_bytes: int = EXACT_COUNT_UP_TO_BYTES) -> list[dict[str, bool | int | str]]:
    """The five largest tables with their row counts: exact (count(*)) up to a size, else the planner's
    estimate, marked as one (`rows_estimated`, `rows_source`)."""
    found: list[dict[str, bool | int | str]] = []
    with db.connect() as conn:
        for name, schema, table, size, reltuples, live in conn.execute(LARGEST_TABLES_SQL).fetchall():
            if size <= exact_up_to_bytes:
                query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                rows, source = conn.execute(query).fetchone()[0], "count(*)"  # type: ignore[index]
            elif reltuples >= 0:  # -1: never vacuumed or analyzed
                rows, source = reltuples, "pg_class.reltuples"
            else:
                rows, source = live or 0, "pg_stat_user_tables.n_live_tup"
            found.append(
                {
                    "table": str(name),
                    "rows": int(rows),
                    "rows_estimated": source != "count(*)",
                    "rows_source": source,
                    "size_bytes": int(size),
                }
            )
    return found
