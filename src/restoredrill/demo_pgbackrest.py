"""The pgBackRest half of the demo: a source that archives WAL into a posix repository, full/diff/incr
sets, a heartbeat marker and a ledger written while it runs (the strategy's settings: lz4, retention).

The heartbeat table is the recovery marker restoredrill reads after a restore to prove how far WAL was
replayed; the README shows how to add the same table to production.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

from restoredrill import pgtools, proc
from restoredrill.errors import CouldNotVerify
from restoredrill.evidence import new_run_id
from restoredrill.targets.local import LocalInstance
from restoredrill.waiting import wait_until

STANZA = "demo"
MARKER_SQL = """
CREATE TABLE IF NOT EXISTS public.restoredrill_heartbeat (beat_at timestamptz PRIMARY KEY DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS public.ledger (
    id bigserial PRIMARY KEY, amount numeric(12, 2) NOT NULL, booked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""


@dataclass
class PgBackRestDemo:
    folder: Path
    config: Path
    stanza: str
    ledger_commits: dict[int, datetime] = field(default_factory=dict)


def write_pgbackrest_config(folder: Path, data: Path, port: int, socket: Path, extra: str = "") -> Path:
    config = folder / "pgbackrest.conf"
    config.write_text(
        "[global]\n"
        f"repo1-path={folder / 'repo'}\nrepo1-retention-full=2\nrepo1-retention-diff=2\n"
        "compress-type=lz4\nstart-fast=y\narchive-async=n\n"
        f"lock-path={folder / 'lock'}\nlog-path={folder / 'log'}\nspool-path={folder / 'spool'}\n"
        "log-level-console=warn\nlog-level-file=off\n"
        f"{extra}\n"
        f"[{STANZA}]\npg1-path={data}\npg1-port={port}\npg1-socket-path={socket}\n"
    )
    config.chmod(0o640)
    return config


class _Writer(threading.Thread):
    """Heartbeat every `interval`, a ledger row every few hundred ms: WAL keeps flowing."""

    def __init__(self, conninfo: str, password: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.conninfo, self.password, self.interval = conninfo, password, interval
        self.stop = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, password=self.password, autocommit=True) as conn:
                next_beat = 0.0
                while not self.stop.is_set():
                    if time.monotonic() >= next_beat:
                        conn.execute("INSERT INTO restoredrill_heartbeat DEFAULT VALUES")
                        next_beat = time.monotonic() + self.interval
                    conn.execute("INSERT INTO ledger (amount) VALUES (round((random() * 100)::numeric, 2))")
                    self.stop.wait(0.25)
        except Exception as exc:  # surfaced by the builder, never swallowed
            self.error = exc


def _exists(source: LocalInstance, database: str) -> bool:
    assert source.connection is not None
    with source.connection.connect("postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def make_pgbackrest_repo(
    folder: Path,
    *,
    log: Callable[[str], None] = print,
    config_extra: str = "",
    env: dict[str, str] | None = None,
    pace: float = 1.5,
    tail: float | None = None,
    keep: Callable[[LocalInstance, PgBackRestDemo], None] | None = None,
    database: str = "postgres",
    prepare: Callable[[LocalInstance], None] | None = None,
) -> PgBackRestDemo:
    """Build a repository with full, diff and incr sets and WAL up to the end; the source is then removed.

    `pace` seconds of writes follow each backup, `tail` (default: pace) after the last one.
    `keep`, if given, is called with the still-running source at the end (tests read expectations there).
    """
    shutil.rmtree(folder, ignore_errors=True)
    user = proc.RunAs.for_server()
    for sub in ("repo", "lock", "log", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for path in [folder, *folder.iterdir()]:
        if user:
            user.own(path)
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    config = folder / "pgbackrest.conf"
    settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_timeout": "'1s'",
        "track_commit_timestamp": "on",
        "archive_command": f"'pgbackrest --config={config} --stanza={STANZA} archive-push %p'",
        "max_wal_senders": "2",
        "fsync": "on",
    }
    demo = PgBackRestDemo(folder, config, STANZA)
    with LocalInstance(
        bindir, run_id=new_run_id(), settings=settings, auth_local="peer", label="demo-pgbackrest-source"
    ) as source:
        assert source.connection is not None
        assert source.root is not None
        write_pgbackrest_config(folder, source.data, source.connection.port, source.root / "socket", config_extra)
        if user:
            user.own(config)

        def pgbackrest(*args: str) -> None:
            result = proc.run(
                ["pgbackrest", f"--config={config}", f"--stanza={STANZA}", *args],
                timeout=300,
                run_as=user,
                env=env,
                what=f"pgbackrest {args[-1]}",
            )
            if result.returncode != 0:
                raise CouldNotVerify(f"demo: pgbackrest {' '.join(args)} failed: {result.tail(2)}")

        pgbackrest("stanza-create")
        if prepare is not None:
            prepare(source)
        if database != "postgres" and not _exists(source, database):
            source.create_database(database)
        with source.connection.connect(database) as conn:
            conn.execute(MARKER_SQL)
        writer = _Writer(source.connection.conninfo(database), source.connection.password, interval=1.0)
        writer.start()
        try:
            for kind in ("full", "diff", "incr"):
                pgbackrest("--type=" + kind, "backup")
                log(f"demo: pgBackRest {kind} backup of stanza {STANZA}")
                time.sleep(pace if kind != "incr" or tail is None else tail)
        finally:
            writer.stop.set()
            writer.join()
        if writer.error is not None:
            raise CouldNotVerify(f"demo: the heartbeat writer failed: {writer.error}")
        with source.connection.connect(database) as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()

            def archived() -> bool:
                row = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                return bool(row and segment and row[0] and row[0] >= segment[0])

            # Not archived in time is not the demo's to report: the drill finds the missing WAL itself.
            with contextlib.suppress(CouldNotVerify):
                wait_until(archived, timeout=30, interval=0.1, timed_out=lambda: "the last WAL was not archived")
            demo.ledger_commits = {
                int(i): at for i, at in conn.execute("SELECT id, pg_xact_commit_timestamp(xmin) FROM ledger")
            }
        if keep is not None:
            keep(source, demo)
    os.sync()
    return demo
