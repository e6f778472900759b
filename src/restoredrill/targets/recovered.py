"""A cluster restored by pgBackRest into a new data directory, started privately and recovered.

Unlike a fresh initdb instance, its roles, pg_hba.conf and settings come from production. So it gets
our own pg_hba.conf (trust on a private 0700 unix socket only; every TCP connection is rejected), a free
loopback port, archive_mode off, and memory settings that fit a CI runner. Ready means: the postmaster
(our own child, never pg_ctl's daemon) is alive, recovery finished (pg_is_in_recovery() is false), and
the log says how recovery ended; a server that failed recovery can look ready for a moment before it dies.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from restoredrill import proc
from restoredrill.errors import BackupDefect, CouldNotVerify
from restoredrill.layers.replay import format_lsn, last_restored_segment, redo_done_lsn, stop_cause
from restoredrill.targets.connection import Connection
from restoredrill.targets.container import ContainerInstance, chown_tree
from restoredrill.targets.local import (
    MARKER,
    PREFIX,
    ServerFolder,
    free_port,
    mark_server_in_container,
    postmaster_ready,
    remove_marked_folder,
    stop_server,
    workdir_base,
)
from restoredrill.waiting import wait_until

OVERRIDES = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_permissions": "0700",
    "archive_mode": "off",
    "archive_command": "''",
    "hot_standby": "on",
    "ssl": "off",
    "external_pid_file": "''",
    "logging_collector": "off",
    "log_destination": "'stderr'",
    "log_min_messages": "'warning'",
    "fsync": "off",
    "synchronous_commit": "off",
    "shared_buffers": "'256MB'",
    "primary_conninfo": "''",
    "autovacuum": "off",
}
# Hot standby needs max_connections, max_wal_senders, max_worker_processes... at least the primary's: those
# are never lowered here.
HBA = "# restoredrill: only the drill, through its private socket\nlocal all all trust\n"
_INFRA = re.compile(
    r"(shared memory|could not bind|Permission denied|could not create lock file|"
    r"configuration file|out of memory|could not map anonymous|insufficient parameter settings|"
    r"incompatible with server)",
    re.I,
)


@dataclass(frozen=True)
class RecoveryOutcome:
    """What the server log says about how recovery ended."""

    stopped: str | None  # "recovery stopping before commit of transaction 123, time ..."
    completed: bool  # "archive recovery complete"
    consistent: bool
    last_replayed_at: datetime | None
    lines: list[str]


def replay_stop_sentence(lines: list[str]) -> str:
    """Where replay ended and the server's reason, from its log (empty when the log says neither)."""
    redo, cause, last = redo_done_lsn(lines), stop_cause(lines), last_restored_segment(lines)
    where = f"; replay ended at LSN {format_lsn(redo)} (server log: redo done at {format_lsn(redo)})" if redo else ""
    after = f", after segment {last}, the last one restored from the archive" if last else ""
    return where + after + (f"; the server said: {cause}" if cause else "")


class RecoveredInstance(ServerFolder):
    def __init__(
        self,
        bindir: Path,
        *,
        run_id: str,
        base: Path | None,
        run_as: proc.RunAs | None,
        superuser: str,
        timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        self.bindir = bindir
        self.env = env or {}  # e.g. the cipher passphrase: the server's restore_command needs it too
        self.run_id = run_id
        self.base = workdir_base(base)
        self.user = run_as
        self.superuser = superuser
        self.timeout = timeout
        self.root: Path | None = None
        self.connection: Connection | None = None
        self.recovery_s: float | None = None
        self.server: proc.Server | None = None
        self.image_info: dict[str, str] = {}  # the container variant's image, once it ran

    def __enter__(self) -> RecoveredInstance:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.destroy()

    def prepare(self) -> Path:
        """An empty data directory owned by the server's user, for `pgbackrest restore --pg1-path`."""
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX + "pitr-", dir=self.base))
        (self.root / MARKER).write_text(json.dumps({"run_id": self.run_id, "owner_pid": os.getpid()}))
        (self.root / "socket").mkdir(mode=0o700)
        self.data.mkdir(mode=0o700)
        if self.user:
            for path in (self.root, self.root / "socket", self.data):
                self.user.own(path)
        return self.data

    def _write_settings(self, port: int) -> None:
        assert self.root is not None
        hba = self.root / "pg_hba.restoredrill.conf"
        hba.write_text(HBA)
        if self.user:
            self.user.own(hba)
        conf = self.data / "postgresql.conf"
        if not conf.exists():  # Debian keeps it in /etc: not part of the backup
            conf.write_text("")
            if self.user:
                self.user.own(conf)
        settings = {
            **OVERRIDES,
            "port": str(port),
            "unix_socket_directories": f"'{self.root / 'socket'}'",
            "hba_file": f"'{hba}'",
            "ident_file": f"'{hba}'",
            **self.extra_settings(),
        }
        with (self.data / "postgresql.auto.conf").open("a") as auto:
            auto.write("\n# restoredrill: a private throwaway copy\n")
            auto.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start_and_recover(self) -> RecoveryOutcome:
        assert self.root is not None
        started = time.monotonic()
        port = free_port()
        self._write_settings(port)
        self.connection = Connection(str(self.root / "socket"), port, self.superuser, "")
        self._launch()
        connection = self.connection
        last_error = ""

        def promoted() -> tuple[Any, ...] | None:
            """The last replayed commit's time (a row), once the server is out of recovery."""
            nonlocal last_error
            if not self._alive():
                raise self._startup_failure("the server exited during recovery")
            if not self._accepting():
                return None
            try:
                with connection.connect("postgres") as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and row[0] is False:
                        return conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone() or (None,)
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            return None

        replayed = wait_until(
            promoted,
            timeout=self.timeout,
            interval=0.1,  # the container variant connects to ask: more often only fills its log with our FATALs
            timed_out=lambda: f"recovery did not finish within {self.timeout:.0f} s ({self.log_tail(1) or last_error})",
        )
        self.recovery_s = time.monotonic() - started
        if not self._alive():
            raise self._startup_failure("the server exited right after recovery")
        return self._outcome(replayed[0])

    def extra_settings(self) -> dict[str, str]:
        return {}

    def _launch(self) -> None:
        # The postmaster is our own child, not pg_ctl's daemon, so that it dies with the run (proc.spawn).
        # Whether it comes up, fails recovery or dies right after is what start_and_recover polls.
        self.server = proc.spawn(
            [str(self.bindir / "postgres"), "-D", str(self.data)], log=self.log, run_as=self.user, env=self.env
        )

    def _alive(self) -> bool:
        return self.server is not None and self.server.alive()

    def _accepting(self) -> bool:
        return postmaster_ready(self.data)

    def _startup_failure(self, fallback: str) -> Exception:
        fatal = [ln for ln in self.log_lines() if "FATAL:" in ln or "PANIC:" in ln]
        line = fatal[0].split("FATAL:", 1)[-1].split("PANIC:", 1)[-1].strip() if fatal else fallback
        message = f"the restored server did not come up: {line}"
        if "recovery ended before" in line:
            message += replay_stop_sentence(self.log_lines())
        return CouldNotVerify(message) if _INFRA.search(line) else BackupDefect(message)

    def log_lines(self) -> list[str]:
        if self.root is None or not self.log.exists():
            return []
        return proc.redact(self.log.read_text(errors="replace")).splitlines()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def _outcome(self, replayed: datetime | None) -> RecoveryOutcome:
        lines = self.log_lines()
        stopped = next((ln.split("LOG:", 1)[-1].strip() for ln in lines if "recovery stopping" in ln), None)
        return RecoveryOutcome(
            stopped=stopped,
            completed=any("archive recovery complete" in ln for ln in lines),
            consistent=any("consistent recovery state reached" in ln for ln in lines),
            last_replayed_at=replayed,
            lines=[ln for ln in lines if "LOG:" in ln or "FATAL:" in ln][-20:],
        )

    def setting(self, name: str) -> str:
        assert self.connection is not None
        with self.connection.connect("postgres") as conn:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        return str(row[0]) if row else ""

    def destroy(self) -> None:
        if self.root is None:
            return
        self._stop()
        remove_marked_folder(self.root)
        self.root = None

    def _stop(self) -> None:
        if self.server is not None:
            self.server.stop()  # our child: no pid file to trust, and reaped
            self.server = None
        else:
            stop_server(self.bindir, self.data, self.user)


class ContainerRecoveredInstance(RecoveredInstance):
    """The same restored folder, recovered inside a container of the backup's major.

    The folder is mounted at the same path inside the container, so every path written into
    postgresql.auto.conf (hba file, socket folder) is true on both sides, and the drill connects through
    the shared unix socket: the copy opens no TCP port at all. pgBackRest is not in the image, so the WAL
    the recovery needs is fetched on the host beforehand (`prefetch`) and restore_command copies it.
    """

    def __init__(
        self,
        bindir: Path,
        *,
        image: str,
        container_uid: int,
        start_timeout: float,
        prefetch: Callable[[Path], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(bindir, **kwargs)
        self.image = image
        self.container_uid = container_uid
        self.start_timeout = start_timeout
        self.prefetch = prefetch
        self.container: ContainerInstance | None = None

    def extra_settings(self) -> dict[str, str]:
        assert self.root is not None
        return {"restore_command": f"'cp {self.root / 'wal'}/%f \"%p\"'", "listen_addresses": "''"}

    def _launch(self) -> None:
        assert self.root is not None
        (self.root / "wal").mkdir(exist_ok=True)
        if self.user:
            self.user.own(self.root / "wal")
        self.prefetch(self.root / "wal")
        mark_server_in_container(self.root)  # before the server runs: see local.janitor
        chown_tree(self.root, self.container_uid, self.container_uid)
        self.container = ContainerInstance(
            self.image,
            run_id=self.run_id,
            start_timeout=self.start_timeout,
            command=["postgres"],
            settings={},
            volumes={str(self.root): str(self.root)},
            env={"PGDATA": str(self.data)},
            user=f"{self.container_uid}:{self.container_uid}",
        )
        self.container.start(ready=lambda: None)  # readiness is recovery, polled by start_and_recover
        self.image_info = dict(self.container.image_info)

    def _alive(self) -> bool:
        return self.container is not None and self.container.status() in {"running", "created", "restarting"}

    def _accepting(self) -> bool:
        return True  # the folder belongs to the container's user: ask by connecting

    def log_lines(self) -> list[str]:
        if self.container is None:
            return []
        return self.container.logs_tail(400).split(" | ")

    def _stop(self) -> None:
        if self.container is not None:
            self.container.destroy()
            self.container = None
