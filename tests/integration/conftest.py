"""Fixtures shared by the pgBackRest integration tests."""

from __future__ import annotations

import pytest

from tests.pgbackrest_support import Repo, build_repo


@pytest.fixture(scope="session")
def pgbackrest_template() -> Repo:
    """A healthy posix repository (full, diff, incr + 8 s of WAL with heartbeat and ledger), once per worker."""
    return build_repo("pgbr")
