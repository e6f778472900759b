"""The one subprocess runner: timeout, captured output, redaction, optional privilege drop.

Every external tool (initdb, pg_ctl, pg_dump, pg_restore, pg_amcheck, ...) goes through `run`, so that
timeouts, missing binaries and secrets are handled in one place.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from restoredrill.errors import CouldNotVerify

_SECRETS: set[str] = set()
_PATTERNS = [
    re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)"),
    re.compile(r"(?i)(PGPASSWORD\s*=\s*)(\S+)"),
    re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s/]+)(@)"),  # any scheme://user:password@
    re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)(\S+)"),
    re.compile(r"(?i)(cipher-pass\s*[=:]\s*)(\S+)"),
]
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret so that no log line, record or error message ever shows it."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def register_environment_secrets(env: Mapping[str, str] = os.environ) -> None:
    for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGBACKREST_REPO1_CIPHER_PASS"):
        register_secret(env.get(name))


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK + (m.group(3) if m.re.groups >= 3 else ""), text)
    return text


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
) -> Completed:
    """Run a tool to completion and return its redacted output.

    The child gets its own session so a Ctrl-C in the terminal reaches us, not it: we then kill its
    whole process group ourselves, so an interrupted drill never leaves a pg_restore behind.
    """
    argv = [os.fspath(a) for a in args]
    label = what or Path(argv[0]).name
    # inherit_env=False: `env` is the whole environment (a rehearsed migration must not see production's PG*).
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    except FileNotFoundError:
        raise CouldNotVerify(f"{label} is not installed ({argv[0]} not found)") from None
    except PermissionError as exc:
        raise CouldNotVerify(f"{label} could not be started: {exc.strerror}") from None
    try:
        out, err = proc.communicate(input=input_text.encode() if input_text is not None else None, timeout=timeout)
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
