"""The manifest: exact row counts and a structure fingerprint, read from one snapshot.

The backup job reads it in the SAME snapshot pg_dump uses (pg_export_snapshot + pg_dump --snapshot),
so a restore of that dump must reproduce it exactly. The drill reads the same facts from the restored
database and names every difference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

# /2: the manifest names its content-hash algorithm (`content_algorithm`). A /1 manifest has no such field: its
# content hashes are md5-64-sum, and it still reads and verifies exactly as before. The backup job writes /1
# while its content hashes are md5-64-sum, so releases that know only /1 can still use it; it writes /2 for
# any other algorithm, so those releases refuse the manifest (unreadable) instead of comparing sums of another
# algorithm with their md5 ones and calling every table altered.
FORMAT = "restoredrill-manifest/2"
FORMAT_MD5_ONLY = "restoredrill-manifest/1"
# amcheck is installed by the drill itself to verify the restored copy; never part of the comparison.
_IGNORED_EXTENSIONS = ("amcheck",)

_USER_NAMESPACE = """
    n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
    AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
_NOT_FROM_EXTENSION = """
    NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = {catalog}::regclass AND d.objid = {oid}
                AND d.deptype = 'e')
"""


def _ext(catalog: str, oid: str) -> str:
    return _NOT_FROM_EXTENSION.format(catalog=f"'{catalog}'", oid=oid)


STRUCTURE_QUERIES: dict[str, str] = {
    "columns": f"""
        SELECT format('%s.%s.%s %s%s%s', quote_ident(n.nspname), quote_ident(c.relname), quote_ident(a.attname),
               format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
               COALESCE(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), ''))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER_NAMESPACE}
          AND {_ext("pg_class", "c.oid")}""",
    "indexes": f"""
        SELECT pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NAMESPACE} AND {_ext("pg_class", "i.indrelid")}""",
    "constraints": f"""
        SELECT format('%s on %s: %s%s', quote_ident(con.conname), con.conrelid::regclass,
               pg_get_constraintdef(con.oid), CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END)
        FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE con.conrelid <> 0 AND {_USER_NAMESPACE} AND {_ext("pg_class", "con.conrelid")}""",
    "sequences": f"""
        SELECT format('%s %s start %s increment %s', s.seqrelid::regclass, format_type(s.seqtypid, NULL),
               s.seqstart, s.seqincrement)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}""",
    "extensions": "SELECT extname FROM pg_extension WHERE extname NOT IN ("
    + ", ".join(f"'{name}'" for name in _IGNORED_EXTENSIONS)
    + ")",
    "views": f"""
        SELECT format('%s.%s (%s) %s', quote_ident(n.nspname), quote_ident(c.relname),
               CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END,
               md5(pg_get_viewdef(c.oid)))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}""",
    "functions": f"""
        SELECT format('%s.%s(%s) %s', quote_ident(n.nspname), quote_ident(p.proname),
               pg_get_function_identity_arguments(p.oid), md5(p.prosrc))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NAMESPACE} AND {_ext("pg_proc", "p.oid")}""",
    "triggers": f"""
        SELECT pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}""",
    "policies": """
        SELECT format('%s on %s.%s for %s using %s check %s', quote_ident(policyname), quote_ident(schemaname),
               quote_ident(tablename), cmd, COALESCE(qual, '-'), COALESCE(with_check, '-'))
        FROM pg_policies""",
    "row_security": f"""
        SELECT format('%s.%s%s', quote_ident(n.nspname), quote_ident(c.relname),
               CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relrowsecurity AND {_USER_NAMESPACE}""",
    "types": f"""
        SELECT format('%s %s%s', t.oid::regtype,
               CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'c' THEN 'composite'
                    WHEN 'r' THEN 'range' ELSE t.typtype::text END,
               CASE WHEN t.typtype = 'e' THEN ' (' || (SELECT string_agg(quote_literal(e.enumlabel), ', '
                    ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
                    WHEN t.typtype = 'd' THEN ' over ' || format_type(t.typbasetype, t.typtypmod) ELSE '' END)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('e', 'd', 'c', 'r') AND {_USER_NAMESPACE} AND {_ext("pg_type", "t.oid")}
          AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')""",
}

_TABLES = f"""
    SELECT n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    ORDER BY 1, 2
"""


def qualified(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def structure(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every user-visible object of the schema, as sorted lines per category."""
    found: dict[str, list[str]] = {}
    for category, query in STRUCTURE_QUERIES.items():
        rows = conn.execute(query).fetchall()  # type: ignore[arg-type]
        found[category] = sorted(str(r[0]) for r in rows)
    return found


def fingerprint(structure_lines: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(structure_lines, sort_keys=True).encode()).hexdigest()


def tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(str(s), str(t)) for s, t in conn.execute(_TABLES).fetchall()]


POPULATED_MATVIEWS_SQL = f"""
    SELECT format('%s.%s', quote_ident(n.nspname), quote_ident(c.relname))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'm' AND c.relispopulated AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    ORDER BY 1
"""


def populated_matviews(conn: psycopg.Connection[Any]) -> list[str]:
    """Materialized views holding data: a restore must populate each of them again."""
    return [str(r[0]) for r in conn.execute(POPULATED_MATVIEWS_SQL).fetchall()]  # type: ignore[arg-type]


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Exact count(*) of every user table (ONLY: partitions are counted on their own)."""
    counts = {}
    for schema, table in tables(conn):
        query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        counts[qualified(schema, table)] = int(row[0]) if row else 0
    return counts


# Content hashes: per table, the SUM over every row of a 64-bit hash of the row's text, computed in SQL so no row
# leaves the server. A sum does not depend on row order (a restore returns rows in another order); an altered row
# changes it unless other changes cancel it exactly (about 2^-64 for unrelated changes). The sum is exact
# (numeric), so it never wraps. What it cannot see: rows whose texts are swapped between rows (the same multiset
# of rows). Row text depends on session settings (time zone, date and float formats): both sides render it with
# the same ones (CONTENT_SETTINGS). The manifest names the algorithm (`content_algorithm`); the drill uses that one.
#
# - md5-64-sum: the first 64 bits of md5(row text), as a signed bigint. What every manifest before
#   `content_algorithm` holds (format /1 without the field). Portable (md5 is defined on bytes), but its hex
#   string and bit casts cost about 4x a count(*) (4.6 s against 0.44 s on a 1 GB pgbench table).
# - hashtextextended-sum: hashtextextended(row text, 0), PostgreSQL's own 64-bit hash of text: Bob Jenkins'
#   lookup3 (hash_bytes_extended, src/common/hashfn.c) over the text's bytes. The sum of bigints runs in a
#   128-bit accumulator and in parallel: 1.7 s on the same table. It exists from PostgreSQL 11 on and has
#   not changed since: hash-partitioned tables are routed by these values, and pg_upgrade keeps their rows
#   where they are. COLLATE "C" makes it hash the bytes on every version (a nondeterministic collation
#   would hash a sort key). What changes with it:
#   * lookup3 reads the bytes as 32-bit words in the machine's byte order, so a big-endian server (s390x)
#     gives other values than a little-endian one (x86-64, arm64). A backup and a drill on different byte
#     orders would call every table altered. So the name means the values of a little-endian server: the
#     backup job uses it only when the source's hashtextextended gives the little-endian value of a fixed
#     probe (HASH_PROBE), else md5-64-sum; and the drill refuses to compare (could not verify, never a
#     failure) when the restored copy's server gives another value.
#   * Neither algorithm resists a deliberate forger: lookup3 is not cryptographic, and a sum of 64-bit md5
#     prefixes can be cancelled by chosen rows as well. The goal is accidental loss or alteration; the dump
#     and the manifest themselves are guarded by the SHA-256s the backup job records.
# Both render the same row text, so both see the same changes (and miss the same swaps).
CONTENT_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "lc_monetary": "C",
}
CONTENT_HASH_DEFAULT_MAX_BYTES = 1024**3  # tables larger than this are only counted: hashing reads every row
MD5_64_SUM = "md5-64-sum"
HASHTEXTEXTENDED_SUM = "hashtextextended-sum"
CONTENT_HASH_SQL: dict[str, str] = {
    MD5_64_SUM: (
        "SELECT coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text FROM ONLY {} t"
    ),
    HASHTEXTEXTENDED_SUM: 'SELECT coalesce(sum(hashtextextended(t::text COLLATE "C", 0)), 0)::text FROM ONLY {} t',
}
HASHTEXTEXTENDED_SINCE = 11  # the first PostgreSQL major that has hashtextextended
# A string of 35 bytes (whole 12-byte words and a tail) and its hashtextextended on a little-endian server.
HASH_PROBE = "restoredrill hashtextextended probe"
HASH_PROBE_LITTLE_ENDIAN = -4476968364868829086
HASH_PROBE_SQL = 'SELECT hashtextextended(%s COLLATE "C", 0)'
_TABLE_SIZES = f"""
    SELECT n.nspname, c.relname, pg_table_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND {_USER_NAMESPACE} AND {_ext("pg_class", "c.oid")}
    ORDER BY 1, 2
"""


def use_content_settings(conn: psycopg.Connection[Any]) -> None:
    """Render row text the same way at backup and at drill time (local to the transaction, if one is open)."""
    for name, value in CONTENT_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, %s)", (name, value, not conn.autocommit))


def hash_probe(conn: psycopg.Connection[Any]) -> int:
    """This server's hashtextextended of HASH_PROBE (HASH_PROBE_LITTLE_ENDIAN on a little-endian server)."""
    row = conn.execute(HASH_PROBE_SQL, (HASH_PROBE,)).fetchone()
    assert row is not None
    return int(row[0])


def content_algorithm_for(conn: psycopg.Connection[Any], server_major: int) -> str:
    """The algorithm the backup job uses on this source: hashtextextended-sum where it gives the little-endian
    values the name stands for, md5-64-sum on a server before PostgreSQL 11 or of another byte order."""
    if server_major < HASHTEXTEXTENDED_SINCE:
        return MD5_64_SUM
    return HASHTEXTEXTENDED_SUM if hash_probe(conn) == HASH_PROBE_LITTLE_ENDIAN else MD5_64_SUM


def content_hash(conn: psycopg.Connection[Any], table: str, algorithm: str) -> str:
    schema, _, name = table.partition(".")
    query = sql.SQL(CONTENT_HASH_SQL[algorithm]).format(  # type: ignore[arg-type]
        sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    )
    row = conn.execute(query).fetchone()
    return str(row[0]) if row else "0"


def content_hashes(conn: psycopg.Connection[Any], max_bytes: int, algorithm: str) -> dict[str, str]:
    """The content hash of every user table of at most `max_bytes` (qualified name -> decimal sum)."""
    use_content_settings(conn)
    found = {}
    for schema, table, size in conn.execute(_TABLE_SIZES).fetchall():  # type: ignore[arg-type]
        if int(size) <= max_bytes:
            name = qualified(str(schema), str(table))
            found[name] = content_hash(conn, name, algorithm)
    return found


def content_hash_sql_shown(algorithm: str) -> str:
    """The query `algorithm` runs on each table, for the evidence."""
    return CONTENT_HASH_SQL[algorithm].replace("{}", "<each table>")


@dataclass
class Manifest:
    database: str
    taken_at: str
    server_version: str
    row_counts: dict[str, int]
    structure: dict[str, list[str]]
    pg_dump_version: str = ""
    dump: dict[str, Any] = field(default_factory=dict)
    matviews_populated: list[str] | None = None  # None: a manifest written before this was recorded
    content: dict[str, str] = field(default_factory=dict)  # table -> content hash (tables under the size limit)
    content_max_bytes: int | None = None  # None: content hashes were not taken
    content_algorithm: str = MD5_64_SUM  # how `content` was computed (a /1 manifest: md5-64-sum)

    @property
    def structure_sha256(self) -> str:
        return fingerprint(self.structure)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_MD5_ONLY if self.content_algorithm == MD5_64_SUM else FORMAT,
                "database": self.database,
                "taken_at": self.taken_at,
                "server_version": self.server_version,
                "pg_dump_version": self.pg_dump_version,
                "dump": self.dump,
                "matviews_populated": self.matviews_populated,
                "content": self.content,
                "content_max_bytes": self.content_max_bytes,
                "content_algorithm": self.content_algorithm,
                "row_counts": self.row_counts,
                "structure_sha256": self.structure_sha256,
                "structure": self.structure,
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") not in (FORMAT, FORMAT_MD5_ONLY):
            raise ValueError(f"unknown manifest format {data.get('format')!r}")
        # /1 manifests were written before the field, all with md5-64-sum; a /2 one must name its algorithm.
        if data["format"] == FORMAT_MD5_ONLY:
            algorithm = str(data.get("content_algorithm") or MD5_64_SUM)
        else:
            algorithm = str(data["content_algorithm"])
        return cls(
            database=data["database"],
            taken_at=data["taken_at"],
            server_version=data["server_version"],
            pg_dump_version=data.get("pg_dump_version", ""),
            dump=data.get("dump", {}),
            matviews_populated=data.get("matviews_populated"),
            content={k: str(v) for k, v in (data.get("content") or {}).items()},
            content_max_bytes=data.get("content_max_bytes"),
            content_algorithm=algorithm,
            row_counts={k: int(v) for k, v in data["row_counts"].items()},
            structure={k: list(v) for k, v in data["structure"].items()},
        )


_SINGULAR = {
    "columns": "column",
    "indexes": "index",
    "constraints": "constraint",
    "sequences": "sequence",
    "extensions": "extension",
    "views": "view",
    "functions": "function",
    "triggers": "trigger",
    "policies": "policy",
    "types": "type",
}


def compare_structure(expected: dict[str, list[str]], actual: dict[str, list[str]]) -> list[str]:
    """Sentences naming each object missing from, or unexpected in, the restored database."""
    problems = []
    for category in sorted(set(expected) | set(actual)):
        want, have = set(expected.get(category, [])), set(actual.get(category, []))
        kind = _SINGULAR.get(category, category)
        problems += [f"missing {kind}: {x}" for x in sorted(want - have)]
        problems += [f"unexpected {kind}: {x}" for x in sorted(have - want)]
    return problems
