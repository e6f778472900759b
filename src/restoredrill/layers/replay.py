"""Where WAL replay ended, proven by LSN, and why: pure logic over the server's own log lines.

A replay that stops early still promotes with `--type=default`: PostgreSQL treats the first segment it
cannot read (missing, truncated, from another cluster, failing its record checksums) as the end of the
archive. Only comparing the LSN where replay ended with the end of the newest archived segment tells a
whole archive from a cut one, and only the server's log says why it stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from restoredrill.layers.wal import Segment

LSN = re.compile(r"\b([0-9A-F]{1,8})/([0-9A-F]{1,8})\b")
_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_CONSISTENT = re.compile(r"consistent recovery state reached at ([0-9A-F]+/[0-9A-F]+)")
_STOPPING_TIME = re.compile(
    r"recovery stopping (before|after) .*time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d)"
)

# The server's own words when it stops reading WAL for a reason other than "no next segment". Each comes
# from a real way an archive breaks: a segment of another cluster under the right name, a segment cut
# short or rewritten (record length, magic, checksum, page address), or one pgBackRest could not read.
REPLAY_STOPPERS = (
    "WAL file is from different database system",
    "invalid record length",
    "invalid magic number",
    "incorrect resource manager data checksum",
    "unexpected pageaddr",
    "invalid resource manager ID",
    "record with incorrect prev-link",
    "invalid contrecord length",
    "missing contrecord",
    "could not read from WAL segment",
    "could not read from log segment",
    "could not open file",
    "unexpected timeline ID",
    "out-of-sequence timeline ID",
)
_PGBACKREST_ERROR = re.compile(r"^ERROR: \[\d{3}\]:")


def parse_lsn(text: str) -> int | None:
    match = LSN.search(text)
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16) if match else None


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_of(lsn: int, timeline: int, segment_mb: int = 16) -> Segment:
    """The segment holding the byte at `lsn`."""
    return Segment(timeline, lsn // (segment_mb * 1024 * 1024))


def segment_end(segment: Segment, segment_mb: int = 16) -> int:
    """The LSN just past the last byte of `segment`."""
    return (segment.number + 1) * segment_mb * 1024 * 1024


def redo_done_lsn(lines: list[str]) -> int | None:
    """The start of the last record replayed, from "redo done at <LSN>" (the last such line)."""
    found = [m.group(1) for line in lines if (m := _REDO_DONE.search(line))]
    return parse_lsn(found[-1]) if found else None


_RESTORED_FILE = re.compile(r'restored log file "([0-9A-F]{24})" from archive')


def last_restored_segment(lines: list[str]) -> str | None:
    """The name of the last segment the server fetched from the archive (its restore_command succeeded)."""
    found = [m.group(1) for line in lines if (m := _RESTORED_FILE.search(line))]
    return found[-1] if found else None


def consistent_lsn(lines: list[str]) -> int | None:
    found = [m.group(1) for line in lines if (m := _CONSISTENT.search(line))]
    return parse_lsn(found[-1]) if found else None


def stopping_time(line: str) -> tuple[str, datetime] | None:
    """("before" | "after", the commit time) of a "recovery stopping ... time ..." line."""
    match = _STOPPING_TIME.search(line)
    if not match:
        return None
    return match.group(1), datetime.fromisoformat(match.group(2)).astimezone(UTC)


def stop_cause(lines: list[str]) -> str | None:
    """The server's (or its restore_command's) reason for ending replay, quoted whole; None if it gave none.

    pgBackRest's archive-get errors reach the server log on stderr, an `ERROR: [NNN]:` line followed by
    indented lines with the real cause (e.g. `[FormatError] unexpected eof in compressed data`)."""
    for index, line in enumerate(lines):
        body = line.split("LOG:", 1)[-1].split("FATAL:", 1)[-1].strip()
        if any(words in line for words in REPLAY_STOPPERS) and "restored log file" not in line:
            return body
        if _PGBACKREST_ERROR.match(line.strip()):
            follow = []
            for more in lines[index + 1 :]:
                if not more.startswith((" ", "\t")):
                    break
                follow.append(more.strip())
            return " ".join([line.strip(), *follow])
    return None


def recovery_lines(lines: list[str], limit: int = 40) -> list[str]:
    """The lines of the log that tell how recovery went (kept in the evidence), without per-file noise."""
    keep = (
        "recovery",
        "redo ",
        "consistent",
        "last completed transaction",
        "FATAL",
        "PANIC",
        "ERROR",
        "timeline",
        *REPLAY_STOPPERS,
    )
    picked = [ln.strip() for ln in lines if any(k in ln for k in keep) and "restored log file" not in ln]
    follow_ups = [ln.strip() for ln in lines if ln.startswith((" ", "\t")) and "[" in ln and "Error]" in ln]
    return (picked + [f for f in follow_ups if f not in picked])[-limit:]


@dataclass(frozen=True)
class ReplayEnd:
    """Where replay ended against where the archive ends, each with what proved it."""

    end_lsn: int
    end_proof: str
    archive_end: Segment
    archive_end_proof: str
    redo_done: int | None
    cause: str | None
    segment_mb: int = 16

    @property
    def last_segment(self) -> Segment:
        # The replay position is the END of the last record (just past it): the byte before it is replayed.
        return segment_of(max(self.end_lsn - 1, 0), self.archive_end.timeline, self.segment_mb)

    @property
    def archive_end_lsn(self) -> int:
        return segment_end(self.archive_end, self.segment_mb)

    @property
    def reached_archive_end(self) -> bool:
        return self.last_segment.number >= self.archive_end.number

    @property
    def missing_segments(self) -> int:
        return max(0, self.archive_end.number - self.last_segment.number)

    def evidence(self) -> dict[str, object]:
        return {
            "replay_end_lsn": format_lsn(self.end_lsn),
            "replay_end_proof": self.end_proof,
            "redo_done_at": format_lsn(self.redo_done) if self.redo_done is not None else None,
            "replay_end_segment": self.last_segment.name(self.segment_mb),
            "archive_end_lsn": format_lsn(self.archive_end_lsn),
            "archive_end_segment": self.archive_end.name(self.segment_mb),
            "archive_end_proof": self.archive_end_proof,
            "stop_cause": self.cause,
        }

    def sentence(self) -> str:
        where = (
            f"replay ended at LSN {format_lsn(self.end_lsn)} in segment {self.last_segment.name(self.segment_mb)}"
            f" ({self.end_proof})"
        )
        archive = (
            f"the archive ends at LSN {format_lsn(self.archive_end_lsn)} with segment "
            f"{self.archive_end.name(self.segment_mb)} ({self.archive_end_proof})"
        )
        if self.reached_archive_end:
            return f"{where}; {archive}: replay reached the end of the archive"
        next_segment = Segment(self.archive_end.timeline, self.last_segment.number + 1).name(self.segment_mb)
        cause = (
            f"the server said: {self.cause}"
            if self.cause
            else f"the server found no readable segment {next_segment} (missing from the archive?)"
        )
        return (
            f"{where}, {self.missing_segments} segment(s) before the end of the archive; {archive}. "
            f"Replay stopped at segment {next_segment}: {cause}"
        )
