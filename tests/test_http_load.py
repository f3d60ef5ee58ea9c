"""The HTTP transports under load and abuse: body-size caps, the token on every route, and many
concurrent calls and sessions over real loopback HTTP with bounded memory."""

from __future__ import annotations

import base64
import gc
import json
import socket
import ssl
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent

from mj_mcp.client import MjClient
from mj_mcp.config import Settings, load_settings
from mj_mcp.server import create_server
from mj_mcp.simulator import Fault, FaultKind, ManualClock, Simulator
from mj_mcp.transports import BodySizeLimitMiddleware, build_http_app, max_request_bytes
from tests.helpers import coverage_paused

pytestmark = pytest.mark.anyio

TOKEN = "load-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
SSE_MESSAGES = "/messages/?session_id=0123456789abcdef0123456789abcdef"


def http_settings(transport: str = "streamable-http", **overrides: Any) -> Settings:
    return load_settings(simulator=True, transport=transport, mcp_token=TOKEN, output_dir="off", **overrides)


@asynccontextmanager
async def asgi_client(settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    """The real HTTP app (all its guards) in process; the session manager runs for Streamable HTTP."""
    server = create_server(settings)
    app = build_http_app(server, settings)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        if settings.transport == "sse":
            yield http
        else:
            async with server.session_manager.run():
                yield http


def blend_call(images: list[str]) -> dict[str, Any]:
    arguments = {"base64Array": images, "wait": False}
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "blend", "arguments": arguments}}


# -- request bodies are size-capped --------------------------------------------------------------


def test_the_body_cap_fits_a_blend_of_five_images_of_the_largest_allowed_size() -> None:
    for max_image_bytes in (64 * 1024, 10 * 1024 * 1024):
        settings = http_settings(max_image_bytes=max_image_bytes)
        image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\xff" * (max_image_bytes - 4)).decode()
        body = json.dumps(blend_call([image] * 5)).encode()
        assert len(body) <= max_request_bytes(settings)
        assert max_request_bytes(settings) - len(body) < 1.1 * 2**20  # the slack is the envelope, not more images


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_a_declared_body_over_the_cap_is_413_with_a_short_json_error(transport: str) -> None:
    settings = http_settings(transport, max_image_bytes=16 * 1024)
    path = "/mcp" if transport == "streamable-http" else SSE_MESSAGES
    async with asgi_client(settings) as http:
        with anyio.fail_after(30):
            response = await http.post(
                path, content=b"x" * (max_request_bytes(settings) + 1), headers={**MCP_HEADERS, **AUTH}
            )
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert "MJ_MAX_IMAGE_BYTES" in response.json()["message"]
    assert len(response.content) < 400


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_a_chunked_body_that_grows_past_the_cap_is_stopped_with_413(transport: str) -> None:
    settings = http_settings(transport, max_image_bytes=16 * 1024)
    cap = max_request_bytes(settings)
    path = "/mcp" if transport == "streamable-http" else SSE_MESSAGES
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 10 * cap:  # far more than the cap, without any Content-Length
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    async with asgi_client(settings) as http:
        with anyio.fail_after(30):
            response = await http.post(path, content=endless(), headers={**MCP_HEADERS, **AUTH})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert sent < cap + 2 * 64 * 1024  # reading stopped at the cap, not at the end of the stream


async def test_the_cap_also_guards_requests_without_the_token() -> None:
    settings = http_settings(max_image_bytes=16 * 1024)
    async with asgi_client(settings) as http:
        with anyio.fail_after(30):
            big = await http.post("/mcp", content=b"x" * (max_request_bytes(settings) + 1), headers=MCP_HEADERS)
            small = await http.post("/mcp", json=INIT, headers=MCP_HEADERS)
    assert big.status_code == 413
    assert small.status_code == 401


async def test_a_blend_larger_than_the_sdk_default_of_4_mib_still_reaches_the_tool() -> None:
    settings = http_settings()  # MJ_MAX_IMAGE_BYTES at its default: a 10 MB image must fit
    images = ["data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\xff" * (2_500_000 - 4)).decode()] * 2
    async with asgi_client(settings) as http:
        with anyio.fail_after(30):
            init = await http.post("/mcp", json=INIT, headers={**MCP_HEADERS, **AUTH})
            session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
            body = json.dumps(blend_call(images)).encode()
            assert len(body) > 4 * 1024 * 1024
            response = await http.post("/mcp", content=body, headers={**MCP_HEADERS, **AUTH, **session})
    assert response.status_code == 200, response.text[:200]
    # The tool ran and judged the (fake) images itself: an error result, not a refused request.
    assert '"isError":true' in response.text and "image" in response.text
    assert "internal error" not in response.text


async def read_the_body(receive: Any) -> int:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return size


async def test_an_error_of_the_app_itself_is_not_mistaken_for_an_oversized_body() -> None:
    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        await read_the_body(receive)
        raise RuntimeError("the app's own failure")

    transport = httpx2.ASGITransport(app=BodySizeLimitMiddleware(failing_app, 100))
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        with anyio.fail_after(10), pytest.raises(RuntimeError, match="own failure"):
            await http.post("/", content=b"x" * 50)


async def test_a_reply_already_under_way_is_not_replaced_by_a_413() -> None:
    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        await read_the_body(receive)  # too late to refuse: the body grows past the cap now

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 100

    app = BodySizeLimitMiddleware(streaming_app, 250)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)  # as a server drops the connection
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        with anyio.fail_after(10):
            response = await http.post("/", content=chunks())
    assert (response.status_code, response.content) == (200, b"started")


# -- the token guards every MCP route ------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "method", "path"),
    [
        ("streamable-http", "POST", "/mcp"),
        ("streamable-http", "GET", "/mcp"),
        ("streamable-http", "DELETE", "/mcp"),
        ("sse", "GET", "/sse"),
        ("sse", "POST", SSE_MESSAGES),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN])
async def test_every_mcp_route_without_the_right_token_is_401(
    transport: str, method: str, path: str, authorization: str | None
) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    async with asgi_client(http_settings(transport)) as http:
        with anyio.fail_after(30):
            response = await http.request(method, path, headers=headers, json=INIT if method == "POST" else None)
            health = await http.get("/health")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert health.status_code == 200


# -- many calls and sessions over real loopback HTTP ---------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory (server and clients both live here)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")  # pragma: no cover


@asynccontextmanager
async def serving_over_loopback(settings: Settings, mj: MjClient) -> AsyncIterator[str]:
    """The real server app (token, body cap, DNS-rebinding guard) in uvicorn on a free port."""
    async with uvicorn_on_a_free_port(build_http_app(create_server(settings, mj), settings), "on") as base:
        yield base


class SignallingServer(uvicorn.Server):
    """A uvicorn server that sets `listening` once its sockets listen (uvicorn itself offers only a flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


@asynccontextmanager
async def uvicorn_on_a_free_port(app: Any, lifespan: str) -> AsyncIterator[str]:
    """`app` served by uvicorn in this event loop, over real loopback HTTP; yields its base URL.

    Port 0: the kernel picks a free port as uvicorn binds it, and the URL reads it back (no race)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan=lifespan)
    server = SignallingServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.listening.wait()
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


SHARED_TLS = ssl.create_default_context()
"""One TLS context for every test client (plain http here): building one per client costs ~30 ms."""


@asynccontextmanager
async def mcp_session(base: str, mode: str) -> AsyncIterator[Client]:
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=50)
    async with (
        httpx2.AsyncClient(headers=AUTH, timeout=60, limits=limits, verify=SHARED_TLS) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client


def assert_ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.slow
async def test_200_concurrent_calls_in_one_session_and_50_concurrent_sessions_all_succeed_in_bounded_memory(
    record_property: Callable[[str, object], None],
) -> None:
    # Untraced: the functional tests cover every path taken here; this test is about the load.
    with coverage_paused():
        await load_one_session_then_many(record_property)


async def load_one_session_then_many(record_property: Callable[[str, object], None]) -> None:
    clock = ManualClock()
    sim = Simulator(clock=clock, seed=11)
    settings = http_settings()
    rss_at_start = rss_bytes()
    async with (
        MjClient("http://sim.test", transport=sim.transport()) as mj,
        serving_over_loopback(settings, mj) as base,
    ):
        with anyio.fail_after(120):
            async with mcp_session(base, "legacy") as client:
                done_id = assert_ok(await client.call_tool("imagine", {"prompt": "a lighthouse", "wait": False}))["id"]
                clock.advance(60)  # the job is finished: get_task returns it with its image
                warm = await client.call_tool("get_task", {"taskId": done_id})
                assert assert_ok(warm)["status"] == "SUCCESS"
                image_bytes = sum(len(c.data) for c in warm.content if isinstance(c, ImageContent))
                assert image_bytes > 40_000

                async def concurrently(count: int, call: Callable[[int], Awaitable[CallToolResult]]) -> int:
                    """Run `count` calls at once; the number of images that came back."""
                    results: list[CallToolResult] = []

                    async def one(i: int) -> None:
                        results.append(await call(i))

                    async with anyio.create_task_group() as tg:
                        for i in range(count):
                            tg.start_soon(one, i)
                    assert len(results) == count
                    for result in results:
                        assert_ok(result)
                    return sum(1 for r in results for c in r.content if isinstance(c, ImageContent))

                async def read_done(_i: int) -> CallToolResult:
                    return await client.call_tool("get_task", {"taskId": done_id})

                async def imagine_or_read(i: int) -> CallToolResult:
                    if i % 2:
                        return await read_done(i)
                    return await client.call_tool("imagine", {"prompt": f"tower {i}", "wait": False})

                # Leak probe: what 60 image-bearing calls leave behind, traced (tracing is slow).
                gc.collect()
                tracemalloc.start()
                try:
                    assert await concurrently(60, read_done) == 60
                    gc.collect()
                    retained, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert await concurrently(200, imagine_or_read) == 100

            submitted: list[str] = []

            async def one_session(i: int) -> None:
                async with mcp_session(base, "legacy" if i % 2 else "auto") as session:
                    job = await session.call_tool("imagine", {"prompt": f"harbour {i}", "wait": False})
                    submitted.append(assert_ok(job)["id"])
                    read = assert_ok(await session.call_tool("get_task", {"taskId": done_id}))
                    assert read["status"] == "SUCCESS"

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one_session, i)
    gc.collect()
    rss_growth = rss_bytes() - rss_at_start
    record_property("probe_retained_bytes", retained)
    record_property("probe_traced_peak_bytes", peak)
    record_property("rss_growth_bytes", rss_growth)
    assert len(set(submitted)) == 50
    assert len(sim.tasks) == 1 + 100 + 50
    # Had each call kept its image (at least its preview, image_bytes), 60 of them would show.
    assert retained < 30 * image_bytes, f"{retained / 2**20:.1f} MiB retained after 60 image reads"
    # Loose: whole-process growth over 250 calls and 50 sessions, with allocator slack.
    assert rss_growth < 200 * 2**20, f"resident memory grew by {rss_growth / 2**20:.1f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["connection_reset", "read_timeout"])
async def test_over_real_http_a_simulated_reset_or_timeout_drops_the_connection(kind: FaultKind) -> None:
    sim = Simulator(clock=ManualClock())
    async with (
        uvicorn_on_a_free_port(sim.app, "off") as base,
        httpx2.AsyncClient(base_url=base, verify=SHARED_TLS) as http,
    ):
        sim.inject(Fault(kind=kind, path="/mj/task/list"))
        with anyio.fail_after(10), pytest.raises(httpx2.RemoteProtocolError):
            await http.get("/mj/task/list")
        with anyio.fail_after(10):
            assert (await http.get("/mj/task/list")).status_code == 200  # the next connection is fine
