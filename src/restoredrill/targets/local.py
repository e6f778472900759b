"""A throwaway PostgreSQL: initdb in a private folder, loopback and a private socket only, a random
scram password, always stopped and removed (also on failure, Ctrl-C, and by the janitor after a crash).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg

from restoredrill import proc
from restoredrill.errors import ConfigError, CouldNotVerify
from restoredrill.folders import writable_folder
from restoredrill.targets import initdb_cache
from restoredrill.targets.connection import Connection
from restoredrill.waiting import wait_until

MARKER = "restoredrill-target.json"
PREFIX = "restoredrill-"
SUPERUSER = "postgres"
# sun_path holds 108 bytes with its NUL. The deepest socket a drill makes below its workdir is a recovered
# instance's (targets/recovered.py); a longer path makes the server fail to start, which is not a backup fault.
UNIX_SOCKET_PATH_MAX = 107
_DEEPEST_SOCKET = f"/{PREFIX}pitr-XXXXXXXX/socket/.s.PGSQL.65535"

# A throwaway copy is rebuilt from the backup if it crashes, so durability is pointless; these make
# pg_restore and index builds several times faster than a production-like configuration.
RESTORE_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_permissions": "0700",
    "password_encryption": "'scram-sha-256'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "archive_mode": "off",
    "max_wal_size": "'8GB'",
    "checkpoint_timeout": "'30min'",
    "shared_buffers": "'256MB'",
    "maintenance_work_mem": "'512MB'",
    "work_mem": "'64MB'",
    "autovacuum": "off",
    "log_min_messages": "'warning'",
    "logging_collector": "off",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workdir_base(configured: Path | None = None) -> Path:
    """The folder throwaway instances live in; a ConfigError (usage) when it cannot hold them."""
    base = configured or Path(os.environ.get("RESTOREDRILL_WORKDIR") or tempfile.gettempdir())
    writable_folder(base, "the workdir")
    length = len(os.fsencode(os.path.abspath(base)))
    room = UNIX_SOCKET_PATH_MAX - len(_DEEPEST_SOCKET)
    if length > room:
        raise ConfigError(
            f"the workdir {base} is {length} bytes long: PostgreSQL's socket inside it would be "
            f"{length + len(_DEEPEST_SOCKET)} bytes, over the {UNIX_SOCKET_PATH_MAX}-byte limit of a unix socket "
            f"path; pick a workdir of at most {room} bytes (target.workdir or RESTOREDRILL_WORKDIR)"
        )
    return base


class ServerFolder:
    """A throwaway server's private folder (`root`): its data directory and its log live inside."""

    root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"


class LocalInstance(ServerFolder):
    """Context manager: a running throwaway server; `with` guarantees it is stopped and deleted."""

    def __init__(
        self,
        bindir: Path,
        *,
        run_id: str,
        base: Path | None = None,
        run_as: str | None = None,
        start_timeout: float = 60,
        settings: dict[str, str] | None = None,
        label: str = "target",
        auth_local: str = "scram-sha-256",
    ) -> None:
        self.bindir = bindir
        self.run_id = run_id
        self.base = workdir_base(base)
        self.user = proc.RunAs.for_server(run_as)
        self.start_timeout = start_timeout
        self.settings = {**RESTORE_SETTINGS, **(settings or {})}
        self.label = label
        self.auth_local = auth_local
        self.root: Path | None = None
        self.connection: Connection | None = None
        self.startup_s: float | None = None
        self.initialize_s: float | None = None
        self._password: str | None = None
        self.server: proc.Server | None = None
        self.created_databases: set[str] = set()  # made before the server started (initialize)

    def __enter__(self) -> LocalInstance:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.destroy()

    def _tool(self, name: str) -> str:
        return proc.which(name, self.bindir)

    def start(self) -> None:
        if self.initialize_s is None:  # else initialize() ran ahead, e.g. while the drill fetched its backup
            self.initialize()
        started = time.monotonic()
        assert self.root is not None
        assert self._password is not None
        # The port is taken now, not at initdb: a port picked seconds before the server binds it may be gone.
        port = free_port()
        settings = {**self.settings, "port": str(port), "unix_socket_directories": f"'{self.root / 'socket'}'"}
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.connection = Connection("127.0.0.1", port, SUPERUSER, self._password)
        self._start_server()
        self.startup_s = (self.initialize_s or 0) + time.monotonic() - started

    def initialize(self, database: str | None = None) -> None:
        """The data directory (initdb) and its settings, the server not started yet. It may run in another
        thread; the server may not: proc.spawn ties it to the thread that starts it, which must outlive it.
        `database`: the empty database the drill will restore into, made now if that is cheap (a copy of the
        initdb template is prepared in a single-user backend anyway); else create_database makes it later."""
        started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.base))
        (self.root / MARKER).write_text(
            json.dumps({"run_id": self.run_id, "owner_pid": os.getpid(), "label": self.label, "created": time.time()})
        )
        password = secrets.token_urlsafe(24)
        proc.register_secret(password)
        socket_dir = self.root / "socket"
        socket_dir.mkdir()
        if self.user:
            # The server's user must reach its folders; the root stays closed to everyone else.
            os.chmod(self.root, 0o700)
            for path in (self.root, socket_dir):
                self.user.own(path)
            self._ensure_traversable(self.root.parent)
        initdb = self._tool("initdb")
        options = [
            "-U",
            SUPERUSER,
            "--auth-host=scram-sha-256",
            f"--auth-local={self.auth_local}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]
        owner = self.user.uid if self.user else os.geteuid()
        made = initdb_cache.find(initdb, options, owner)
        if not (
            made is not None
            and initdb_cache.copy_data(made, self.data)
            and initdb_cache.prepare_copy(self._tool("postgres"), self.data, SUPERUSER, password, database, self.user)
        ):
            if made is not None:
                initdb_cache.discard(made)  # a template that does not work is made again from this initdb
            shutil.rmtree(self.data, ignore_errors=True)
            self._initdb(initdb, options, password)
            initdb_cache.keep(initdb, options, owner, self.data)
        elif database is not None:
            self.created_databases.add(database)
        self._password = password
        self.initialize_s = time.monotonic() - started

    def _initdb(self, initdb: str, options: list[str], password: str) -> None:
        assert self.root is not None
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self.user:
            self.user.own(pwfile)
        result = proc.run(
            [initdb, "-D", self.data, *options, f"--pwfile={pwfile}"], timeout=120, run_as=self.user, what="initdb"
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise CouldNotVerify(f"initdb of the throwaway instance failed: {result.tail(3)}")

    @property
    def password(self) -> str:
        """The superuser's password, known once initialize() ran."""
        assert self._password is not None
        return self._password

    def _ensure_traversable(self, folder: Path) -> None:
        """The server runs as another user: every folder above its data directory must let it pass."""
        assert self.user is not None
        for ancestor in [folder, *folder.parents]:
            st = ancestor.stat()
            passable = (
                st.st_mode & 0o001
                or (st.st_uid == self.user.uid and st.st_mode & 0o100)
                or (st.st_gid == self.user.gid and st.st_mode & 0o010)
            )
            if not passable:
                raise CouldNotVerify(
                    f"the PostgreSQL user '{self.user.name}' cannot enter {ancestor}; "
                    "choose another target.workdir or RESTOREDRILL_WORKDIR"
                )

    def _start_server(self) -> None:
        # The postmaster is our own child (not pg_ctl's daemon) so that it dies with the run: see proc.spawn.
        self.server = proc.spawn([self._tool("postgres"), "-D", self.data], log=self.log, run_as=self.user)
        server, connection = self.server, self.connection
        assert connection is not None
        last = f"not ready within {self.start_timeout:.0f} s"

        def accepts() -> bool:
            nonlocal last
            if not server.alive():
                raise CouldNotVerify(f"the throwaway PostgreSQL did not start: {self.log_tail(3)}")
            if not postmaster_ready(self.data):
                return False
            try:
                with connection.connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError as exc:
                last = str(exc)
                return False

        wait_until(
            accepts,
            timeout=self.start_timeout,
            interval=0.05,
            timed_out=lambda: f"the throwaway PostgreSQL does not accept connections: {last}",
        )

    def log_tail(self, lines: int = 20) -> str:
        if self.root is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").strip().splitlines()
        return proc.redact("\n".join(text[-lines:]))

    def server_version(self) -> str:
        assert self.connection is not None
        return self.connection.server_version()

    def create_database(self, name: str) -> None:
        assert self.connection is not None
        if name not in self.created_databases:
            self.connection.create_database(name)

    def destroy(self) -> None:
        """Stop the server (immediate: it is thrown away) and delete every file; safe to call twice."""
        if self.root is None:
            return
        if self.server is not None:
            self.server.stop()  # our child: no pid file to trust, and reaped
        else:
            stop_server(self.bindir, self.data, self.user)
        remove_marked_folder(self.root)
        self.root = None
        self.server = None


def postmaster_ready(data: Path) -> bool:
    """What `pg_ctl start -w` waits for: the postmaster wrote "ready" or "standby" into postmaster.pid.

    Connecting earlier only fills the server log with our own "the database system is starting up"
    FATALs, which would hide the FATAL that says why a recovery failed.
    """
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() in {"ready", "standby"}


def mark_server_in_container(folder: Path) -> None:
    """Say in the folder's marker, before the server starts, that its postmaster runs in a container: the pid
    in its postmaster.pid is of the container's namespace (often 1), which the janitor must never signal."""
    marker = folder / MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "server_in_container": True}))


def remove_marked_folder(folder: Path) -> None:
    """Delete a throwaway folder, its marker LAST: a Ctrl-C in the middle (a data directory takes seconds
    to delete) leaves a folder the janitor still recognises, never gigabytes nobody can attribute."""
    marker = folder / MARKER
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.iterdir():
            if entry == marker:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    if any(entry != marker for entry in _entries(folder)):
        return  # something could not be deleted: keep the marker so the janitor retries
    marker.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def stop_server(bindir: Path, data: Path, user: proc.RunAs | None) -> None:
    if not (data / "postmaster.pid").exists():
        return
    pg_ctl = str(bindir / "pg_ctl")
    # Immediate: a throwaway copy needs no shutdown checkpoint (writing out shared buffers only wastes time).
    for mode in ("immediate",):
        with contextlib.suppress(CouldNotVerify):
            proc.run([pg_ctl, "stop", "-D", data, "-m", mode, "-w", "-t", "20"], timeout=30, run_as=user)
        if not (data / "postmaster.pid").exists():
            return
    _kill_postmaster(data)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl cannot stop it: SIGKILL the postmaster named in postmaster.pid."""
    import signal

    with contextlib.suppress(OSError, ValueError, IndexError):  # an empty pid file: interrupted at start
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        (data / "postmaster.pid").unlink()


def process_alive(pid: int) -> bool:
    """Whether a process exists and runs (a process of another user counts as alive).

    A zombie is dead: a killed drill whose parent died too (an xdist worker of a killed run) waits to be
    reaped by PID 1, which in a container may never do it; signal 0 still reaches a zombie.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): signal 0 is all we know
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def janitor(base: Path | None = None, bindir_hint: Path | None = None) -> list[Path]:
    """Remove throwaway instances whose owning drill process is gone (crash, kill -9)."""
    removed = []
    root = workdir_base(base)
    for marker in root.glob(f"{PREFIX}*/{MARKER}"):
        folder = marker.parent
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if process_alive(int(info.get("owner_pid", 0))):
            continue
        if info.get("server_in_container"):
            # Its postmaster.pid names a pid of the container's namespace (often 1): never signal it here.
            # The container janitor removes the container; only the folder is left to delete.
            remove_marked_folder(folder)
            removed.append(folder)
            continue
        data = folder / "data"
        bindir = bindir_hint
        version = data / "PG_VERSION"
        if version.exists():
            candidate = Path("/usr/lib/postgresql") / version.read_text().strip() / "bin"
            bindir = candidate if candidate.exists() else bindir
        if bindir is not None:
            stop_server(bindir, data, proc.RunAs.for_server())
        else:
            _kill_postmaster(data)
        remove_marked_folder(folder)
        removed.append(folder)
    return removed


def janitor_everywhere(configured: Path | None = None, base: Path | None = None) -> list[Path]:
    """The janitor over every folder a drill may have used: `base` (default RESTOREDRILL_WORKDIR or the
    temp folder) and the configuration's target.workdir, which no environment variable names."""
    folders = {workdir_base(base).resolve(): None}
    if configured is not None and configured.is_dir():
        folders[configured.resolve()] = None
    return [leftover for folder in folders for leftover in janitor(folder)]
