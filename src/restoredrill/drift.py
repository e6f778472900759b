"""Drift against the last passing drill of the same database, layer and variant.

A dump made by another tool has no manifest, so nothing says what the database held at backup time. The drill's
own history does: each drill keeps the restored database's shape (exact row count per table, the names of its
schemas, tables, columns, indexes, constraints, sequences, views, functions, triggers and extensions, and its
size; never row content), and the next drill compares its restore with the last one that passed. A table that lost
most of its rows, or an index that vanished between two backups, is a backup (or a production) incident that every
other check passes: the dump restores cleanly, without errors, and only holds less.

The variant is part of the key: a pgBackRest restore to a point in time one hour back legitimately holds fewer rows
than one to the end of the archive. A `random` recovery target may lie anywhere in the window, so its row counts
are not compared, only its objects and size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from pydantic import ValidationError

from restoredrill.checks import NotApplicable
from restoredrill.config import Drift
from restoredrill.evidence import CheckRecord, Shape
from restoredrill.manifest import _USER_NAMESPACE, _ext

if TYPE_CHECKING:
    from restoredrill.report.history import Point

# Names only, one (kind, name) row per object. Objects of extensions are left out (amcheck is installed by the
# drill itself); `name on schema.table` for constraints and triggers, whose names are unique per table only.
OBJECTS_SQL = f"""
    SELECT 'schemas', n.nspname FROM pg_namespace n WHERE {_USER_NAMESPACE} AND {_ext("pg_namespace", "n.oid")}
    UNION ALL
    SELECT CASE WHEN c.relkind IN ('r', 'p', 'f') THEN 'tables' WHEN c.relkind = 'S' THEN 'sequences'
                ELSE 'views' END, n.nspname || '.' || c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'S', 'v', 'm') AND NOT c.relispartition AND {_USER_NAMESPACE}
      AND {_ext("pg_class", "c.oid")}
    UNION ALL
    SELECT 'columns', n.nspname || '.' || c.relname || '.' || a.attname
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
      AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    UNION ALL
    SELECT 'indexes', n.nspname || '.' || c.relname
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class t ON t.oid = i.indrelid
    WHERE NOT t.relispartition AND {_USER_NAMESPACE} AND {_ext("pg_class", "i.indrelid")}
    UNION ALL
    SELECT 'constraints', con.conname || ' on ' || n.nspname || '.' || c.relname
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT c.relispartition AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    UNION ALL
    SELECT 'functions', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE {_USER_NAMESPACE} AND {_ext("pg_proc", "p.oid")}
    UNION ALL
    SELECT 'triggers', t.tgname || ' on ' || n.nspname || '.' || c.relname
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND NOT c.relispartition AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    UNION ALL
    SELECT 'extensions', e.extname FROM pg_extension e WHERE e.extname NOT IN ('plpgsql', 'amcheck')
"""
# Partitions are counted through their partitioned table (the whole tree): dropping an old partition by retention
# is routine, and only shows as the rows the table lost.
COUNTED_SQL = f"""
    SELECT n.nspname, c.relname, c.relkind = 'p'
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    ORDER BY 1, 2
"""
# Each partitioned root's leaves (a leaf of a sub-partitioned tree included), by the names counted tables have.
LEAVES_SQL = f"""
    SELECT format('%s.%s', n.nspname, c.relname), format('%s.%s', ln.nspname, l.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL pg_partition_tree(c.oid) t
    JOIN pg_class l ON l.oid = t.relid JOIN pg_namespace ln ON ln.oid = l.relnamespace
    WHERE c.relkind = 'p' AND NOT c.relispartition AND t.isleaf AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
"""
SIZE_SQL = "SELECT pg_database_size(current_database())"
SHOWN_SQL = (
    "SELECT count(*) FROM ONLY <each table> (a partitioned table: its whole tree); "
    f"{SIZE_SQL}; <names of every object from the catalogs>"
)
KINDS = ("schemas", "tables", "columns", "indexes", "constraints", "sequences", "views", "functions", "triggers")
KIND_WORD = {
    "schemas": "schema",
    "tables": "table",
    "columns": "column",
    "indexes": "index",
    "constraints": "constraint",
    "sequences": "sequence",
    "views": "view",
    "functions": "function",
    "triggers": "trigger",
    "extensions": "extension",
}
UNCOUNTED_VARIANTS = ("random",)  # a random recovery target may lie anywhere in the window


@dataclass(frozen=True)
class Baseline:
    """The last passing drill of the same database, layer and variant, and the shape it recorded."""

    run_id: str
    at: datetime
    shape: Shape


def measure(conn: psycopg.Connection[Any], counted: dict[str, int]) -> Shape:
    """The database's shape: exact row counts, object names and size. Reads the catalogs and counts; no row leaves
    the server. `counted` holds the restore's count(*) of each table (ONLY; checks.exact_row_counts, shared with
    manifest_row_counts): a partitioned table is the sum of its leaves, counted here only when one of them is
    not among them (a foreign partition)."""
    objects: dict[str, list[str]] = {}
    for kind, name in conn.execute(OBJECTS_SQL).fetchall():  # type: ignore[arg-type]
        objects.setdefault(str(kind), []).append(str(name))
    leaves: dict[str, list[str]] = {}
    for root, leaf in conn.execute(LEAVES_SQL).fetchall():  # type: ignore[arg-type]
        leaves.setdefault(str(root), []).append(str(leaf))
    rows = {}
    for schema, table, partitioned in conn.execute(COUNTED_SQL).fetchall():  # type: ignore[arg-type]
        name = f"{schema}.{table}"
        parts = leaves.get(name, []) if partitioned else [name]
        if parts and all(part in counted for part in parts):
            rows[name] = sum(counted[part] for part in parts)
            continue
        only = sql.SQL("") if partitioned else sql.SQL("ONLY ")
        query = sql.SQL("SELECT count(*) FROM {}{}.{}").format(only, sql.Identifier(schema), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        rows[name] = int(row[0]) if row else 0
    row = conn.execute(SIZE_SQL).fetchone()
    return Shape(
        database_size_bytes=int(row[0]) if row else None,
        rows=rows,
        objects={kind: sorted(names) for kind, names in sorted(objects.items())},
    )


def last_passing(points: list[Point], run_id: str) -> Baseline | None:
    """The newest passing drill before this run that recorded a shape (history points of one drill key)."""
    for point in sorted(points, key=lambda p: (p.at, p.run_id), reverse=True):
        if point.run_id == run_id or point.verdict != "passed" or point.shape is None:
            continue
        try:
            return Baseline(point.run_id, point.at, Shape.model_validate(point.shape))
        except ValidationError:
            continue  # a damaged line only loses that baseline; the one before it still counts
    return None


def find_baseline(reports_dir: Path, key: tuple[str, str, str | None], run_id: str) -> Baseline | None:
    """The baseline from the history every report reads (evidence records and history.jsonl; with an evidence
    store, `restoredrill run` made the store's chain the local history.jsonl at run start, so reading it again
    per drill would only repeat those GETs)."""
    from restoredrill.report.history import load_history  # the one reader of the history

    return last_passing(load_history(reports_dir, []).series.get(key, []), run_id)


def _size(value: int) -> str:
    return f"{value / 1024 / 1024:.1f} MB"


def _ignored(name: str, policy: Drift) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in policy.ignore)


def _container(kind: str, name: str) -> list[str]:
    """The table and schema an object lives in: a vanished table is named once, not with each of its columns."""
    if kind in ("constraints", "triggers"):
        table = name.split(" on ", 1)[-1]
        return [table, table.split(".", 1)[0]]
    if kind == "columns":
        table = name.rsplit(".", 1)[0]
        return [table, table.split(".", 1)[0]]
    return [name.split(".", 1)[0]] if kind != "schemas" else []


def vanished(before: Shape, now: Shape, policy: Drift) -> list[str]:
    """Objects present at the last passing drill and missing now, each named with its kind."""
    gone: dict[str, list[str]] = {}
    for kind in (*KINDS, "extensions"):
        have = set(now.objects.get(kind, []))
        gone[kind] = [
            n
            for n in before.objects.get(kind, [])
            if n not in have and not any(_ignored(name, policy) for name in (n, *_container(kind, n)))
        ]
    outer = set(gone["schemas"]) | set(gone["tables"])
    return [
        f"{KIND_WORD[kind]} {name}: present at the last passing drill, missing now"
        for kind, names in gone.items()
        for name in names
        if not outer.intersection(_container(kind, name))
    ]


def shrunk(before: Shape, now: Shape, policy: Drift) -> list[str]:
    """Tables that lost more than the allowed share of their rows (small ones only when emptied)."""
    found = []
    for table, was in sorted(before.rows.items()):
        have = now.rows.get(table)
        if have is None or was <= 0 or have >= was or _ignored(table, policy):
            continue
        share = (was - have) / was
        if have == 0 or (was >= policy.small_table_rows and share > policy.max_table_shrink):
            found.append(f"table {table}: {was} rows at the last passing drill, {have} now (-{share:.0%})")
    return found


def size_lost(before: Shape, now: Shape, policy: Drift) -> list[str]:
    was, have = before.database_size_bytes, now.database_size_bytes
    if not was or have is None or have >= was or (was - have) / was <= policy.max_size_shrink:
        return []
    return [f"database size: {_size(was)} at the last passing drill, {_size(have)} now (-{(was - have) / was:.0%})"]


def compare(before: Shape, now: Shape, policy: Drift, *, count_rows: bool = True) -> list[str]:
    """Every finding of drift, one sentence each naming the object and both values; empty when within tolerance."""
    problems = [] if policy.objects_may_vanish else vanished(before, now, policy)
    if count_rows:
        problems += shrunk(before, now, policy)
    return problems + size_lost(before, now, policy)


def _listed(items: list[str], limit: int = 8) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def drift_check(now: Shape, baseline: Baseline | None, policy: Drift, variant: str | None = None) -> CheckRecord:
    """The `drift` check: this restore against the last passing drill. The first drill of a database, layer and
    variant has nothing to compare with: NotApplicable, saying its shape is now the baseline (never a pass)."""
    objects = sum(len(v) for v in now.objects.values())
    measured = f"{len(now.rows)} tables, {sum(now.rows.values())} rows, {objects} objects"
    if now.database_size_bytes is not None:
        measured += f", {_size(now.database_size_bytes)}"
    if baseline is None:
        raise NotApplicable(
            f"no earlier passing drill of this database, layer and variant to compare with: this drill's shape "
            f"({measured}) is recorded as the baseline"
        )
    count_rows = variant not in UNCOUNTED_VARIANTS
    problems = compare(baseline.shape, now, policy, count_rows=count_rows)
    against = f"the last passing drill ({baseline.run_id}, {baseline.at:%Y-%m-%d})"
    if problems:
        return CheckRecord(
            name="drift", outcome="failed", detail=f"lost since {against}: {_listed(problems)}", sql=SHOWN_SQL
        )
    grown = sum(now.rows.values()) - sum(baseline.shape.rows.values())
    tolerance = (
        f"no table lost more than {policy.max_table_shrink:.0%} of its rows (below {policy.small_table_rows} rows: "
        f"none emptied)"
        if count_rows
        else f"row counts not compared (a {variant} recovery target may lie anywhere in the window)"
    )
    vanish = "objects may vanish (objects_may_vanish)" if policy.objects_may_vanish else "no object vanished"
    return CheckRecord(
        name="drift",
        outcome="passed",
        detail=f"{measured} ({grown:+d} rows) against {against}: {tolerance}; {vanish}",
        sql=SHOWN_SQL,
    )
