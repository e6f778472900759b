"""A pristine initdb output per set of server binaries, copied for each throwaway instance.

initdb is ~0.6 s of every small local (or prepared-container) drill: it writes ~1,000 files and runs a
bootstrap backend several times. Its output depends only on the binaries and on initdb's options, so it is
kept once (a copy of the first drill's initdb output, taken before its server started) in the user's cache
folder; each later instance gets a `cp -a` of it (~0.04 s) and its own random superuser password, set by a
single-user backend (~0.07 s) before the server ever runs. The password of that first drill, whose verifier
the template holds, was random too and was never kept anywhere: nobody can log in to a copy with it.

The template is only ever read: a copy is what a server runs on. It is made in a private temporary folder
and renamed into place when complete, so a crash while it is made, or two drills making it at once, never
leaves a half-made template in use. If anything about the cache fails (no writable home, disk full, a copy
or password that does not take), the instance falls back to its own initdb: the cache can slow a drill
down, never fail it. `RESTOREDRILL_INITDB_CACHE=0` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from restoredrill import proc
from restoredrill.errors import CouldNotVerify

log = logging.getLogger(__name__)

DISABLE_VARIABLE = "RESTOREDRILL_INITDB_CACHE"
_COMPLETE = "restoredrill-template.json"  # written last into a template, before it is renamed into place
STALE_AFTER_S = 3600  # a template is kept within seconds: a temporary folder this old is a killed drill's


def cache_folder() -> Path | None:
    """Where templates live ($XDG_CACHE_HOME or ~/.cache, then restoredrill/initdb); None when turned off."""
    if os.environ.get(DISABLE_VARIABLE, "1").strip().lower() in ("0", "off", "no", "false"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None  # no home (a service account without one): no cache rather than one in the cwd
    return Path(base) / "restoredrill" / "initdb"


def template_key(initdb: str, options: Sequence[str], owner: int) -> str:
    """Names one template: the initdb binary (path, size, modification time: a package upgrade changes
    them), its options (not the password file) and the uid owning the files (the server's user)."""
    stat = os.stat(initdb)
    identity = {
        "initdb": os.path.realpath(initdb),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "owner": owner,
    }
    digest = hashlib.sha256(json.dumps({**identity, "options": list(options)}, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def _private_folder(path: Path) -> None:
    """The cache folder, made 0700 and ours: another user must not be able to plant a template in it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise OSError(f"{path} is not a private folder of this user")


def find(initdb: str, options: Sequence[str], owner: int) -> Path | None:
    """The complete template for these binaries and options, if the cache holds one."""
    folder = cache_folder()
    if folder is None:
        return None
    with contextlib.suppress(OSError):
        found = folder / template_key(initdb, options, owner)
        if (found / _COMPLETE).is_file():
            return found
    return None


def keep(initdb: str, options: Sequence[str], owner: int, data: Path) -> None:
    """Keep a data folder initdb just made (its server never started) as the template of these binaries and
    options: copied into a private temporary folder, renamed into place when complete. Never raises: a drill
    whose template could not be kept has lost nothing."""
    folder = cache_folder()
    if folder is None:
        return
    making: Path | None = None
    try:
        _private_folder(folder)
        _sweep(folder)
        key = template_key(initdb, options, owner)
        making = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder))
        if not _copy_tree(data, making / "data"):
            return
        (making / _COMPLETE).write_text(json.dumps({"initdb": initdb, "options": list(options)}))
        with contextlib.suppress(OSError):  # another drill kept one meanwhile: theirs is as good
            making.rename(folder / key)
    except (OSError, CouldNotVerify) as exc:
        log.debug("initdb template not kept: %s", exc)
    finally:
        if making is not None:
            shutil.rmtree(making, ignore_errors=True)


def _sweep(folder: Path) -> None:
    """Remove what a killed drill left while keeping a template (a hidden temporary folder, over an hour old)."""
    now = time.time()
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.name.startswith(".") and now - entry.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(entry, ignore_errors=True)


def discard(made: Path) -> None:
    """Remove a template that did not work (its completion mark first: nobody copies it meanwhile)."""
    with contextlib.suppress(OSError):
        (made / _COMPLETE).unlink()
    shutil.rmtree(made, ignore_errors=True)


def copy_data(made: Path, data: Path) -> bool:
    """A copy of the template's data folder at `data` (absent before), with its owner (`cp -a` as root)."""
    return _copy_tree(made / "data", data)


def _copy_tree(source: Path, destination: Path) -> bool:
    """`cp -a` of one data folder (a template kept, or a copy of one made); the caller removes what a failed
    copy left."""
    return _succeeded("initdb folder not copied", ["cp", "-a", "--", source, destination], timeout=120, what="cp")


def _succeeded(
    failure: str,
    args: list[Any],
    *,
    accept: Callable[[proc.Completed], bool] = lambda result: result.returncode == 0,
    **run: Any,
) -> bool:
    """Run one step of the cache; False, never an exception, when it fails or times out: a cache must slow a
    drill down, never fail it (the caller falls back to initdb). Why it failed goes to the debug log."""
    try:
        result = proc.run(args, **run)
    except CouldNotVerify as exc:  # timed out
        log.debug("%s: %s", failure, exc)
        return False
    if not accept(result):
        log.debug("%s: %s", failure, result.tail(3))
        return False
    return True


def prepare_copy(
    postgres: str, data: Path, superuser: str, password: str, database: str | None, user: proc.RunAs | None
) -> bool:
    """Give a copy its own superuser password (SCRAM whatever the major's default) and, when named, the empty
    database the drill restores into, in a single-user backend: no server, no listener, so nobody can log in
    with the template's password meanwhile, and the database costs nothing once the server is up."""
    literal = "'" + password.replace("'", "''") + "'"
    statements = [f"ALTER ROLE {_ident(superuser)} PASSWORD {literal}"]
    if database is not None:
        statements.append(f"CREATE DATABASE {_ident(database)} TEMPLATE template0")
    return _succeeded(
        "copy of the initdb template not prepared",
        [
            postgres,
            "--single",
            "-D",
            data,
            "-c",
            "password_encryption=scram-sha-256",
            "-c",
            "fsync=off",
            "-c",
            "log_min_messages=warning",
            "-c",
            "log_min_error_statement=panic",  # an error must not echo the statement (the password) to stderr
            "postgres",
        ],
        # A failed statement need not end the single-user backend with an error code: its ERROR line tells.
        accept=lambda result: result.returncode == 0 and "ERROR" not in result.stdout + result.stderr,
        timeout=60,
        run_as=user,
        input_text="".join(f"{statement}\n" for statement in statements),
        what="postgres --single",
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
