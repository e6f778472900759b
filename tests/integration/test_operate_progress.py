"""A long restore is never silent: without a terminal, `restoredrill run` prints a plain progress line when
each stage starts and ends and every interval in between (30 s; shortened here)."""

from __future__ import annotations

import pytest

from tests.conftest import DrillScenario

pytestmark = pytest.mark.integration


def test_a_drill_without_a_terminal_prints_plain_progress_lines(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run(env={"RESTOREDRILL_PROGRESS_INTERVAL": "0.2"})
    assert result.returncode == 0, result.output
    lines = [line for line in result.output.splitlines() if "shop/logical " in line]
    assert any("shop/logical fetch: started (" in line for line in lines), result.output
    assert any("shop/logical fetch: finished, " in line and "MB/s" in line for line in lines), result.output
    assert any("shop/logical restore: started" in line for line in lines), result.output
    finished = next(line for line in lines if "shop/logical restore: finished" in line)
    assert "tables loaded" in finished
    assert "\x1b[" not in "\n".join(lines), "no terminal control codes in CI logs"
