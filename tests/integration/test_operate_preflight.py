"""The disk-space preflight: a drill whose workdir lacks room for the restore refuses before fetching
anything, with one sentence and exit 2. `disk_reserve_mb` makes the real free space insufficient."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from restoredrill.operate import preflight
from tests.conftest import DrillScenario, leftovers, run_cli, traversable_tempdir
from tests.pgbackrest_support import Repo, drill_config

pytestmark = pytest.mark.integration
NO_DISK_IS_THIS_LARGE = "disk_reserve_mb = 100000000\n"  # 100 TB


def test_logical_drill_refuses_without_room_and_fetches_nothing(drill: DrillScenario) -> None:
    path = drill.write_config()
    path.write_text(NO_DISK_IS_THIS_LARGE + path.read_text())
    result = drill.run()
    assert result.returncode == 2, result.output
    record = drill.record()
    assert record["verdict"] == "could_not_verify"
    assert record["refused"] is True
    assert record["reason"].startswith(f"not enough free disk in {drill.workdir} to restore ")
    assert "the database size the backup job recorded" in record["reason"]
    assert record["stages"]["fetch_s"] is None, "nothing may be fetched before the preflight"
    assert leftovers(drill.workdir) == []
    assert "Traceback" not in result.output


def test_logical_drill_with_room_passes_the_preflight(drill: DrillScenario) -> None:
    drill.write_config()
    result = drill.run("-k", "restore")
    assert result.returncode == 4, result.output  # a selection of checks is PARTIAL, never refused
    assert drill.record()["refused"] is False
    assert drill.record()["stages"]["fetch_s"] is not None


@pytest.fixture
def pgbackrest(pgbackrest_template: Repo) -> Iterator[tuple[Path, Repo]]:
    root = traversable_tempdir("rd-preflight-")
    yield root, pgbackrest_template.clone(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.xdist_group("pgbackrest-plain")
def test_pgbackrest_drill_refuses_without_room(pgbackrest: tuple[Path, Repo]) -> None:
    root, repo = pgbackrest
    path = drill_config(root, repo, targets='recovery_targets = ["latest"]')
    path.write_text(NO_DISK_IS_THIS_LARGE + path.read_text())
    result = run_cli("run", "--config", str(path), workdir=root / "work", timeout=300)
    assert result.returncode == 2, result.output
    (evidence,) = (root / "reports" / "evidence").glob("*.json")
    record = json.loads(evidence.read_text())
    assert record["refused"] is True
    assert "not enough free disk" in record["reason"]
    assert "the set's database size" in record["reason"]
    assert record["stages"]["restore_s"] is None, "nothing may be restored before the preflight"
    assert leftovers(root / "work") == []


def test_estimates_use_the_recorded_size_else_a_conservative_factor() -> None:
    recorded = preflight.logical_estimate(10 * preflight.MB, 300 * preflight.MB, reserve_mb=100)
    assert recorded.needed_bytes == (10 + 300 + 100) * preflight.MB
    guessed = preflight.logical_estimate(10 * preflight.MB, None, reserve_mb=0)
    assert guessed.needed_bytes == 10 * preflight.MB * (1 + preflight.EXPANSION)
    assert "the manifest records no database size" in guessed.basis
    pgbackrest = preflight.pgbackrest_estimate(500 * preflight.MB, 48 * preflight.MB, reserve_mb=0)
    assert pgbackrest.needed_bytes == 548 * preflight.MB


def test_require_room_refuses_with_one_sentence(tmp_path: Path) -> None:
    free = preflight.free_bytes(tmp_path)
    preflight.require_room(tmp_path, preflight.Estimate(free // 2, "half"), "x")
    with pytest.raises(preflight.NoRoom, match=r"^not enough free disk in .* to restore x: .* free, about"):
        preflight.require_room(tmp_path, preflight.Estimate(free * 4, "four times"), "x")
