"""Fixtures shared by the pgBackRest integration tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import traversable_tempdir
from tests.pgbackrest_support import Repo, build_repo


@pytest.fixture(scope="session")
def pgbackrest_template() -> Repo:
    """A healthy posix repository (full, diff, incr + 8 s of WAL with heartbeat and ledger), once per worker."""
    return build_repo("pgbr")


@pytest.fixture
def scenario(pgbackrest_template: Repo) -> Iterator[tuple[Path, Repo]]:
    """A private clone of the template repository (its config pointing at the clone) in a fresh folder."""
    root = traversable_tempdir("rd-pgbr-case-")
    yield root, pgbackrest_template.clone(root)
    shutil.rmtree(root, ignore_errors=True)
