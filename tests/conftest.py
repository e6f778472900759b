"""Real parts for the project's own tests: PostgreSQL instances, a moto S3 server over HTTP, and the CLI
run as a subprocess exactly as users run it. Everything gets free ports and its own temp folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from hypothesis import settings as hypothesis_settings

from restoredrill.demo import make_daily_backups
from restoredrill.targets.local import PREFIX
from restoredrill.waiting import wait_until

# CI runs the property tests derandomized (the same examples on every machine, so a red CI is reproducible);
# a developer's run explores, and any failure prints the blob that replays it (@reproduce_failure).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

AWS_SECRET = "test-secret-Zq9xW3vR7pL2"  # noqa: S105 planted so tests can prove it never leaks
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key",
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traversable_tempdir(prefix: str) -> Path:
    """A temp folder the `postgres` OS user may pass through (pytest's own tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o711)
    return path


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self, **overrides: str):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=overrides.get("key", AWS_ENV["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=overrides.get("secret", AWS_SECRET),
        )


def start_moto(extra_env: dict[str, str] | None = None) -> MotoServer:
    port = free_port()
    beside_python = Path(sys.executable).with_name("moto_server")
    moto = str(beside_python) if beside_python.exists() else shutil.which("moto_server") or "moto_server"
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(extra_env or {})},
    )
    did_not_start = "moto_server did not start (pip install 'moto[server]')"

    def answers() -> MotoServer | None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return MotoServer(f"http://127.0.0.1:{port}", process)
        if process.poll() is not None:
            raise RuntimeError(did_not_start)
        return None

    try:
        return wait_until(answers, timeout=20, interval=0.1, timed_out=lambda: did_not_start, error=RuntimeError)
    except RuntimeError:
        process.kill()
        raise


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Where the drill under test puts its throwaway instances and downloads; must be empty afterwards."""
    path = traversable_tempdir("rd-work-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def backup_template() -> Iterator[Path]:
    """Four daily dumps (with manifests) of the shop database made by the real backup job, once per worker."""
    folder = traversable_tempdir("rd-backups-")
    make_daily_backups(f"file://{folder}/postgres/logical/", log=lambda _m: None)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class DrillScenario:
    """One drill scenario: its own copy of the backups, its config, its workdir."""

    root: Path
    store: Path
    workdir: Path

    @property
    def prefix(self) -> Path:
        return self.store / "postgres" / "logical"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def dumps(self) -> list[Path]:
        return sorted(self.prefix.rglob("*.dump"))

    def newest(self) -> Path:
        return self.dumps()[-1]

    def write_config(self, source: str | None = None, extra: str = "", objectives: str = "") -> Path:
        source = source or f"file://{self.prefix}/"
        objectives = objectives or 'rpo = "26h"\nrto = "15m"'
        text = (
            f'reports_dir = "{self.reports}"\n'
            f"[objectives.logical]\n{objectives}\n"
            f'[target]\nworkdir = "{self.workdir}"\n'
            f'[databases.shop.logical]\nsource = "{source}"\n{extra}\n'
        )
        path = self.root / "drills.toml"
        path.write_text(text)
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Completed:
        return run_cli(
            "run", "--config", str(self.root / "drills.toml"), *args, env=env, timeout=timeout, workdir=self.workdir
        )

    def record(self) -> dict:
        import json

        records = sorted((self.reports / "evidence").glob("*.json"))
        assert len(records) == 1, f"expected one evidence record, found {records}"
        return json.loads(records[0].read_text())


@dataclass
class Completed:
    returncode: int
    output: str


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180, workdir: Path | None = None
) -> Completed:
    full_env = {**os.environ, **AWS_ENV, **(env or {})}
    if workdir is not None:
        full_env["RESTOREDRILL_WORKDIR"] = str(workdir)
    full_env.pop("RESTOREDRILL_CONFIG", None)
    full_env.pop("RESTOREDRILL_RUN_ID", None)
    result = subprocess.run(
        [sys.executable, "-m", "restoredrill.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
    return Completed(result.returncode, result.stdout + result.stderr)


@pytest.fixture
def drill(backup_template: Path, workdir: Path) -> Iterator[DrillScenario]:
    root = traversable_tempdir("rd-drill-")
    store = root / "backups"
    shutil.copytree(backup_template, store)
    scenario = DrillScenario(root, store, workdir)
    yield scenario
    shutil.rmtree(root, ignore_errors=True)


def tree_digest(folder: Path) -> dict[str, str]:
    """Name -> sha256 of every file below a folder: proves a drill left the backups untouched."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(workdir: Path) -> list[str]:
    """Throwaway folders or server processes a drill left behind in its workdir."""
    found = [str(p) for p in workdir.glob(f"{PREFIX}*")]
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(workdir) in part for part in process.info["cmdline"] or []):
                found.append(f"process {process.pid}: {' '.join(process.info['cmdline'])}")
    return found


def listening_ports_of(workdir: Path) -> list[int]:
    """Ports still served by a postgres whose data directory was in the workdir (none should be)."""
    ports = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid:
            with contextlib.suppress(psutil.Error):
                if str(workdir) in " ".join(psutil.Process(conn.pid).cmdline()):
                    ports.append(conn.laddr.port)
    return ports
