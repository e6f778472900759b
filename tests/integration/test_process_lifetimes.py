"""What the one runner starts dies with its owner: a tool and a server, as ourselves and as the server's
unprivileged user (a change of user clears a parent-death signal, so the runner must set it after)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

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
