"""reports/history.jsonl as a hash chain: deleting, editing or reordering a past run's line is detectable.

Each line is one JSON object, stored as its canonical bytes: `json.dumps(entry, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` in UTF-8, followed by "\\n". Two fields chain it:
- `seq`: the line's 1-based position in the file (legacy lines before the first chained one count too);
- `prev`: the SHA-256 (hex) of the previous line's stored bytes without its "\\n"; GENESIS for the first.
An auditor re-checks it without restoredrill: `sed -n 4p history.jsonl | tr -d '\\n' | sha256sum` must equal
line 5's `prev`. The last line has no successor to anchor it: every report's manifest records the head
(`seq` and SHA-256 of the last line), so cutting the tail is detected too.

Lines written before chaining (no `seq`/`prev`) are legacy: reported as such, never a crash. Appends take an
exclusive lock, so xdist workers finishing drills at the same moment cannot both take the same `seq`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from restoredrill.evidence_store import EvidenceStore

HISTORY_FILE = "history.jsonl"
GENESIS = "0" * 64
_LOCK_FILE = ".history.lock"


def canonical(entry: Mapping[str, object]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class HistoryEntry:
    line: int  # 1-based line number in the file (blank lines are skipped, not counted)
    data: dict[str, object]  # the parsed line, chain fields included
    sha256: str  # of the stored bytes: what the next line's `prev` must be
    raw: bytes  # the stored bytes, without the newline

    @property
    def chained(self) -> bool:
        return isinstance(self.data.get("seq"), int) and isinstance(self.data.get("prev"), str)

    @property
    def run(self) -> str:
        return str(self.data.get("run_id", "?"))


@dataclass
class HistoryLog:
    entries: list[HistoryEntry] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)  # line numbers that are not a JSON object

    @property
    def head(self) -> tuple[int, str] | None:
        """(seq, sha256) of the last line, the value a report's manifest records."""
        if not self.entries:
            return None
        last = self.entries[-1]
        seq = last.data["seq"] if last.chained else len(self.entries)
        return int(seq), last.sha256  # type: ignore[call-overload]


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    if not path.is_file():
        return
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if raw.strip():
            yield number, raw.rstrip(b"\r")


def parse(path: Path) -> HistoryLog:
    return parse_lines(_raw_lines(path))


def parse_lines(lines: Iterable[tuple[int, bytes]]) -> HistoryLog:
    """(line number, stored bytes) pairs, from the file or from the evidence store's objects."""
    log = HistoryLog()
    for number, raw in lines:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.unreadable.append(number)
            continue
        log.entries.append(HistoryEntry(number, data, line_hash(raw), raw))
    return log


def read_history(reports_dir: Path, store: EvidenceStore | None = None) -> HistoryLog:
    """THE way to read the drill history (trends, drift, coverage, the chain check). With an evidence store the
    store's chain is pulled into reports/history.jsonl first, so an audit period outlives CI artifacts;
    a store that cannot be read raises CouldNotVerify (one sentence)."""
    if store is not None:
        store.pull_history(reports_dir)
    return parse(reports_dir / HISTORY_FILE)


@contextmanager
def locked(reports_dir: Path) -> Iterator[None]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    with (reports_dir / _LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _last_line(path: Path) -> tuple[int, bytes] | None:
    last = None
    count = 0
    for _number, raw in _raw_lines(path):
        count += 1
        last = raw
    return (count, last) if last is not None else None


def chain_entry(payload: Mapping[str, object], previous: tuple[int, bytes] | None) -> bytes:
    """The canonical bytes of `payload` chained after `previous` ((count of lines, last line's bytes))."""
    body = {k: v for k, v in payload.items() if k not in ("seq", "prev")}
    seq, prev = (1, GENESIS) if previous is None else (previous[0] + 1, line_hash(previous[1]))
    return canonical({**body, "seq": seq, "prev": prev})


def append(reports_dir: Path, payload: Mapping[str, object]) -> bytes:
    """Append one line after the file's last line (under the lock); returns the stored bytes."""
    with locked(reports_dir):
        path = reports_dir / HISTORY_FILE
        raw = chain_entry(payload, _last_line(path))
        with path.open("ab") as history:
            history.write(raw + b"\n")
    return raw


def rewrite(reports_dir: Path, lines: list[bytes]) -> None:
    """Replace the working copy with `lines` (the evidence store's chain), atomically."""
    path = reports_dir / HISTORY_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(b"".join(line + b"\n" for line in lines))
    partial.replace(path)


@dataclass
class ChainCheck:
    entries: int = 0
    chained: int = 0
    legacy: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _who(entry: HistoryEntry) -> str:
    return f"line {entry.line} (run {entry.run})"


def _order(log: HistoryLog, check: ChainCheck) -> dict[int, HistoryEntry]:
    """Every line by its `seq` (legacy lines by position); lines out of order or repeated are problems."""
    by_seq: dict[int, HistoryEntry] = {}
    highest = 0
    for entry in log.entries:
        if not entry.chained:
            if check.chained:
                check.problems.append(f"history {_who(entry)} carries no chain hash after chained lines: inserted")
                continue
            check.legacy += 1
            seq = check.legacy
        else:
            check.chained += 1
            seq = int(entry.data["seq"])  # type: ignore[call-overload]
            if seq <= highest:
                check.problems.append(
                    f"history {_who(entry)} is entry #{seq} but comes after entry #{highest}: lines were "
                    "reordered or duplicated"
                )
        highest = max(highest, seq)
        by_seq.setdefault(seq, entry)
    return by_seq


def _missing(by_seq: dict[int, HistoryEntry], last: int, check: ChainCheck) -> None:
    seq = 1
    while seq <= last:
        if seq in by_seq:
            seq += 1
            continue
        end = seq
        while end + 1 <= last and end + 1 not in by_seq:
            end += 1
        which = f"#{seq}" if seq == end else f"#{seq}-#{end}"
        after = f"after {_who(by_seq[seq - 1])}" if seq - 1 in by_seq else "at the start"
        check.problems.append(f"history entry {which} is missing: {end - seq + 1} line(s) were deleted {after}")
        seq = end + 1


def verify(log: HistoryLog, heads: Mapping[str, tuple[int, str]] | None = None) -> ChainCheck:
    """Every chained line against its predecessor by `seq`; `heads` maps a report name to the head its manifest
    recorded. Order-independent, so each defect is named once: a deleted, an edited and a moved line."""
    check = ChainCheck(entries=len(log.entries))
    for number in log.unreadable:
        check.problems.append(f"history line {number} is not a JSON object: it was edited or damaged")
    by_seq = _order(log, check)
    last = max(by_seq, default=0)
    _missing(by_seq, last, check)
    for seq, entry in sorted(by_seq.items()):
        if not entry.chained:
            continue
        before = by_seq.get(seq - 1)
        expected = GENESIS if seq == 1 else (before.sha256 if before else None)
        if expected is not None and entry.data["prev"] != expected:
            what = f"{_who(before)} was edited or replaced" if before else "its first line is not the genesis"
            check.problems.append(f"history {_who(entry)} does not carry the SHA-256 of entry #{seq - 1}: {what}")
    if check.legacy:
        check.notes.append(
            f"history.jsonl has {check.legacy} legacy line(s) written before hash chaining: an edit or deletion "
            "among them cannot be detected"
        )
    for report, (seq, digest) in sorted((heads or {}).items()):
        if seq > last:
            check.problems.append(
                f"history.jsonl ends at entry #{last}, but {report} recorded #{seq}: "
                f"its last {seq - last} line(s) were deleted"
            )
        elif seq in by_seq and by_seq[seq].sha256 != digest:
            check.problems.append(
                f"history {_who(by_seq[seq])} (entry #{seq}) is not the line {report} recorded: it was edited"
            )
    return check
