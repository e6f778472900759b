"""Live progress of the long stages: a restore is never silent.

The layers open a stage around each long step and give a probe, a function that reads how far it got from
the outside (the size of the file being fetched, the tables pg_restore has loaded, the WAL position replay
reached, the RDS instance status). The reporter samples the probes itself, so no layer threads a progress
object through its loops, and the engine knows nothing of how progress is shown:
- on a terminal, rich progress bars (MB/s and ETA for bytes, done of total for items), refreshed each second;
- elsewhere (CI, logs), one plain line when a stage starts and ends, and one every 30 s in between
  (RESTOREDRILL_PROGRESS_INTERVAL changes it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from restoredrill.durations import format_duration

Unit = Literal["bytes", "tables", "wal", "status", ""]
Probe = Callable[[], float | str | None]
DEFAULT_INTERVAL_S = 30.0
MB = 1024 * 1024


@dataclass
class Stage:
    name: str
    unit: Unit
    total: float | None
    probe: Probe | None
    started: float = field(default_factory=time.monotonic)
    done: float | None = None
    status: str | None = None
    task: Any = None  # the rich task, on a terminal

    def sample(self) -> None:
        if self.probe is None:
            return
        try:
            value = self.probe()
        except Exception:  # a probe is best effort: a server still starting must not break the drill
            return
        if isinstance(value, str):
            self.status = value
        elif value is not None:
            self.done = float(value)

    def describe(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = []
        if self.unit == "bytes" and self.done is not None:
            rate = self.done / elapsed if elapsed > 0 else 0.0
            of = f" of {self.total / MB:.1f} MB" if self.total else ""
            parts.append(f"{self.done / MB:.1f} MB{of}, {rate / MB:.1f} MB/s")
            if self.total and rate > 0 and self.done < self.total:
                parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        elif self.unit == "tables" and self.done is not None:
            parts.append(f"{int(self.done)}" + (f" of {int(self.total)}" if self.total else "") + " tables loaded")
        elif self.unit == "wal" and self.done is not None:
            behind = (
                f", {max(0.0, (self.total or 0) - self.done) / MB:.0f} MB before the archive end" if self.total else ""
            )
            parts.append(f"WAL replayed to {lsn_text(int(self.done))}{behind}")
        if self.status:
            parts.append(f"status {self.status}")
        parts.append(f"{format_duration(elapsed)} elapsed")
        return ", ".join(parts)


class Reporter:
    """Samples the open stages and shows them: `live` (rich, a terminal) or plain lines through `say`."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        live: bool = False,
        interval_s: float = DEFAULT_INTERVAL_S,
        console: Any = None,
    ) -> None:
        self.say = say
        self.console = console
        self.live = live
        self.interval_s = interval_s
        self.stages: list[Stage] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.bars: Any = None

    @contextlib.contextmanager
    def stage(
        self, name: str, *, total: float | None = None, unit: Unit = "", probe: Probe | None = None
    ) -> Iterator[Stage]:
        current = Stage(name, unit, total, probe)
        self._open(current)
        try:
            yield current
        finally:
            self._close(current)

    def _open(self, stage: Stage) -> None:
        with self.lock:
            self.stages.append(stage)
            if self.live:
                self._bar(stage)
            else:
                size = f" ({stage.total / MB:.1f} MB)" if stage.unit == "bytes" and stage.total else ""
                self.say(f"{stage.name}: started{size}")
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="restoredrill-progress", daemon=True)
                self.thread.start()

    def _close(self, stage: Stage) -> None:
        stage.sample()
        with self.lock:
            self.stages.remove(stage)
            if self.live and self.bars is not None:
                self._update_bar(stage, finished=True)
                if not self.stages:
                    self.bars.stop()
                    self.bars = None
            else:
                self.say(f"{stage.name}: finished, {stage.describe()}")
        self.wake.set()

    def _loop(self) -> None:
        period = 1.0 if self.live else self.interval_s
        while True:
            self.wake.wait(period)
            self.wake.clear()
            with self.lock:
                open_stages = list(self.stages)
                if not open_stages:
                    self.thread = None  # the next stage starts a new sampler
                    return
            for stage in open_stages:
                stage.sample()
                with self.lock:
                    if stage not in self.stages:
                        continue
                    if self.live:
                        self._update_bar(stage)
                    elif time.monotonic() - stage.started >= self.interval_s * 0.99:
                        self.say(f"{stage.name}: {stage.describe()}")

    # ----- a terminal: rich bars -------------------------------------------------------------------------
    def _bar(self, stage: Stage) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        if self.bars is None:
            self.bars = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self.console or Console(stderr=True),
                transient=False,
            )
            self.bars.start()
        stage.task = self.bars.add_task(stage.name, total=stage.total, detail="")

    def _update_bar(self, stage: Stage, finished: bool = False) -> None:
        if self.bars is None or stage.task is None:
            return
        completed = stage.done if stage.unit in ("bytes", "tables", "wal") else None
        if finished and stage.total:
            completed = stage.total
        self.bars.update(stage.task, completed=completed, detail=stage.describe())


_current: Reporter | None = None


def _default() -> Reporter:
    """Rich bars on a terminal; plain lines elsewhere, through the drill log when pytest shows it live."""
    logger = logging.getLogger("restoredrill")
    say: Callable[[str], None]
    if logger.hasHandlers() and "PYTEST_CURRENT_TEST" in os.environ:
        say = logger.info
    else:
        say = lambda text: print(f"progress: {text}", file=sys.stderr, flush=True)  # noqa: E731
    interval = float(os.environ.get("RESTOREDRILL_PROGRESS_INTERVAL") or DEFAULT_INTERVAL_S)
    live = sys.stderr.isatty() and "PYTEST_XDIST_WORKER" not in os.environ and "PYTEST_CURRENT_TEST" not in os.environ
    return Reporter(say, live=live, interval_s=interval)


def current() -> Reporter:
    global _current
    if _current is None:
        _current = _default()
    return _current


# ----- probes the layers use ---------------------------------------------------------------------------------
def file_size(path: Path) -> Probe:
    return lambda: path.stat().st_size if path.exists() else 0


def tree_size(root: Path) -> Probe:
    def measure() -> float:
        return float(sum(p.stat().st_size for p in root.rglob("*") if p.is_file()))

    return measure


def tables_loaded(connect: Callable[[], Any]) -> Probe:
    """Tables of the restored database that received rows: pg_restore's TABLE DATA items done."""

    def count() -> float | None:
        with connect() as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_user_tables WHERE n_tup_ins > 0").fetchone()
        return float(row[0]) if row else None

    return count


def lsn_value(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def replay_position(connect: Callable[[], Any]) -> Probe:
    """How far WAL replay got, from the recovering server itself (hot standby answers queries)."""

    def position() -> float | None:
        with connect() as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        return float(lsn_value(row[0])) if row and row[0] else None

    return position
