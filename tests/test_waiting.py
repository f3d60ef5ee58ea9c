"""TaskWatcher: one poll loop for every waiter, fallbacks, ordering, and failures, on a fake clock."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import httpx2
import pytest

from mj_mcp.client import MjClient
from mj_mcp.clock import SystemClock
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import AuthenticationError, ProtocolError, TaskNotFoundError
from mj_mcp.models import ImagineRequest, Task
from mj_mcp.simulator import Fault, Quirks, Simulator
from mj_mcp.waiting import TaskWatcher, WaitOutcome
from tests.helpers import SIM_URL, FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
async def watcher(mj: MjClient, clock: FakeClock) -> AsyncIterator[TaskWatcher]:
    w = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run)
        yield w
        tg.cancel_scope.cancel()


async def submit(mj: MjClient, prompt: str = "x") -> str:
    task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt=prompt))).task_id
    assert task_id is not None
    return task_id


def reads(sim: Simulator) -> dict[str, int]:
    counts = {"list": 0, "fetch": 0}
    for _, path in sim.request_log:
        if path.endswith("/list-by-condition"):
            counts["list"] += 1
        elif path.endswith("/fetch"):
            counts["fetch"] += 1
    return counts


async def test_many_waiters_share_one_list_request_per_tick(mj: MjClient, sim: Simulator, watcher: TaskWatcher) -> None:
    ids = [await submit(mj, f"job {i}") for i in range(50)]
    outcomes: list[WaitOutcome] = []

    async def wait(task_id: str) -> None:
        outcomes.append(await watcher.wait(task_id, timeout=600))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for task_id in ids:
                tg.start_soon(wait, task_id)
    assert len(outcomes) == 50 and all(o.task.status == "SUCCESS" and not o.timed_out for o in outcomes)
    counts = reads(sim)
    assert counts["fetch"] == 0
    assert counts["list"] == watcher.polls
    assert counts["list"] <= 15  # per-task polling would have cost 50 reads per tick
    assert watcher.watched == []


async def test_without_list_by_condition_it_falls_back_to_fetch_once_and_remembers(
    mj: MjClient, sim: Simulator, quirks: Quirks, watcher: TaskWatcher
) -> None:
    quirks.list_by_condition = False
    ids = [await submit(mj), await submit(mj)]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for task_id in ids:
                tg.start_soon(lambda t=task_id: watcher.wait(t, timeout=600))
    assert watcher.list_supported is False
    assert reads(sim)["list"] == 1
    assert reads(sim)["fetch"] >= 2


async def test_a_web_page_where_list_by_condition_should_be_also_falls_back_to_fetch(
    mj: MjClient, sim: Simulator, watcher: TaskWatcher
) -> None:
    """A gateway that does not relay the route may answer it with its dashboard page (HTTP 200)."""
    sim.inject(Fault(path="/list-by-condition", kind="html_error_page", status=200, times=None))
    task_id = await submit(mj)
    with anyio.fail_after(30):
        outcome = await watcher.wait(task_id, timeout=600)
    assert outcome.task.status == "SUCCESS"
    assert watcher.list_supported is False


async def test_backward_and_stale_snapshots_are_ignored(mj: MjClient, clock: FakeClock) -> None:
    w = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    seen: list[str] = []

    async def record(task: Task) -> None:
        seen.append(f"{task.status}:{task.progress}")

    async def offer_all() -> None:
        await anyio.lowlevel.checkpoint()
        assert w.offer(Task(id="7", status="IN_PROGRESS", progress="40%"))
        assert not w.offer(Task(id="7", status="IN_PROGRESS", progress="40%"))  # duplicate
        assert not w.offer(Task(id="7", status="IN_PROGRESS", progress="20%"))  # backwards
        assert not w.offer(Task(id="7", status="SUBMITTED", progress="0%"))  # stale
        assert w.offer(Task(id="7", status="SUCCESS", progress="100%"))
        assert not w.offer(Task(id="7", status="IN_PROGRESS", progress="99%"))  # after the end
        w._wake_waiters()  # pyright: ignore[reportPrivateUsage]

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(offer_all)
            outcome = await w.wait("7", timeout=60, on_update=record)
    assert outcome.task.status == "SUCCESS"
    assert "IN_PROGRESS:20%" not in seen and "SUBMITTED:0%" not in seen
    assert not w.offer(Task(id="unwatched", status="SUCCESS"))


async def test_a_task_that_disappears_mid_wait_is_reported_as_not_found(mj: MjClient, watcher: TaskWatcher) -> None:
    with anyio.fail_after(10), pytest.raises(TaskNotFoundError):
        await watcher.wait("9999999999999999", timeout=600)
    assert watcher.watched == []


async def test_a_refused_key_during_a_wait_ends_it(sim: Simulator, mj: MjClient, watcher: TaskWatcher) -> None:
    task_id = await submit(mj)
    sim.api_key = "now-required"
    with anyio.fail_after(10), pytest.raises(AuthenticationError):
        await watcher.wait(task_id, timeout=600)


async def test_one_garbled_poll_is_waited_out_but_a_steady_stream_of_them_ends_the_wait(
    sim: Simulator, mj: MjClient, watcher: TaskWatcher
) -> None:
    first = await submit(mj, "first")
    sim.inject(Fault(path="/list-by-condition", kind="malformed_json", times=1))
    with anyio.fail_after(10):
        outcome = await watcher.wait(first, timeout=600)
    assert outcome.task.status == "SUCCESS"

    second = await submit(mj, "second")
    sim.inject(Fault(path="/list-by-condition", kind="malformed_json", times=None))
    with anyio.fail_after(10), pytest.raises(ProtocolError):
        await watcher.wait(second, timeout=600)


async def test_a_429_slows_the_whole_poller_down(sim: Simulator, clock: FakeClock) -> None:
    times: list[float] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("list-by-condition"):
            times.append(clock.now())
        return await sim.transport().handle_async_request(request)

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=clock.sleep, read_attempts=1) as mj:
        task_id = await submit(mj)
        sim.inject(Fault(path="/list-by-condition", status=429, headers={"Retry-After": "20"}))
        w = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(w.run)
                outcome = await w.wait(task_id, timeout=600)
                tg.cancel_scope.cancel()
    assert outcome.task.status == "SUCCESS"
    assert times[1] - times[0] >= 20


async def test_a_timeout_before_any_poll_reads_the_task_once(mj: MjClient, sim: Simulator, clock: FakeClock) -> None:
    task_id = await submit(mj)
    w = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)  # its loop is not running
    with anyio.fail_after(5):
        outcome = await w.wait(task_id, timeout=0)
    assert outcome.timed_out and outcome.task.id == task_id
    assert reads(sim)["fetch"] == 1


async def test_new_jobs_are_polled_quickly_and_old_ones_at_the_interval(
    mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    sim.job_seconds = 400
    task_id = await submit(mj)
    w = TaskWatcher(mj, interval=4.0, heartbeat=5.0, clock=clock)
    times: list[float] = []
    real_poll = w.poll_once

    async def timed_poll() -> None:
        times.append(clock.now())
        await real_poll()

    w.poll_once = timed_poll  # type: ignore[method-assign]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(w.run)
            await w.wait(task_id, timeout=120)
            tg.cancel_scope.cancel()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    assert gaps[0] == 1.0
    assert max(gaps) == 4.0


async def test_the_system_clock_moves_and_sleeps() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0)
    assert clock.now() >= before


async def test_any_task_source_will_do_not_just_the_client(clock: FakeClock) -> None:
    class Source:
        """Two reads, as TaskSource asks; the task is done at the first list."""

        def __init__(self) -> None:
            self.lists: list[list[str]] = []

        async def fetch(self, task_id: str) -> Task:
            return Task(id=task_id, status="IN_PROGRESS", progress="10%")

        async def list_by_condition(self, ids: list[str]) -> list[Task]:
            self.lists.append(ids)
            return [Task(id=i, status="SUCCESS", progress="100%") for i in ids]

    source = Source()
    w = TaskWatcher(source, interval=2.0, heartbeat=5.0, clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(w.run)
        with anyio.fail_after(10):
            outcome = await w.wait("42", timeout=60)
        tg.cancel_scope.cancel()
    assert outcome == WaitOutcome(Task(id="42", status="SUCCESS", progress="100%"), timed_out=False)
    assert source.lists == [["42"]]
