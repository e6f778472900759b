"""wait_until: the one polling loop returns the first truthy answer, or raises one sentence at its deadline."""

from __future__ import annotations

import time

import pytest

from restoredrill.errors import CouldNotVerify
from restoredrill.waiting import wait_until


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, False, 0, "ready", "later"])
    assert wait_until(lambda: next(answers), timeout=5, interval=0.001, timed_out=lambda: "never") == "ready"


def test_times_out_with_the_message_built_at_the_deadline() -> None:
    asked = []
    started = time.monotonic()
    with pytest.raises(CouldNotVerify, match=r"^not ready after \d+ attempts$"):
        wait_until(
            lambda: asked.append(1),
            timeout=0.2,
            interval=0.05,
            timed_out=lambda: f"not ready after {len(asked)} attempts",
        )
    took = time.monotonic() - started
    assert 0.2 <= took < 2, f"gave up after {took:.2f} s, asked for 0.2 s"
    assert len(asked) >= 3, "asked at least at the start, between, and once after the deadline"


def test_a_probe_that_raises_stops_the_wait_at_once() -> None:
    def died() -> bool:
        raise CouldNotVerify("the server died at start")

    started = time.monotonic()
    with pytest.raises(CouldNotVerify, match="the server died at start"):
        wait_until(died, timeout=30, interval=1, timed_out=lambda: "never")
    assert time.monotonic() - started < 1


def test_the_error_type_is_the_callers() -> None:
    with pytest.raises(AssertionError, match="still there"):
        wait_until(lambda: None, timeout=0, interval=0.01, timed_out=lambda: "still there", error=AssertionError)
