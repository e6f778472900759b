"""`make detection`: the logical detection corpus. Builds the schema zoo and its backups, breaks a copy of them
once per defect class, runs the real `restoredrill run` on each copy and prints whether the drill caught it.

The classes are data (`DefectClass`: name, layer, how to apply the defect, expected verdict and exit code, the
check expected to catch it, words the headline must hold), so other layers' classes append to the same table.
Healthy rows run the unbroken zoo: a false alarm fails the corpus as surely as a miss.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from restoredrill.backup import backup_logical
from restoredrill.layers.logical_keys import parse_key
from restoredrill.targets.local import LocalInstance
from restoredrill.verdicts import severity
from restoredrill.zoo import BIG_ROWS, DATABASE, Zoo, drop_database, make_zoo_backups, pg_dump_to, zoo_source


@dataclass
class Case:
    """One class's own copy of the zoo's backups, and the running zoo source (for classes that change data)."""

    zoo: Zoo
    source: LocalInstance
    dsn: str

    def dumps(self, name: str = DATABASE) -> list[Path]:
        found = [(parse_key("", str(p.relative_to(self.zoo.prefix))), p) for p in self.zoo.prefix.rglob("*.dump")]
        return [p for key, p in sorted((k, p) for k, p in found if k is not None and k.database == name)]

    @property
    def newest(self) -> Path:
        return self.dumps()[-1]

    def meta_path(self, dump: Path | None = None) -> Path:
        dump = dump or self.newest
        return dump.with_name(dump.name + ".meta.json")

    def manifest_path(self, dump: Path | None = None) -> Path:
        return (dump or self.newest).with_suffix(".manifest.json")

    def edit_bytes(self, change: Callable[[bytearray], bytes | bytearray]) -> None:
        data = bytearray(self.newest.read_bytes())
        self.newest.write_bytes(bytes(change(data)))

    def drop_records(self) -> None:
        """As if another tool made the dump: no metadata, no manifest."""
        self.meta_path().unlink(missing_ok=True)
        self.manifest_path().unlink(missing_ok=True)

    def remove(self, dump: Path) -> None:
        for path in (dump, self.meta_path(dump), self.manifest_path(dump)):
            path.unlink(missing_ok=True)

    def rerecord(self) -> None:
        """Records that agree with the (changed) dump, as the backup job would have written them for it: the
        dump's size and SHA-256 in metadata and manifest, the manifest's SHA-256 in the metadata."""
        data = self.newest.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        manifest = json.loads(self.manifest_path().read_text())
        manifest["dump"].update({"size_bytes": len(data), "sha256": digest})
        text = json.dumps(manifest, indent=1, sort_keys=True)
        self.manifest_path().write_text(text)
        meta = json.loads(self.meta_path().read_text())
        meta.update(
            {
                "sha256": digest,
                "size-bytes": str(len(data)),
                "manifest-sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        )
        self.meta_path().write_text(json.dumps(meta))

    def dump_changed_source(self, statements: str) -> None:
        """The newest dump replaced by a dump of the zoo with `statements` applied (same database name, records
        rewritten to match): the backup job's dump lost or changed what its manifest saw."""
        connection = self.source.connection
        assert connection is not None
        with connection.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE zoo_changed TEMPLATE {}").format(sql.Identifier(DATABASE)))
        with connection.connect("zoo_changed") as conn:
            conn.execute(statements)  # type: ignore[arg-type]
        try:
            self._rename(DATABASE, "zoo_pristine")
            self._rename("zoo_changed", DATABASE)
            try:
                pg_dump_to(self.source, DATABASE, self.newest)
            finally:
                self._rename(DATABASE, "zoo_changed")
                self._rename("zoo_pristine", DATABASE)
        finally:
            drop_database(self.source, "zoo_changed")
        self.rerecord()

    def _rename(self, old: str, new: str) -> None:
        assert self.source.connection is not None
        with self.source.connection.connect("postgres") as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))

    def another_database_under_the_key(self) -> None:
        """A misconfigured backup job: it dumps database `other` but files it under zoo's key (records agree)."""
        assert self.source.connection is not None
        with self.source.connection.connect("postgres") as conn:
            conn.execute("DROP DATABASE IF EXISTS other")
        self.source.create_database("other")
        with self.source.connection.connect("other") as conn:
            conn.execute("CREATE TABLE t AS SELECT i FROM generate_series(1, 100) i")
        newest = parse_key("", str(self.newest.relative_to(self.zoo.prefix)))
        assert newest is not None
        dsn = self.dsn.replace("dbname=zoo", "dbname=other")
        backup_logical(dsn, f"file://{self.zoo.prefix}/", name=DATABASE, sse=None, now=newest.taken_at, log=_quiet)


def _quiet(_message: str) -> None:
    pass


def _flip(offset: Callable[[int], int]) -> Callable[[Case], None]:
    def apply(case: Case) -> None:
        def change(data: bytearray) -> bytearray:
            data[offset(len(data))] ^= 0x01
            return data

        case.edit_bytes(change)

    return apply


def _changed(statements: str) -> Callable[[Case], None]:
    return lambda case: case.dump_changed_source(statements)


def _plain_sql(case: Case) -> None:
    case.drop_records()
    pg_dump_to(case.source, DATABASE, case.newest, ("-Fp",))


def _schema_only(case: Case) -> None:
    pg_dump_to(case.source, DATABASE, case.newest, ("-s",))


def _newer_server(case: Case) -> None:
    case.drop_records()
    case.edit_bytes(lambda data: data.replace(b"15.", b"99.", 1))


def _truncated_without_records(case: Case) -> None:
    case.drop_records()
    case.edit_bytes(lambda data: data[: int(len(data) * 0.7)])


def _edit_manifest(case: Case) -> None:
    manifest = json.loads(case.manifest_path().read_text())
    manifest["row_counts"]["public.events"] -= 100
    case.manifest_path().write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _edit_meta(case: Case) -> None:
    meta = json.loads(case.meta_path().read_text())
    meta["sha256"] = hashlib.sha256(b"not the dump").hexdigest()
    case.meta_path().write_text(json.dumps(meta))


@dataclass(frozen=True)
class DefectClass:
    name: str
    group: str
    apply: Callable[[Case], None] | None  # None: the healthy backups, untouched
    verdict: str = "failed"
    exit_code: int = 1
    check: str = "restore"  # the check whose failure must name it ("restore": found before or by the restore)
    reason: str = ""  # words the headline reason must contain
    layer: str = "logical"
    fast: bool = True  # in the CI subset
    databases: tuple[str, ...] = (DATABASE,)  # () = every database of the zoo


CLASSES: tuple[DefectClass, ...] = (
    DefectClass("healthy zoo, every dump variant", "healthy", None, "passed", 0, "", "", databases=()),
    DefectClass(
        "truncated",
        "archive damage",
        lambda c: c.edit_bytes(lambda d: d[: len(d) // 2]),
        reason="not the dump the backup job wrote",
    ),
    DefectClass(
        "padded",
        "archive damage",
        lambda c: c.edit_bytes(lambda d: d + bytes(4096)),
        reason="bytes longer: padded",
        fast=False,
    ),
    DefectClass(
        "one flipped byte in the header", "archive damage", _flip(lambda _n: 12), reason="checksum mismatch", fast=False
    ),
    DefectClass(
        "one flipped byte in the TOC", "archive damage", _flip(lambda _n: 3000), reason="checksum mismatch", fast=False
    ),
    DefectClass("one flipped byte in the data", "archive damage", _flip(lambda n: n // 2), reason="checksum mismatch"),
    DefectClass("empty", "archive damage", lambda c: c.edit_bytes(lambda _d: b""), reason="size 0 vs", fast=False),
    DefectClass(
        "TOC only (schema, no data)",
        "archive damage",
        _schema_only,
        reason="not the dump the backup job wrote",
        fast=False,
    ),
    DefectClass(
        "truncated, no records (another tool)",
        "archive damage",
        _truncated_without_records,
        reason="pg_restore exited 1",
    ),
    DefectClass("plain SQL under a .dump key", "wrong archive", _plain_sql, reason="cannot read the archive"),
    DefectClass(
        "another database under the key",
        "wrong archive",
        Case.another_database_under_the_key,
        reason="holds database 'other', not 'zoo'",
    ),
    DefectClass(
        "dump from a newer server",
        "wrong archive",
        _newer_server,
        "could_not_verify",
        3,
        check="",  # nothing failed: the drill cannot verify it here, and says so
        reason="comes from PostgreSQL 99",
    ),
    DefectClass(
        "stale",
        "timing",
        lambda c: [c.remove(d) for d in c.dumps()[-2:]],
        check="rpo_newest_age",
        reason="the backups are stale",
    ),
    DefectClass(
        "a missing day",
        "timing",
        lambda c: c.remove(c.dumps()[-2]),
        check="rpo_largest_gap",
        reason="dumps are missing",
        fast=False,
    ),
    DefectClass(
        "rows deleted after the manifest",
        "data and structure",
        _changed("DELETE FROM public.events WHERE id % 10 = 0"),
        check="manifest_row_counts",
        reason="public.events: manifest",
    ),
    DefectClass(
        "a table dropped",
        "data and structure",
        _changed("DROP TABLE public.employees"),
        check="manifest_row_counts",
        reason="public.employees: in the manifest",
        fast=False,
    ),
    DefectClass(
        "an index dropped",
        "data and structure",
        _changed("DROP INDEX public.big_bucket_idx"),
        check="manifest_structure",
        reason="missing index: CREATE INDEX big_bucket_idx",
    ),
    DefectClass(
        "an FK dropped",
        "data and structure",
        _changed("ALTER TABLE sales.invoices DROP CONSTRAINT invoices_customer_fk"),
        check="manifest_structure",
        reason="missing constraint: invoices_customer_fk",
        fast=False,
    ),
    DefectClass(
        "a CHECK constraint dropped",
        "data and structure",
        _changed("ALTER TABLE sales.invoices DROP CONSTRAINT invoices_total_sane"),
        check="manifest_structure",
        reason="missing constraint: invoices_total_sane",
        fast=False,
    ),
    DefectClass(
        "a sequence behind (OWNED BY)",
        "data and structure",
        _changed("SELECT setval('public.events_id_seq', 10)"),
        check="sequences",
        reason="public.events_id_seq (default nextval, owned by public.events.id)",
        fast=False,
    ),
    DefectClass(
        "a sequence behind (DEFAULT nextval only)",
        "data and structure",
        _changed("SELECT setval('sales.document_number_seq', 5001)"),
        check="sequences",
        reason="sales.document_number_seq (default nextval",
    ),
    DefectClass(
        "a matview left unpopulated",
        "data and structure",
        _changed("REFRESH MATERIALIZED VIEW sales.revenue_by_status WITH NO DATA"),
        check="matviews_populated",
        reason="not populated after restore: sales.revenue_by_status",
    ),
    DefectClass(
        "rows altered at the same count",
        "data and structure",
        _changed("UPDATE sales.products SET price = price + 1 WHERE id = 7"),
        check="manifest_content",
        reason="sales.products",
    ),
    DefectClass("the manifest edited", "records", _edit_manifest, reason="the manifest was changed after the backup"),
    DefectClass("the .meta.json edited", "records", _edit_meta, reason="the backup's records disagree"),
)


@dataclass
class Outcome:
    defect: DefectClass
    caught: bool
    by: str
    seconds: float
    verdict: str
    exit_code: int
    reason: str


def _caught_by(record: dict) -> str:
    """The check the headline comes from: the most significant failed one, else the first that could not run."""
    checks = record.get("checks", [])
    failed = sorted((c["name"] for c in checks if c["outcome"] == "failed"), key=severity)
    errors = [c["name"] for c in checks if c["outcome"] == "error"]
    return (failed or errors or ["-"])[0]


def run_class(defect: DefectClass, template: Zoo, source: LocalInstance, dsn: str, scratch: Path) -> Outcome:
    root = Path(tempfile.mkdtemp(prefix="rd-detect-", dir=scratch))
    root.chmod(0o711)
    try:
        store = root / "store"
        shutil.copytree(template.store, store)
        case = Case(Zoo(store, dict(template.databases)), source, dsn)
        if defect.apply is not None:
            defect.apply(case)
        workdir = root / "work"
        workdir.mkdir()
        workdir.chmod(0o711)
        config = root / "drills.toml"
        config.write_text(case.zoo.config(root / "reports", workdir, list(defect.databases) or None))
        started = time.monotonic()
        env = {"RESTOREDRILL_WORKDIR": str(workdir)}
        result = subprocess.run(
            # xdist workers cost seconds to start: only worth it when several databases are drilled
            [sys.executable, "-m", "restoredrill.cli", "run", "--config", str(config), "-q"]
            + (["-n", "2"] if len(defect.databases) != 1 else []),
            capture_output=True,
            text=True,
            timeout=1800,
            env={**_environ(), **env},
            check=False,
        )
        seconds = time.monotonic() - started
        records = [json.loads(p.read_text()) for p in (root / "reports" / "evidence").glob("*.json")]
        verdicts = {r["verdict"] for r in records}
        reasons = [r["reason"] or "" for r in records if r["verdict"] != "passed"]
        reason = reasons[0] if reasons else ""
        by = "-" if defect.apply is None else (_caught_by(records[0]) if records else "-")
        expected_n = len(defect.databases) or len(template.databases)
        ok = (
            result.returncode == defect.exit_code
            and len(records) == expected_n
            and verdicts == {defect.verdict}
            and defect.reason in reason
            and (not defect.check or by == defect.check)
        )
        return Outcome(defect, ok, by, seconds, ",".join(sorted(verdicts)) or "none", result.returncode, reason)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _environ() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("RESTOREDRILL_CONFIG", None)
    env.pop("RESTOREDRILL_RUN_ID", None)
    return env


def run_corpus(
    classes: tuple[DefectClass, ...] = CLASSES, *, big_rows: int = BIG_ROWS, log: Callable[[str], None] = print
) -> list[Outcome]:
    scratch = Path(tempfile.mkdtemp(prefix="rd-detection-", dir="/tmp"))
    scratch.chmod(0o711)
    outcomes = []
    try:
        with zoo_source(big_rows, log) as (source, dsn):
            template = make_zoo_backups(source, dsn, scratch / "zoo", log=log)
            for defect in classes:
                outcome = run_class(defect, template, source, dsn, scratch)
                log(f"{'caught' if outcome.caught else 'MISSED'}: {defect.name} ({outcome.seconds:.1f}s)")
                outcomes.append(outcome)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    """A markdown table: one row per class."""
    lines = [
        "| class | group | caught? | by check | seconds to verdict | headline reason |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        healthy = o.defect.apply is None
        caught = ("passed" if o.caught else "FALSE ALARM") if healthy else ("yes" if o.caught else "MISSED")
        reason = (o.reason or f"(verdict {o.verdict}, exit {o.exit_code})").replace("|", "/")
        if len(reason) > 140:
            reason = reason[:137] + "..."
        lines.append(f"| {o.defect.name} | {o.defect.group} | {caught} | {o.by} | {o.seconds:.1f} | {reason} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m restoredrill.detection", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="only the classes of the CI subset")
    parser.add_argument("--big-rows", type=int, default=BIG_ROWS, help="rows of the zoo's big table")
    parser.add_argument("--healthy-runs", type=int, default=1, help="how many times the healthy zoo runs")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    healthy = [c for c in CLASSES if c.apply is None] * max(1, args.healthy_runs)
    broken = [c for c in CLASSES if c.apply is not None and (c.fast or not args.fast)]
    outcomes = run_corpus((*healthy, *broken), big_rows=args.big_rows, log=lambda m: print(m, file=sys.stderr))
    text = table(outcomes)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    missed = [o for o in outcomes if not o.caught]
    print(f"\n{len(outcomes) - len(missed)} of {len(outcomes)} rows as expected", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
