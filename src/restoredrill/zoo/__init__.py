"""The schema zoo: a source database using what production schemas use, and its backups in every variant.

Every drill of the zoo must PASS (a false alarm is as serious as a miss); `make detection` breaks copies
of these backups to prove each defect class is caught. Built once and shared: the 1 M-row table is made
with generate_series, so a build costs seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import sql

from restoredrill import pgtools, proc
from restoredrill.backup import backup_logical
from restoredrill.evidence import new_run_id
from restoredrill.layers.logical_keys import dump_key
from restoredrill.targets.local import LocalInstance

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
DATABASE = "zoo"
BIG_ROWS = 1_000_000
DAYS = 3
# Dumps taken other ways than the backup job's default: (the <db> part of their keys, pg_dump arguments, made by
# the backup job?). Plain pg_dump runs stand for "another tool" and carry no manifest.
VARIANTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("zoo_no_owner_acl", ("--no-owner", "--no-acl"), True),
    ("zoo_z0", ("-Z", "0"), True),
    ("zoo_z9", ("-Z", "9"), True),
    # -n leaves extensions out unless -e names them: a schema subset must carry the extensions it uses.
    ("zoo_schema_sales", ("-n", "sales", "-e", "*"), False),
    ("zoo_schemas_two", ("-n", '"Reporting"', "-n", '"ünïcode schema"'), False),
)


def schema_sql(big_rows: int = BIG_ROWS) -> str:
    return SCHEMA_FILE.read_text().replace(":big_rows", str(int(big_rows)))


def load_zoo(instance: LocalInstance, database: str = DATABASE, big_rows: int = BIG_ROWS) -> str:
    """Create the zoo database in a running instance; returns a DSN (with password) for the backup job."""
    assert instance.connection is not None
    instance.create_database(database)
    with instance.connection.connect(database) as conn:
        conn.execute(schema_sql(big_rows))  # type: ignore[arg-type]
    return instance.connection.conninfo(database) + f" password={instance.connection.password}"


@dataclass
class Zoo:
    """The zoo's backups in a local store, and which <db> names of it a drill configuration lists."""

    store: Path
    databases: dict[str, bool] = field(default_factory=dict)  # <db> of the keys -> has a manifest

    @property
    def prefix(self) -> Path:
        return self.store / "postgres" / "logical"

    def config(
        self, reports: Path, workdir: Path, names: list[str] | None = None, extra: str = "", *, identity: bool = True
    ) -> str:
        """A drills.toml listing the zoo's databases (all, or `names`); `extra` goes under each database.
        Without `identity`, the archives must name the database of their keys (which only `zoo` does)."""
        lines = [
            f'reports_dir = "{reports}"',
            "[objectives.logical]",
            'rpo = "26h"',
            'rto = "30m"',
            "[target]",
            'kind = "local"',
            f'workdir = "{workdir}"',
        ]
        for name in names or list(self.databases):
            lines += [
                f"[databases.{name}.logical]",
                f'source = "file://{self.prefix}/"',
                f'source_database = "{DATABASE}"' if identity else "",
                f"require_manifest = {'true' if self.databases[name] else 'false'}",
                extra,
            ]
        return "\n".join(lines) + "\n"


def pg_dump_to(instance: LocalInstance, database: str, path: Path, args: tuple[str, ...] = ()) -> None:
    """A plain `pg_dump -Fc` of a database of `instance`, as another tool would take it."""
    connection = instance.connection
    assert connection is not None
    tool = pgtools.client_tool("pg_dump", instance.bindir)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = proc.run(
        [tool, "-Fc", *args, "-f", str(path), "-d", connection.conninfo(database)],
        timeout=600,
        env=connection.env(),
        what="pg_dump",
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {result.tail(3)}")


@contextmanager
def zoo_source(big_rows: int = BIG_ROWS, log: Callable[[str], None] = print) -> Iterator[tuple[LocalInstance, str]]:
    """A running source PostgreSQL holding the zoo database; yields it and the backup job's DSN."""
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    log(f"zoo: starting a source PostgreSQL ({bindir}), {big_rows} rows in public.big")
    with LocalInstance(bindir, run_id=new_run_id(), label="zoo-source") as source:
        yield source, load_zoo(source, big_rows=big_rows)


def make_zoo_backups(
    source: LocalInstance,
    dsn: str,
    store: Path,
    *,
    days: int = DAYS,
    now: datetime | None = None,
    log: Callable[[str], None] = print,
) -> Zoo:
    """Daily backup-job dumps of the zoo, and one newest dump of each variant, under `store`."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    store.mkdir(parents=True, exist_ok=True)
    destination = f"file://{store}/postgres/logical/"
    zoo = Zoo(store)
    assert source.connection is not None
    for days_ago in range(days - 1, -1, -1):
        taken_at = now - timedelta(days=days_ago)
        with source.connection.connect(DATABASE) as conn:  # a day of activity between the dumps
            conn.execute(
                "INSERT INTO public.events (kind, payload, at) SELECT 'day', jsonb_build_object('i', i), %s "
                "FROM generate_series(1, 10) i",
                (taken_at,),
            )
        result = backup_logical(dsn, destination, sse=None, now=taken_at, log=lambda _m: None)
        log(f"zoo: backup job wrote {result.key} ({result.size_bytes} bytes, {result.rows} rows)")
    zoo.databases[DATABASE] = True
    for name, args, by_job in VARIANTS:
        if by_job:
            result = backup_logical(
                dsn, destination, name=name, sse=None, now=now, pg_dump_args=args, log=lambda _m: None
            )
            log(f"zoo: backup job ({' '.join(args)}) wrote {result.key}")
        else:
            key = dump_key("", name, now)
            pg_dump_to(source, DATABASE, zoo.prefix / key, args)
            log(f"zoo: pg_dump {' '.join(args)} wrote {key}")
        zoo.databases[name] = by_job
    return zoo


def build_zoo(store: Path, *, big_rows: int = BIG_ROWS, log: Callable[[str], None] = print) -> Zoo:
    """Build the zoo's backups in `store` (emptied first); the source server is gone afterwards."""
    shutil.rmtree(store, ignore_errors=True)
    with zoo_source(big_rows, log) as (source, dsn):
        return make_zoo_backups(source, dsn, store, log=log)


def drop_database(instance: LocalInstance, name: str) -> None:
    assert instance.connection is not None
    with instance.connection.connect("postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
