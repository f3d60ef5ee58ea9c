"""What instances share on Redis (MJ_REDIS_URL), in this process, against a real redis-server.

Two `RedisHub`s on one Redis stand for two instances: the MJ_MAX_JOBS count, the retried-job
registry, the polling leases and the lanes' channels are checked between them; the shared
callback route is checked through its ASGI app; the settings and the start (an unreachable Redis
is exit code 2) without any server.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from mj_mcp import redisstate
from mj_mcp.callbacks import CALLBACK_PREFIX, MAX_CALLBACK_BYTES
from mj_mcp.config import Settings, load_settings
from mj_mcp.errors import GuardrailError, SettingsError
from mj_mcp.models import Task
from mj_mcp.redisstate import RedisHub, start
from mj_mcp.server import create_server
from mj_mcp.sharedcallbacks import SharedCallbacks
from mj_mcp.waiting import TaskWatcher
from tests.cluster import redis_server, require_services
from tests.helpers import text

pytestmark = pytest.mark.anyio

TENANT = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_services("redis-server")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def settings_for(url: str, **extra: Any) -> Settings:
    return load_settings(simulator=True, transport="streamable-http", redis_url=url, poll_interval=0.5, **extra)


@pytest.fixture
async def hubs(redis_url: str) -> AsyncIterator[tuple[RedisHub, RedisHub]]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    async with RedisHub.open(settings_for(redis_url)) as a, RedisHub.open(settings_for(redis_url)) as b:
        yield a, b


class Source:
    """A TaskSource that knows no task (the tests hand the watchers their snapshots)."""

    async def fetch(self, task_id: str) -> Task:
        raise AssertionError("not read in these tests")

    async def list_by_condition(self, ids: list[str]) -> list[Task]:
        return []


# -- settings and start ----------------------------------------------------------------------------


def test_redis_url_must_be_a_redis_url_on_an_http_transport() -> None:
    for bad in ("http://localhost:6379", "redis://", "localhost:6379"):
        with pytest.raises(SettingsError, match="MJ_REDIS_URL") as caught:
            load_settings(simulator=True, transport="streamable-http", redis_url=bad)
        assert "secret" not in str(caught.value)
    with pytest.raises(SettingsError, match="MJ_REDIS_URL joins HTTP instances"):
        load_settings(simulator=True, redis_url="redis://localhost:6379/0")
    url = load_settings(simulator=True, transport="sse", redis_url=" rediss://:secret@r.example:6380/1 ").redis_url
    assert url is not None and url.get_secret_value() == "rediss://:secret@r.example:6380/1"
    assert load_settings(simulator=True, transport="sse", redis_url="unix:///run/redis.sock").redis_url
    assert load_settings(simulator=True, transport="sse", redis_url="").redis_url is None


def test_an_unreachable_redis_stops_the_start_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from mj_mcp.cli import main

    url = "redis://:hunter2@127.0.0.1:1/0"
    assert main(["--simulator", "--transport", "streamable-http", "--redis-url", url]) == 2
    err = capsys.readouterr().err
    assert "cannot use Redis at 127.0.0.1:1" in err and "hunter2" not in err and "Traceback" not in err


def test_without_the_redis_package_the_start_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(SettingsError, match=r"pip install 'mj-mcp\[hosting\]'"):
        start(settings_for("redis://127.0.0.1:1/0"))


def test_every_instance_reads_the_secret_the_first_one_wrote(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = start(settings_for(redis_url))
    monkeypatch.setattr(redisstate, "_STARTED", {})  # another process
    second = start(settings_for(redis_url))
    assert first.secret == second.secret and len(first.secret) == 64
    assert first.key_for("tenants") != first.key_for("callbacks")
    assert redisstate.redis_where("unix:///run/redis.sock") == "/run/redis.sock"


# -- what the hubs share ---------------------------------------------------------------------------


async def test_max_jobs_is_counted_once_across_instances_and_per_lane(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    taken = [await a.counter(TENANT).take(2), await b.counter(TENANT).take(2), await a.counter(TENANT).take(2)]
    assert taken == [True, True, False]
    assert await b.counter("").take(2)  # another lane counts apart


async def test_a_repeated_job_is_found_on_another_instance_until_answered(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    await a.registry(TENANT).started("digest", "task-1")
    assert await b.registry(TENANT).joinable("digest") == "task-1"
    assert await b.registry("").joinable("digest") is None  # per lane
    await b.registry(TENANT).answered("digest", "task-other")  # not this job's: kept
    assert await a.registry(TENANT).joinable("digest") == "task-1"
    await b.registry(TENANT).answered("digest", "task-1")
    assert await a.registry(TENANT).joinable("digest") is None


async def test_one_instance_polls_a_task_and_the_others_hear_what_it_read(hubs: tuple[RedisHub, RedisHub]) -> None:
    a, b = hubs
    assert await a.polls(TENANT).claim(["t1", "t2"]) == ["t1", "t2"]
    assert await b.polls(TENANT).claim(["t1", "t2", "t3"]) == ["t3"]
    assert await a.polls(TENANT).claim(["t1"]) == ["t1"]  # renewed by its holder
    watcher = TaskWatcher(Source(), interval=0.5, heartbeat=5.0)
    b.attach(TENANT, watcher, None)
    done = Task(id="t1", status="SUCCESS", progress="100%")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            waited: list[str | None] = []

            async def wait() -> None:
                waited.append((await watcher.wait("t1", timeout=10)).task.status)

            tg.start_soon(wait)
            while "t1" not in watcher.watched:  # noqa: ASYNC110 - the wait registers itself
                await anyio.sleep(0.01)
            await a.polls(TENANT).publish([done])
    assert waited == ["SUCCESS"] and b.delivered >= 1
    b.deliver(b"mj-mcp:lane:" + TENANT.encode(), b"s{not json")  # ignored, logged
    b.deliver(b"mj-mcp:lane:" + TENANT.encode(), b"x???")  # unknown kind
    b.detach(TENANT)
    b.deliver(b"mj-mcp:lane:" + TENANT.encode(), b"s" + done.model_dump_json().encode())


async def test_without_redis_the_shared_parts_degrade_as_documented() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    hub = RedisHub(client, lease_seconds=2.0)
    try:
        assert await hub.polls("").claim(["t1"]) == ["t1"]  # polled here rather than nowhere
        await hub.polls("").publish([Task(id="t1")])
        await hub.polls("").publish([])
        assert await hub.registry("").joinable("k") is None  # a repeat is a new job
        await hub.registry("").started("k", "t1")
        await hub.registry("").answered("k", "t1")
        with pytest.raises(GuardrailError, match="MJ_MAX_JOBS is counted in Redis"):
            await hub.counter("").take(5)
    finally:
        await client.aclose()


# -- the shared callback route ---------------------------------------------------------------------


async def test_a_callback_taken_by_one_instance_reaches_the_wait_on_another(
    hubs: tuple[RedisHub, RedisHub],
) -> None:
    a, b = hubs
    key = b"k" * 32
    route_a = SharedCallbacks("http://lb.example", key=key)
    receiver_b = SharedCallbacks("http://lb.example", key=key)
    a.serve_callbacks(route_a)
    lane_b = receiver_b.lane(TENANT)
    watcher = TaskWatcher(Source(), interval=0.5, heartbeat=5.0)
    lane_b.attach(watcher)
    b.attach(TENANT, watcher, lane_b)
    assert route_a.lane(TENANT).hook_url == lane_b.hook_url  # the same path on every instance
    assert route_a.receiver_of("") is route_a and route_a.receiver_of(TENANT) is not None
    path = lane_b.path
    body = Task(id="t9", status="SUCCESS", progress="100%").model_dump_json().encode()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=route_a), base_url="http://x") as http:
        assert (await http.post(CALLBACK_PREFIX + TENANT + ".forged" + "A" * 37, content=body)).status_code == 404
        assert (await http.post(CALLBACK_PREFIX + "nothing", content=body)).status_code == 404
        assert (await http.get(path)).status_code == 405
        assert (await http.post(path, content=b"[1, 2]")).status_code == 400
        assert (await http.post(path, content=b"x" * (MAX_CALLBACK_BYTES + 1))).status_code == 413
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                waited: list[str | None] = []

                async def wait() -> None:
                    waited.append((await watcher.wait("t9", timeout=10)).task.status)

                tg.start_soon(wait)
                while "t9" not in watcher.watched:  # noqa: ASYNC110 - the wait registers itself
                    await anyio.sleep(0.01)
                answer = await http.post(path, content=body)
                assert answer.status_code == 200
                assert (await http.post(route_a.path, content=body)).status_code == 200  # the one-key lane
    assert waited == ["SUCCESS"] and lane_b.accepted == 1
    route_a.drop_lane(route_a.lane(TENANT))
    route_a.connect(None)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=route_a), base_url="http://x") as http:
        assert (await http.post(path, content=body)).status_code == 503


# -- a whole server on Redis -----------------------------------------------------------------------


async def test_two_servers_on_one_redis_share_max_jobs(redis_url: str, tmp_path: Path) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    settings = settings_for(redis_url, max_jobs=1, output_dir=str(tmp_path))
    async with Client(create_server(settings)) as first, Client(create_server(settings)) as second:
        assert not (await first.call_tool("imagine", {"prompt": "a fox", "wait": False})).is_error
        refused = await second.call_tool("imagine", {"prompt": "a hare", "wait": False})
    assert refused.is_error and "MJ_MAX_JOBS" in text(refused)
