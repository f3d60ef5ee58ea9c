"""The HTTP listeners against slow and greedy clients (issue 12, row 7) and `/health` of a dead app.

Real timing is the point of the socket tests, so they sleep for real; every wait is bounded
(the pyproject has no `slow` marker to put on them). Counts are kept small for a 2-core machine:
a few hundred loopback sockets, well under the test process's file-descriptor limit.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer

from mj_mcp.config import load_settings
from mj_mcp.httplimits import RequestLimits, connection_cap, guarded_protocol
from mj_mcp.server import create_server
from mj_mcp.transports import build_http_app
from tests.helpers import child_env, free_port

# Real sockets on loopback against real timeouts (one a subprocess with few file descriptors).
pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STALLED_HEAD = b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
"""Half a request: the head never ends."""


@asynccontextmanager
async def serving(app: Any, *, lifespan: str = "on", **limits: Any) -> AsyncIterator[str]:
    """`app` under uvicorn with the guarded protocol (`limits` for `guarded_protocol`); its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="critical", lifespan=lifespan, http=guarded_protocol(**limits)
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            server.force_exit = True


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def stall(port: int, count: int, head: bytes = STALLED_HEAD) -> list[anyio.abc.SocketStream]:
    streams: list[anyio.abc.SocketStream] = []
    for _ in range(count):
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.send(head)
        streams.append(stream)
    return streams


async def closed_by_server(stream: anyio.abc.SocketStream) -> bool:
    """True once the server has closed this connection (EOF or reset), having sent nothing."""
    try:
        return await stream.receive() == b""
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return True


async def health_within(base: str, seconds: float) -> int:
    with anyio.fail_after(seconds):
        async with httpx2.AsyncClient(timeout=seconds) as http:
            return (await http.get(f"{base}/health")).status_code


def mcp_app() -> Any:
    settings = load_settings(simulator=True, transport="streamable-http", output_dir="off")
    return build_http_app(create_server(settings), settings)


async def test_stalled_request_heads_are_closed_within_the_header_timeout_while_health_answers() -> None:
    async with serving(mcp_app(), header_timeout=1.0, max_connections=1000) as base:
        stalled = await stall(port_of(base), 200)
        started = time.monotonic()
        assert await health_within(base, 2) == 200
        with anyio.fail_after(3):  # the header timeout (1 s) plus slack for 200 closes on a busy machine
            closed = [await closed_by_server(stream) for stream in stalled]
        assert all(closed)
        assert time.monotonic() - started < 3
        for stream in stalled:
            await stream.aclose()


async def test_a_head_sent_one_byte_at_a_time_is_not_given_more_time_per_byte() -> None:
    async with serving(mcp_app(), header_timeout=1.0) as base:
        stream = await anyio.connect_tcp("127.0.0.1", port_of(base))
        started = time.monotonic()
        with anyio.fail_after(4):
            for byte in STALLED_HEAD + b"x" * 100:
                try:
                    await stream.send(bytes([byte]))
                except (anyio.BrokenResourceError, ConnectionError):
                    break
                await anyio.sleep(0.05)
            assert await closed_by_server(stream)
        assert time.monotonic() - started < 2.5
        await stream.aclose()


async def test_a_second_head_on_a_keep_alive_connection_has_the_same_deadline() -> None:
    """uvicorn's keep-alive timer stops at the next request's first byte; the head deadline takes over."""
    async with serving(mcp_app(), header_timeout=1.0) as base:
        stream = await anyio.connect_tcp("127.0.0.1", port_of(base))
        await stream.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        with anyio.fail_after(5):
            while not answer.endswith(b"}"):
                answer += await stream.receive()
        assert answer.startswith(b"HTTP/1.1 200")
        await stream.send(STALLED_HEAD)
        started = time.monotonic()
        with anyio.fail_after(4):
            assert await closed_by_server(stream)
        assert time.monotonic() - started < 2.5
        await stream.aclose()


async def test_a_request_body_that_stalls_is_cut_off_after_the_idle_timeout() -> None:
    async with serving(mcp_app(), body_idle_timeout=1.0) as base:
        stream = await anyio.connect_tcp("127.0.0.1", port_of(base))
        head = (
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        await stream.send(head + b'{"jsonrpc": "2.0", ')
        started = time.monotonic()
        with anyio.fail_after(4):
            while True:  # the app may answer the cut-off body before the connection closes
                try:
                    if not await stream.receive():
                        break
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                    break
        assert time.monotonic() - started < 3
        await stream.aclose()


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the body, thinks for a second, then streams five chunks 0.4 s apart (a long-lived stream)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await anyio.sleep(1)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(5):
        await send({"type": "http.response.body", "body": f"chunk {i}\n".encode(), "more_body": True})
        await anyio.sleep(0.4)
    await send({"type": "http.response.body", "body": b"end\n"})


async def test_slow_answers_and_long_streams_outlive_both_timeouts() -> None:
    async with (
        serving(slow_app, lifespan="off", header_timeout=0.5, body_idle_timeout=0.5) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        with anyio.fail_after(10):
            streamed = await http.post(base, content=b"x" * 100_000)
            again = await http.get(base)  # the same keep-alive connection serves a second request
        assert streamed.status_code == 200 and streamed.text.endswith("chunk 4\nend\n")
        assert again.text.endswith("end\n")


async def test_over_the_connection_cap_the_oldest_stalled_connection_makes_room() -> None:
    async with serving(mcp_app(), header_timeout=30.0, max_connections=20) as base:
        stalled = await stall(port_of(base), 60)
        for _ in range(3):
            assert await health_within(base, 2) == 200
        with anyio.fail_after(5):
            assert all([await closed_by_server(stream) for stream in stalled[:30]])
        for stream in stalled:
            await stream.aclose()


def test_the_connection_cap_leaves_a_quarter_of_the_file_descriptors() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap() == max(32, min(1024, soft * 3 // 4))


@contextmanager
def server_with_few_file_descriptors(tmp_path: Path, limit: int) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "mj_mcp", "--simulator", "--transport", "streamable-http", "--port", str(port)]

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(args, env=child_env(tmp_path), stdout=log, stderr=log, preexec_fn=lower_the_limit)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_a_slowloris_flood_past_the_file_descriptor_limit_leaves_health_answering(tmp_path: Path) -> None:
    """Row 7: more stalled connections than the server has descriptors; `/health` still answers."""
    with server_with_few_file_descriptors(tmp_path, 128) as base:
        with anyio.fail_after(30):
            while True:
                try:
                    if await health_within(base, 2) == 200:
                        break
                except (httpx2.TransportError, TimeoutError):
                    await anyio.sleep(0.1)  # readiness poll of a starting subprocess
        stalled = await stall(port_of(base), 200)
        try:
            # Room is made by evicting the oldest stalled connections one accept at a time; on a busy
            # machine (CI runs the suite in parallel) that takes seconds, so the bound is generous:
            # without the cap the server never answers again.
            for _ in range(3):
                assert await health_within(base, 10) == 200
        finally:
            for stream in stalled:
                await stream.aclose()


# -- requests in flight per client and in all ------------------------------------------------------


class Held:
    """An app whose requests stay open until `release` is set."""

    def __init__(self) -> None:
        self.release = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, client: str, path: str = "/mcp") -> int:
    """One GET through `app` from `client`; its status."""
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": (client, 5000)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def test_one_client_past_its_bound_is_429_while_another_client_and_health_are_served() -> None:
    held = Held()
    limits = RequestLimits(held, total=10, per_client=3)
    statuses: dict[str, int] = {}

    async def record(key: str, client: str, path: str = "/mcp") -> None:
        statuses[key] = await call(limits, client, path)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(record, f"a{i}", "10.0.0.1")
            await anyio.wait_all_tasks_blocked()
            assert await call(limits, "10.0.0.1") == 429  # the 4th concurrent request of one client
            tg.start_soon(record, "b", "10.0.0.2")  # another client is let in
            tg.start_soon(record, "health", "10.0.0.1", "/health")  # and health is exempt
            await anyio.wait_all_tasks_blocked()
            held.release.set()
    assert statuses == {"a0": 200, "a1": 200, "a2": 200, "b": 200, "health": 200}
    assert await call(limits, "10.0.0.1") == 200  # the bound frees up as requests end


async def test_past_the_total_bound_requests_are_503_but_health_is_not() -> None:
    held = Held()
    limits = RequestLimits(held, total=2, per_client=5)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, limits, "10.0.0.1")
            tg.start_soon(call, limits, "10.0.0.2")
            await anyio.wait_all_tasks_blocked()
            assert await call(limits, "10.0.0.3") == 503
            held.release.set()
            assert await call(limits, "10.0.0.3", "/health") == 200


async def test_the_http_app_bounds_requests_per_client() -> None:
    settings = load_settings(simulator=True, transport="streamable-http", output_dir="off")
    assert isinstance(build_http_app(create_server(settings), settings), RequestLimits)


# -- /health of an app whose background tasks died (rows 1 and 2 over HTTP) ---------------------------


async def test_health_is_503_once_the_servers_background_tasks_have_died() -> None:
    die = anyio.Event()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        async def poll_loop() -> None:
            await die.wait()
            raise RuntimeError("the poll loop died")

        async with anyio.create_task_group() as tg:
            tg.start_soon(poll_loop)
            yield {}
            tg.cancel_scope.cancel()

    server: MCPServer[Any] = MCPServer("dying", lifespan=lifespan)
    settings = load_settings(simulator=True, transport="streamable-http", output_dir="off")
    async with serving(build_http_app(server, settings)) as base, httpx2.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{base}/health")).status_code == 200
        die.set()
        with anyio.fail_after(5):
            while (health := await http.get(f"{base}/health")).status_code == 200:  # noqa: ASYNC110
                await anyio.sleep(0.05)  # the lifespan ends in uvicorn's task; nothing to wait on
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
