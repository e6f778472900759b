"""`make detection`: the logical and the pgBackRest detection corpora, drilled for real, in ONE table.

Each layer's classes are data in their own module (restoredrill.detection: the schema zoo's dumps;
tests.detection_pgbackrest: a pgBackRest repository). This joins their rows: layer, class, expected verdict and
exit code, caught?, by which check, seconds to verdict and the headline reason. Exit 1 when any class is
missed or a healthy run raised a false alarm.

    python -m tests.detection_all [--fast] [--healthy-runs N] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from restoredrill import detection as logical
from tests import detection_pgbackrest as pgbackrest


@dataclass(frozen=True)
class TableRow:
    layer: str
    name: str
    healthy: bool
    expected: str
    caught: bool
    check: str
    seconds: float
    reason: str


def logical_rows(fast: bool, healthy_runs: int) -> list[TableRow]:
    healthy = [c for c in logical.CLASSES if c.apply is None] * max(1, healthy_runs)
    broken = [c for c in logical.CLASSES if c.apply is not None and (c.fast or not fast)]
    outcomes = logical.run_corpus((*healthy, *broken), log=lambda m: print(m, file=sys.stderr))
    return [
        TableRow(
            "logical",
            o.defect.name,
            o.defect.apply is None,
            f"{o.defect.verdict} ({o.defect.exit_code})",
            o.caught,
            o.by,
            o.seconds,
            o.reason or f"(verdict {o.verdict}, exit {o.exit_code})",
        )
        for o in outcomes
    ]


def pgbackrest_rows(fast: bool, healthy_runs: int) -> list[TableRow]:
    only = [c.name for c in pgbackrest.CLASSES if c.fast] if fast else None
    rows = pgbackrest.run(only, healthy=healthy_runs, log=lambda m: print(m, file=sys.stderr))
    return [
        TableRow(
            "pgbackrest",
            r.cls,
            r.expected_verdict == "passed",
            f"{r.expected_verdict} ({r.expected_exit})",
            r.caught,
            r.check or "-",
            r.seconds,
            r.reason or f"(verdict {r.actual_verdict}, exit {r.actual_exit})",
        )
        for r in rows
    ]


def table(rows: list[TableRow]) -> str:
    lines = [
        "| layer | class | expected (exit) | caught? | by check | seconds to verdict | headline reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        caught = ("passed" if r.caught else "FALSE ALARM") if r.healthy else ("yes" if r.caught else "MISSED")
        reason = r.reason.replace("|", "/").replace("\n", " ")
        reason = reason if len(reason) <= 140 else reason[:137] + "..."
        lines.append(f"| {r.layer} | {r.name} | {r.expected} | {caught} | {r.check} | {r.seconds:.1f} | {reason} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.detection_all", description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only each layer's CI subset")
    parser.add_argument("--healthy-runs", type=int, default=3, help="healthy runs per layer and repository kind")
    parser.add_argument("--layer", choices=["logical", "pgbackrest"], action="append", help="default: both")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    layers = args.layer or ["logical", "pgbackrest"]
    rows: list[TableRow] = []
    if "logical" in layers:
        rows += logical_rows(args.fast, args.healthy_runs)
    if "pgbackrest" in layers:
        rows += pgbackrest_rows(args.fast, args.healthy_runs)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    missed = [r for r in rows if not r.caught]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} rows as expected", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
