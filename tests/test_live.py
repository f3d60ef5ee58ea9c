"""Live task resources: subscribers hear `resources/updated` as a task changes, in both protocol eras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest
from mcp import Client
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent
from mcp.types import (
    ResourceUpdatedNotification,
    SubscribeRequestParams,
    SubscriptionFilter,
    SubscriptionsListenRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import ImagineRequest
from mj_mcp.server.live import LiveTasks, task_id_of
from mj_mcp.simulator import Simulator
from mj_mcp.waiting import TaskWatcher
from tests.conftest import ServerFactory
from tests.helpers import FakeClock

pytestmark = pytest.mark.anyio


async def status_of(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return str(json.loads(content.text)["status"])


async def submit(client: Client) -> str:
    result = await client.call_tool("imagine", {"prompt": "a lighthouse", "wait": False})
    assert result.structured_content is not None
    return str(result.structured_content["id"])


def test_only_task_uris_can_be_followed() -> None:
    assert task_id_of("mj://tasks/1750000000000001") == "1750000000000001"
    assert task_id_of("mj://tasks/1750000000000001/image") == "1750000000000001"
    for uri in ("mj://tasks/recent", "mj://queue", "mj://tasks/page/0", "mj://tasks/1/other", "file:///etc"):
        assert task_id_of(uri) is None


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_a_legacy_subscriber_hears_each_change_until_the_task_finishes(make_server: ServerFactory) -> None:
    updates: list[str] = []
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        nonlocal changed
        if isinstance(message, ResourceUpdatedNotification):
            updates.append(message.params.uri)
            changed.set()

    async with Client(make_server(), mode="legacy", message_handler=on_message) as client:  # type: ignore[arg-type]
        caps = client.server_capabilities.resources
        assert caps is not None and caps.subscribe
        task_id = await submit(client)
        uri = f"mj://tasks/{task_id}"
        await client.subscribe_resource(uri)  # pyright: ignore[reportDeprecated]
        statuses: list[str] = []
        with anyio.fail_after(10):
            while not statuses or statuses[-1] != "SUCCESS":
                await changed.wait()
                changed = anyio.Event()
                statuses.append(await status_of(client, uri))
    assert set(updates) == {uri}
    # Changes between two polls arrive as one; an 8 s job polled every second still shows several.
    assert len(updates) >= 2 and statuses[-1] == "SUCCESS"


async def test_a_listen_stream_hears_each_change_until_the_task_finishes(make_server: ServerFactory) -> None:
    async with Client(make_server(), mode="auto") as client:  # type: ignore[arg-type]
        task_id = await submit(client)
        uri = f"mj://tasks/{task_id}"
        image_uri = f"{uri}/image"
        heard: list[str] = []
        statuses: list[str] = []
        with anyio.fail_after(10):
            async with client.listen(resource_subscriptions=[uri, image_uri]) as sub:
                async for event in sub:
                    assert isinstance(event, ResourceUpdated)
                    heard.append(event.uri)
                    if event.uri == uri:
                        statuses.append(await status_of(client, uri))
                        if statuses[-1] == "SUCCESS":
                            break
    assert uri in heard and image_uri in heard
    assert len([u for u in heard if u == uri]) >= 2 and statuses[-1] == "SUCCESS"


# -- the follower on its own ---------------------------------------------------------------------


class FakeSession:
    """Stands in for a legacy client's session: records what it is sent, or fails like a closed one."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken
        self.sent: list[str] = []
        self.attempts = 0

    async def send_resource_updated(self, uri: str) -> None:
        self.attempts += 1
        if self.broken:
            raise anyio.ClosedResourceError
        self.sent.append(uri)


def ctx(session: FakeSession) -> Any:
    return cast(Any, SimpleNamespace(session=session))


@pytest.fixture
async def live(mj: MjClient, clock: FakeClock) -> AsyncIterator[tuple[LiveTasks, TaskWatcher, list[ServerEvent]]]:
    bus = InMemorySubscriptionBus()
    events: list[ServerEvent] = []
    bus.subscribe(events.append)
    watcher = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    tasks = LiveTasks(bus)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        tasks.start(watcher, tg, retry_delay=2.0)
        yield tasks, watcher, events
        tasks.stop()
        tg.cancel_scope.cancel()


async def new_task(mj: MjClient) -> str:
    task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
    assert task_id is not None
    return task_id


async def settle(clock: FakeClock, condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await clock.sleep(0.5)


async def test_unsubscribing_the_last_subscriber_stops_following(
    live: tuple[LiveTasks, TaskWatcher, list[ServerEvent]], mj: MjClient, sim: Simulator
) -> None:
    tasks, watcher, _ = live
    sim.job_seconds = 1000
    task_id = await new_task(mj)
    uri = f"mj://tasks/{task_id}"
    one, two = FakeSession(), FakeSession()
    await tasks.subscribe(ctx(one), SubscribeRequestParams(uri=uri))
    await tasks.subscribe(ctx(two), SubscribeRequestParams(uri=uri))
    await tasks.unsubscribe(ctx(one), UnsubscribeRequestParams(uri=uri))
    assert tasks.followed == [task_id]
    await tasks.unsubscribe(ctx(two), UnsubscribeRequestParams(uri=uri))
    assert tasks.followed == []
    with anyio.fail_after(5):
        while watcher.watched:  # the follower leaves the watcher once cancelled
            await anyio.lowlevel.checkpoint()


async def test_a_closed_session_is_forgotten_and_the_others_still_hear(
    live: tuple[LiveTasks, TaskWatcher, list[ServerEvent]], mj: MjClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.job_seconds = 8.0  # long enough for several changes after the broken session is dropped
    tasks, _, _ = live
    task_id = await new_task(mj)
    uri = f"mj://tasks/{task_id}"
    gone, here = FakeSession(broken=True), FakeSession()
    await tasks.subscribe(ctx(gone), SubscribeRequestParams(uri=uri))
    await tasks.subscribe(ctx(here), SubscribeRequestParams(uri=uri))
    await settle(clock, lambda: not tasks.followed)  # followed to the end
    assert len(here.sent) >= 2 and set(here.sent) == {uri}
    assert gone.attempts == 1  # tried once, then forgotten


async def test_lists_and_the_queue_can_be_subscribed_to_but_are_not_followed(
    live: tuple[LiveTasks, TaskWatcher, list[ServerEvent]],
) -> None:
    tasks, watcher, _ = live
    for uri in ("mj://tasks/recent", "mj://queue"):
        await tasks.subscribe(ctx(FakeSession()), SubscribeRequestParams(uri=uri))
        await tasks.unsubscribe(ctx(FakeSession()), UnsubscribeRequestParams(uri=uri))
    assert tasks.followed == [] and watcher.watched == []


async def test_a_task_that_does_not_exist_is_followed_until_the_upstream_says_so(
    live: tuple[LiveTasks, TaskWatcher, list[ServerEvent]], clock: FakeClock
) -> None:
    tasks, _, _ = live
    session = FakeSession()
    await tasks.subscribe(ctx(session), SubscribeRequestParams(uri="mj://tasks/9999999999999999"))
    assert tasks.followed == ["9999999999999999"]
    await settle(clock, lambda: not tasks.followed)
    assert session.sent == []


async def test_following_is_capped(mj: MjClient, clock: FakeClock) -> None:
    tasks = LiveTasks(InMemorySubscriptionBus(), max_followed=1)
    await tasks.subscribe(ctx(FakeSession()), SubscribeRequestParams(uri="mj://tasks/1"))
    await tasks.subscribe(ctx(FakeSession()), SubscribeRequestParams(uri="mj://tasks/2"))
    assert tasks.followed == ["1"]


async def test_a_listen_stream_that_ends_stops_following(
    live: tuple[LiveTasks, TaskWatcher, list[ServerEvent]], mj: MjClient, sim: Simulator
) -> None:
    tasks, _, _ = live
    sim.job_seconds = 1000
    task_id = await new_task(mj)
    uri = f"mj://tasks/{task_id}"
    params = SubscriptionsListenRequestParams(notifications=SubscriptionFilter(resource_subscriptions=[uri, uri]))
    listening = SimpleNamespace(request_id=None, session=FakeSession())
    with pytest.raises(Exception, match="request id"):
        await tasks.listen(cast(Any, listening), params)  # the SDK's handler refuses; we clean up
    assert tasks.followed == []
