"""Time, as one seam: the client's backoff, the watcher's polls and the simulator's jobs all read it.

Production code uses `SystemClock`; tests pass one fake clock that they advance by hand, so that
nothing in the suite sleeps for real.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Monotonic time in seconds, and a way to wait for it to pass."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
