"""The one retry loop: return, raise at once, or try again after the backoff or the upstream's wait."""

from __future__ import annotations

import pytest

from mj_mcp.retrying import Again, equal_jitter, retrying

pytestmark = pytest.mark.anyio


class Slept(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_an_attempt_is_repeated_until_it_returns() -> None:
    outcomes: list[str | Again] = [Again(OSError("a")), Again(OSError("b"), after=7.0), "done"]
    slept = Slept()

    async def attempt() -> str | Again:
        return outcomes.pop(0)

    assert await retrying(attempt, attempts=3, backoff=lambda n: 10.0 + n, sleep=slept) == "done"
    assert slept == [10.0, 7.0]


async def test_the_last_error_is_raised_when_no_attempt_is_left() -> None:
    slept = Slept()
    calls: list[int] = []

    async def attempt() -> str | Again:
        calls.append(1)
        return Again(ValueError(f"try {len(calls)}"))

    with pytest.raises(ValueError, match="try 2"):
        await retrying(attempt, attempts=2, backoff=lambda n: 1.0, sleep=slept)
    assert slept == [1.0]


async def test_an_error_raised_by_the_attempt_ends_the_loop_at_once() -> None:
    slept = Slept()

    async def attempt() -> str | Again:
        raise KeyError("final")

    with pytest.raises(KeyError):
        await retrying(attempt, attempts=5, backoff=lambda n: 1.0, sleep=slept)
    assert slept == []


def test_equal_jitter_keeps_half_and_randomises_half() -> None:
    assert equal_jitter(0, lambda: 0.0) == 0.25
    assert equal_jitter(0, lambda: 1.0) == 0.5
    assert equal_jitter(10, lambda: 1.0) == 8.0


async def test_a_wait_that_would_reach_the_callers_deadline_raises_the_last_error_instead() -> None:
    slept = Slept()
    left = [5.0]

    async def attempt() -> str | Again:
        return Again(ValueError("busy"), after=left[0] + 1)

    with pytest.raises(ValueError, match="busy"):
        await retrying(attempt, attempts=3, backoff=lambda n: 1.0, sleep=slept, time_left=lambda: left[0])
    assert slept == []

    async def quick() -> str | Again:
        return Again(ValueError("again")) if not slept else "done"

    assert await retrying(quick, attempts=3, backoff=lambda n: 1.0, sleep=slept, time_left=lambda: 5.0) == "done"
    assert slept == [1.0]
