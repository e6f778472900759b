"""PostgreSQL client and server binaries by major version, and what `pg_restore --list` says of a dump."""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from restoredrill import proc
from restoredrill.errors import BackupDefect, CouldNotVerify

DEBIAN_LAYOUT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def major_of(version: str) -> int:
    match = _VERSION.search(version)
    if not match:
        raise ValueError(f"no version in {version!r}")
    return int(match.group(1))


# A drill asks which binaries exist several times (the dump's TOC, the target, initdb ahead): each answer
# is a `postgres --version` per folder and Debian's pg_config wrapper (a shell script running ls and tail).
# Answers are kept for the process, keyed by what would change them (the binary's size and mtime).
_MAJORS: dict[tuple[str, int, int], int | None] = {}
_PG_CONFIG_BINDIR: dict[tuple[str, int, int], Path | None] = {}


def _identity(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns)


def _bindir_major(bindir: Path) -> int | None:
    postgres = bindir / "postgres"
    key = _identity(postgres)
    if key is None:
        return None
    if key not in _MAJORS:
        _MAJORS[key] = _read_major(postgres)
    return _MAJORS[key]


def _read_major(postgres: Path) -> int | None:
    try:
        out = proc.run([postgres, "--version"], timeout=15).stdout
    except CouldNotVerify:
        return None
    try:
        return major_of(out)
    except ValueError:
        return None


def _pg_config_bindir(pg_config: str) -> Path | None:
    key = _identity(Path(pg_config))
    if key is None:
        return None
    if key not in _PG_CONFIG_BINDIR:
        found = None
        with contextlib.suppress(CouldNotVerify):
            found = Path(proc.run([pg_config, "--bindir"], timeout=15).stdout.strip())
        _PG_CONFIG_BINDIR[key] = found
    return _PG_CONFIG_BINDIR[key]


def available_bindirs(configured: Path | None = None) -> dict[int, Path]:
    """Server binary folders by major: the configured one, pg_config's, and the Debian layout."""
    candidates: list[Path] = []
    if configured is not None:
        candidates.append(configured)
    else:
        pg_config = shutil.which("pg_config")
        bindir = _pg_config_bindir(pg_config) if pg_config else None
        if bindir is not None:
            candidates.append(bindir)
        if DEBIAN_LAYOUT.is_dir():
            candidates.extend(sorted(p / "bin" for p in DEBIAN_LAYOUT.iterdir()))
    found: dict[int, Path] = {}
    for bindir in candidates:
        major = _bindir_major(bindir)
        if major is not None:
            found.setdefault(major, bindir)
    return found


def bindir_for(major: int, configured: Path | None = None) -> Path:
    """The server binaries to restore a dump of `major`: the same major, else the nearest newer one.

    A dump from a newer server than any we have is refused: its archive may use features an older
    pg_restore cannot read, and restoring into an older server is not what production would do.
    """
    found = available_bindirs(configured)
    if not found:
        where = configured or "PATH, pg_config or /usr/lib/postgresql"
        raise CouldNotVerify(f"no PostgreSQL server binaries found in {where}")
    if major in found:
        return found[major]
    newer = sorted(m for m in found if m > major)
    if newer:
        return found[newer[0]]
    have = ", ".join(str(m) for m in sorted(found))
    raise CouldNotVerify(
        f"the dump comes from PostgreSQL {major}, newer than every server available here ({have}); "
        f"install PostgreSQL {major} server binaries or set target.pg_bindir"
    )


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    kind: str
    schema: str
    name: str


@dataclass
class DumpListing:
    """The header and table of contents of a custom-format archive."""

    server_version: str | None = None
    pg_dump_version: str | None = None
    archive_version: str | None = None
    database: str | None = None
    created_at: str | None = None
    entries: list[TocEntry] = field(default_factory=list)

    @property
    def server_major(self) -> int | None:
        return major_of(self.server_version) if self.server_version else None

    def tables(self) -> list[tuple[str, str]]:
        """Tables and foreign tables the archive creates (partitions included; TABLE ATTACH only attaches)."""
        return sorted({(e.schema, e.name) for e in self.entries if e.kind in ("TABLE", "FOREIGN TABLE")})

    def matviews(self) -> list[tuple[str, str]]:
        return sorted({(e.schema, e.name) for e in self.entries if e.kind == "MATERIALIZED VIEW"})


_HEADER = {
    "Dumped from database version": "server_version",
    "Dumped by pg_dump version": "pg_dump_version",
    "Dump Version": "archive_version",
    "dbname": "database",
}
# Every entry type pg_dump 10-17 writes into an archive's TOC (the `desc` of its ArchiveEntry calls). Several are
# several words long ("TABLE ATTACH", "SEQUENCE OWNED BY"): matched longest first, a line is never read as a
# shorter type whose name starts with the rest of the type (that misread "TABLE ATTACH" as a table "ATTACH").
KINDS: tuple[str, ...] = tuple(
    sorted(
        {
            "ACCESS METHOD",
            "ACL",
            "AGGREGATE",
            "BLOB",
            "BLOB METADATA",
            "BLOBS",
            "CAST",
            "CHECK CONSTRAINT",
            "COLLATION",
            "COMMENT",
            "CONSTRAINT",
            "CONVERSION",
            "DATABASE",
            "DATABASE PROPERTIES",
            "DEFAULT",
            "DEFAULT ACL",
            "DOMAIN",
            "DUMMY TYPE",
            "ENCODING",
            "EVENT TRIGGER",
            "EXTENSION",
            "FK CONSTRAINT",
            "FOREIGN DATA WRAPPER",
            "FOREIGN SERVER",
            "FOREIGN TABLE",
            "FUNCTION",
            "INDEX",
            "INDEX ATTACH",
            "LARGE OBJECT",
            "MATERIALIZED VIEW",
            "MATERIALIZED VIEW DATA",
            "OPERATOR",
            "OPERATOR CLASS",
            "OPERATOR FAMILY",
            "POLICY",
            "PROCEDURAL LANGUAGE",
            "PROCEDURE",
            "PUBLICATION",
            "PUBLICATION TABLE",
            "PUBLICATION TABLES IN SCHEMA",
            "ROW SECURITY",
            "RULE",
            "SCHEMA",
            "SEARCHPATH",
            "SECURITY LABEL",
            "SEQUENCE",
            "SEQUENCE OWNED BY",
            "SEQUENCE SET",
            "SERVER",
            "SHELL TYPE",
            "STATISTICS",
            "STDSTRINGS",
            "SUBSCRIPTION",
            "SUBSCRIPTION TABLE",
            "TABLE",
            "TABLE ATTACH",
            "TABLE DATA",
            "TEXT SEARCH CONFIGURATION",
            "TEXT SEARCH DICTIONARY",
            "TEXT SEARCH PARSER",
            "TEXT SEARCH TEMPLATE",
            "TRANSFORM",
            "TRIGGER",
            "TYPE",
            "USER MAPPING",
            "VIEW",
        },
        key=len,
        reverse=True,
    )
)
# `<dump id>; <catalog table oid> <object oid> <type> <schema or -> <name> <owner>`; names are printed unquoted
# (newlines as spaces); the owner is the last word, or empty (the line then ends in a space: extensions, BLOBS).
# An owner whose name holds a space would be read as part of the object's name: pg_restore quotes nothing.
_ENTRY = re.compile(r"^(?P<id>\d+);\s+\d+\s+\d+\s+(?P<rest>.+)$", re.DOTALL)


def _split_schema(rest: str, schemas: set[str]) -> tuple[str, str]:
    """Schema and the rest. A schema name may hold spaces: the longest schema the archive defines wins."""
    if rest.startswith("- "):
        return "-", rest[2:]
    known = sorted((s for s in schemas if rest.startswith(s + " ")), key=len, reverse=True)
    schema = known[0] if known else rest.split(" ", 1)[0]
    return schema, rest[len(schema) + 1 :]


def _strip_owner(text: str) -> str:
    """The name without its owner column: empty (a trailing space), else the last word."""
    if text.endswith(" "):
        return text[:-1]
    return text.rsplit(" ", 1)[0] if " " in text else text


def parse_listing(text: str) -> DumpListing:
    listing = DumpListing()
    lines: list[tuple[int, str, str]] = []
    for line in text.split("\n"):
        if line.startswith(";"):
            body = line.lstrip(";").strip()
            if body.startswith("Archive created at"):
                listing.created_at = body.removeprefix("Archive created at").strip()
            key, _, value = body.partition(":")
            attr = _HEADER.get(key.strip())
            if attr and value.strip():
                setattr(listing, attr, value.strip())
            continue
        match = _ENTRY.match(line)
        if not match:
            continue
        rest = match["rest"]
        kind = next((k for k in KINDS if rest.startswith(k + " ")), None)
        if kind is not None:
            lines.append((int(match["id"]), kind, rest[len(kind) + 1 :]))
    # Schemas first: their names tell where a later entry's schema ends and its name begins.
    schemas = {"public", "pg_catalog"} | {_strip_owner(r[2:]) for _i, k, r in lines if k == "SCHEMA"}
    for dump_id, kind, rest in lines:
        schema, tail = _split_schema(rest, schemas)
        listing.entries.append(TocEntry(dump_id, kind, schema, _strip_owner(tail)))
    return listing


def list_dump(pg_restore: str, dump: Path, timeout: float = 300) -> DumpListing:
    """`pg_restore --list`: proves the archive's header and TOC are readable before anything is restored."""
    result = proc.run([pg_restore, "--list", str(dump)], timeout=timeout)
    if result.returncode != 0:
        detail = result.tail(3)
        unsupported = re.search(r"unsupported version \(([\d.]+)\) in file header", detail)
        if unsupported:
            raise CouldNotVerify(
                f"the dump's archive format {unsupported.group(1)} comes from a newer pg_dump than this "
                f"pg_restore ({pg_restore}) can read; install the matching PostgreSQL client and server"
            )
        raise BackupDefect(f"pg_restore cannot read the archive's table of contents: {detail}")
    listing = parse_listing(result.stdout)
    if listing.server_version is None:
        raise BackupDefect("the archive header names no server version; it is not a pg_dump custom archive")
    return listing


def client_tool(tool: str, bindir: Path | None) -> str:
    """A client tool from the server's bindir when it has one (same major), else from PATH."""
    if bindir is not None and (bindir / tool).exists():
        return str(bindir / tool)
    return proc.which(tool)
