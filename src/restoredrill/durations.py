"""Durations as people write them in objectives: "26h", "90m", "1d12h", "45s"."""

from __future__ import annotations

import re

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_LONGEST = 64  # "1w2d3h4m5s" is 10; anything this long is a mistake, and is not echoed back


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration like "26h" or "1h30m"; a bare number is seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration is a text like '26h' or '90m', not true/false")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("a duration cannot be empty (write e.g. '26h' or '90m')")
    if len(compact) > _LONGEST:
        raise ValueError(f"a duration of {len(compact)} characters is not a duration (write e.g. '26h' or '90m')")
    position, total = 0, 0.0
    # Anchored at `position`: an unanchored search would rescan a long run of digits from every offset.
    while position < len(compact) and (match := _PART.match(compact, position)):
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(compact):
        raise ValueError(f"'{text}' is not a duration (write e.g. '26h', '90m', '1d12h', '45s')")
    return total


def format_duration(seconds: float | None) -> str:
    """A short human form: 93784 -> '1d2h3m'; 12.3 -> '12.3s'."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f}s"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)
