#!/usr/bin/env python3
"""Benchmark: restoredrill against its peer firedrill (PyPI), side by side in one run, on the same dumps.

Contenders, each on the same S3 object (moto on loopback), in rotating order every round:
  RL  `restoredrill run`, target kind local (initdb on the host)
  RC  `restoredrill run`, target kind container (postgres:MAJOR through Docker)
  FC  `firedrill run s3://BUCKET/KEY --jobs 2` (firedrill restores into a container; it has no local target)
Dumps: a small one (pgbench scale 3, ~1 MB, the size of a public sample database) and pgbench scale 70
(~1 GB database), both written by the project's own backup job. Container is compared with container
(RC/FC) and, since firedrill cannot restore locally, local with firedrill's container (RL/FC).

firedrill is installed from the package registry into its own venv (never into restoredrill's):
    python3 -m venv /tmp/firedrill-venv && /tmp/firedrill-venv/bin/pip install firedrill==0.6.0 boto3
    python bench/bench_peer.py --firedrill /tmp/firedrill-venv/bin/firedrill [--rounds 3] [--scales 3,70]

Targets (issue 14): RL/FC and RC/FC <= 0.8 on the small dump, <= 0.9 on the 1 GB one (medians of the
per-round ratios). Exit 0 met, 1 missed, 2 the benchmark failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_logical as bl
import psycopg

from restoredrill.targets.local import LocalInstance

TARGETS = {"small": 0.8, "large": 0.9}
IMAGE = "postgres:15"


def make_backups(work: Path, endpoint: str, scales: list[int]) -> dict[int, dict[str, Any]]:
    """One source database per scale (named s<scale>), each backed up by the project's job; their S3 keys."""
    log = work / "setup.log"
    env = {**os.environ, **bl.AWS_ENV}
    out: dict[int, dict[str, Any]] = {}
    with LocalInstance(bl.BINDIR, run_id="bench", base=work, label="bench-source") as src:
        conn = src.connection
        assert conn is not None
        for scale in scales:
            name = f"s{scale}"
            src.create_database(name)
            print(f"setup: pgbench -i -s {scale} into {name} ...", flush=True)
            libpq = ["-h", conn.host, "-p", conn.port, "-U", conn.user]
            bl.run_logged(bl.pg("pgbench", "-i", "-q", "-s", scale, *libpq, name), log, env={**env, **conn.env()})
            dsn = psycopg.conninfo.make_conninfo(conn.conninfo(name), password=conn.password)
            prefix = f"s3://{bl.BUCKET}/{bl.PREFIX}"
            backup = [bl.console_script("restoredrill"), "backup", "logical", "--dbname", dsn, "--to", prefix]
            bl.run_logged([*backup, "--endpoint-url", endpoint, "--sse", "AES256"], log, env=env)
            keys = [k for k, _ in list_dumps(endpoint) if f"/{name}-" in k]
            if not keys:
                raise bl.BenchError(f"the backup job left no dump of {name}")
            out[scale] = {"database": name, "key": keys[-1]}
    return out


def list_dumps(endpoint: str) -> list[tuple[str, int]]:
    pages = bl.s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bl.BUCKET, Prefix=bl.PREFIX)
    return sorted(
        (o["Key"], int(o["Size"])) for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".dump")
    )


def write_config(work: Path, endpoint: str, database: str, kind: str) -> Path:
    config = work / f"drills-{database}-{kind}.toml"
    config.write_text(
        f'reports_dir = "{work / "reports"}"\n'
        '[objectives.logical]\nrpo = "26h"\nrto = "1h"\n'
        f'[target]\nkind = "{kind}"\njobs = {bl.JOBS}\n'
        f"[databases.{database}.logical]\n"
        f'source = "s3://{bl.BUCKET}/{bl.PREFIX}"\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n'
    )
    return config


def run_firedrill(work: Path, firedrill: str, endpoint: str, key: str, label: str) -> dict[str, Any]:
    out = work / f"firedrill-{label}.json"
    env = {**os.environ, **bl.AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
    folder = work / "firedrill-cwd"  # no firedrill.yml lying around
    folder.mkdir(exist_ok=True)
    os.sync()
    command = [firedrill, "run", "--no-config", "--quiet", "--jobs", str(bl.JOBS), "--json", str(out)]
    _result, wall = bl.timed_run(
        [*command, f"s3://{bl.BUCKET}/{key}"], "firedrill", env=env, cwd=folder, start_new_session=True
    )
    report = json.loads(out.read_text())
    return {
        "wall_s": round(wall, 3),
        "ok": report.get("ok"),
        "total_seconds": report.get("total_seconds"),
        "stages": report.get("stages"),
    }


def run_restoredrill(work: Path, config: Path, label: str) -> dict[str, Any]:
    drill = bl.run_drill(work, config, label, [])  # type: ignore[arg-type]  # label only names the log
    if drill.verdict != "passed":
        raise bl.BenchError(f"restoredrill {label}: verdict {drill.verdict}")
    return {
        "wall_s": drill.wall_s,
        "rto_s": drill.rto_s,
        "stages": drill.stages,
        "checks": len(drill.checks),
        "peak_rss_mb": drill.peak_rss_mb,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        work = bl.make_workdir(stack, prefix="bench-peer-")
        endpoint = bl.start_moto(stack, work)
        dumps = make_backups(work, endpoint, args.scales)
        sizes = dict(list_dumps(endpoint))
        for scale, dump in dumps.items():
            database, key = dump["database"], dump["key"]
            configs = {kind: write_config(work, endpoint, database, kind) for kind in ("local", "container")}
            contenders = {
                "RL": lambda label, c=configs["local"]: run_restoredrill(work, c, label),
                "RC": lambda label, c=configs["container"]: run_restoredrill(work, c, label),
                "FC": lambda label, k=key: run_firedrill(work, args.firedrill, endpoint, k, label),
            }
            names = list(contenders)
            rounds = []
            for index in range(1, args.rounds + 1):
                order = names[index % 3 :] + names[: index % 3]  # each contender goes first in turn
                load = round(os.getloadavg()[0], 2)
                row: dict[str, Any] = {"index": index, "order": ",".join(order), "load_1m": load}
                for name in order:
                    print(f"scale {scale} round {index}: {name} ...", flush=True)
                    row[name] = contenders[name](f"{database}-{name}-{index}")
                row["RL/FC"] = round(row["RL"]["wall_s"] / row["FC"]["wall_s"], 3)
                row["RC/FC"] = round(row["RC"]["wall_s"] / row["FC"]["wall_s"], 3)
                print(
                    f"scale {scale} round {index} ({row['order']}, load {load}): RL {row['RL']['wall_s']:.2f} s, "
                    f"RC {row['RC']['wall_s']:.2f} s, FC {row['FC']['wall_s']:.2f} s; "
                    f"RL/FC {row['RL/FC']}, RC/FC {row['RC/FC']}",
                    flush=True,
                )
                rounds.append(row)
            results[f"scale_{scale}"] = {
                "dump_key": key,
                "dump_bytes": sizes.get(key),
                "rounds": rounds,
                "median_wall_s": {n: statistics.median(r[n]["wall_s"] for r in rounds) for n in names},
                "RL/FC": statistics.median(r["RL/FC"] for r in rounds),
                "RC/FC": statistics.median(r["RC/FC"] for r in rounds),
            }
    return results


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, bl.terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--firedrill", default=shutil.which("firedrill"), help="firedrill's console script")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per dump (default 3)")
    parser.add_argument("--scales", default="3,70", help="pgbench scales, small first (default 3,70)")
    args = parser.parse_args(argv)
    args.scales = [int(s) for s in args.scales.split(",")]
    if not args.firedrill or not Path(args.firedrill).exists():
        print("benchmark failed: firedrill is not installed (see the docstring: a venv of its own)", file=sys.stderr)
        return 2
    version = subprocess.run([args.firedrill, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    results, failed = bl.guarded(measure, args)
    if failed is not None:
        return failed
    missed = []
    print("\ndump            RL s     RC s     FC s    RL/FC  RC/FC  target")
    for index, (name, r) in enumerate(results.items()):
        target = TARGETS["small" if index == 0 else "large"]
        m = r["median_wall_s"]
        print(
            f"{name:<12} {m['RL']:>7.2f}  {m['RC']:>7.2f}  {m['FC']:>7.2f}  "
            f"{r['RL/FC']:>6.3f} {r['RC/FC']:>6.3f}  <= {target}"
        )
        missed += [f"{name} {k} {r[k]} > {target}" for k in ("RL/FC", "RC/FC") if r[k] > target]
    for miss in missed:
        print(f"TARGET MISSED: {miss}")
    bl.OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = bl.OUT_DIR / f"bench_peer-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "restoredrill vs firedrill",
                "firedrill": version,
                "jobs": bl.JOBS,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "checkout": bl.checkout_state(),
                "results": results,
                "missed": missed,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"figures written to {out}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
