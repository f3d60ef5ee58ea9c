"""One state per process on every transport: a task started in one session is found and pressed from another.

Over SSE the SDK runs the server's lifespan once per connection, so each connection used to get its
own client, watcher and (with --simulator) simulator; Streamable HTTP ran it once. The end-to-end tests
start the console script over a real loopback socket and use one MCP connection per step, as
frameworks that open a session per tool call do; the others drive the app's lifespan in process.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mj_mcp.config import load_settings
from mj_mcp.server import MjServer, Runtime, create_server
from mj_mcp.server.runtime import Holder
from mj_mcp.transports import SharedRuntime, build_http_app
from tests.helpers import child_env, serving, text

pytestmark = pytest.mark.anyio

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"MJ_SIM_JOB_SECONDS": "0.5", "MJ_POLL_INTERVAL": "0.1"}


@pytest.fixture(
    params=[("sse",), ("streamable-http",), ("streamable-http", "--stateless")], ids=["sse", "stateful", "stateless"]
)
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The console script over HTTP with the simulator: (transport, base URL)."""
    transport, *extra = request.param
    args = ["--simulator", "--transport", transport, "--port", "0", "--log-level", "INFO", *extra]
    with serving(args, child_env(tmp_path, MJ_MCP_TOKEN=TOKEN, **FAST), tmp_path / "server.log") as base:
        yield transport, base


async def in_new_session(server: tuple[str, str], tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """One tool call in a connection of its own, closed afterwards."""
    transport, base = server
    with anyio.fail_after(30):
        async with httpx2.AsyncClient(headers=AUTH, timeout=30) as http:
            streams: AbstractAsyncContextManager[Any] = (
                sse_client(f"{base}/sse", headers=AUTH)
                if transport == "sse"
                else streamable_http_client(f"{base}/mcp", http_client=http)
            )
            async with Client(streams) as client:
                result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    return result


@pytest.mark.slow
async def test_a_task_started_in_one_session_is_found_and_pressed_from_another(server: tuple[str, str]) -> None:
    started = await in_new_session(server, "imagine", {"prompt": "a lighthouse at dawn", "wait": False})
    task_id = started.structured_content["id"] if started.structured_content else None
    assert task_id

    found = await in_new_session(server, "get_task", {"taskId": task_id, "wait": True, "timeout": 20})
    assert found.structured_content is not None
    assert found.structured_content["id"] == task_id
    assert found.structured_content["status"] == "SUCCESS"

    pressed = await in_new_session(server, "action", {"taskId": task_id, "customId": "U1"})
    assert pressed.structured_content is not None
    assert pressed.structured_content["status"] == "SUCCESS"
    assert pressed.structured_content["id"] != task_id


# -- in process ------------------------------------------------------------------------------------


@asynccontextmanager
async def app_lifespan(app: ASGIApp, sent: list[str]) -> AsyncGenerator[None]:
    """Run `app`'s ASGI lifespan as uvicorn does: startup, the block, shutdown (`sent` records the replies)."""
    to_app, app_receives = anyio.create_memory_object_stream[Message](2)
    app_sends, from_app = anyio.create_memory_object_stream[Message](2)

    async def send(message: Message) -> None:
        sent.append(message["type"])
        await app_sends.send(message)

    async def run() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, app_receives.receive, send)

    with anyio.fail_after(10):
        async with to_app, app_receives, app_sends, from_app, anyio.create_task_group() as tg:
            tg.start_soon(run)
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            yield
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


async def in_memory(server: MjServer, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async with Client(server) as client:  # a session of its own, whose lifespan the SDK runs
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result


async def test_every_session_of_the_sse_app_shares_the_runtime_its_lifespan_opened() -> None:
    # The in-process simulator (made per Runtime) keeps real time: its jobs take 50 ms here.
    settings = load_settings(
        simulator=True, transport="sse", output_dir="off", sim_job_seconds=0.05, poll_interval=0.02
    )
    server = create_server(settings)
    async with app_lifespan(build_http_app(server, settings), []):
        started = await in_memory(server, "imagine", {"prompt": "a lighthouse", "wait": False})
        task_id = cast(dict[str, Any], started.structured_content)["id"]
        with anyio.fail_after(10):
            found = await in_memory(server, "get_task", {"taskId": task_id, "wait": True})
            pressed = await in_memory(server, "action", {"taskId": task_id, "customId": "U1"})
    assert cast(dict[str, Any], found.structured_content)["status"] == "SUCCESS"
    assert cast(dict[str, Any], pressed.structured_content)["status"] == "SUCCESS"


class Opener:
    """A stand-in for `Runtime.open` that records when it opens and closes."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @asynccontextmanager
    async def __call__(self) -> AsyncGenerator[Runtime]:
        self.events.append("opened")
        try:
            yield cast(Runtime, object())
        finally:
            self.events.append("closed")


async def test_a_session_attaches_to_the_process_runtime_and_leaves_it_open() -> None:
    events: list[str] = []
    holder = Holder(Opener(events))
    async with holder.for_process() as shared:
        async with holder.for_session() as first:
            assert first is shared
        async with holder.for_session() as second:
            assert second is shared and holder.get() is shared
        with pytest.raises(RuntimeError, match="already open"):
            holder.for_process()
    assert events == ["opened", "closed"]


async def test_without_a_process_runtime_each_session_opens_and_closes_its_own() -> None:
    events: list[str] = []
    holder = Holder(Opener(events))
    async with holder.for_session() as runtime:
        assert holder.get() is runtime
    assert holder.runtime is None
    async with holder.for_session():
        pass
    assert events == ["opened", "closed", "opened", "closed"]


async def test_the_app_lifespan_closes_the_runtime_before_it_reports_shutdown_complete() -> None:
    events: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        for reply in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
            await receive()
            await send({"type": reply})

    server = MjServer(Holder(Opener(events)))
    async with app_lifespan(SharedRuntime(inner, server), events):
        assert events == ["opened", "lifespan.startup.complete"]
    assert events == ["opened", "lifespan.startup.complete", "closed", "lifespan.shutdown.complete"]
