"""MCP task records in Redis (MJ_REDIS_URL), against a real redis-server: the store itself, two task
engines sharing it (a cancel on one stops the job on the other), and two whole servers on one Redis
answering for each other's tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mj_mcp import redisstate
from mj_mcp.config import load_settings
from mj_mcp.redistasks import RECORD, RedisTaskStore
from mj_mcp.server import create_server
from mj_mcp.server.tasks import CANCEL_NOTE, McpTasks
from mj_mcp.taskstore import MemoryTaskStore, TaskRecord, TaskStoreFull
from tests.cluster import redis_server, require_services
from tests.helpers import FakeClock, free_port, task_record

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_services("redis-server")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[Any]:
    import redis

    db: Any = redis.Redis.from_url(redis_url)
    db.flushdb()
    yield db
    db.close()


class Stopped:
    """What a store's channel asked this instance to stop."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.heard = anyio.Event()

    def __call__(self, task_id: str) -> None:
        self.ids.append(task_id)
        self.heard.set()


class Never:
    """A clock whose waits never end: whatever ends a wait on it is not the clock."""

    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await anyio.Event().wait()


def record(task_id: str, owner: str = "a", *, status: Any = "working", ttl_ms: int = 60_000) -> TaskRecord:
    return task_record(task_id, owner, status=status, ttl_ms=ttl_ms)


@asynccontextmanager
async def store(url: str, *, cap: int = 1000, clock: Any = None) -> AsyncIterator[tuple[RedisTaskStore, Stopped]]:
    stopped = Stopped()
    async with RedisTaskStore.open(url, clock or FakeClock(start=0.0), stopped, cap=cap) as opened:
        yield opened, stopped


# -- the store --------------------------------------------------------------------------------------


async def test_a_record_lives_for_its_ttl_and_belongs_to_its_owner(redis_url: str, redis_db: Any) -> None:
    async with store(redis_url) as (tasks, _):
        created = await tasks.create(record("t1", owner="tenant:x session:1", ttl_ms=30_000))
        assert created.seq == 1
        assert 29_000 < redis_db.pttl(RECORD + "t1") <= 30_000  # Redis forgets it at the task's TTL
        got = await tasks.get("tenant:x session:1", "t1")
        assert got is not None and got.tool == "imagine" and got.created_at == created.created_at
        assert 29.0 < got.expires_at <= 30.0  # on this instance's clock
        for stranger in ("tenant:y session:1", "tenant:x", ""):  # another tenant, session, or no one
            assert await tasks.get(stranger, "t1") is None
            assert (await tasks.page(stranger, None, 10)).records == []
        done = got.moved("completed", "done", result={"content": [], "isError": False})
        assert await tasks.update(done)
        assert not await tasks.update(done.moved("cancelled", CANCEL_NOTE))  # a finished record is final
        final = await tasks.get("tenant:x session:1", "t1")
        assert final is not None and final.status == "completed" and final.result == done.result
        assert 0 < redis_db.pttl(RECORD + "t1") <= 30_000  # an update keeps the TTL
        redis_db.delete(RECORD + "t1")  # as Redis does at the TTL
        assert await tasks.get("tenant:x session:1", "t1") is None
        assert not await tasks.update(got.moved("failed", "late"))  # an expired record stays gone
        assert (await tasks.page("tenant:x session:1", None, 10)).records == []


async def test_pages_follow_their_cursor_oldest_first_and_skip_expired_records(redis_url: str, redis_db: Any) -> None:
    async with store(redis_url) as (tasks, _):
        for i in range(6):
            await tasks.create(record(f"t{i}", owner="a" if i != 2 else "b"))
        redis_db.delete(RECORD + "t4")
        first = await tasks.page("a", None, 2)
        assert [r.task_id for r in first.records] == ["t0", "t1"] and first.next_cursor is not None
        second = await tasks.page("a", first.next_cursor, 2)
        assert [r.task_id for r in second.records] == ["t3", "t5"] and second.next_cursor is None
        assert [r.task_id for r in (await tasks.page("b", None, 2)).records] == ["t2"]
        with pytest.raises(ValueError, match="cursor"):
            await tasks.page("a", "zz", 2)


async def test_the_cap_holds_across_instances(redis_url: str, redis_db: Any) -> None:
    async with store(redis_url, cap=2) as (a, _), store(redis_url, cap=2) as (b, _):
        await a.create(record("done", status="completed"))
        await b.create(record("w1", owner="b"))
        await a.create(record("w2"))  # the oldest finished record makes room
        assert await a.get("a", "done") is None
        with pytest.raises(TaskStoreFull, match="still working"):
            await b.create(record("w3", owner="b"))
        redis_db.delete(RECORD + "w1")  # an expired record frees its slot
        await b.create(record("w3", owner="b"))


async def test_a_finished_record_wakes_the_waits_on_other_instances(redis_url: str, redis_db: Any) -> None:
    async with store(redis_url) as (a, _), store(redis_url, clock=Never()) as (b, _):
        working = await a.create(record("t1"))
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(b.settled, "t1", 3600.0)  # only the channel can end this wait
                await anyio.wait_all_tasks_blocked()
                await a.update(working.moved("completed", "done"))
        async with store(redis_url) as (c, _):
            await c.settled("t1", 0.5)  # nothing comes: the wait ends on the clock


async def test_a_cancel_asked_elsewhere_reaches_the_instance_that_runs_the_task(redis_url: str, redis_db: Any) -> None:
    async with store(redis_url) as (a, stopped_a), store(redis_url) as (b, stopped_b):
        await b.cancel_elsewhere("t1")
        with anyio.fail_after(10):
            await stopped_a.heard.wait()
        assert stopped_a.ids == ["t1"]
        a.deliver(b"?t1")  # an unknown kind is ignored
    assert stopped_b.ids == ["t1"]  # every instance hears it; only the runner has a job to stop


# -- two task engines on one Redis -----------------------------------------------------------------


@asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    yield None


async def test_an_instance_answers_and_cancels_a_task_another_instance_runs(redis_url: str, redis_db: Any) -> None:
    settings = load_settings(simulator=True, transport="streamable-http", redis_url=redis_url)
    clock = FakeClock(start=0.0)
    a = McpTasks(frozenset({"imagine"}), open_store=RedisTaskStore.opener(settings, clock), clock=clock)
    b = McpTasks(frozenset({"imagine"}), open_store=RedisTaskStore.opener(settings, Never()), clock=clock)
    release, stopped = anyio.Event(), anyio.Event()

    async def quick() -> dict[str, Any]:
        await release.wait()
        return {"content": [{"type": "text", "text": "a fox"}], "isError": False}

    async def endless() -> dict[str, Any]:
        try:
            await anyio.Event().wait()
        finally:
            stopped.set()
        raise AssertionError("never ends by itself")

    with anyio.fail_after(10):
        async with a.running(nothing()), b.running(nothing()):
            started = await a.start("tenant:t", "imagine", None, quick)
            assert (await b.get("tenant:t", started.task_id)).status == "working"
            with pytest.raises(MCPError, match="not yours"):
                await b.get("tenant:u", started.task_id)
            async with anyio.create_task_group() as group:
                group.start_soon(_set_when_blocked, release)
                finished = await b.result("tenant:t", started.task_id)  # woken through Redis
            assert finished.status == "completed" and finished.result is not None
            assert [r.task_id for r in (await b.page("tenant:t", None)).records] == [started.task_id]

            running = await a.start("tenant:t", "imagine", None, endless)
            cancelled = await b.cancel("tenant:t", running.task_id)
            await stopped.wait()  # the job on A stopped
            assert cancelled.status == "cancelled"
            assert (await a.result("tenant:t", running.task_id)).status_message == CANCEL_NOTE
            with pytest.raises(MCPError, match="already cancelled"):
                await a.cancel("tenant:t", running.task_id)


async def _set_when_blocked(event: anyio.Event) -> None:
    await anyio.wait_all_tasks_blocked()
    event.set()


# -- two servers on one Redis ----------------------------------------------------------------------


def raw(client: Client) -> Any:
    return client.session._dispatcher.send_raw_request  # pyright: ignore[reportPrivateUsage]


async def call(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(30):
        return await raw(client)(method, params, {})


async def test_a_task_started_on_one_server_is_answered_and_cancelled_on_another(redis_url: str, redis_db: Any) -> None:
    settings = load_settings(
        simulator=True, transport="streamable-http", redis_url=redis_url, poll_interval=0.2, sim_job_seconds=0.5
    )
    slow = settings.model_copy(update={"sim_job_seconds": 3600.0})
    async with (
        Client(create_server(settings), mode="legacy") as a,  # type: ignore[arg-type]
        Client(create_server(slow), mode="legacy") as slow_a,  # type: ignore[arg-type]
        Client(create_server(settings), mode="legacy") as b,  # type: ignore[arg-type]
    ):
        created = await call(a, "tools/call", {"name": "imagine", "arguments": {"prompt": "a fox"}, "task": {}})
        task_id = created["task"]["taskId"]
        assert (await call(b, "tasks/get", {"taskId": task_id}))["taskId"] == task_id
        result = await call(b, "tasks/result", {"taskId": task_id})
        assert result["structuredContent"]["status"] == "SUCCESS"
        assert result["_meta"] == {"io.modelcontextprotocol/related-task": {"taskId": task_id}}
        assert (await call(a, "tasks/get", {"taskId": task_id}))["status"] == "completed"
        assert task_id in [t["taskId"] for t in (await call(b, "tasks/list", {}))["tasks"]]

        started = await call(slow_a, "tools/call", {"name": "imagine", "arguments": {"prompt": "x"}, "task": {}})
        slow_id = started["task"]["taskId"]
        cancelled = await call(b, "tasks/cancel", {"taskId": slow_id})
        assert cancelled["status"] == "cancelled" and cancelled["statusMessage"] == CANCEL_NOTE
        with pytest.raises(MCPError, match="does not cancel the Midjourney job"):
            await call(slow_a, "tasks/result", {"taskId": slow_id})
        assert (await call(slow_a, "tasks/get", {"taskId": slow_id}))["status"] == "cancelled"


async def test_a_store_that_cannot_reach_redis_does_not_open() -> None:
    import redis

    with pytest.raises(ExceptionGroup) as refused:
        async with store(f"redis://127.0.0.1:{free_port()}/0"):
            raise AssertionError("opened")
    assert refused.group_contains(redis.ConnectionError)


async def test_the_channel_comes_back_after_redis_drops_it(
    redis_url: str, redis_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redisstate, "RECONNECT_SECONDS", 0.01)
    async with store(redis_url) as (a, stopped), store(redis_url) as (b, _):
        redis_db.client_kill_filter(_type="pubsub")
        with anyio.fail_after(10):
            while not stopped.ids:  # the cancels published while A reconnects are lost, as on Redis
                await b.cancel_elsewhere("t1")
                await anyio.sleep(0.01)
        assert set(stopped.ids) == {"t1"} and a.cap == 1000


async def test_an_outcome_the_store_cannot_take_is_logged_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unreachable(MemoryTaskStore):
        async def update(self, record: TaskRecord) -> bool:
            raise ConnectionError("Redis went away")

    clock = FakeClock(start=0.0)
    memory = Unreachable(clock)
    tasks = McpTasks(frozenset({"imagine"}), store=memory, clock=clock)

    async def quick() -> dict[str, Any]:
        return {"content": [], "isError": False}

    async with tasks.running(nothing()):
        started = await tasks.start("a", "imagine", None, quick)
        await anyio.wait_all_tasks_blocked()
        assert (await tasks.get("a", started.task_id)).status == "working"  # until its TTL
    assert "Could not record the outcome" in caplog.text
    await memory.settled("t1", 2.0)  # one process: the wait is the clock's
    await memory.cancel_elsewhere("t1")
    assert clock.t == 2.0
