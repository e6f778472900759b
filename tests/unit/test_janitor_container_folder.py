"""The janitor and a prepared container's folder (targets/prepared.py): its postmaster.pid names a pid of
the container's namespace, which on the host is some other process; the janitor must delete the folder
without signalling that pid."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from restoredrill.targets import local


@pytest.fixture
def base() -> Iterator[Path]:
    """A short workdir (pytest's base is too long for a PostgreSQL socket path inside it)."""
    folder = Path(tempfile.mkdtemp(prefix="rd-jan-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftover(base: Path, pid_in_file: int, in_container: bool) -> Path:
    folder = base / f"{local.PREFIX}test"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "postmaster.pid").write_text(f"{pid_in_file}\n")
    marker = {"run_id": "r", "owner_pid": _dead_pid(), **({"server_in_container": True} if in_container else {})}
    (folder / local.MARKER).write_text(json.dumps(marker))
    return folder


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live host process: the pid a leftover's postmaster.pid names."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_container_folder_is_removed_and_the_pid_it_names_is_not_signalled(
    base: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    folder = _leftover(base, sleeper.pid, in_container=True)
    assert local.janitor(base) == [folder]
    assert not folder.exists()
    assert sleeper.poll() is None, "the janitor signalled a host process named by a container's pid file"


def test_a_host_instance_folder_still_has_its_postmaster_stopped(base: Path, sleeper: subprocess.Popen[bytes]) -> None:
    folder = _leftover(base, sleeper.pid, in_container=False)
    assert local.janitor(base) == [folder]
    assert not folder.exists()
    assert sleeper.wait(timeout=10) != 0, "a leftover host server must be stopped by the janitor"


def test_marking_a_folder_keeps_its_owner_and_makes_the_janitor_spare_the_pid(
    base: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """What the pgBackRest container variant (targets/recovered.py) and a prepared container both call
    before their server starts."""
    folder = _leftover(base, sleeper.pid, in_container=False)
    owner = json.loads((folder / local.MARKER).read_text())["owner_pid"]
    local.mark_server_in_container(folder)
    marker = json.loads((folder / local.MARKER).read_text())
    assert marker == {"run_id": "r", "owner_pid": owner, "server_in_container": True}
    assert local.janitor(base) == [folder]
    assert sleeper.poll() is None
