#!/usr/bin/env python3
"""Benchmark: the fixed cost of one small logical drill over a bare restore of the same dump.

Rounds alternate A (the drill, `restoredrill run`) and B (the bare manual restore: download, initdb,
start, createdb, pg_restore, one count) on a ~1 MB dump (pgbench scale 3), exactly as bench_logical.py
times them; the fixed cost of a round is A - B, judged on the median over the rounds (each pair ran
under the same load). Probes, indicative: the interpreter alone, `import restoredrill.cli`, and the
CPU seconds of the drill's own Python process (less sensitive to other load than its wall time).

    python bench/bench_fixed_cost.py [--rounds 7] [--scale 3]

Exit code: 0 target met (median A - B <= 0.5 s), 1 missed, 2 the benchmark failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_logical as bl

TARGET_OVERHEAD_S = 0.5


def probe(args: list[str], rounds: int = 5) -> float:
    """Median wall time of a short command, in seconds."""
    walls = []
    for _ in range(rounds):
        started = time.monotonic()
        subprocess.run(args, capture_output=True, check=True)
        walls.append(time.monotonic() - started)
    return round(statistics.median(walls), 3)


def import_cost_ms() -> float:
    """`python -X importtime -c 'import restoredrill.cli'`: the sum of every module's own import time."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import restoredrill.cli"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    total = sum(
        int(line.split("|")[0].split(":")[1])
        for line in out.splitlines()
        if line.startswith("import time:") and line.split("|")[0].split(":")[1].strip().isdigit()
    )
    return round(total / 1000, 1)


def drill_cpu_s(work: Path, config: Path) -> tuple[float, float]:
    """CPU seconds (user + system) and wall of the drill's own Python process, outside its children."""
    script = (
        "import atexit, resource, sys\n"
        "def out():\n"
        "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    print(f'CPU {r.ru_utime + r.ru_stime:.3f}', file=sys.stderr)\n"
        "atexit.register(out)\n"
        "from restoredrill.cli import main\n"
        "sys.argv = ['restoredrill', *sys.argv[1:]]\n"
        "sys.exit(main())\n"
    )
    env = {**os.environ, **bl.AWS_ENV, "RESTOREDRILL_WORKDIR": str(work)}
    command = [sys.executable, "-c", script, "run", "--config", str(config)]
    result, wall = bl.timed_run(command, "restoredrill run", env=env, cwd=work)
    cpu = [line for line in result.stderr.splitlines() if line.startswith("CPU ")]
    return float(cpu[-1].split()[1]), round(wall, 3)


def drill_instructions(work: Path, config: Path) -> int:
    """--callgrind: instructions executed by the drill's own Python process (its children are not traced);
    deterministic, unlike any wall or CPU time on a shared machine. Takes minutes (valgrind)."""
    out = work / "callgrind.out"
    env = {**os.environ, **bl.AWS_ENV, "RESTOREDRILL_WORKDIR": str(work)}
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=no", f"--callgrind-out-file={out}"]
    command = [*valgrind, sys.executable, bl.console_script("restoredrill"), "run", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work, check=False)
    totals = [line for line in out.read_text().splitlines() if line.startswith("summary:")] if out.exists() else []
    if result.returncode != 0 or not totals:
        raise bl.BenchError(f"the drill under callgrind exited {result.returncode}: {result.stderr[-1500:]}")
    return int(totals[0].split()[1])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        work = bl.make_workdir(stack, prefix="bench-fixed-")
        endpoint = bl.start_moto(stack, work)
        setup: dict[str, Any] = bl.make_backup(work, endpoint, args.scale)
        key, size = bl.newest_dump(endpoint)
        setup.update({"dump_key": key, "dump_bytes": size})
        config = bl.write_config(work, endpoint)
        bl.run_drill(work, config, 0, [])  # warm-up, not counted: page cache, first compile of templates
        rounds = []
        for index in range(1, args.rounds + 1):
            load = round(os.getloadavg()[0], 2)
            if index % 2:
                a = bl.run_drill(work, config, index, [])
                b = bl.run_bare(work, endpoint, key, args.scale, index)
            else:
                b = bl.run_bare(work, endpoint, key, args.scale, index)
                a = bl.run_drill(work, config, index, [])
            rounds.append(
                {
                    "index": index,
                    "order": "A,B" if index % 2 else "B,A",
                    "load_1m": load,
                    "a_wall_s": a.wall_s,
                    "b_wall_s": b.wall_s,
                    "overhead_s": round(a.wall_s - b.wall_s, 3),
                    "a_rto_s": a.rto_s,
                    "a_stages": a.stages,
                    "a_outside_s": a.overhead_s,
                    "b_steps": b.steps,
                    "a_peak_rss_mb": a.peak_rss_mb,
                }
            )
            print(
                f"round {index} ({rounds[-1]['order']}, load {load}): A {a.wall_s:.2f} s, B {b.wall_s:.2f} s, "
                f"A - B {a.wall_s - b.wall_s:+.2f} s (A outside rto+checks+cleanup {a.overhead_s} s)",
                flush=True,
            )
        cpu = [drill_cpu_s(work, config) for _ in range(3)]
        probes = {
            "python_startup_s": probe([sys.executable, "-c", "pass"]),
            "import_cli_s": probe([sys.executable, "-c", "import restoredrill.cli"]),
            "import_cli_importtime_ms": import_cost_ms(),
            "drill_process_cpu_s_median": statistics.median(c for c, _ in cpu),
            "drill_wall_s_of_cpu_runs": [w for _, w in cpu],
        }
        if args.callgrind:
            probes["drill_process_instructions"] = drill_instructions(work, config)
    overhead = statistics.median(r["overhead_s"] for r in rounds)
    return {
        "setup": setup,
        "rounds": rounds,
        "probes": probes,
        "overhead_median_s": round(overhead, 3),
        "a_median_s": statistics.median(r["a_wall_s"] for r in rounds),
        "b_median_s": statistics.median(r["b_wall_s"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, bl.terminate)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7, help="A/B pairs, alternating order (default 7)")
    parser.add_argument("--scale", type=int, default=3, help="pgbench scale of the dump (3: ~1 MB; default 3)")
    parser.add_argument("--callgrind", action="store_true", help="also count the drill's instructions (valgrind)")
    args = parser.parse_args(argv)
    result, failed = bl.guarded(measure, args)
    if failed is not None:
        return failed
    result.update(
        {
            "benchmark": "fixed cost: small logical drill vs bare restore",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
            },
            "checkout": bl.checkout_state(),
            "target_overhead_s": TARGET_OVERHEAD_S,
        }
    )
    print(
        f"\nmedian A {result['a_median_s']:.2f} s, B {result['b_median_s']:.2f} s, "
        f"fixed cost (median of A - B) {result['overhead_median_s']:+.2f} s, target <= {TARGET_OVERHEAD_S} s"
    )
    print(f"probes: {json.dumps(result['probes'])}")
    bl.OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = bl.OUT_DIR / f"bench_fixed_cost-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"figures written to {out}")
    missed = result["overhead_median_s"] > TARGET_OVERHEAD_S
    print("TARGET MISSED: fixed cost" if missed else "target met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
