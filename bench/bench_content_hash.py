#!/usr/bin/env python3
"""Benchmark: what per-table content hashes cost the logical backup job.

A throwaway source PostgreSQL loaded with `pgbench -i -s SCALE` (70: about 1 GB), then the backup job into a
local folder, alternately without and with content hashes, `--rounds` times each. Prints the wall time of each
run and the median added cost. Everything lives in a private /tmp folder, removed at the end.

    python bench/bench_content_hash.py [--scale 70] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from restoredrill import pgtools, proc
from restoredrill.backup import backup_logical
from restoredrill.evidence import new_run_id
from restoredrill.manifest import CONTENT_HASH_DEFAULT_MAX_BYTES
from restoredrill.targets.local import LocalInstance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hash-", dir="/tmp"))
    work.chmod(0o711)
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    times: dict[str, list[float]] = {"without": [], "with": []}
    try:
        with LocalInstance(bindir, run_id=new_run_id(), base=work, label="bench-source") as source:
            assert source.connection is not None
            c = source.connection
            source.create_database("bench")
            started = time.monotonic()
            proc.run(
                [
                    str(bindir / "pgbench"),
                    "-i",
                    "-q",
                    "-s",
                    str(args.scale),
                    "-h",
                    c.host,
                    "-p",
                    str(c.port),
                    "-U",
                    c.user,
                    "bench",
                ],
                timeout=3600,
                env=c.env(),
            )
            with c.connect("bench") as conn:
                row = conn.execute("SELECT pg_size_pretty(pg_database_size('bench'))").fetchone()
            print(f"pgbench -i -s {args.scale}: {row[0] if row else '?'} in {time.monotonic() - started:.1f}s")
            dsn = c.conninfo("bench") + f" password={c.password}"
            for round_no in range(args.rounds):
                order = ("without", "with") if round_no % 2 == 0 else ("with", "without")
                for kind in order:
                    limit = CONTENT_HASH_DEFAULT_MAX_BYTES if kind == "with" else None
                    store = work / f"store-{round_no}-{kind}"
                    started = time.monotonic()
                    backup_logical(dsn, f"file://{store}/", sse=None, content_hash_max_bytes=limit, log=lambda _m: None)
                    elapsed = time.monotonic() - started
                    times[kind].append(elapsed)
                    print(f"round {round_no + 1}: backup job {kind} content hashes: {elapsed:.1f}s")
                    shutil.rmtree(store, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print(
        f"median: {without:.1f}s without, {with_:.1f}s with content hashes: +{with_ - without:.1f}s "
        f"({(with_ / without - 1) * 100:+.0f}%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
