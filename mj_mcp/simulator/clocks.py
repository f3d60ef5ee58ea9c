"""The simulator's clocks: wall time for a real server, and a hand-moved one for tests.

Both implement `mj_mcp.clock.Clock`. The simulator needs wall time (not `SystemClock`'s
monotonic time) because the upstream reports submit, start and finish times as Unix
milliseconds. A fault's delay and the callback sender's ticks sleep on the same clock, so on a
`ManualClock` they move time instead of waiting.
"""

from __future__ import annotations

import time
from typing import Final

import anyio
import anyio.lowlevel

__all__ = ["DEFAULT_START", "ManualClock", "WallClock"]

DEFAULT_START: Final = 1_750_000_000.0
"""Where a `ManualClock` starts: a fixed Unix time, so that ids and timestamps are reproducible."""


class WallClock:
    """Unix time, and real sleeping: the simulator's clock when serving for real."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to: tests advance it instead of sleeping.

    `sleep` moves it forward by the time asked for and yields once, so that a delayed fault or
    the callback sender's loop passes simulated time without waiting.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
