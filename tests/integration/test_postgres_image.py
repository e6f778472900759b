"""The PostgreSQL image built from the host's own binaries (scripts/build-postgres-image.sh) on the real Docker
engine (scripts/docker-engine.sh start). It must behave like the official postgres:<major> image for the tools
that use it: POSTGRES_USER/PASSWORD/DB with SCRAM from the host through a port published on 127.0.0.1 only and
ready within 3 s, POSTGRES_INITDB_ARGS, en_US.UTF-8 collation, /docker-entrypoint-initdb.d, a data directory
made on the host started as it is (never re-initialised), `docker stop` a fast and clean shutdown, and
testcontainers' PostgresContainer ready with it.

Without an engine these tests FAIL when CI is set and skip (saying why) elsewhere. Every container has a unique
name and the label restoredrill.test=1 and is removed whatever happens; host ports are chosen by the engine,
so pytest-xdist workers never collide; the image build is idempotent and serialised by the script itself.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import secrets
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from restoredrill import proc
from restoredrill.waiting import wait_until
from tests.conftest import traversable_tempdir

# Parallel-safe, but kept on one xdist worker: the start-to-ready and stop budgets are measured without this
# module's own containers competing for the same two cores.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("postgres-image")]

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-postgres-image.sh"
MAJOR = int(os.environ.get("RESTOREDRILL_TEST_PG_MAJOR", "15"))
PGBIN = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
IMAGE = f"restoredrill/postgres:{MAJOR}-local"
OFFICIAL_NAME = f"postgres:{MAJOR}"
LABEL_KEY, LABEL_VALUE = "restoredrill.test", "1"
CONTAINER_UID = 999  # the official image's postgres uid/gid, which the image keeps
# A hang guard, not the speed target: timed assertions in a test suite that shares two cores with other
# workers fail on load, not on regressions. The target (ready within 3 s) is printed here and measured by
# the benchmarks in bench/ on a quiet machine.
READY_LIMIT_S = 20.0
STOP_LIMIT_S = 5.0  # docker stop's own grace period is 10 s: anything near it means the signal was ignored


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(reason: str) -> None:
    """Missing engine or tool: a failure under CI, where the engine is part of the job; a skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed (rc={result.returncode}): {result.stderr.strip()}")
    return result


def unique_name(what: str) -> str:
    return f"rd-pgimage-{what}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Engine:
    """What the session found: an engine and the image, or why not. Tests ask for `.image` in their body, so a
    missing engine makes each test FAIL under CI (an error at fixture setup would not count as a failure)."""

    problem: str | None = None
    build_failure: str | None = None

    @property
    def image(self) -> str:
        if self.problem:
            unavailable(self.problem)
        assert self.build_failure is None, self.build_failure
        return IMAGE


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The engine, and the image built from the host's binaries if missing or outdated (~0.2 s when up to date)."""
    if shutil.which("docker") is None:
        return Engine("the docker CLI is not installed (scripts/docker-engine.sh start installs docker.io)")
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return Engine("`docker info` did not answer within 20 s")
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return Engine(f"no Docker engine answers ({reason}); start one with scripts/docker-engine.sh start")
    if not (PGBIN / "postgres").exists():
        return Engine(f"the host has no PostgreSQL {MAJOR} server in {PGBIN} to build the image from")
    build = subprocess.run([str(BUILD_SCRIPT), str(MAJOR)], capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0:
        return Engine(build_failure=f"{BUILD_SCRIPT.name} failed:\n{build.stdout}{build.stderr}")
    return Engine()


@dataclass
class Container:
    name: str
    started: float  # time.monotonic() just before `docker run`
    port: int | None = None

    def refresh_port(self) -> None:
        out = docker("port", self.name, "5432/tcp").stdout.split()
        self.port = int(out[0].rsplit(":", 1)[1])

    def state(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command, check=False)

    def connect(self, user: str, password: str, dbname: str) -> psycopg.Connection:
        assert self.port is not None, "the container publishes no port"
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname, connect_timeout=2
        )

    def wait_ready(self, user: str, password: str, dbname: str, timeout: float = 30) -> float:
        """Seconds from `docker run` until a query answered over TCP from the host; fails if the server died."""
        last, attempts = "", itertools.count()

        def answers() -> float | None:
            nonlocal last
            try:
                with self.connect(user, password, dbname) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic() - self.started
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            # `docker inspect` costs CPU the starting server needs: ask only every 0.5 s.
            if next(attempts) % 10 == 9 and not self.state()["Running"]:
                pytest.fail(f"{self.name} died at start:\n{self.logs()[-3000:]}")
            return None

        return wait_until(
            answers,
            timeout=timeout,
            interval=0.05,
            timed_out=lambda: f"{self.name} not ready within {timeout:.0f} s ({last}):\n{self.logs()[-3000:]}",
            error=pytest.fail.Exception,
        )


@dataclass
class Containers:
    """Starts containers of the image; everything it started is removed at teardown, whatever happened."""

    engine: Engine
    names: list[str] = field(default_factory=list)

    @property
    def image(self) -> str:
        return self.engine.image

    def start(
        self,
        *command: str,
        env: dict[str, str] | None = None,
        volumes: dict[Path, str] | None = None,
        publish: bool = True,
    ) -> Container:
        name = unique_name("run")
        self.names.append(name)  # registered first, so even a half-created container is removed
        args = ["run", "--detach", "--name", name, "--label", f"{LABEL_KEY}={LABEL_VALUE}"]
        if publish:
            args += ["--publish", "127.0.0.1::5432"]  # loopback only; the engine picks a free host port
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for host, inside in (volumes or {}).items():
            args += ["--volume", f"{host}:{inside}"]
        container = Container(name, started=time.monotonic())
        docker(*args, self.image, *command)
        if publish:
            container.refresh_port()
        return container

    def run_to_end(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker run --rm` of a one-off command (args: docker run options, then image and command)."""
        name = unique_name("once")
        self.names.append(name)
        return docker("run", "--rm", "--name", name, "--label", f"{LABEL_KEY}={LABEL_VALUE}", *args, timeout=120)

    def remove(self, container: Container) -> None:
        docker("rm", "--force", "--volumes", container.name, check=False)

    def remove_all(self) -> None:
        for name in self.names:
            docker("rm", "--force", "--volumes", name, check=False)


@pytest.fixture
def containers(engine: Engine) -> Iterator[Containers]:
    started = Containers(engine)
    try:
        yield started
    finally:
        started.remove_all()


def secret() -> str:
    return "pw-" + secrets.token_urlsafe(16)


def test_image_is_tagged_and_configured_like_the_official_one(containers: Containers) -> None:
    image = containers.image
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == str(CONTAINER_UID)
    assert config["StopSignal"] == "SIGINT"
    assert "5432/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["postgres"]
    assert env["PGDATA"] == "/var/lib/postgresql/data"
    assert env["LANG"] == "en_US.utf8"
    assert str(PGBIN) in env["PATH"].split(":")
    assert config["Labels"]["restoredrill.image"] == "host-binaries"
    # postgres:<major> is ours, unless a postgres:<major> from elsewhere was there first (left alone).
    assert docker("image", "inspect", OFFICIAL_NAME, check=False).returncode == 0

    who = containers.run_to_end(image, "id").stdout.strip()
    assert who == f"uid={CONTAINER_UID}(postgres) gid={CONTAINER_UID}(postgres) groups={CONTAINER_UID}(postgres)"


def test_user_password_db_and_scram_from_the_host_and_ready_without_a_hang(containers: Containers) -> None:
    password = secret()
    container = containers.start(env={"POSTGRES_USER": "alice", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "shop"})
    ready_s = container.wait_ready("alice", password, "shop")
    print(f"\nstart-to-ready (docker run -> first query over TCP): {ready_s:.2f} s")
    assert ready_s < READY_LIMIT_S, f"ready after {ready_s:.2f} s"

    ports = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Ports}}", container.name).stdout)
    assert {binding["HostIp"] for binding in ports["5432/tcp"]} == {"127.0.0.1"}

    with container.connect("alice", password, "shop") as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("alice", "shop")
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'").fetchone()
        assert stored is not None
        assert stored[0].startswith("SCRAM-SHA-256$")
        rules = conn.execute(
            "SELECT type, database, user_name, auth_method FROM pg_hba_file_rules WHERE address = 'all'"
        ).fetchall()
        assert rules == [("host", ["all"], ["all"], "scram-sha-256")]
        assert conn.execute("SHOW listen_addresses").fetchone() == ("*",)
        # The official image's default: LANG=en_US.utf8 decides the cluster's locale.
        assert conn.execute("SHOW lc_collate").fetchone() == ("en_US.utf8",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        container.connect("alice", "not-" + password, "shop")

    # postgres itself is PID 1 (it gets docker stop's signal), as uid 999.
    assert container.exec("cat", "/proc/1/cmdline").stdout.split("\0")[0] == "postgres"
    status = container.exec("cat", "/proc/1/status").stdout
    assert f"Uid:\t{CONTAINER_UID}\t" in status
    # What testcontainers' PostgresContainer waits with, verbatim.
    probe = container.exec("sh", "-c", "psql --username alice --dbname shop --host 127.0.0.1 -c 'select version()'")
    assert probe.returncode == 0, probe.stderr
    assert f"PostgreSQL {MAJOR}." in probe.stdout


def test_initdb_args_give_checksums_and_en_us_collation(containers: Containers) -> None:
    password = secret()
    container = containers.start(
        env={"POSTGRES_PASSWORD": password, "POSTGRES_INITDB_ARGS": "--data-checksums --locale=en_US.UTF-8"}
    )
    container.wait_ready("postgres", password, "postgres")
    with container.connect("postgres", password, "postgres") as conn:
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
        assert conn.execute("SHOW lc_collate").fetchone() == ("en_US.UTF-8",)
        assert conn.execute("SHOW lc_ctype").fetchone() == ("en_US.UTF-8",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        # The collation really is glibc's en_US, not C: case-insensitive first, punctuation ignored.
        assert conn.execute("""SELECT 'a' < 'B', 'a' < 'B' COLLATE "C", upper('é')""").fetchone() == (
            True,
            False,
            "É",
        )
        ordered = conn.execute("SELECT string_agg(x, ' ' ORDER BY x) FROM unnest(ARRAY['b', 'B', 'a', 'A', '_c']) x")
        assert ordered.fetchone() == ("a A b B _c",)
        # initdb imported the libc locales as collations (`locale -a`), as on the official image.
        names = conn.execute("SELECT array_agg(collname ORDER BY collname) FROM pg_collation WHERE collprovider = 'c'")
        assert {"en_US", "en_US.utf8", "C.utf8"} <= set(names.fetchone()[0])
        assert conn.execute("""SELECT 'a' < 'B' COLLATE "en_US" """).fetchone() == (True,)


def test_initdb_d_scripts_run_once_on_an_empty_data_dir(containers: Containers) -> None:
    scripts = traversable_tempdir("rd-initdb-d-")
    try:
        scripts.chmod(0o755)  # the container reads it as uid 999
        (scripts / "01-schema.sql").write_text(
            "CREATE TABLE marker (source text);\nINSERT INTO marker VALUES ('sql');\n"
        )
        # A non-executable .sh is sourced and may use the entrypoint's helper, as with the official image.
        (scripts / "02-sourced.sh").write_text("docker_process_sql -c \"INSERT INTO marker VALUES ('sourced-sh')\"\n")
        executable = scripts / "03-executable.sh"
        executable.write_text(
            "#!/bin/sh\nset -e\n"
            'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" '
            "-c \"INSERT INTO marker VALUES ('executable-sh')\"\n"
        )
        executable.chmod(0o755)
        (scripts / "04-data.sql.gz").write_bytes(gzip.compress(b"INSERT INTO marker VALUES ('sql-gz');\n"))
        for item in scripts.iterdir():
            item.chmod(item.stat().st_mode | 0o444)

        password = secret()
        container = containers.start(
            env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "appdb"},
            volumes={scripts: "/docker-entrypoint-initdb.d:ro"},
        )
        container.wait_ready("app", password, "appdb")
        query = "SELECT string_agg(source, ',' ORDER BY source) FROM marker"
        with container.connect("app", password, "appdb") as conn:
            assert conn.execute(query).fetchone() == ("executable-sh,sourced-sh,sql,sql-gz",)

        # A restart finds a cluster in PGDATA: no initdb, no scripts again.
        docker("restart", container.name, timeout=60)
        container.refresh_port()
        container.started = time.monotonic()
        container.wait_ready("app", password, "appdb")
        with container.connect("app", password, "appdb") as conn:
            assert conn.execute(query).fetchone() == ("executable-sh,sourced-sh,sql,sql-gz",)
        assert "Skipping initialization" in container.logs()
    finally:
        shutil.rmtree(scripts, ignore_errors=True)


def _chown_for_container(path: Path, containers: Containers) -> None:
    """Give a host directory to uid/gid 999, as restoredrill does with a restored data directory."""
    if os.geteuid() == 0:
        os.chown(path, CONTAINER_UID, CONTAINER_UID)
        for folder, dirs, files in os.walk(path):
            for entry in dirs + files:
                os.lchown(os.path.join(folder, entry), CONTAINER_UID, CONTAINER_UID)
    else:  # an unprivileged test user cannot chown: the image's root can
        containers.run_to_end(
            "--user", "0", "--entrypoint", "chown", "--volume", f"{path}:/target", containers.image,
            "-R", f"{CONTAINER_UID}:{CONTAINER_UID}", "/target",
        )  # fmt: skip


def _remove_tree(path: Path, containers: Containers) -> None:
    if os.geteuid() != 0 and path.exists():  # files of uid 999: removed by the image's root
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            containers.run_to_end(
                "--user", "0", "--entrypoint", "sh", "--volume", f"{path}:/target", containers.image,
                "-c", "rm -rf /target/* /target/.[!.]*",
            )  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)


def test_a_data_dir_made_on_the_host_is_started_not_reinitialised(containers: Containers) -> None:
    assert containers.image  # no engine: fail (CI) or skip here, before any host work
    root = traversable_tempdir("rd-pgimage-data-")
    data = root / "data"
    try:
        # A cluster made by the host's own initdb, as a restore on the host leaves one (run as the `postgres`
        # OS user when we are root: initdb refuses root).
        run_as = proc.RunAs.for_server()
        password = secret()
        data.mkdir(mode=0o700)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as:
            run_as.own(data)
            run_as.own(pwfile)
        made = proc.run(
            [PGBIN / "initdb", "-D", data, "--username=restorer", f"--pwfile={pwfile}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--locale=C.UTF-8", "--no-sync"],
            timeout=120, run_as=run_as,
        )  # fmt: skip
        assert made.returncode == 0, made.tail()
        pwfile.unlink()
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all all scram-sha-256\n")
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write("cluster_name = 'restored-on-host'\n")
        control = proc.run([PGBIN / "pg_controldata", data], timeout=30, run_as=run_as).stdout
        system_id = next(line.split(":")[1].strip() for line in control.splitlines() if "system identifier" in line)
        _chown_for_container(data, containers)

        # The entrypoint's variables must be ignored for an existing cluster; -c options reach postgres
        # (the host cluster's listen_addresses is localhost, so the caller opens it with -c).
        container = containers.start(
            "-c", "listen_addresses=*", "-cwork_mem=7MB",
            env={"POSTGRES_USER": "intruder", "POSTGRES_PASSWORD": secret(), "POSTGRES_DB": "intruderdb"},
            volumes={data: "/var/lib/postgresql/data"},
        )  # fmt: skip
        container.wait_ready("restorer", password, "postgres")
        with container.connect("restorer", password, "postgres") as conn:
            row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
            assert row == (system_id,)
            assert conn.execute("SHOW cluster_name").fetchone() == ("restored-on-host",)
            assert conn.execute("SHOW work_mem").fetchone() == ("7MB",)
            assert conn.execute("SHOW lc_collate").fetchone() == ("C.UTF-8",)
            roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'").fetchone()
            dbs = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'intruderdb'").fetchone()
            assert (roles, dbs) == ((0,), (0,))
        logs = container.logs()
        assert "Skipping initialization" in logs
        assert "initdb" not in logs
        containers.remove(container)
    finally:
        _remove_tree(root, containers)


@pytest.mark.parametrize("how", ["docker stop (SIGINT) with a client in a transaction", "SIGTERM, no client"])
def test_stop_signals_shut_the_server_down_fast_and_clean(containers: Containers, how: str) -> None:
    password = secret()
    container = containers.start(env={"POSTGRES_PASSWORD": password})
    container.wait_ready("postgres", password, "postgres")
    client = None
    if how.startswith("docker stop"):
        # An open transaction: a "smart" shutdown (plain SIGTERM) would wait for it forever.
        client = container.connect("postgres", password, "postgres")
        client.execute("SELECT 1")
        started = time.monotonic()
        docker("stop", container.name, timeout=30)
        expected = "received fast shutdown request"
    else:
        started = time.monotonic()
        docker("kill", "--signal", "TERM", container.name)
        while container.state()["Running"] and time.monotonic() - started < 30:
            time.sleep(0.05)
        expected = "received smart shutdown request"
    took = time.monotonic() - started
    if client is not None:
        with contextlib.suppress(psycopg.Error):
            client.close()
    print(f"\n{how}: stopped in {took:.2f} s")
    state = container.state()
    logs = container.logs()
    assert not state["Running"], logs[-2000:]
    assert took < STOP_LIMIT_S, f"stopping took {took:.1f} s:\n{logs[-2000:]}"
    assert state["ExitCode"] == 0, logs[-2000:]
    assert expected in logs
    assert logs.rstrip().endswith("database system is shut down"), logs[-2000:]


def test_testcontainers_postgres_container_becomes_ready(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    image = engine.image
    # No registry: Ryuk's image cannot be pulled; this VM has /.dockerenv, so the mode must be explicit.
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 4.15 moved it to testcontainers.community
            from testcontainers.postgres import PostgresContainer
        from testcontainers.core import config as tc_config
    except ImportError as exc:
        unavailable(f"testcontainers is not installed (pip install 'testcontainers[postgres]'): {exc}")
    # The configuration is read once at import: set it on the object too (undone after the test).
    settings = tc_config.testcontainers_config
    monkeypatch.setattr(settings, "ryuk_disabled", True)
    if hasattr(tc_config, "ConnectionMode"):
        monkeypatch.setattr(settings, "connection_mode_override", tc_config.ConnectionMode.docker_host)
    monkeypatch.setattr(settings, "max_tries", 300)  # a dead container fails within 30 s, not 120 s
    monkeypatch.setattr(settings, "sleep_time", 0.1)  # readiness polled every 0.1 s instead of 1 s

    name = unique_name("tc")
    password = secret()
    postgres = PostgresContainer(image, username="tc_user", password=password, dbname="tc_db", driver=None)
    postgres.with_name(name).with_kwargs(labels={LABEL_KEY: LABEL_VALUE})
    postgres.ports["5432"] = ("127.0.0.1",)  # publish on loopback only, host port chosen by the engine
    started = time.monotonic()
    try:
        postgres.start()
        ready_s = time.monotonic() - started
        print(f"\ntestcontainers PostgresContainer start-to-ready: {ready_s:.2f} s")
        url = postgres.get_connection_url()  # driver=None above: a plain postgresql:// URL
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT current_user, current_database(), current_setting('server_version_num')")
            user, database, version = row.fetchone() or ("", "", "0")
        assert (user, database) == ("tc_user", "tc_db")
        assert int(version) // 10000 == MAJOR
        assert ready_s < 2 * READY_LIMIT_S, f"ready after {ready_s:.2f} s"
    finally:
        with contextlib.suppress(Exception):
            postgres.stop()
        docker("rm", "--force", "--volumes", name, check=False)
