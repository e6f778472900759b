"""WAL segment names and archive continuity: pure logic, no I/O.

A segment name is TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split in a "log" and a
"seg" part; with S MB segments there are 4096/S segments per log. A continuous archive holds every
number from the start of the oldest retained full backup to the newest segment, per timeline.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


@dataclass(frozen=True, order=True)
class Segment:
    timeline: int
    number: int  # log * segments_per_log + seg

    def name(self, segment_mb: int = 16) -> str:
        per_log = segments_per_log(segment_mb)
        return f"{self.timeline:08X}{self.number // per_log:08X}{self.number % per_log:08X}"


def segments_per_log(segment_mb: int) -> int:
    return 0x100000000 // (segment_mb * 1024 * 1024)


def parse_segment(name: str, segment_mb: int = 16) -> Segment | None:
    """The segment of a WAL file name (archived names carry `-<sha1>.<ext>`); None for other files."""
    match = SEGMENT.match(name.split("-", 1)[0].split(".", 1)[0]) if len(name) >= 24 else None
    if not match or "." in name.split("-", 1)[0]:
        return None
    timeline, log, seg = (int(part, 16) for part in match.groups())
    return Segment(timeline, log * segments_per_log(segment_mb) + seg)


@dataclass(frozen=True)
class Gap:
    """Segments first..last (inclusive) are missing; `before` is the last segment present before them."""

    first: Segment
    last: Segment
    before: Segment

    def describe(self, segment_mb: int = 16) -> str:
        count = self.last.number - self.first.number + 1
        if count == 1:
            return f"WAL segment {self.first.name(segment_mb)} is missing"
        return f"{count} WAL segments {self.first.name(segment_mb)}..{self.last.name(segment_mb)} are missing"


def find_gaps(segments: list[Segment], start: Segment | None = None) -> list[Gap]:
    """Gaps in each timeline's run of segments, from `start` (the oldest full backup's first segment) on."""
    gaps = []
    by_timeline: dict[int, list[Segment]] = {}
    for segment in sorted(set(segments)):
        if start is None or segment.timeline != start.timeline or segment.number >= start.number:
            by_timeline.setdefault(segment.timeline, []).append(segment)
    for timeline, run in sorted(by_timeline.items()):
        if start is not None and timeline == start.timeline and run and run[0].number > start.number:
            gaps.append(Gap(start, Segment(timeline, run[0].number - 1), Segment(timeline, start.number - 1)))
        for earlier, later in itertools.pairwise(run):
            if later.number - earlier.number > 1:
                gaps.append(Gap(Segment(timeline, earlier.number + 1), Segment(timeline, later.number - 1), earlier))
    return gaps
