"""Drills obey only their own timeouts (target.start/restore/check_timeout), never the project's test timeout.

`restoredrill run` runs pytest with the project's rootdir, so the project's own pytest settings apply to
the drills: its pytest-timeout `timeout = 900` once killed every restore longer than 15 minutes and
reported "the restore did not complete", although restore_timeout defaults to 4 h.
"""

from __future__ import annotations

import pytest

from tests.conftest import DrillScenario

pytestmark = pytest.mark.integration
TEST_TIMEOUT_S = 2
SLOW_CHECK_S = 4


def test_a_drill_outlives_the_projects_test_timeout(drill: DrillScenario) -> None:
    drill.write_config(
        extra=(
            '[[databases.shop.checks.sql]]\nname = "slow"\n'
            f'sql = "SELECT true FROM pg_sleep({SLOW_CHECK_S})"\nexpect = true\n'
        )
    )
    # `-o timeout=N` sets the same ini value as pyproject.toml's [tool.pytest.ini_options] timeout.
    result = drill.run(env={"PYTEST_ADDOPTS": f"-o timeout={TEST_TIMEOUT_S}"})
    assert "Timeout" not in result.output, result.output
    assert result.returncode == 0, result.output
    record = drill.record()
    assert record["verdict"] == "passed"
    slow = next(c for c in record["checks"] if c["name"] == "sql:slow")
    assert slow["outcome"] == "passed"
