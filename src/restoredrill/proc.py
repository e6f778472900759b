"""The one subprocess runner: timeout, captured output, redaction, optional privilege drop.

Every external tool (initdb, pg_ctl, pg_dump, pg_restore, pg_amcheck, ...) goes through `run`, and every
server a drill starts goes through `spawn`, so that timeouts, missing binaries, secrets, and dying with
the owner are handled in one place.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from restoredrill.errors import CouldNotVerify
from restoredrill.redaction import (  # noqa: F401 - the one place every caller knows them by: proc.redact
    MASK,
    URL_USERINFO,
    redact,
    register_environment_secrets,
    register_secret,
)


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    def tail(self, lines: int = 20) -> str:
        """The last lines of stderr (or stdout), redacted: what a failure message shows."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class RunAs:
    """An unprivileged OS user for the PostgreSQL server, which refuses to run as root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_server(cls, name: str | None = None) -> RunAs | None:
        """None when we are not root (run as ourselves); else the user named, `postgres` by default."""
        if os.geteuid() != 0:
            return None
        name = name or os.environ.get("RESTOREDRILL_RUN_AS", "postgres")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise CouldNotVerify(
                f"running as root, PostgreSQL needs an unprivileged OS user and '{name}' does not exist "
                "(create it or set RESTOREDRILL_RUN_AS)"
            ) from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def own(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


def which(tool: str, bindir: Path | None = None) -> str:
    """Absolute path of a tool, or CouldNotVerify naming it."""
    if bindir is not None:
        candidate = bindir / tool
        if candidate.exists():
            return str(candidate)
        raise CouldNotVerify(f"{tool} is not installed in {bindir}")
    found = shutil.which(tool)
    if not found:
        raise CouldNotVerify(f"{tool} is not installed or not on PATH")
    return found


_PR_SET_PDEATHSIG = 1
CANCEL_POLL_S = 0.2  # how soon a cancelled tool is killed
# Loaded once in the parent: the child between fork and exec must not load libraries.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _dies_with_owner(death_signal: int | None) -> Callable[[], None] | None:
    """A preexec_fn: the child receives `death_signal` when the thread that started it is gone.

    A kill -9 of the run runs no `finally`, so only the kernel can stop what the run started: without
    this a pg_restore keeps restoring and a server keeps listening until a janitor comes. It runs after
    Popen's switch to the server's user (a change of credentials clears the setting, so it must come
    last), and checks the owner once more in case it died between fork and prctl. Linux only; elsewhere
    the janitor of the next run is the only net.
    """
    if death_signal is None:
        return None
    owner = os.getpid()

    def preexec() -> None:
        # A run started as a background job of a non-interactive shell inherits SIGINT and SIGQUIT
        # ignored, and an ignored disposition survives exec: reset it, or the death signal does nothing.
        if death_signal != signal.SIGKILL:  # SIGKILL cannot be ignored, nor set
            signal.signal(death_signal, signal.SIG_DFL)
        die_with_parent(death_signal)
        if os.getppid() != owner:
            os.kill(os.getpid(), death_signal)

    return preexec


def die_with_parent(death_signal: int) -> None:
    """This process receives `death_signal` when the thread that started it is gone (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)


def _popen(
    argv: list[str],
    label: str,
    *,
    env: Mapping[str, str] | None,
    run_as: RunAs | None,
    cwd: Path | None,
    stdin: int | None,
    inherit_env: bool = True,
    stdout: int | IO[bytes],
    death_signal: int | None,
) -> subprocess.Popen[bytes]:
    """The child gets its own session, so a Ctrl-C in the terminal reaches us, not it: we then stop it
    ourselves, in order (an interrupted drill never leaves a pg_restore behind)."""
    try:
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE if stdout == subprocess.PIPE else subprocess.STDOUT,
            # inherit_env=False: `env` is the whole environment (a rehearsed migration must not see
            # production's PG* variables).
            env={**(os.environ if inherit_env else {}), **(env or {})},
            cwd=cwd,
            start_new_session=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
            preexec_fn=_dies_with_owner(death_signal),
        )
    except FileNotFoundError:
        raise CouldNotVerify(f"{label} is not installed ({argv[0]} not found)") from None
    except PermissionError as exc:
        raise CouldNotVerify(f"{label} could not be started: {exc.strerror}") from None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    what: str | None = None,
    inherit_env: bool = True,
    cancel: threading.Event | None = None,
) -> Completed:
    """Run a tool to completion and return its redacted output.

    On a timeout or an interrupt its whole process group is killed; if the run itself is killed, the
    tool gets SIGKILL from the kernel (it is a tool: nothing of it is worth keeping). `cancel`: for a tool
    run from a worker thread, which no Ctrl-C reaches and whose death signal waits for the thread: once
    the event is set, the tool is killed within CANCEL_POLL_S and CouldNotVerify is raised.
    """
    argv = [os.fspath(a) for a in args]
    label = what or Path(argv[0]).name
    started = time.monotonic()
    proc = _popen(
        argv,
        label,
        env=env,
        run_as=run_as,
        cwd=cwd,
        inherit_env=inherit_env,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        death_signal=signal.SIGKILL,
    )
    try:
        out, err = _communicate(proc, input_text, timeout, cancel, label)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CouldNotVerify(f"{label} did not finish within {timeout:.0f} s and was stopped") from None
    except BaseException:
        _kill_group(proc)
        raise
    return Completed(
        args=tuple(redact(a) for a in argv),
        returncode=proc.returncode,
        stdout=redact(out.decode(errors="replace")),
        stderr=redact(err.decode(errors="replace")),
        duration_s=time.monotonic() - started,
    )


def _communicate(
    proc: subprocess.Popen[bytes], input_text: str | None, timeout: float, cancel: threading.Event | None, label: str
) -> tuple[bytes, bytes]:
    data = input_text.encode() if input_text is not None else None
    if cancel is None:
        return proc.communicate(input=data, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        # communicate() may be called again after a timeout without losing output (subprocess docs).
        try:
            return proc.communicate(input=data, timeout=max(0.0, min(CANCEL_POLL_S, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                _kill_group(proc)
                raise CouldNotVerify(f"{label} was stopped: its drill ended") from None
            if time.monotonic() >= deadline:
                raise
            data = None  # already written


class Server:
    """A long-running server started by `spawn`: ours to watch and to stop, and dies with us."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, first: int = signal.SIGQUIT, timeout: float = 20) -> None:
        """`first` to the server (SIGQUIT: PostgreSQL's immediate shutdown), SIGKILL to its group if it
        lingers; reaped either way, so no zombie keeps the pid. Safe to call twice."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(first)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process)


def spawn(
    args: Sequence[str | os.PathLike[str]],
    *,
    log: Path | None,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    what: str | None = None,
    death_signal: int | None = signal.SIGQUIT,
) -> Server:
    """Start a server that does not daemonize (e.g. `postgres -D`), its output appended to `log` (or dropped).

    Not through `pg_ctl start`: pg_ctl forks the postmaster off and exits, so the postmaster would have
    no tie to the run and would outlive a kill -9 of it. Started here, it is our child and gets
    `death_signal` from the kernel when we die (SIGQUIT: PostgreSQL's immediate shutdown, which stops its
    backends and releases the port at once; a backend busy in a CREATE INDEX would not notice a SIGKILLed
    postmaster until it finished). The kernel sends it when the starting THREAD ends, so start servers
    from the thread that owns the drill (a short-lived worker thread would stop its server early: loud,
    never silent). Chosen over a watchdog process per server: no polling, no pid reuse, nothing to start.
    """
    argv = [os.fspath(a) for a in args]
    with log.open("ab") if log is not None else open(os.devnull, "wb") as output:
        process = _popen(
            argv,
            what or Path(argv[0]).name,
            env=env,
            run_as=run_as,
            cwd=None,
            stdin=subprocess.DEVNULL,
            stdout=output,
            death_signal=death_signal,
        )
    return Server(process)
