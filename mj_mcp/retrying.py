"""One retry loop for the client: attempts, backoff, and the last error raised.

Each caller passes one attempt as a function that decides for itself what its outcome means:
it returns a value (done), raises (give up at once), or returns `Again` (worth another try,
carrying the error to raise if none is left and, optionally, how long the upstream asked us to
wait). What is retried therefore stays next to the request that knows it: reads on transport
failures, 5xx and 429; a submit only when its connection never opened.

A caller with a deadline passes `time_left`: a wait (backoff or Retry-After) that would not end
before it raises the last error at once instead of sleeping past the caller's own time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "Again", "Sleep", "equal_jitter", "retrying"]

Sleep = Callable[[float], Awaitable[None]]

_T = TypeVar("_T")

BACKOFF_BASE: Final = 0.5
BACKOFF_CAP: Final = 8.0


@dataclass(frozen=True, slots=True)
class Again:
    """An attempt failed in a way another attempt may fix."""

    error: Exception
    """Raised when no attempt is left."""
    after: float | None = None
    """Seconds to wait before the next attempt, when the upstream said (Retry-After); else the backoff."""


def equal_jitter(attempt: int, jitter: Callable[[], float]) -> float:
    """Exponential backoff with *equal* jitter: half of `min(cap, base·2ⁿ)` fixed, half random.

    The fixed half keeps a minimum pause; the random half spreads the retries of many callers apart.
    """
    return min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)) * (0.5 + jitter() / 2)


async def retrying(
    attempt: Callable[[], Awaitable[_T | Again]],
    *,
    attempts: int,
    backoff: Callable[[int], float],
    sleep: Sleep,
    time_left: Callable[[], float] | None = None,
) -> _T:
    """Run `attempt` up to `attempts` times (at least once), sleeping between tries; raise the last error.

    `time_left` (seconds until the caller's deadline): no sleep that would reach it; the last error instead.
    """
    for number in range(max(1, attempts)):
        outcome = await attempt()
        if not isinstance(outcome, Again):
            return outcome
        if number + 1 >= attempts:
            raise outcome.error
        wait = outcome.after if outcome.after is not None else backoff(number)
        if time_left is not None and wait >= time_left():
            raise outcome.error
        await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
