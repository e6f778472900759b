"""The CI job summary: the matrix and objectives as Markdown, appended to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import html
import os
from pathlib import Path

from restoredrill.durations import format_duration
from restoredrill.report.overview import ReportView
from restoredrill.report.redact import redact

_ICON = {"passed": "✅", "partial": "🟡", "failed": "❌", "could_not_verify": "⚠️"}


def _cell(text: str) -> str:
    """Table-safe Markdown: no HTML, no pipes, no line breaks."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def markdown(view: ReportView, report_name: str) -> str:
    lines = [
        f"## {_ICON[view.verdict]} Restore drills: {view.verdict_label}",
        "",
        _cell(view.headline),
        "",
        "| database | layer | verdict | RTO / objective | RPO / objective | reason |",
        "|---|---|---|---|---|---|",
    ]
    for d in view.drills:
        r = d.record
        lines.append(
            "| "
            + " | ".join(
                [
                    _cell(r.database),
                    _cell(r.layer + (f" ({r.variant})" if r.variant else "")),
                    f"{_ICON[d.verdict]} {d.verdict_label}",
                    f"{format_duration(r.rto_s)} / {format_duration(r.objectives.rto_s)}",
                    f"{format_duration(r.rpo_s)} / {format_duration(r.objectives.rpo_s)}",
                    _cell(f"{d.category}: {r.reason}" if r.reason else ""),
                ]
            )
            + " |"
        )
    if view.left_out:
        lines += ["", f"Not run: {_cell('; '.join(view.left_out))}"]
    lines += [
        "",
        f"Run `{_cell(view.run_id)}`; the audit report is `{_cell(report_name)}` in the reports artifact.",
        "",
    ]
    return redact("\n".join(lines))


def append_step_summary(view: ReportView, report_name: str) -> Path | None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown(view, report_name) + "\n")
    return path
