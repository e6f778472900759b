"""The HTML drill report: Jinja2, auto-escaped, inline CSS and SVG, no script and no external request."""

from __future__ import annotations

from functools import cache

import jinja2

from restoredrill.durations import format_duration
from restoredrill.report.history import parse_time
from restoredrill.report.model import VERDICT_LABEL, format_share
from restoredrill.report.overview import ReportView
from restoredrill.report.redact import redact


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    if value < 1024:
        return f"{value:,} bytes"
    size, units = float(value) / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while size >= 1024 and len(units) > 1:
        size /= 1024
        units.pop(0)
    return f"{size:.1f} {units[0]} ({value:,} bytes)"


def _when(value: str | None) -> str:
    moment = parse_time(value)
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else (value or "unknown")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiling the report's template is ~60 ms of every run; Jinja keeps the compiled code in a private
    per-user folder (it refuses one that is not 0700 and its user's) and recompiles when the template changes."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None  # no usable cache folder: compile every time, as before


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("restoredrill.report", "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,  # every value from a record is text, whatever it contains
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dur=format_duration,
        size=_size,
        when=_when,
        pct=format_share,
        money=lambda v: f"{v:,.2f}" if v >= 0.01 or v == 0 else f"{v:.4f}",  # a demo's cents still show
        thousands=lambda n: f"{int(n):,}" if isinstance(n, int | float) else str(n),
        verdict=lambda v: VERDICT_LABEL.get(v, str(v).upper()),
    )
    return env


def render(view: ReportView) -> str:
    """The report as one string; redacted once more on the way out."""
    return redact(environment().get_template("report.html.j2").render(v=view))
