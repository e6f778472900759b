"""What the one runner starts dies with its owner: a tool and a server, as ourselves and as the server's
unprivileged user (a change of user clears a parent-death signal, so the runner must set it after)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from restoredrill import proc
from restoredrill.errors import CouldNotVerify
from restoredrill.waiting import wait_until

pytestmark = pytest.mark.integration

OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from restoredrill import proc
    user = proc.RunAs.for_server() if sys.argv[2] == "server-user" else None
    if sys.argv[1] == "tool":
        proc.run(["sleep", "3600"], timeout=3600, run_as=user)
    else:
        server = proc.spawn(["sleep", "3600"], log=None, run_as=user)
        time.sleep(3600)
    """
)


def _children_named(owner: psutil.Process, name: str, timeout: float = 20) -> list[psutil.Process]:
    return wait_until(
        lambda: [p for p in owner.children(recursive=True) if p.name() == name],
        timeout=timeout,
        interval=0.05,
        timed_out=lambda: f"{name} never started",
        error=AssertionError,
    )


def _running(processes: list[psutil.Process]) -> list[int]:
    running = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process.pid)
    return running


def _ignore_sigquit() -> None:
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@pytest.mark.parametrize("started_by", ["tool", "server"])
@pytest.mark.parametrize("user", ["ourselves", "server-user"])
@pytest.mark.parametrize(
    "inherited", ["default", "sigquit-ignored"]
)  # a background job of a non-interactive shell inherits SIGQUIT ignored, and an ignore survives exec
def test_what_the_runner_starts_dies_with_a_killed_owner(started_by: str, user: str, inherited: str) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, started_by, user],
        preexec_fn=_ignore_sigquit if inherited == "sigquit-ignored" else None,
    )
    children: list[psutil.Process] = []
    try:
        children = _children_named(psutil.Process(owner.pid), "sleep")
        if user == "server-user" and psutil.Process().uids().effective == 0:
            assert children[0].uids().effective != 0, "as root the child should run as the server's user"
        owner.kill()
        owner.wait(10)
        wait_until(
            lambda: _running(children) == [],
            timeout=5,
            interval=0.05,
            timed_out=lambda: f"outlived its owner: {_running(children)}",
            error=AssertionError,
        )
    finally:
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


def test_a_tool_run_from_a_worker_thread_is_stopped_when_its_drill_cancels_it() -> None:
    """No Ctrl-C reaches a worker thread and its tool's death signal waits for the thread, so a drill that
    ends first (interrupted, or the check left out) cancels it: the tool is killed at once, not awaited."""
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(proc.run, ["sleep", "3600"], timeout=3600, cancel=cancel, what="a long tool")
        (tool,) = _children_named(psutil.Process(), "sleep")
        cancel.set()
        stopped = time.monotonic()
        with pytest.raises(CouldNotVerify, match="a long tool was stopped"):
            running.result(timeout=10)
        assert time.monotonic() - stopped < 2, "cancelled within a poll or two"
    assert not tool.is_running() or tool.status() == psutil.STATUS_ZOMBIE


def test_a_cancellable_tool_still_returns_its_whole_output_and_honours_its_timeout() -> None:
    done = proc.run(["sh", "-c", "sleep 0.5; seq 1 20000"], timeout=30, cancel=threading.Event())
    assert done.returncode == 0
    assert done.stdout.split() == [str(n) for n in range(1, 20001)]
    fed = proc.run(["cat"], timeout=30, cancel=threading.Event(), input_text="fed once\n")
    assert fed.stdout == "fed once\n"
    with pytest.raises(CouldNotVerify, match="did not finish within 1 s"):
        proc.run(["sleep", "30"], timeout=1, cancel=threading.Event())
