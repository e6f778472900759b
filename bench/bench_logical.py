#!/usr/bin/env python3
"""Benchmark: the logical drill (`restoredrill run`) against the bare manual restore, side by side.

A "drill": `restoredrill run` on a drills.toml naming one S3 dump (wall time, peak RSS of the drill's
             own Python process, its evidence stages).
B "bare":  what a human does by hand: stream the same object with boto3, initdb + pg_ctl start a
             default-configured cluster, createdb, pg_restore -j 2, one count(*).
B+ "tuned": the same, with every setting the drill's local target writes (fsync off, wal_level minimal,
             shared_buffers, autovacuum off, ...): the drill's tuning is then on both sides and only its
             overhead and its checks remain. The target is judged against the faster of B and B+.

Setup (not timed): moto S3 on a free loopback port, a throwaway source PostgreSQL loaded with
`pgbench -i -s SCALE`, and the project's own backup job (`restoredrill backup logical`).
Everything lives in a private /tmp/bench-XXXX folder and is removed at the end, also on Ctrl-C.

    python bench/bench_logical.py [--scale 70] [--rounds 1] [--drill-args "-p no:hypothesispytest"]

The A/B target is judged on the median of the per-round ratios (each pair ran under the same load).

Exit code: 0 every target met, 1 a target missed, 2 the benchmark itself failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pwd
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psutil
import psycopg

import restoredrill
from restoredrill.targets.local import RESTORE_SETTINGS, LocalInstance, free_port
from restoredrill.waiting import wait_until

BINDIR = Path("/usr/lib/postgresql/15/bin")
BUCKET = "bench-backups"
PREFIX = "postgres/logical/"
DATABASE = "bench"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
SERVER_USER = "postgres"
JOBS = 2
RSS_POLL_S = 0.05
TARGET_RATIO = 1.10
TARGET_RSS_MB = 200.0
OUT_DIR = Path(__file__).resolve().parent / "out"
MB = 1024 * 1024


class BenchError(Exception):
    """The benchmark could not measure (a step failed); not a missed target."""


@dataclass
class DrillRun:
    wall_s: float
    exit_code: int
    peak_rss_mb: float
    ru_maxrss_mb: float
    rss_samples: int
    rto_s: float | None = None
    overhead_s: float | None = None  # wall - (rto + checks + cleanup): interpreter, pytest, discovery, reports
    stages: dict[str, Any] = field(default_factory=dict)
    startup_s: float | None = None
    checks: dict[str, float | None] = field(default_factory=dict)
    verdict: str | None = None


@dataclass
class BareRun:
    wall_s: float
    steps: dict[str, float]
    rows: int
    teardown_s: float


@dataclass
class Round:
    index: int
    order: str
    drill: DrillRun
    bare: BareRun
    load_1m: float  # before the round: other work on the machine skews both walls
    tuned: BareRun | None = None  # B+: the drill's server settings on the bare path too

    @property
    def ratio(self) -> float:
        """Against the faster bare path: the drill must not win by a tuning a human could copy."""
        return self.drill.wall_s / min(b.wall_s for b in (self.bare, self.tuned) if b is not None)


# ----- small helpers ---------------------------------------------------------------------------------------


def terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly like Ctrl-C


def console_script(name: str) -> str:
    """The real console script next to this interpreter (skips pyenv's bash shims), else PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"{name} is not installed (pip install -e '.[test]')")
    return found


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def pg(tool: str, *args: object) -> list[str]:
    """A PostgreSQL 15 command line; every argument as a string."""
    return [str(BINDIR / tool), *map(str, args)]


def run_logged(args: list[str], log: Path, **kwargs: Any) -> float:
    """Run a step to completion with its output appended to `log`; its duration, or BenchError."""
    what = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(args[:3]))
    started = time.monotonic()
    with log.open("ab") as out:
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if result.returncode != 0:
        raise BenchError(f"{what} exited {result.returncode}:\n{tail(log)}")
    return time.monotonic() - started


def timed_run(args: list[str], what: str, **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a command to completion with its output captured; (result, wall seconds), or BenchError."""
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise BenchError(f"{what} exited {result.returncode}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    return result, wall


def guarded(measure: Any, args: argparse.Namespace) -> tuple[Any, int | None]:
    """measure(args), or the exit code of a benchmark that failed (2) or was interrupted (130)."""
    try:
        return measure(args), None
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return None, 2
    except KeyboardInterrupt:
        print("benchmark interrupted; everything it started was stopped and removed", file=sys.stderr)
        return None, 130


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """SIGTERM the process (it has its own session), wait, then SIGKILL its group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def make_workdir(stack: contextlib.ExitStack, prefix: str = "bench-") -> Path:
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=tempfile.gettempdir()))
    work.chmod(0o711)  # the postgres OS user must traverse it to reach its data directories and repositories
    stack.callback(shutil.rmtree, work, ignore_errors=True)
    stack.callback(kill_strays, work)  # runs first (LIFO)
    return work


def kill_strays(work: Path) -> None:
    """Safety net: SIGKILL any process still running inside our folder (a server whose stop was interrupted)."""
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd")
        if cwd and Path(cwd).is_relative_to(work):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def as_server_user() -> dict[str, Any]:
    """subprocess arguments that drop from root to the PostgreSQL OS user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(SERVER_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def chown_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# ----- setup: moto, source database, backup ----------------------------------------------------------------


def wait_http(port: int, timeout_s: float = 30) -> None:
    def answers() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    wait_until(
        answers,
        timeout=timeout_s,
        interval=0.1,
        timed_out=lambda: f"moto_server did not answer on port {port} within {timeout_s:.0f} s",
        error=BenchError,
    )


def start_moto(stack: contextlib.ExitStack, work: Path) -> str:
    port = free_port()
    log = work / "moto.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [console_script("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.callback(stop_process, proc, 10)
    wait_http(port)
    endpoint = f"http://127.0.0.1:{port}"
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    return endpoint


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session(region_name=AWS_ENV["AWS_DEFAULT_REGION"]).client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def backup_existing(work: Path, endpoint: str, dsn: str) -> dict[str, float]:
    """--source-dsn: the project's backup job on a database already loaded (pgbench -i -s SCALE takes long
    at scale 700 on 2 cores; load it once, bench it many times)."""
    destination = f"s3://{BUCKET}/{PREFIX}"
    print(f"setup: restoredrill backup logical of the given source -> {destination} ...", flush=True)
    backup = [console_script("restoredrill"), "backup", "logical", "--dbname", dsn, "--to", destination]
    backup_s = run_logged(
        [*backup, "--endpoint-url", endpoint, "--sse", "AES256"], work / "setup.log", env={**os.environ, **AWS_ENV}
    )
    return {"backup_s": round(backup_s, 3)}


def make_backup(work: Path, endpoint: str, scale: int, source_dsn: str | None = None) -> dict[str, float]:
    """pgbench -i -s SCALE into a throwaway source, then the project's backup job to S3; the source is gone after."""
    if source_dsn:
        return backup_existing(work, endpoint, source_dsn)
    log = work / "setup.log"
    env = {**os.environ, **AWS_ENV}
    with LocalInstance(BINDIR, run_id="bench", base=work, label="bench-source") as src:
        conn = src.connection
        assert conn is not None
        src.create_database(DATABASE)
        print(f"setup: pgbench -i -s {scale} into {conn.host}:{conn.port}/{DATABASE} ...", flush=True)
        libpq = ["-h", conn.host, "-p", conn.port, "-U", conn.user]
        load_s = run_logged(pg("pgbench", "-i", "-q", "-s", scale, *libpq, DATABASE), log, env={**env, **conn.env()})
        dsn = psycopg.conninfo.make_conninfo(conn.conninfo(DATABASE), password=conn.password)
        destination = f"s3://{BUCKET}/{PREFIX}"
        print(f"setup: restoredrill backup logical -> {destination} ...", flush=True)
        backup = [console_script("restoredrill"), "backup", "logical", "--dbname", dsn, "--to", destination]
        backup_s = run_logged([*backup, "--endpoint-url", endpoint, "--sse", "AES256"], log, env=env)
    return {"pgbench_init_s": round(load_s, 3), "backup_s": round(backup_s, 3)}


def newest_dump(endpoint: str) -> tuple[str, int]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
    dumps = sorted(
        (o["Key"], int(o["Size"])) for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".dump")
    )
    if not dumps:
        raise BenchError(f"the backup job left no dump under s3://{BUCKET}/{PREFIX}")
    return dumps[-1]


def write_config(work: Path, endpoint: str) -> Path:
    config = work / "drills.toml"
    config.write_text(
        f'reports_dir = "{work / "reports"}"\n'
        "[objectives.logical]\n"
        'rpo = "26h"\n'
        'rto = "1h"\n'
        "[target]\n"
        f"jobs = {JOBS}\n"
        f"[databases.{DATABASE}.logical]\n"
        f'source = "s3://{BUCKET}/{PREFIX}"\n'
        f'endpoint_url = "{endpoint}"\n'
        f'region = "{AWS_ENV["AWS_DEFAULT_REGION"]}"\n'
    )
    return config


# ----- A: the drill ----------------------------------------------------------------------------------------


class RssPoller(threading.Thread):
    """Samples the RSS of one process (not its children) every RSS_POLL_S until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
                self.samples += 1
            self.done.wait(RSS_POLL_S)


def wait_with_rusage(proc: subprocess.Popen[bytes]) -> int:
    """Reap the child with wait4; ru_maxrss (KiB) covers it and the children IT reaped (pg_restore, ...)."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return int(usage.ru_maxrss)


def read_evidence(reports: Path, before: set[Path]) -> dict[str, Any]:
    new = sorted(set((reports / "evidence").glob("*.json")) - before)
    if len(new) != 1:
        raise BenchError(f"expected one new evidence file in {reports / 'evidence'}, found {len(new)}")
    return dict(json.loads(new[0].read_text()))


def run_drill(work: Path, config: Path, index: int, extra: list[str]) -> DrillRun:
    print(f"round {index}: A (drill) ...", flush=True)
    log = work / f"drill-{index}.log"
    reports = work / "reports"
    before = set((reports / "evidence").glob("*.json"))
    env = {**os.environ, **AWS_ENV, "RESTOREDRILL_WORKDIR": str(work)}
    os.sync()  # start from a quiet disk: no writeback left over from the previous step
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [console_script("restoredrill"), "run", "--config", str(config), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
    poller = RssPoller(proc.pid)
    poller.start()
    try:
        maxrss_kib = wait_with_rusage(proc)
        wall = time.monotonic() - started
    finally:
        poller.done.set()
        stop_process(proc)  # only acts when interrupted: SIGTERM lets the drill remove its instance
    poller.join()
    if proc.returncode != 0:
        raise BenchError(f"restoredrill run exited {proc.returncode}; output tail:\n{tail(log, 40)}")
    evidence = read_evidence(reports, before)
    stages = evidence.get("stages", {})
    inside = sum(float(v or 0) for v in (evidence.get("rto_s"), stages.get("checks_s"), stages.get("cleanup_s")))
    return DrillRun(
        wall_s=round(wall, 3),
        exit_code=proc.returncode,
        peak_rss_mb=round(poller.peak / MB, 1),
        ru_maxrss_mb=round(maxrss_kib / 1024, 1),
        rss_samples=poller.samples,
        rto_s=evidence.get("rto_s"),
        overhead_s=round(wall - inside, 3),
        stages=stages,
        startup_s=evidence.get("target_info", {}).get("startup_s"),
        checks={c["name"]: c.get("duration_s") for c in evidence.get("checks", [])},
        verdict=evidence.get("verdict"),
    )


# ----- B: the bare manual restore --------------------------------------------------------------------------


def download(endpoint: str, key: str, dest: Path) -> int:
    body = s3_client(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"]
    with dest.open("wb") as out:
        shutil.copyfileobj(body, out, MB)
    return dest.stat().st_size


def pg_ctl_stop(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        stop = pg("pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", 30)
        subprocess.run(stop, capture_output=True, check=False, cwd=data.parent, **as_server_user())


def bare_restore(work: Path, endpoint: str, key: str, scale: int, index: int, tuned: bool = False) -> BareRun:
    """Download -> initdb -> pg_ctl start -> createdb -> pg_restore -> count(*), all timed; teardown apart.
    `tuned`: the drill's server settings written into postgresql.auto.conf before the start (B+)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bare-{index}-{'tuned-' if tuned else ''}", dir=work))
    folder.chmod(0o711)
    cluster = folder / "pg"  # postgres-owned; the dump and the log stay root's
    cluster.mkdir(mode=0o700)
    chown_server_user(cluster)
    data, log, dump = cluster / "data", folder / "bare.log", folder / "backup.dump"
    port = free_port()
    libpq = ["-h", "127.0.0.1", "-p", port, "-U", SERVER_USER]
    server = {"cwd": cluster, **as_server_user()}
    steps: dict[str, float] = {}
    try:
        os.sync()
        started = time.monotonic()
        download(endpoint, key, dump)
        steps["download_s"] = time.monotonic() - started
        initdb = pg("initdb", "-D", data, "-U", SERVER_USER, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8")
        steps["initdb_s"] = run_logged(initdb, log, **server)
        if tuned:  # appended to the file initdb made: it stays the server user's
            with (data / "postgresql.auto.conf").open("a") as auto:
                auto.writelines(f"{k} = {v}\n" for k, v in RESTORE_SETTINGS.items())
        options = f"-p {port} -k {cluster}"  # default postgresql.conf (B); only where to listen is given
        start = pg("pg_ctl", "start", "-D", data, "-l", cluster / "server.log", "-w", "-o", options)
        steps["start_s"] = run_logged(start, log, **server)
        steps["createdb_s"] = run_logged(pg("createdb", *libpq, DATABASE), log)
        restore = pg("pg_restore", "-j", JOBS, "--no-owner", "--no-acl", *libpq, "-d", DATABASE, dump)
        steps["pg_restore_s"] = run_logged(restore, log)
        asked = time.monotonic()
        query = pg("psql", *libpq, "-d", DATABASE, "-Atc", "SELECT count(*) FROM pgbench_accounts")
        answer = subprocess.run(query, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        steps["query_s"] = time.monotonic() - asked
        rows = int(answer.stdout.strip() or -1) if answer.returncode == 0 else -1
        if rows != 100_000 * scale:
            raise BenchError(f"the bare restore answered {answer.stdout.strip()!r} {answer.stderr.strip()!r}")
    finally:
        teardown_started = time.monotonic()
        pg_ctl_stop(data)
        shutil.rmtree(folder, ignore_errors=True)
        teardown = time.monotonic() - teardown_started
    return BareRun(round(wall, 3), {k: round(v, 3) for k, v in steps.items()}, rows, round(teardown, 3))


def run_bare(work: Path, endpoint: str, key: str, scale: int, index: int, tuned: bool = False) -> BareRun:
    print(f"round {index}: B{'+ (bare, tuned)' if tuned else ' (bare)'} ...", flush=True)
    return bare_restore(work, endpoint, key, scale, index, tuned)


# ----- the report ------------------------------------------------------------------------------------------


def print_round(r: Round) -> None:
    d, b = r.drill, r.bare
    print(f"\nround {r.index} ({r.order}, load average before: {r.load_1m}):")
    print(f"  A drill: wall {d.wall_s:.2f} s, rto_s {d.rto_s}, instance startup_s {d.startup_s}, verdict {d.verdict}")
    print(f"           outside rto+checks+cleanup {d.overhead_s} s (interpreter, pytest, discovery, reports)")
    print(f"           stages {json.dumps(d.stages)}")
    print(f"           checks {json.dumps(d.checks)}")
    print(
        f"           peak RSS {d.peak_rss_mb:.1f} MB (psutil, {d.rss_samples} samples), "
        f"wait4 ru_maxrss {d.ru_maxrss_mb:.1f} MB (incl. reaped children)"
    )
    print(f"  B bare:  wall {b.wall_s:.2f} s = {json.dumps(b.steps)}; teardown {b.teardown_s:.2f} s (not timed)")
    if (t := r.tuned) is not None:
        print(f"  B+ tuned: wall {t.wall_s:.2f} s = {json.dumps(t.steps)}; teardown {t.teardown_s:.2f} s (not timed)")


def summarize(rounds: list[Round]) -> dict[str, Any]:
    a = statistics.median(r.drill.wall_s for r in rounds)
    b = statistics.median(r.bare.wall_s for r in rounds)
    tuned = [r.tuned.wall_s for r in rounds if r.tuned is not None]
    rss = max(r.drill.peak_rss_mb for r in rounds)
    ratio = statistics.median(r.ratio for r in rounds)  # of the pairs: each A and B ran under the same load
    missed = []
    if ratio > TARGET_RATIO:
        missed.append(f"ratio A/B (median of rounds) {ratio:.3f} > {TARGET_RATIO:.2f}")
    if rss >= TARGET_RSS_MB:
        missed.append(f"peak RSS {rss:.1f} MB >= {TARGET_RSS_MB:.0f} MB")
    return {
        "a_wall_s": a,
        "b_wall_s": b,
        "b_tuned_wall_s": statistics.median(tuned) if tuned else None,
        "ratio_median_of_rounds": round(ratio, 3),
        "peak_rss_mb": rss,
        "missed": missed,
    }


def _wall_cell(wall_s: float | None) -> str:
    """B+'s column: '-' for a round run without it."""
    return f"{wall_s:>10.2f}" if wall_s is not None else f"{'-':>10}"


def print_table(rounds: list[Round], summary: dict[str, Any]) -> None:
    header = f"{'round':>6} {'A wall s':>9} {'B wall s':>9} {'B+ wall s':>10} {'A/min(B,B+)':>12} {'A peak RSS MB':>14}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rounds:
        walls = f"{r.drill.wall_s:>9.2f} {r.bare.wall_s:>9.2f} {_wall_cell(r.tuned.wall_s if r.tuned else None)}"
        print(f"{r.index:>6} {walls} {r.ratio:>12.3f} {r.drill.peak_rss_mb:>14.1f}")
    a, b, ratio, rss = (summary[k] for k in ("a_wall_s", "b_wall_s", "ratio_median_of_rounds", "peak_rss_mb"))
    tuned = _wall_cell(summary["b_tuned_wall_s"])
    print(f"{'median':>6} {a:>9.2f} {b:>9.2f} {tuned} {ratio:>12.3f} {rss:>14.1f} (max)")
    print(f"targets: ratio <= {TARGET_RATIO:.2f} (against the faster of B and B+), peak RSS < {TARGET_RSS_MB:.0f} MB")
    for miss in summary["missed"]:
        print(f"TARGET MISSED: {miss}")
    if not summary["missed"]:
        print("all targets met")


def checkout_state() -> dict[str, str]:
    """The commit measured, and whether the drill's code differed from it (read-only git calls)."""
    root = Path(__file__).resolve().parents[1]
    git = ["git", "--no-optional-locks", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", "src", "drills", "fixtures", "conftest.py"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"commit": head, "uncommitted_drill_code": changed, "restoredrill_imported_from": restoredrill.__path__[0]}


def write_json(args: argparse.Namespace, setup: dict[str, Any], rounds: list[Round], summary: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    path = OUT_DIR / f"bench_logical-{now:%Y%m%dT%H%M%SZ}-s{args.scale}.json"
    data = {
        "benchmark": "logical drill vs bare pg_restore",
        "finished_at": now.isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        },
        "checkout": checkout_state(),
        "scale": args.scale,
        "jobs": JOBS,
        "drill_args": args.drill_args,
        "setup": setup,
        "targets": {"ratio_max": TARGET_RATIO, "peak_rss_mb_below": TARGET_RSS_MB},
        "rounds": [
            {
                "index": r.index,
                "order": r.order,
                "load_1m": r.load_1m,
                "ratio": round(r.ratio, 3),
                "drill": asdict(r.drill),
                "bare": asdict(r.bare),
                "bare_tuned": asdict(r.tuned) if r.tuned is not None else None,
            }
            for r in rounds
        ],
        "summary": summary,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


# ----- main ------------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[Round]]:
    with contextlib.ExitStack() as stack:
        work = make_workdir(stack)
        print(f"work folder {work}", flush=True)
        endpoint = start_moto(stack, work)
        setup: dict[str, Any] = make_backup(work, endpoint, args.scale, args.source_dsn)
        key, size = newest_dump(endpoint)
        setup.update({"dump_key": key, "dump_bytes": size})
        print(f"setup: {json.dumps(setup)}", flush=True)
        config = write_config(work, endpoint)
        rounds = []
        for index in range(1, args.rounds + 1):
            load = round(os.getloadavg()[0], 2)
            a_first = index % 2 == 1  # alternate who goes first: neither always finds a warm cache
            if a_first:
                drill = run_drill(work, config, index, shlex.split(args.drill_args))
                bare = run_bare(work, endpoint, key, args.scale, index)
                tuned = run_bare(work, endpoint, key, args.scale, index, tuned=True)
            else:
                tuned = run_bare(work, endpoint, key, args.scale, index, tuned=True)
                bare = run_bare(work, endpoint, key, args.scale, index)
                drill = run_drill(work, config, index, shlex.split(args.drill_args))
            rounds.append(Round(index, "A,B,B+" if a_first else "B+,B,A", drill, bare, load, tuned))
            print_round(rounds[-1])
        return setup, rounds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 is about 1 GB; default 70)")
    parser.add_argument("--rounds", type=int, default=1, help="A/B pairs to run, alternating order (default 1)")
    parser.add_argument(
        "--drill-args",
        default="",
        help="extra arguments for `restoredrill run` (passed on to pytest), for what-if runs; default none",
    )
    parser.add_argument(
        "--source-dsn",
        default=None,
        help="back up this database (named bench, loaded with pgbench -i -s SCALE) instead of loading one",
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.rounds < 1:
        parser.error("--scale and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, terminate)
    args = parse_args(argv)
    try:
        setup, rounds = measure(args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark interrupted; everything it started was stopped and removed", file=sys.stderr)
        return 130
    except Exception as exc:  # cleanup has run (ExitStack); a missed target is exit 1, this is not
        traceback.print_exc()
        interrupted = isinstance(exc.__context__, KeyboardInterrupt)
        print(f"benchmark {'interrupted' if interrupted else 'crashed'}; its folder was removed", file=sys.stderr)
        return 130 if interrupted else 2
    summary = summarize(rounds)
    print_table(rounds, summary)
    print(f"figures written to {write_json(args, setup, rounds, summary)}")
    return 1 if summary["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
