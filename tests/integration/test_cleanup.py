"""Nothing is left behind: after SIGINT in the middle of a restore, and after a crash (janitor)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from restoredrill import pgtools
from restoredrill.backup import backup_logical
from restoredrill.targets.local import LocalInstance
from restoredrill.waiting import wait_until
from tests.conftest import AWS_ENV, DrillScenario, leftovers, listening_ports_of, run_cli, traversable_tempdir

pytestmark = pytest.mark.integration
BIG_ROWS = 2_500_000
KILLED_RUN_GRACE_S = 3  # far below the seconds the restore still needs: only dying with the run fits


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
        # No content hashes: these drills are interrupted mid-restore, never checked, and hashing 2.5 M rows
        # added seconds to the setup of every worker that runs them.
        store = f"file://{folder}/store/postgres/logical/"
        backup_logical(dsn, store, sse=None, log=lambda _m: None, content_hash_max_bytes=None)
    yield folder / "store"
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _wait_for_pg_restore(workdir: Path, timeout: float = 60) -> psutil.Process:
    def running() -> psutil.Process | None:
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            # The restore, not the TOC read (`pg_restore --list`) before it, which now overlaps the target's initdb.
            if process.info["name"] == "pg_restore" and str(workdir) in cmdline and "--list" not in cmdline:
                return process
        return None

    return wait_until(
        running, timeout=timeout, interval=0.02, timed_out=lambda: "pg_restore never started", error=AssertionError
    )


def _start_run(
    drill: DrillScenario, sigint: Callable[[], object] | None = None, *pytest_args: str
) -> subprocess.Popen[str]:
    env = {**os.environ, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(drill.workdir)}
    return subprocess.Popen(
        [sys.executable, "-m", "restoredrill.cli", "run", "--config", str(drill.root / "drills.toml"), *pytest_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        preexec_fn=sigint,
    )


def _ignore_sigint() -> None:
    # What `restoredrill run &` in a non-interactive shell does to the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherited", [None, _ignore_sigint], ids=["sigint-default", "sigint-ignored-by-the-shell"])
def test_sigint_during_restore_leaves_nothing_behind(
    big_backup: Path, drill: DrillScenario, inherited: Callable[[], None] | None
) -> None:
    drill.write_config(source=f"file://{big_backup}/postgres/logical/")
    cli = _start_run(drill, inherited)
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
    # The server died with its owner (nothing listens any more); only the folder waits for the janitor.
    _wait_gone(lambda: [item for item in leftovers(workdir) if item.startswith("process")])
    with LocalInstance(bindir, run_id="alive", base=workdir) as alive:
        result = run_cli("janitor", "--workdir", str(workdir))
        assert result.returncode == 0, result.output
        assert "removed 1 leftover" in result.output
        assert not orphan.exists()
        assert alive.root is not None
        assert alive.root.exists(), "a drill that is still running is never touched"
        assert [p for p in leftovers(workdir) if str(orphan) in p] == []
    assert leftovers(workdir) == []


def _wait_gone(still_there: Callable[[], list], timeout: float = 10) -> None:
    found: list = []

    def gone() -> bool:
        nonlocal found
        found = still_there()
        return found == []

    wait_until(
        gone,
        timeout=timeout,
        interval=0.1,
        timed_out=lambda: f"still there after {timeout:.0f} s: {found}",
        error=AssertionError,
    )


def _started_by(cli: subprocess.Popen[str], workdir: Path) -> list[psutil.Process]:
    """Every process the run started: its descendants, and servers that left its tree (a daemonized
    postmaster is re-parented, and its backends no longer name the data directory in their title)."""
    found = {p.pid: p for p in psutil.Process(cli.pid).children(recursive=True)}
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(workdir) in part for part in process.info["cmdline"] or []):
                found[process.pid] = process
                found.update({child.pid: child for child in process.children(recursive=True)})
    return list(found.values())


def _alive(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(process.cmdline())}")
    return alive


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist-workers"])
def test_kill_9_of_a_run_leaves_nothing_running(big_backup: Path, drill: DrillScenario, workers: list[str]) -> None:
    drill.write_config(source=f"file://{big_backup}/postgres/logical/")
    cli = _start_run(drill, None, *workers)
    processes: list[psutil.Process] = []
    try:
        _wait_for_pg_restore(drill.workdir)
        processes = _started_by(cli, drill.workdir)
        names = set()
        for process in processes:
            with contextlib.suppress(psutil.Error):  # a short-lived tool may be gone already
                names.add(process.name())
        assert {"postgres", "pg_restore"} <= names, names
        # psutil's socket-to-process scan missed the listening postmaster once in CI under load: look again
        # for a few seconds before calling the precondition failed (what is asserted after the kill is unchanged)
        wait_until(
            lambda: listening_ports_of(drill.workdir),
            timeout=10,
            interval=0.2,
            timed_out=lambda: "the throwaway server should be listening now",
            error=AssertionError,
        )
        cli.kill()
        killed = time.monotonic()
        cli.wait(30)  # not communicate(): a surviving child would hold its stdout open
        _wait_gone(lambda: _alive(processes), timeout=KILLED_RUN_GRACE_S - (time.monotonic() - killed))
        assert listening_ports_of(drill.workdir) == []
        janitor = run_cli("janitor", "--workdir", str(drill.workdir))
        assert janitor.returncode == 0, janitor.output
        assert leftovers(drill.workdir) == []
    finally:
        for process in processes:  # before the fix: do not let this test leave its own leftovers
            with contextlib.suppress(psutil.Error):
                process.kill()
        run_cli("janitor", "--workdir", str(drill.workdir))
        cli.kill()
        cli.communicate(timeout=30)


INTERRUPTED_CLEANUP = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from restoredrill.targets.local import LocalInstance
    instance = LocalInstance(Path(sys.argv[1]), run_id="interrupted", base=Path(sys.argv[2]))
    instance.start()
    root, removals = instance.root, 0

    def ctrl_c_in_the_middle(event, args):  # a real KeyboardInterrupt, at the Nth file deletion
        global removals
        if event == "os.remove":
            removals += 1
            if removals == int(sys.argv[3]):
                raise KeyboardInterrupt

    sys.addaudithook(ctrl_c_in_the_middle)
    try:
        instance.destroy()
    except KeyboardInterrupt:
        print(root, flush=True)
        os._exit(130)
    """
)


def test_ctrl_c_during_cleanup_leaves_a_folder_the_janitor_still_removes(workdir: Path) -> None:
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    interrupted = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CLEANUP, str(bindir), str(workdir), "100"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert interrupted.returncode == 130, interrupted.stderr
    half_deleted = Path(interrupted.stdout.strip())
    assert (half_deleted / "data").is_dir(), "the interrupt should land while the data directory is deleted"
    result = run_cli("janitor", "--workdir", str(workdir))
    assert result.returncode == 0, result.output
    assert "removed 1 leftover" in result.output
    assert leftovers(workdir) == []


def _janitor_with_config(how: str, config: Path, elsewhere: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(elsewhere)}
    env.pop("RESTOREDRILL_CONFIG", None)
    args, cwd = [sys.executable, "-m", "restoredrill.cli", "janitor"], elsewhere
    if how == "option":
        args += ["--config", str(config)]
    elif how == "environment":
        env["RESTOREDRILL_CONFIG"] = str(config)
    else:  # ./drills.toml, as `restoredrill run` finds it
        cwd = config.parent
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False)


def _crash_in(workdir: Path) -> Path:
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_DRILL, str(bindir), str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    orphan = Path(crashed.stdout.strip())
    assert orphan.is_dir(), crashed.stderr
    return orphan


@pytest.mark.parametrize("how", ["option", "environment", "current-folder"])
def test_plain_janitor_scans_the_configured_workdir(drill: DrillScenario, how: str) -> None:
    config = drill.write_config()  # [target] workdir = drill.workdir
    orphan = _crash_in(drill.workdir)
    elsewhere = traversable_tempdir("rd-elsewhere-")
    try:
        result = _janitor_with_config(how, config, elsewhere)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "removed 1 leftover" in result.stdout, result.stdout + result.stderr
        assert not orphan.exists()
    finally:
        subprocess.run(["rm", "-rf", str(elsewhere)], check=False)


def test_the_next_run_cleans_the_configured_workdir(drill: DrillScenario) -> None:
    drill.write_config()
    orphan = _crash_in(drill.workdir)
    elsewhere = traversable_tempdir("rd-elsewhere-")
    try:
        result = run_cli(
            "run", "--config", str(drill.root / "drills.toml"), env={"RESTOREDRILL_WORKDIR": str(elsewhere)}
        )
        assert result.returncode == 0, result.output
        assert "janitor removed a leftover throwaway instance" in result.output
        assert not orphan.exists()
        assert leftovers(drill.workdir) == []
    finally:
        subprocess.run(["rm", "-rf", str(elsewhere)], check=False)
