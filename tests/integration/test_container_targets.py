"""Container targets on a real Docker engine (started by `make test` / .ci/run): logical and pgBackRest
drills pass in containers of the backup's major; a major mismatch is refused; a container that dies at
start fails within seconds with its last log lines; nothing labelled survives SIGINT; the janitor removes
a leftover."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from restoredrill.errors import CouldNotVerify
from restoredrill.targets.container import LABEL, OWNER_LABEL, RUN_LABEL, docker_client
from restoredrill.waiting import wait_until
from tests.conftest import AWS_ENV, DrillScenario, run_cli, traversable_tempdir
from tests.pgbackrest_support import Repo, drill_config

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("containers")]
IMAGE = "postgres:15"


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    try:
        client = docker_client()
    except CouldNotVerify as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine (make test starts one): {exc}")
        pytest.skip(f"no Docker engine here: {exc}")
    try:
        client.images.get(IMAGE)
    except Exception:
        pytest.fail(f"{IMAGE} is missing: scripts/build-postgres-image.sh builds it from the host's binaries")
    yield client
    client.close()


def labelled(client: Any, run_id: str | None = None) -> list[str]:
    label = f"{RUN_LABEL}={run_id}" if run_id else f"{LABEL}=true"
    return [c.name for c in client.containers.list(all=True, filters={"label": label})]


def container_target(path: Path, image: str | None = None) -> None:
    text = path.read_text()
    extra = 'kind = "container"\n' + (f'image = "{image}"\n' if image else "")
    path.write_text(
        text.replace("[target]\n", "[target]\n" + extra) if "[target]\n" in text else text + "\n[target]\n" + extra
    )


def test_logical_drill_passes_in_a_container_and_says_which_image(engine: Any, drill: DrillScenario) -> None:
    container_target(drill.write_config())
    result = drill.run()
    assert result.returncode == 0, result.output
    record = drill.record()
    assert record["verdict"] == "passed"
    assert record["target"] == "container"
    info = record["target_info"]
    assert info["image"] == IMAGE
    assert info["image_id"].startswith("sha256:")
    assert info["server_version"].startswith("15.")
    assert labelled(engine, record["run_id"]) == []


def test_pgbackrest_drill_recovers_inside_a_container(engine: Any, pgbackrest_template: Repo) -> None:
    root = traversable_tempdir("rd-ctr-pgbr-")
    try:
        repo = pgbackrest_template.clone(root)
        container_target(drill_config(root, repo, targets='recovery_targets = ["latest", "time"]'))
        result = run_cli("run", "--config", str(root / "drills.toml"), workdir=root / "work", timeout=300)
        assert result.returncode == 0, result.output
        for path in (root / "reports" / "evidence").glob("*.json"):
            record = json.loads(path.read_text())
            assert record["verdict"] == "passed", record["reason"]
            assert record["target"] == "container"
            assert record["target_info"]["image"] == IMAGE
            assert any("fetched" in note and "WAL segment" in note for note in record["notes"])
            assert labelled(engine, record["run_id"]) == []
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_a_major_mismatch_is_refused(engine: Any, drill: DrillScenario) -> None:
    engine.images.get(IMAGE).tag("restoredrill-test/mislabelled", "16")
    newest = drill.newest()
    for sidecar in newest.parent.glob("*.json"):
        sidecar.unlink()
    newest.write_bytes(newest.read_bytes().replace(b"15.", b"16.", 1))  # "Dumped from database version: 16.x"
    container_target(drill.write_config(), image="restoredrill-test/mislabelled:{major}")
    result = drill.run()
    assert result.returncode == 3, result.output
    reason = drill.record()["reason"]
    assert "runs PostgreSQL 15 but the backup comes from PostgreSQL 16" in reason
    assert labelled(engine) == [] or not any(n.startswith("restoredrill-") for n in labelled(engine))


@pytest.fixture(scope="module")
def broken_image(engine: Any) -> Iterator[str]:
    helper = engine.containers.create(IMAGE, command=["true"])
    tag = f"broken-{uuid.uuid4().hex[:6]}"
    helper.commit(
        repository="restoredrill-test/broken",
        tag=f"15-{tag}",
        changes=['ENTRYPOINT ["/bin/sh", "-c", "echo FATAL: this image is broken >&2; exit 3"]'],
    )
    helper.remove(force=True)
    yield f"restoredrill-test/broken:{{major}}-{tag}"
    engine.images.remove(f"restoredrill-test/broken:15-{tag}", force=True)


def test_a_container_that_dies_at_start_fails_in_seconds_with_its_log(
    engine: Any, drill: DrillScenario, broken_image: str
) -> None:
    container_target(drill.write_config(), image=broken_image)
    started = time.monotonic()
    result = drill.run()
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.output
    assert elapsed < 30, f"took {elapsed:.0f} s"
    reason = drill.record()["reason"]
    assert "container died at start" in reason
    assert "FATAL: this image is broken" in reason
    assert labelled(engine, drill.record()["run_id"]) == []


def owned_by(client: Any, pid: int, host: str | None = None) -> list[str]:
    # The low-level list inspects nothing: a container removed meanwhile is simply not listed.
    found = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={host or socket.gethostname()}:{pid}"})
    return [name for c in found for name in c["Names"]]


def start_run_until_its_container_exists(
    engine: Any, drill: DrillScenario, host: str | None = None
) -> subprocess.Popen[str]:
    container_target(drill.write_config())
    env = {**os.environ, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(drill.workdir)}
    command = [sys.executable, "-m", "restoredrill.cli", "run", "--config", str(drill.root / "drills.toml")]
    if host is not None:  # a host name of its own (a new UTS namespace); exec keeps the pid the run's
        command = ["unshare", "--uts", "--", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *command]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    wait_until(
        lambda: owned_by(engine, cli.pid, host),
        timeout=60,
        interval=0.05,
        timed_out=lambda: "the drill should have started its container",
        error=AssertionError,
    )
    return cli


def test_sigint_leaves_no_labelled_container(engine: Any, drill: DrillScenario) -> None:
    cli = start_run_until_its_container_exists(engine, drill)
    cli.send_signal(signal.SIGINT)
    output, _ = cli.communicate(timeout=90)
    assert cli.returncode == 130, output
    assert owned_by(engine, cli.pid) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="a UTS namespace of its own needs root")
def test_kill_9_of_a_run_removes_its_container_at_once(engine: Any, drill: DrillScenario) -> None:
    """No `finally` runs after a kill -9: the run's watchdog removes the container, no janitor needed.

    The run gets a host name of its own, so that no janitor of another run on this host (which removes
    containers of dead owners of ITS host) can do the watchdog's work and hide its absence.
    """
    host = f"rd-kill9-{uuid.uuid4().hex[:8]}"
    cli = start_run_until_its_container_exists(engine, drill, host)
    try:
        cli.kill()
        cli.communicate(timeout=30)
        wait_until(
            lambda: owned_by(engine, cli.pid, host) == [],
            timeout=10,
            interval=0.1,
            timed_out=lambda: "the container outlived its run",
            error=AssertionError,
        )
    finally:
        for leftover in engine.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={host}:{cli.pid}"}):
            leftover.remove(force=True, v=True)


def test_janitor_removes_a_planted_leftover_and_spares_a_live_one(engine: Any) -> None:
    host = socket.gethostname()

    def plant() -> Any:
        dead = subprocess.Popen(["true"])
        dead.wait()
        return engine.containers.create(
            IMAGE,
            command=["true"],
            name=f"restoredrill-planted-{uuid.uuid4().hex[:6]}",
            labels={LABEL: "true", RUN_LABEL: "old", OWNER_LABEL: f"{host}:{dead.pid}"},
        )

    alive = engine.containers.create(
        IMAGE,
        command=["true"],
        name=f"restoredrill-alive-{uuid.uuid4().hex[:6]}",
        labels={LABEL: "true", RUN_LABEL: "now", OWNER_LABEL: f"{host}:{os.getpid()}"},
    )
    try:
        # Any drill run's janitor (other tests run beside this one) may sweep the planted leftover first;
        # plant again until this janitor is the one that removes it.
        for _attempt in range(3):
            planted = plant()
            result = run_cli("janitor")
            assert result.returncode == 0, result.output
            if planted.name in result.output:
                break
            assert planted.name not in labelled(engine), "a dead owner's container survived a janitor"
        assert planted.name in result.output
        names = labelled(engine)
        assert planted.name not in names
        assert alive.name in names
    finally:
        alive.remove(force=True)


def test_cleanup_finds_a_container_the_engine_made_before_ctrl_c_reached_testcontainers(engine: Any) -> None:
    """Ctrl-C inside the engine's create/start: the container exists, but testcontainers never got its handle."""
    from restoredrill.targets.container import ContainerInstance

    instance = ContainerInstance(IMAGE, run_id="interrupted-start")
    instance.name = f"restoredrill-halfmade-{uuid.uuid4().hex[:6]}"
    engine.containers.create(IMAGE, command=["true"], name=instance.name, labels={LABEL: "true"})
    instance.destroy()
    assert instance.name is None
    assert not engine.containers.list(all=True, filters={"name": "restoredrill-halfmade-"}, ignore_removed=True)
