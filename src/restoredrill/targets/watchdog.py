"""Removes a run's drill containers the moment the run dies, even by kill -9.

A container is not our child: the Docker engine runs it, so no signal of the kernel reaches it when the
run dies, and it would keep serving restored data until the next run's janitor. This small process is
the run's child and outlives it: when it is re-parented (its owner is gone, however it died) it removes
every container labelled with the owner's id, exactly as the janitor would later, and exits.
It polls its parent twice a second rather than take a parent-death signal: a signal that arrives while
the interpreter is still starting (a run killed in its first second) would kill it before it can act.
One watchdog per process that starts containers; it costs a sleeping Python process.

Usage (started by `ensure_watchdog`, not by hand): python -m restoredrill.targets.watchdog OWNER_PID
"""

from __future__ import annotations

import os
import signal
import sys
import time

from restoredrill import proc

POLL_S = 0.5
_started_for: int | None = None  # the pid whose watchdog runs (a forked xdist worker needs its own)


def ensure_watchdog() -> None:
    """Start this process's watchdog once; later calls do nothing."""
    global _started_for
    if _started_for == os.getpid():
        return
    proc.spawn(
        [sys.executable, "-m", "restoredrill.targets.watchdog", str(os.getpid())],
        log=None,
        what="container watchdog",
        death_signal=None,  # it must outlive its owner
    )
    _started_for = os.getpid()


def main(owner: int) -> int:
    from restoredrill.targets.container import remove_owned_by

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the run's to handle: it cleans up itself
    while os.getppid() == owner:
        time.sleep(POLL_S)
    remove_owned_by(owner)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
