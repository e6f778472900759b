"""Small inline SVG trend charts: numbers only, laid out here; the template draws them (auto-escaped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from restoredrill.durations import format_duration
from restoredrill.report.history import Point

WIDTH, HEIGHT = 340, 120
_NICE = [
    *(m * 10.0**k for k in range(-1, 2) for m in (1, 2, 3, 5)),  # 0.1 s .. 50 s
    60,
    120,
    180,
    300,
    600,
    900,
    1200,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,  # 1 min .. 12 h
    *(d * 86400.0 for d in (1, 2, 3, 5, 7, 14, 30, 60, 90, 180, 365)),
]
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 22


def nice_ceiling(value: float) -> float:
    """The smallest round duration at or above value, so the axis reads 0 / 2m30s / 5m, not 0 / 54.6s / 1m49s."""
    return next((n for n in _NICE if n >= value), value)


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    verdict: str
    title: str


@dataclass
class Chart:
    label: str
    width: int = WIDTH
    height: int = HEIGHT
    segments: list[str] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    missing: list[Dot] = field(default_factory=list)
    objective_path: str | None = None
    y_labels: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str, str]] = field(default_factory=list)
    caption: str = ""
    baseline: float = HEIGHT - BOTTOM


def trend_chart(
    label: str, points: list[Point], value: Callable[[Point], float | None], objective: Callable[[Point], float | None]
) -> Chart:
    """A line of `value` over the runs, the objective as a dashed step line when it is in view."""
    chart = Chart(label=label)
    if not points:
        chart.caption = "no runs yet"
        return chart
    values = [v for p in points if (v := value(p)) is not None]
    objectives = [o for p in points if (o := objective(p)) is not None]
    top_value = max(values, default=0.0)
    top_objective = max(objectives, default=0.0)
    show_objective = bool(objectives) and (not values or top_objective <= 3 * max(top_value, 1e-9))
    y_max = nice_ceiling(max(top_value * 1.05, top_objective * 1.05 if show_objective else 0.0, 1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(i: int) -> float:
        return round(LEFT + (plot_w / 2 if len(points) == 1 else plot_w * i / (len(points) - 1)), 1)

    def y_of(v: float) -> float:
        return round(TOP + plot_h * (1 - min(v, y_max) / y_max), 1)

    segment: list[str] = []
    for i, point in enumerate(points):
        v = value(point)
        when = f"{point.at:%Y-%m-%d}"
        if v is None:
            chart.missing.append(
                Dot(x_of(i), HEIGHT - BOTTOM, point.verdict, f"{when}: not measured ({point.verdict})")
            )
            if segment:
                chart.segments.append(" ".join(segment))
                segment = []
            continue
        segment.append(f"{x_of(i)},{y_of(v)}")
        obj = objective(point)
        of = f" of {format_duration(obj)} ({v / obj:.0%})" if obj else ""
        chart.dots.append(Dot(x_of(i), y_of(v), point.verdict, f"{when}: {format_duration(v)}{of}, {point.verdict}"))
    if segment:
        chart.segments.append(" ".join(segment))
    if show_objective:
        steps = [f"{x_of(i)},{y_of(o)}" for i, p in enumerate(points) if (o := objective(p)) is not None]
        if len(steps) == 1:
            y = steps[0].split(",")[1]
            steps = [f"{LEFT},{y}", f"{WIDTH - RIGHT},{y}"]
        chart.objective_path = " ".join(steps)
        chart.caption = f"dashed: objective {format_duration(top_objective)}"
    elif objectives:
        share = top_value / top_objective if top_objective else 0
        chart.caption = (
            f"objective {format_duration(top_objective)} is far above this scale (worst run used {share:.1%} of it)"
        )
    chart.y_labels = [(y_of(y_max * f), format_duration(y_max * f)) for f in (0.0, 0.5, 1.0)]
    first, last = points[0], points[-1]
    fmt = "%Y-%m-%d %H:%M" if first.at.date() == last.at.date() and len(points) > 1 else "%Y-%m-%d"
    chart.x_labels = [(x_of(0), f"{first.at:{fmt}}", "start")]
    if len(points) > 1:
        chart.x_labels.append((x_of(len(points) - 1), f"{last.at:{fmt}}", "end"))
    else:
        chart.x_labels = [(x_of(0), f"{first.at:%Y-%m-%d}", "middle")]
    return chart
