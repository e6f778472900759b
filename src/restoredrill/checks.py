"""Sanity checks on a restored database. Each returns a CheckRecord whose outcome can really fail.

Generic checks need no configuration; configured ones (min_rows, freshness, sql) come from drills.toml.
A check that cannot run reports `error`, never `passed`.
"""

from __future__ import annotations

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
from restoredrill.targets.local import Connection


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


def manifest_row_counts(db: Restored) -> CheckRecord:
    expected = _require_manifest(db, "manifest_row_counts")
    if isinstance(expected, CheckRecord):
        return expected
    with db.connect() as conn:
        actual = manifest_mod.row_counts(conn)
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


MATVIEW_SQL = "SELECT schemaname, matviewname, ispopulated FROM pg_matviews"


def matviews_populated(db: Restored) -> CheckRecord:
    if db.listing is None:
        raise NotApplicable("a physical backup keeps materialized views as they were")
    expected = {(e.schema, e.name) for e in db.listing.entries if e.kind == "MATERIALIZED VIEW DATA"}
    with db.connect() as conn:
        rows = {(str(s), str(n)): bool(p) for s, n, p in conn.execute(MATVIEW_SQL).fetchall()}
    empty = sorted(f"{s}.{n}" for (s, n) in expected if not rows.get((s, n), False))
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
        f"{len(expected)} materialized view(s) with data in the dump are populated ({len(rows)} in all)",
        MATVIEW_SQL,
    )


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


OWNED_SEQUENCES_SQL = """
    SELECT s.oid::regclass::text, c.oid::regclass::text, quote_ident(a.attname)
    FROM pg_depend d
    JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_class c ON c.oid = d.refobjid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    ORDER BY 1
"""


def sequences(db: Restored) -> CheckRecord:
    behind, checked = [], 0
    with db.connect() as conn:
        for seq, table, column in conn.execute(OWNED_SEQUENCES_SQL).fetchall():
            state = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone()
            top = conn.execute(sql.SQL("SELECT max({}) FROM {}").format(sql.SQL(column), sql.SQL(table))).fetchone()
            checked += 1
            if state is None or top is None or top[0] is None:
                continue
            last_value, is_called = state
            next_value = last_value + 1 if is_called else last_value
            if next_value <= top[0]:
                behind.append(f"{seq} would hand out {next_value} but {table}.{column} already holds {top[0]}")
    if behind:
        return _record(
            "sequences",
            False,
            f"sequences behind their column (inserts would fail on duplicates): {_listed(behind)}",
            OWNED_SEQUENCES_SQL.strip(),
        )
    if not checked:
        raise NotApplicable("no sequence is owned by a column")
    return _record(
        "sequences",
        True,
        f"{checked} owned sequence(s) are ahead of the max of their column",
        OWNED_SEQUENCES_SQL.strip(),
    )


def min_rows(db: Restored, table: str, minimum: int) -> CheckRecord:
    name = f"min_rows:{table}"
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
