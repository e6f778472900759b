"""Nothing is left behind: after SIGINT in the middle of a restore, and after a crash (janitor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from restoredrill import pgtools
from restoredrill.backup import backup_logical
from restoredrill.targets.local import LocalInstance
from tests.conftest import AWS_ENV, Drill, leftovers, listening_ports_of, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration
BIG_ROWS = 2_500_000


@pytest.fixture(scope="module")
def big_backup() -> Iterator[Path]:
    """A dump large enough that its restore takes seconds, so it can be interrupted in the middle."""
    folder = traversable_tempdir("rd-big-")
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    with LocalInstance(bindir, run_id="test-big", base=folder, label="test-big") as instance:
        instance.create_database("shop")
        assert instance.connection is not None
        with instance.connection.connect("shop") as conn:
            conn.execute(f"CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {BIG_ROWS}) g")
            conn.execute("CREATE INDEX big_v_idx ON big (v)")
        dsn = instance.connection.conninfo("shop") + f" password={instance.connection.password}"
        backup_logical(dsn, f"file://{folder}/store/postgres/logical/", sse=None, log=lambda _m: None)
    yield folder / "store"
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _wait_for_pg_restore(workdir: Path, timeout: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "pg_restore" and str(workdir) in cmdline:
                return process
        time.sleep(0.02)
    raise AssertionError("pg_restore never started")


def test_sigint_during_restore_leaves_nothing_behind(big_backup: Path, drill: Drill) -> None:
    drill.write_config(source=f"file://{big_backup}/postgres/logical/")
    env = {**os.environ, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(drill.workdir)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "restoredrill.cli", "run", "--config", str(drill.root / "drills.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    restore = _wait_for_pg_restore(drill.workdir)
    assert leftovers(drill.workdir), "the drill should be mid-restore now"
    cli.send_signal(signal.SIGINT)
    output, _ = cli.communicate(timeout=90)
    assert cli.returncode == 130, output
    assert not restore.is_running() or restore.status() == psutil.STATUS_ZOMBIE
    assert leftovers(drill.workdir) == []
    assert listening_ports_of(drill.workdir) == []
    record = drill.record()
    assert record["verdict"] == "could_not_verify"
    assert "interrupted" in record["reason"]
    assert "Traceback" not in output


CRASHING_DRILL = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from restoredrill.targets.local import LocalInstance
    instance = LocalInstance(Path(sys.argv[1]), run_id="crash", base=Path(sys.argv[2]))
    instance.start()
    print(instance.root, flush=True)
    os._exit(9)  # a crash: no cleanup runs
    """
)


def test_janitor_removes_what_a_crashed_drill_left_and_spares_live_ones(workdir: Path) -> None:
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_DRILL, str(bindir), str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    orphan = Path(crashed.stdout.strip())
    assert orphan.is_dir()
    assert any("postgres" in item for item in leftovers(workdir))
    with LocalInstance(bindir, run_id="alive", base=workdir) as alive:
        result = run_cli("janitor", "--workdir", str(workdir))
        assert result.returncode == 0, result.output
        assert "removed 1 leftover" in result.output
        assert not orphan.exists()
        assert alive.root is not None
        assert alive.root.exists(), "a drill that is still running is never touched"
        assert [p for p in leftovers(workdir) if str(orphan) in p] == []
    assert leftovers(workdir) == []
