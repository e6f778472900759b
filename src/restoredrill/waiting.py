"""The one polling loop: ask until the answer is there, or say in one sentence what never happened.

Servers, containers, recoveries and RDS instances all come up in their own time; each wait used to be its
own `while` loop with its own deadline arithmetic. `ready` may also raise to stop waiting at once (a
server that died will not come up however long we wait).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from restoredrill.errors import CouldNotVerify

T = TypeVar("T")


def wait_until(
    ready: Callable[[], T],
    *,
    timeout: float,
    interval: float,
    timed_out: Callable[[], str],
    error: Callable[[str], Exception] = CouldNotVerify,
) -> T:
    """Call `ready` every `interval` seconds until it returns something truthy, and return that.

    Once `timeout` seconds have passed (counted from this call), the next falsy answer raises
    `error(timed_out())`: the message is built then, so it can quote the last error or a log tail.
    `ready` runs at least once, and once more after the deadline (no sleep is ever past it).
    """
    give_up = time.monotonic() + timeout
    while True:
        answer = ready()
        if answer:
            return answer
        left = give_up - time.monotonic()
        if left < 0:
            raise error(timed_out())
        time.sleep(min(interval, left))
