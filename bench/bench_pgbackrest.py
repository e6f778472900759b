#!/usr/bin/env python3
"""Benchmark: the pgBackRest drill (`restoredrill run`) against the bare manual restore of the same set.

A "drill": `restoredrill run` on a drills.toml naming the repository, recovery target `latest` only
           (wall time, exit code, the evidence record's stages, rto_s and check durations).
B "bare":  what a human does by hand, as the postgres OS user: `pgbackrest restore --archive-mode=off
           --type=default` into a new empty directory, a postgresql.auto.conf override (free port, own
           socket folder, loopback only), `pg_ctl start -w`, then `SELECT pg_is_in_recovery()` until false.
           Timed from the restore start until promoted; stop and removal are reported, not timed.
B+ "tuned": the same, with every setting the drill's RecoveredInstance writes (fsync off, shared_buffers,
           autovacuum off, ...) and the drill's restore parallelism (`--process-max` = the drill's jobs, the
           cores; pgBackRest's default is 1): the drill's tuning is then on both sides and only its overhead
           remains.
           The whole-drill target is judged against the faster of B and B+.
C "corrupt": one byte flipped in the middle of the largest *.lz4 file of the full set, in a COPY of the
           repository; the drill must exit 1, name the corruption, and do it in seconds (<= 60 s).

Setup (not timed): the project's demo builder (`make_pgbackrest_repo`) with `pgbench -i -s SCALE` loaded
before the first backup: a source archiving WAL into a posix repository, full/diff/incr sets, heartbeat.
Everything lives in a private /tmp/benchpg-XXXX folder and is removed at the end, also on Ctrl-C.

    python bench/bench_pgbackrest.py [--scale 70] [--rounds 1]

Exit code: 0 every target met, 1 a target missed, 2 the benchmark itself failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_logical import (
    OUT_DIR,
    SERVER_USER,
    BareRun,
    BenchError,
    as_server_user,
    checkout_state,
    chown_server_user,
    console_script,
    make_workdir,
    pg,
    pg_ctl_stop,
    read_evidence,
    run_logged,
    stop_process,
    tail,
    terminate,
)

from restoredrill.demo_pgbackrest import STANZA, make_pgbackrest_repo
from restoredrill.targets.local import LocalInstance, free_port
from restoredrill.targets.recovered import OVERRIDES
from restoredrill.waiting import wait_until

DATABASE = "bench"
TARGET_RATIO = 1.10
CORRUPT_LIMIT_S = 60.0
POLL_S = 0.1
PROMOTE_TIMEOUT_S = 600
PGBENCH_ROWS_PER_SCALE = 100_000
# B's override: what the copy needs to start at all (port, socket folder) and safely (loopback only);
# `--archive-mode=off` on the restore already wrote archive_mode = 'off'. B+ ("tuned") adds every
# setting the drill writes too (fsync off, shared_buffers, autovacuum off, ...).
MINIMAL_KEYS = ("listen_addresses",)
BARE_STYLES = ("minimal", "tuned")
REPORT_LINE = re.compile(r"^report: .*, ([0-9.]+) s\)$", re.M)
REWRITTEN_KEYS = ("repo1-path", "lock-path", "log-path", "spool-path")


@dataclass
class Repository:
    folder: Path
    config: Path

    @property
    def repo(self) -> Path:
        return self.folder / "repo"

    def full_set(self) -> Path:
        fulls = sorted((self.repo / "backup" / STANZA).glob("*F"))
        if not fulls:
            raise BenchError(f"no full backup set under {self.repo / 'backup' / STANZA}")
        return fulls[0]


@dataclass
class DrillRun:
    wall_s: float
    exit_code: int
    verdict: str | None
    reason: str | None
    rto_s: float | None
    stages: dict[str, Any]
    checks: dict[str, dict[str, Any]]
    overhead_s: float | None  # wall - (rto + checks + cleanup): interpreter, pytest, discovery, verify, report
    report_s: float | None  # the HTML report at the end of the run, as `restoredrill run` prints it


@dataclass
class Round:
    index: int
    order: str
    load_1m: float
    drill: DrillRun
    bare: dict[str, BareRun]  # by style: minimal (B), tuned (B+)

    def ratios(self) -> dict[str, float]:
        """Whole drill and drill RTO (restore + recovery) against each bare variant."""
        found = {}
        for style, b in self.bare.items():
            found[f"whole/{style}"] = round(self.drill.wall_s / b.wall_s, 3)
            found[f"rto/{style}"] = round((self.drill.rto_s or 0.0) / b.wall_s, 3)
        return found


@dataclass
class CorruptRun:
    wall_s: float
    victim: str
    victim_bytes: int
    drill: DrillRun
    problems: list[str] = field(default_factory=list)


# ----- small helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set one variable of this process for the block (the demo source's LocalInstance reads it)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def private_dir(parent: Path, name: str, mode: int = 0o711, server_owned: bool = False) -> Path:
    path = parent / name
    path.mkdir(mode=mode)
    path.chmod(mode)
    if server_owned:
        chown_server_user(path)
    return path


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def pgbackrest_args(config: Path, *args: str) -> list[str]:
    return ["pgbackrest", f"--config={config}", f"--stanza={STANZA}", *args]


# ----- setup: source, repository, drills.toml --------------------------------------------------------------


def build_repository(work: Path, scale: int) -> tuple[Repository, dict[str, Any]]:
    """The project's demo builder, with pgbench data loaded before the first backup; the source is gone after."""
    log = work / "setup.log"
    setup: dict[str, Any] = {}

    def prepare(source: LocalInstance) -> None:
        conn = source.connection
        assert conn is not None
        source.create_database(DATABASE)
        print(f"setup: pgbench -i -s {scale} into {conn.host}:{conn.port}/{DATABASE} ...", flush=True)
        args = pg("pgbench", "-i", "-q", "-s", scale, "-h", conn.host, "-p", conn.port, "-U", conn.user, DATABASE)
        setup["pgbench_init_s"] = round(run_logged(args, log, env={**os.environ, **conn.env()}), 3)

    started = time.monotonic()
    with environment("RESTOREDRILL_WORKDIR", str(work)):  # the source instance lives in our folder too
        demo = make_pgbackrest_repo(
            work / "pgbackrest",
            log=lambda m: print(f"setup: {m}", flush=True),
            pace=1.0,
            tail=3.0,
            database=DATABASE,
            prepare=prepare,
        )
    repository = Repository(demo.folder, demo.config)
    setup["build_s"] = round(time.monotonic() - started, 3)
    setup["full_set"] = repository.full_set().name
    setup["sets"] = sorted(p.name for p in (repository.repo / "backup" / STANZA).glob("*_*"))
    setup["backup_bytes"] = tree_bytes(repository.repo / "backup")
    setup["archive_bytes"] = tree_bytes(repository.repo / "archive")
    return repository, setup


def write_config(root: Path, repository: Repository) -> Path:
    """A drills.toml for one database, recovery target `latest`, reports and workdir under `root`."""
    work = root / "work"
    work.mkdir(exist_ok=True)
    work.chmod(0o711)
    config = root / "drills.toml"
    config.write_text(
        f'reports_dir = "{root / "reports"}"\n'
        "[objectives.pgbackrest]\n"
        'rpo = "1h"\n'
        'rto = "1h"\n'
        "[target]\n"
        'kind = "local"\n'  # like B: a server on this host, never a container
        f'workdir = "{work}"\n'
        f"[databases.{DATABASE}.pgbackrest]\n"
        f'stanza = "{STANZA}"\n'
        f'config = "{repository.config}"\n'
        'recovery_targets = ["latest"]\n'
        f"[databases.{DATABASE}.pgbackrest.marker]\n"
        'interval = "1s"\n'
        'tolerance = "10s"\n'
    )
    return config


# ----- A: the drill ----------------------------------------------------------------------------------------


def run_drill(work: Path, config: Path, label: str) -> DrillRun:
    """`restoredrill run --config` as a subprocess; its wall time and evidence record (any exit code)."""
    log = work / f"drill-{label}.log"
    reports = config.parent / "reports"
    before = set((reports / "evidence").glob("*.json"))
    env = {**os.environ, "RESTOREDRILL_WORKDIR": str(config.parent / "work")}
    os.sync()  # start from a quiet disk: no writeback left over from the previous step
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [console_script("restoredrill"), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
    try:
        proc.wait()
        wall = time.monotonic() - started
    finally:
        stop_process(proc)  # only acts when interrupted: SIGTERM lets the drill remove its instance
    try:
        evidence = read_evidence(reports, before)
    except BenchError as exc:
        raise BenchError(f"{exc}; restoredrill exited {proc.returncode}, output tail:\n{tail(log, 40)}") from None
    return drill_from_evidence(evidence, wall, proc.returncode, log.read_text(errors="replace"))


def report_seconds(output: str) -> float | None:
    """`report: <html> (VERDICT, 1 drill(s), 0.84 s)`, printed by `restoredrill run` after the drills."""
    found = REPORT_LINE.search(output)
    return float(found.group(1)) if found else None


def drill_from_evidence(evidence: dict[str, Any], wall: float, exit_code: int, output: str) -> DrillRun:
    stages = {k: v for k, v in evidence.get("stages", {}).items() if v is not None}
    checks = {
        c["name"]: {"outcome": c.get("outcome"), "duration_s": c.get("duration_s")} for c in evidence.get("checks", [])
    }
    rto = evidence.get("rto_s")
    inside = sum(float(v or 0) for v in (rto, stages.get("checks_s"), stages.get("cleanup_s")))
    return DrillRun(
        wall_s=round(wall, 3),
        exit_code=exit_code,
        verdict=evidence.get("verdict"),
        reason=evidence.get("reason"),
        rto_s=rto,
        stages=stages,
        checks=checks,
        overhead_s=round(wall - inside, 3),
        report_s=report_seconds(output),
    )


def healthy_drill(work: Path, config: Path, index: int) -> DrillRun:
    print(f"round {index}: A (drill) ...", flush=True)
    drill = run_drill(work, config, str(index))
    if drill.exit_code != 0:
        raise BenchError(
            f"restoredrill run exited {drill.exit_code} on the healthy repository ({drill.verdict}: {drill.reason}); "
            f"output tail:\n{tail(work / f'drill-{index}.log', 40)}"
        )
    return drill


# ----- B: the bare manual restore --------------------------------------------------------------------------


def bare_settings(port: int, socket_dir: Path, style: str) -> dict[str, str]:
    keys = OVERRIDES.keys() if style == "tuned" else MINIMAL_KEYS
    return {
        **{k: OVERRIDES[k] for k in keys},
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
    }


def psql(socket_dir: Path, port: int, database: str, query: str) -> subprocess.CompletedProcess[str]:
    """One query through the unix socket as the postgres OS user (peer authentication, as a human would)."""
    args = pg("psql", "-X", "-h", socket_dir, "-p", port, "-U", SERVER_USER, "-d", database, "-Atc", query)
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=socket_dir, **as_server_user())


def wait_promoted(data: Path, socket_dir: Path, port: int, server_log: Path) -> None:
    def promoted() -> bool:
        answer = psql(socket_dir, port, "postgres", "SELECT pg_is_in_recovery()")
        if answer.returncode == 0 and answer.stdout.strip() == "f":
            return True
        if not (data / "postmaster.pid").exists():
            raise BenchError(f"the bare copy's server exited during recovery:\n{tail(server_log)}")
        return False

    wait_until(
        promoted,
        timeout=PROMOTE_TIMEOUT_S,
        interval=POLL_S,
        timed_out=lambda: f"the bare copy was not promoted within {PROMOTE_TIMEOUT_S} s:\n{tail(server_log)}",
        error=BenchError,
    )


def bare_restore(work: Path, repository: Repository, scale: int, index: int, style: str) -> BareRun:
    """pgbackrest restore -> override -> pg_ctl start -w -> promoted, timed; a row count and teardown apart."""
    folder = Path(tempfile.mkdtemp(prefix=f"bare-{index}-{style}-", dir=work))
    folder.chmod(0o711)
    cluster = private_dir(folder, "pg", 0o700, server_owned=True)  # the socket folder too
    data = private_dir(cluster, "data", 0o700, server_owned=True)
    log, server_log = folder / "bare.log", cluster / "server.log"
    server = {"cwd": cluster, **as_server_user()}
    port = free_port()
    steps: dict[str, float] = {}
    try:
        os.sync()
        started = time.monotonic()
        parallel = [f"--process-max={os.cpu_count() or 2}"] if style == "tuned" else []  # as the drill's jobs = 0
        restore = pgbackrest_args(
            repository.config, "restore", f"--pg1-path={data}", "--archive-mode=off", "--type=default", *parallel
        )
        steps["restore_s"] = run_logged(restore, log, **server)
        with (data / "postgresql.auto.conf").open("a") as auto:
            auto.write("\n# bench: the bare copy\n")
            auto.writelines(f"{k} = {v}\n" for k, v in bare_settings(port, cluster, style).items())
        start = pg("pg_ctl", "start", "-D", data, "-l", server_log, "-w", "-t", PROMOTE_TIMEOUT_S)
        steps["pg_ctl_start_s"] = run_logged(start, log, **server)
        waited = time.monotonic()
        wait_promoted(data, cluster, port, server_log)
        wall = time.monotonic() - started
        steps["until_promoted_s"] = time.monotonic() - waited
        answer = psql(cluster, port, DATABASE, "SELECT count(*) FROM pgbench_accounts")  # not timed
        rows = int(answer.stdout.strip()) if answer.returncode == 0 and answer.stdout.strip().isdigit() else -1
        if rows != PGBENCH_ROWS_PER_SCALE * scale:
            raise BenchError(f"the bare copy answered {answer.stdout.strip()!r} {answer.stderr.strip()!r}")
    finally:
        teardown_started = time.monotonic()
        pg_ctl_stop(data)
        shutil.rmtree(folder, ignore_errors=True)
        teardown = time.monotonic() - teardown_started
    return BareRun(round(wall, 3), {k: round(v, 3) for k, v in steps.items()}, rows, round(teardown, 3))


def run_bares(
    work: Path, repository: Repository, scale: int, index: int, styles: tuple[str, ...]
) -> dict[str, BareRun]:
    found = {}
    for style in styles:
        print(f"round {index}: B{'+' if style == 'tuned' else ''} (bare, {style} settings) ...", flush=True)
        found[style] = bare_restore(work, repository, scale, index, style)
    return found


# ----- C: a corrupted copy of the repository ---------------------------------------------------------------


def copy_repository(repository: Repository, into: Path) -> Repository:
    """`cp -a` (ownership kept), then the copy's config points its repo/lock/log/spool paths at the copy."""
    target = into / "pgbackrest"
    subprocess.run(["cp", "-a", str(repository.folder), str(target)], check=True)
    config = target / "pgbackrest.conf"
    old, new = str(repository.folder), str(target)
    lines = []
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in REWRITTEN_KEYS and value.startswith(old):
            line = f"{key}={new}{value[len(old) :]}"
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")  # keeps the copy's owner (postgres) and mode
    leftover = [ln for ln in lines if old + "/" in ln or ln.endswith(old)]
    if leftover:
        raise BenchError(f"the copied pgbackrest.conf still names the healthy repository: {leftover}")
    return Repository(target, config)


def flip_byte(repository: Repository) -> Path:
    files = (repository.full_set() / "pg_data" / "base").rglob("*.lz4")
    victim = max(files, key=lambda p: p.stat().st_size, default=None)
    if victim is None:
        raise BenchError(f"no *.lz4 file under {repository.full_set() / 'pg_data' / 'base'}")
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    return victim


def corrupted_drill(work: Path, repository: Repository) -> CorruptRun:
    root = private_dir(work, "corrupt")
    copy = copy_repository(repository, root)
    victim = flip_byte(copy)
    print(f"C (corrupted set): flipped one byte of {victim.relative_to(copy.repo)} ...", flush=True)
    config = write_config(root, copy)
    drill = run_drill(work, config, "corrupt")
    wall = drill.wall_s  # the `restoredrill run` process alone, as for A
    run = CorruptRun(wall, str(victim.relative_to(copy.repo)), victim.stat().st_size, drill)
    if drill.exit_code != 1:
        run.problems.append(
            f"the drill exited {drill.exit_code} on a corrupted set (expected 1); output tail:\n"
            + tail(work / "drill-corrupt.log", 30)
        )
    if "corrupt" not in (drill.reason or ""):
        run.problems.append(f"the evidence reason does not name the corruption: {drill.reason!r}")
    if wall > CORRUPT_LIMIT_S:
        run.problems.append(f"the corrupted set took {wall:.1f} s to report (> {CORRUPT_LIMIT_S:.0f} s)")
    return run


# ----- where the drill's time goes beyond the bare path (untimed probes) -----------------------------------


def timed(args: list[str], **kwargs: Any) -> float:
    started = time.monotonic()
    subprocess.run(args, capture_output=True, check=False, **kwargs)
    return round(time.monotonic() - started, 3)


def probe_overheads(work: Path, repository: Repository, config: Path) -> dict[str, float]:
    """Steps of the drill that its evidence does not time, each run alone (indicative, not subtracted)."""
    as_server = {"cwd": repository.folder, **as_server_user()}
    archive_id = next((p.name for p in (repository.repo / "archive" / STANZA).glob("15-*")), "15-1")
    collect = [console_script("restoredrill"), "run", "--config", str(config), "--collect-only", "-q"]
    repo_ls = pgbackrest_args(repository.config, "repo-ls", "--recurse", "--output=json")
    verify = pgbackrest_args(repository.config, "verify", "--verbose", "--log-level-console=info")
    print("probes: startup + collection, pgbackrest info / repo-ls / verify alone ...", flush=True)
    return {
        "restoredrill_collect_only_s": timed(collect, cwd=work),
        "pgbackrest_info_s": timed(pgbackrest_args(repository.config, "info", "--output=json"), **as_server),
        "pgbackrest_repo_ls_wal_s": timed([*repo_ls, f"archive/{STANZA}/{archive_id}"], **as_server),
        "pgbackrest_verify_s": timed(verify, **as_server),
    }


# ----- the report ------------------------------------------------------------------------------------------


def print_drill(name: str, d: DrillRun) -> None:
    checks = {
        k: f"{v['outcome']}/{v['duration_s'] if v['duration_s'] is not None else 'untimed'}"
        for k, v in d.checks.items()
    }
    print(f"  {name}: wall {d.wall_s:.2f} s, exit {d.exit_code}, verdict {d.verdict}, rto_s {d.rto_s}")
    print(f"           stages {json.dumps(d.stages)}")
    print(
        f"           outside rto+checks+cleanup {d.overhead_s} s (interpreter, pytest, discovery, "
        f"untimed checks such as pgbackrest verify, report {d.report_s} s)"
    )
    print(f"           checks {json.dumps(checks)}")


def print_round(r: Round) -> None:
    print(f"\nround {r.index} ({r.order}, load average before: {r.load_1m}):")
    print_drill("A drill", r.drill)
    for style, b in r.bare.items():
        name = "B+ tuned" if style == "tuned" else "B bare  "
        print(f"  {name}: wall {b.wall_s:.2f} s = {json.dumps(b.steps)}; teardown {b.teardown_s:.2f} s (not timed)")
    print(f"  ratios {json.dumps(r.ratios())}")


def summarize(rounds: list[Round], corrupt: CorruptRun) -> dict[str, Any]:
    # Medians of the per-round ratios: each A and its Bs ran under the same load.
    ratios = {key: round(statistics.median(r.ratios()[key] for r in rounds), 3) for key in rounds[0].ratios()}
    walls = {style: statistics.median(r.bare[style].wall_s for r in rounds) for style in rounds[0].bare}
    whole = max(v for k, v in ratios.items() if k.startswith("whole/"))  # against the faster bare variant
    rto = max(v for k, v in ratios.items() if k.startswith("rto/"))
    missed = []
    if whole > TARGET_RATIO:
        missed.append(f"whole-drill ratio A/B {whole:.3f} > {TARGET_RATIO:.2f} (against the faster of B and B+)")
    if rto > TARGET_RATIO:
        missed.append(
            f"RTO-only ratio (drill rto_s / B) {rto:.3f} > {TARGET_RATIO:.2f} (against the faster of B and B+)"
        )
    missed += corrupt.problems
    return {
        "a_wall_s": statistics.median(r.drill.wall_s for r in rounds),
        "a_rto_s": statistics.median(r.drill.rto_s or 0 for r in rounds),
        "b_wall_s": walls,
        "ratios_median_of_rounds": ratios,
        "corrupt_wall_s": corrupt.wall_s,
        "missed": missed,
    }


def print_summary(rounds: list[Round], corrupt: CorruptRun, probes: dict[str, float], summary: dict[str, Any]) -> None:
    print("\nC corrupted set:")
    print_drill("C drill", corrupt.drill)
    print(f"           reason: {corrupt.drill.reason}")
    header = (
        f"{'round':>6} {'A wall':>7} {'A rto':>6} {'B':>6} {'B+':>6} {'A/B':>6} {'A/B+':>6} {'rto/B':>6} {'rto/B+':>6}"
    )
    print("\n" + header + "  (seconds, ratios)\n" + "-" * len(header))
    for r in rounds:
        q = r.ratios()
        print(
            f"{r.index:>6} {r.drill.wall_s:>7.2f} {r.drill.rto_s or 0:>6.2f} {r.bare['minimal'].wall_s:>6.2f} "
            f"{r.bare['tuned'].wall_s:>6.2f} {q['whole/minimal']:>6.3f} {q['whole/tuned']:>6.3f} "
            f"{q['rto/minimal']:>6.3f} {q['rto/tuned']:>6.3f}"
        )
    s, q = summary, summary["ratios_median_of_rounds"]
    print(
        f"{'median':>6} {s['a_wall_s']:>7.2f} {s['a_rto_s']:>6.2f} {s['b_wall_s']['minimal']:>6.2f} "
        f"{s['b_wall_s']['tuned']:>6.2f} {q['whole/minimal']:>6.3f} {q['whole/tuned']:>6.3f} "
        f"{q['rto/minimal']:>6.3f} {q['rto/tuned']:>6.3f}"
    )
    print(f"corrupted set reported in {corrupt.wall_s:.2f} s (exit {corrupt.drill.exit_code})")
    print(f"probes (each step alone): {json.dumps(probes)}")
    print(
        f"targets: whole drill A/B <= {TARGET_RATIO:.2f} (against the faster of B and B+), "
        f"RTO only <= {TARGET_RATIO:.2f} (same), corrupted set <= {CORRUPT_LIMIT_S:.0f} s"
    )
    for miss in summary["missed"]:
        print(f"TARGET MISSED: {miss}")
    if not summary["missed"]:
        print("all targets met")


def write_json(args: argparse.Namespace, setup: dict[str, Any], results: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    path = OUT_DIR / f"bench_pgbackrest-{now:%Y%m%dT%H%M%SZ}-s{args.scale}.json"
    data = {
        "benchmark": "pgBackRest drill vs bare pgbackrest restore + promote",
        "finished_at": now.isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "checkout": checkout_state(),
        "scale": args.scale,
        "bare_overrides": {style: bare_settings(0, Path("SOCKET"), style) for style in BARE_STYLES},
        "setup": setup,
        "targets": {"ratio_max": TARGET_RATIO, "corrupt_max_s": CORRUPT_LIMIT_S},
        **results,
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


# ----- main ------------------------------------------------------------------------------------------------


def one_round(work: Path, repository: Repository, config: Path, scale: int, index: int) -> Round:
    load = round(os.getloadavg()[0], 2)
    if index % 2 == 1:  # alternate who goes first: neither always finds a warm cache
        drill = healthy_drill(work, config, index)
        bare = run_bares(work, repository, scale, index, BARE_STYLES)
    else:
        bare = run_bares(work, repository, scale, index, BARE_STYLES[::-1])
        drill = healthy_drill(work, config, index)
    order = "A," + ",".join(bare) if index % 2 == 1 else ",".join(bare) + ",A"
    return Round(index, order.replace("minimal", "B").replace("tuned", "B+"), load, drill, bare)


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[Round], CorruptRun, dict[str, float]]:
    with contextlib.ExitStack() as stack:
        work = make_workdir(stack, prefix="benchpg-")
        print(f"work folder {work}", flush=True)
        repository, setup = build_repository(work, args.scale)
        print(f"setup: {json.dumps(setup)}", flush=True)
        config = write_config(private_dir(work, "healthy"), repository)
        rounds = []
        for index in range(1, args.rounds + 1):
            rounds.append(one_round(work, repository, config, args.scale, index))
            print_round(rounds[-1])
        probes = probe_overheads(work, repository, config)
        corrupt = corrupted_drill(work, repository)
        return setup, rounds, corrupt, probes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 is about 1 GB; default 70)")
    parser.add_argument("--rounds", type=int, default=1, help="A/B rounds to run, alternating order (default 1)")
    args = parser.parse_args(argv)
    if args.scale < 1 or args.rounds < 1:
        parser.error("--scale and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, terminate)
    args = parse_args(argv)
    try:
        setup, rounds, corrupt, probes = measure(args)
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
    summary = summarize(rounds, corrupt)
    print_summary(rounds, corrupt, probes, summary)
    results = {
        "rounds": [{**asdict(r), "ratios": r.ratios()} for r in rounds],
        "corrupt": asdict(corrupt),
        "probes": probes,
        "summary": summary,
    }
    print(f"figures written to {write_json(args, setup, results)}")
    return 1 if summary["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
