"""The project's own tests keep their `xdist_group` marks under any pytest: pytest 9.2 ignores the node-id
rewrite that xdist's `--dist=loadgroup` relies on, so fixtures/scheduling.py reads the marks itself. Without
it, the tests of one group spread over workers: each builds its own template repository, and tests that must
not run beside each other (the container janitor's) do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fixtures.scheduling import xdist_group

PROJECT = Path(__file__).resolve().parents[2]

GROUPED = """
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("n", range(6))
def test_grouped(n: int) -> None:
    Path(os.environ["WHERE"], f"grouped-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""

LOOSE = """
import os
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("n", range(6))
def test_loose(n: int) -> None:
    time.sleep(0.2)  # long enough that both workers take some
    Path(os.environ["WHERE"], f"loose-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.xdist_group("alone")
def test_marked_function() -> None:
    pass
"""


def test_a_group_is_read_from_the_module_mark_and_from_a_decorator(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    assert xdist_group("test_grouped.py::test_grouped[3]", tmp_path) == "together"
    assert xdist_group("test_loose.py::test_marked_function", tmp_path) == "alone"
    assert xdist_group("test_loose.py::test_loose[0]", tmp_path) is None
    # the project's own marks, as its files carry them
    assert xdist_group("tests/integration/test_container_targets.py::test_x", PROJECT) == "containers"
    assert xdist_group("tests/integration/test_pgbackrest_repos.py::test_nothing_here", PROJECT) is None


def test_under_two_workers_a_group_stays_on_one_worker_and_the_rest_spread(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    where = tmp_path / "where"
    where.mkdir()
    env = {**os.environ, "WHERE": str(where), "PYTHONPATH": str(PROJECT)}
    env.pop("RESTOREDRILL_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist=loadgroup", "-p", "no:cacheprovider",
         "-p", "fixtures.drill_session", "-p", "fixtures.scheduling", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    grouped = {p.read_text() for p in where.glob("grouped-*")}
    loose = {p.read_text() for p in where.glob("loose-*")}
    assert len(list(where.glob("grouped-*"))) == 6
    assert len(grouped) == 1, grouped
    assert loose == {"gw0", "gw1"}, loose  # the scheduler did not simply put everything on one worker
