#!/usr/bin/env python3
"""Benchmark: what per-table content hashes cost, per algorithm, at backup time and at drill time.

A throwaway source PostgreSQL loaded with `pgbench -i -s SCALE` (70: about 1 GB), then:
- the backup job into a local folder without content hashes and with each algorithm (md5-64-sum, what
  manifests held before content_algorithm; hashtextextended-sum, what the backup job writes now), in a
  rotating order, `--rounds` times each: the added cost is the median with, minus the median without;
- the newest dump restored (pg_restore -j 2) into a second database of the same server, read once by
  count(*) as the drill's manifest_row_counts does first, then the drill's own manifest_content check against
  each algorithm's manifest, alternately, `--rounds` times each.
Prints each run, the medians and the load average (other work on the machine inflates wall times).
Everything lives in a private /tmp folder, removed at the end.

    python bench/bench_content_hash.py [--scale 70] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from restoredrill import checks, pgtools, proc
from restoredrill.backup import backup_logical
from restoredrill.evidence import new_run_id
from restoredrill.manifest import HASHTEXTEXTENDED_SUM, MD5_64_SUM, Manifest
from restoredrill.targets.local import LocalInstance

ALGORITHMS = (MD5_64_SUM, HASHTEXTEXTENDED_SUM)
WITHOUT = "without"


def load() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


def rotated(items: tuple[str, ...], by: int) -> tuple[str, ...]:
    by %= len(items)
    return items[by:] + items[:by]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hash-", dir="/tmp"))
    work.chmod(0o711)
    bindir = pgtools.bindir_for(max(pgtools.available_bindirs()))
    backup_s: dict[str, list[float]] = {kind: [] for kind in (WITHOUT, *ALGORITHMS)}
    check_s: dict[str, list[float]] = {kind: [] for kind in ALGORITHMS}
    print(f"start: {load()}")
    try:
        with LocalInstance(bindir, run_id=new_run_id(), base=work, label="bench-source") as source:
            assert source.connection is not None
            c = source.connection
            source.create_database("bench")
            started = time.monotonic()
            pgbench = [str(bindir / "pgbench"), "-i", "-q", "-s", str(args.scale)]
            proc.run([*pgbench, "-h", c.host, "-p", str(c.port), "-U", c.user, "bench"], timeout=3600, env=c.env())
            with c.connect("bench") as conn:
                row = conn.execute("SELECT pg_size_pretty(pg_database_size('bench'))").fetchone()
            print(f"pgbench -i -s {args.scale}: {row[0] if row else '?'} in {time.monotonic() - started:.1f}s")
            dsn = c.conninfo("bench") + f" password={c.password}"
            manifests: dict[str, Manifest] = {}
            dump: Path | None = None
            for round_no in range(args.rounds):
                for kind in rotated((WITHOUT, *ALGORITHMS), round_no):
                    store = work / f"store-{round_no}-{kind}"
                    started = time.monotonic()
                    backup_logical(
                        dsn,
                        f"file://{store}/",
                        sse=None,
                        content_hash_max_bytes=None if kind == WITHOUT else 1024**3,
                        content_algorithm=None if kind == WITHOUT else kind,
                        log=lambda _m: None,
                    )
                    elapsed = time.monotonic() - started
                    backup_s[kind].append(elapsed)
                    print(f"round {round_no + 1}: backup job, content hashes {kind}: {elapsed:.1f}s ({load()})")
                    written = next(store.rglob("*.dump"))
                    if kind != WITHOUT:
                        manifests[kind] = Manifest.from_json(written.with_suffix(".manifest.json").read_text())
                    if dump is None:
                        dump = work / "kept.dump"
                        shutil.copyfile(written, dump)
                    shutil.rmtree(store, ignore_errors=True)
            assert dump is not None
            source.create_database("restored")
            started = time.monotonic()
            restore = [str(pgtools.client_tool("pg_restore", bindir)), "-j", "2", "-d", c.conninfo("restored")]
            proc.run([*restore, str(dump)], timeout=3600, env=c.env(), what="pg_restore")
            print(f"pg_restore -j 2: {time.monotonic() - started:.1f}s")
            restored = checks.Restored(
                connection=c,
                dbname="restored",
                bindir=bindir,
                listing=None,
                manifest=None,
                taken_at=datetime.now(UTC),
                rpo_s=0.0,
                restore_returncode=0,
                restore_errors=[],
            )
            restored.manifest = manifests[HASHTEXTEXTENDED_SUM]
            counts = checks.run_check("manifest_row_counts", checks.manifest_row_counts, restored)
            print(f"manifest_row_counts (first read of the restored copy): {counts.duration_s:.1f}s, {counts.outcome}")
            for round_no in range(args.rounds):
                for algorithm in rotated(ALGORITHMS, round_no):
                    restored.manifest = manifests[algorithm]
                    record = checks.run_check("manifest_content", checks.manifest_content, restored)
                    if record.outcome != "passed":
                        raise SystemExit(f"manifest_content {algorithm}: {record.outcome}: {record.detail}")
                    assert record.duration_s is not None
                    check_s[algorithm].append(record.duration_s)
                    print(f"round {round_no + 1}: drill check manifest_content, {algorithm}: {record.duration_s:.1f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without = statistics.median(backup_s[WITHOUT])
    print(f"backup job without content hashes: median {without:.1f}s")
    for algorithm in ALGORITHMS:
        with_ = statistics.median(backup_s[algorithm])
        print(
            f"backup job with {algorithm}: median {with_:.1f}s, +{with_ - without:.1f}s "
            f"({(with_ / without - 1) * 100:+.0f}%); drill check manifest_content: median "
            f"{statistics.median(check_s[algorithm]):.1f}s"
        )
    print(f"end: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
