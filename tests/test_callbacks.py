"""Upstream callbacks (notifyHook): the route, its guards, and waits that react to pushes instead of polls."""

from __future__ import annotations

import itertools
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mj_mcp.callbacks import CALLBACK_PREFIX, MAX_CALLBACK_BYTES, CallbackReceiver, listening_socket
from mj_mcp.callbacks import serve as serve_callbacks
from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import ImagineRequest, Task
from mj_mcp.server import create_server
from mj_mcp.simulator import Simulator
from mj_mcp.transports import CallbackRoute
from mj_mcp.waiting import SAFETY_NET_INTERVAL, TaskWatcher
from tests.helpers import (
    PUBLIC,
    FakeClock,
    callback_session,
    child_env,
    free_port,
    http_to,
    lists,
    serving,
    serving_on_a_free_port,
)

pytestmark = pytest.mark.anyio

# -- the route -----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> CallbackReceiver:
    return CallbackReceiver(PUBLIC + "/")


def test_the_hook_url_is_the_public_url_with_an_unguessable_path(receiver: CallbackReceiver) -> None:
    assert receiver.hook_url.startswith(PUBLIC + CALLBACK_PREFIX)
    assert len(receiver.secret) >= 40
    assert CallbackReceiver(PUBLIC).secret != receiver.secret


async def test_only_a_post_to_the_secret_path_is_served(receiver: CallbackReceiver) -> None:
    async with http_to(receiver) as http:
        guessed = await http.post(CALLBACK_PREFIX + "guess", json={"id": "1"})
        wrong_method = await http.get(receiver.path)
        elsewhere = await http.post("/mcp", json={})
    assert guessed.status_code == 404
    assert wrong_method.status_code == 405
    assert elsewhere.status_code == 404


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'"a string"', b'{"status": "SUCCESS"}', b'{"id": ""}'],
    ids=["not-json", "array", "string", "no-id", "empty-id"],
)
async def test_a_body_that_is_not_one_task_is_refused(receiver: CallbackReceiver, body: bytes) -> None:
    async with http_to(receiver) as http:
        response = await http.post(receiver.path, content=body)
    assert response.status_code == 400
    assert receiver.refused == 1


async def test_an_oversized_body_is_refused_whether_announced_or_streamed(receiver: CallbackReceiver) -> None:
    big = b'{"id": "1", "prompt": "' + b"x" * MAX_CALLBACK_BYTES + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    async with http_to(receiver) as http:
        announced = await http.post(receiver.path, content=big)
        streamed = await http.post(receiver.path, content=chunks())
    assert announced.status_code == 413
    assert streamed.status_code == 413
    assert receiver.refused == 2


async def test_a_callback_for_a_task_this_server_did_not_submit_is_ignored(
    receiver: CallbackReceiver, mj: MjClient, clock: FakeClock
) -> None:
    watcher = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    receiver.attach(watcher)
    async with http_to(receiver) as http:
        response = await http.post(receiver.path, json={"id": "424242", "status": "SUCCESS", "progress": "100%"})
    assert response.status_code == 202
    assert response.json() == {"ok": True, "taken": False}
    assert receiver.ignored == 1 and receiver.accepted == 0
    assert watcher.watched == []  # nothing was created


async def test_repeated_and_reordered_callbacks_never_move_a_task_backwards(
    receiver: CallbackReceiver, mj: MjClient, clock: FakeClock
) -> None:
    watcher = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    receiver.attach(watcher)
    receiver.expect("7")
    seen: list[str] = []

    async def record(task: Task) -> None:
        seen.append(f"{task.status}:{task.progress}")

    arrivals = [
        {"id": "7", "status": "IN_PROGRESS", "progress": "40%"},
        {"id": "7", "status": "IN_PROGRESS", "progress": "40%"},  # NZ repeats identical ones
        {"id": "7", "status": "SUBMITTED", "progress": "0%"},  # arrived late
        {"id": "7", "status": "IN_PROGRESS", "progress": "20%"},  # arrived late
        {"id": "7", "status": "SUCCESS", "progress": "100%"},
        {"id": "7", "status": "IN_PROGRESS", "progress": "90%"},  # arrived late
    ]

    async def deliver() -> None:
        async with http_to(receiver) as http:
            for body in arrivals:
                await clock.sleep(0.1)
                assert (await http.post(receiver.path, json=body)).status_code == 200

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(deliver)
            outcome = await watcher.wait("7", timeout=60, on_update=record, initial=Task(id="7", status="SUBMITTED"))
    assert outcome.task.status == "SUCCESS"
    assert seen[-2:] == ["IN_PROGRESS:40%", "SUCCESS:100%"]
    assert "IN_PROGRESS:20%" not in seen and "SUBMITTED:0%" not in seen


def test_only_the_most_recent_submitted_ids_are_remembered() -> None:
    receiver = CallbackReceiver(PUBLIC, remember=2)
    for task_id in ("1", "2", "3"):
        receiver.expect(task_id)
    assert not receiver.expects("1")
    assert receiver.expects("2") and receiver.expects("3")


async def test_the_http_app_sends_callback_paths_to_the_receiver_and_the_rest_on(receiver: CallbackReceiver) -> None:
    async def rest(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with http_to(CallbackRoute(rest, receiver)) as http:
        assert (await http.post(receiver.path, content=b"{}")).status_code == 400
        assert (await http.get("/mcp")).status_code == 299


# -- the watcher ---------------------------------------------------------------------------------


async def test_a_pushed_snapshot_wakes_its_waiter_and_stops_polling_until_the_safety_net(
    sim: Simulator, clock: FakeClock
) -> None:
    poll_times: list[float] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("list-by-condition"):
            poll_times.append(clock.now())
        return await sim.transport().handle_async_request(request)

    sim.job_seconds = 10 * SAFETY_NET_INTERVAL
    async with MjClient("http://sim.test", None, transport=httpx2.MockTransport(handler), sleep=clock.sleep) as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
        assert task_id is not None
        watcher = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
        seen: list[str] = []
        pushed_at: list[float] = []

        async def record(task: Task) -> None:
            seen.append(f"{task.status}:{task.progress}")

        async def push_soon() -> None:
            await clock.sleep(0.5)
            pushed_at.append(clock.now())
            assert watcher.push(Task(id=task_id, status="IN_PROGRESS", progress="10%"))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run)
                tg.start_soon(push_soon)
                outcome = await watcher.wait(task_id, timeout=SAFETY_NET_INTERVAL * 2.5, on_update=record)
                tg.cancel_scope.cancel()
    assert "IN_PROGRESS:10%" in seen
    assert outcome.timed_out
    after = [t - pushed_at[0] for t in poll_times if t > pushed_at[0]]
    assert after, "the safety net polls again"
    assert min(after) >= SAFETY_NET_INTERVAL
    assert [round(b - a) for a, b in itertools.pairwise(after)] == [SAFETY_NET_INTERVAL] * (len(after) - 1)
    assert len(after) == 2  # 75 s of wait after the push: one poll per safety-net interval, not one per tick
    assert len(poll_times) - len(after) <= 2  # before the push: the first poll or so


async def test_a_push_for_an_unwatched_task_changes_nothing(mj: MjClient, clock: FakeClock) -> None:
    watcher = TaskWatcher(mj, interval=2.0, heartbeat=5.0, clock=clock)
    assert not watcher.push(Task(id="1", status="SUCCESS", progress="100%"))
    assert watcher.watched == []


# -- through the server ---------------------------------------------------------------------------


async def test_submits_carry_the_hook_and_a_wait_follows_the_callbacks_not_the_polls(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    reported: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

    async with callback_session(settings, mj, sim, clock) as (client, receiver):
        with anyio.fail_after(20):
            result = await client.call_tool("imagine", {"prompt": "a fox"}, progress_callback=on_progress)
    assert not result.is_error
    assert result.structured_content is not None
    task_id = result.structured_content["id"]
    assert result.structured_content["status"] == "SUCCESS"
    assert sim.tasks[task_id].notify_hook == receiver.hook_url
    assert receiver.accepted >= 3  # SUBMITTED, IN_PROGRESS..., SUCCESS
    assert lists(sim) <= 2  # polled only until the first callback arrived (8 s of job, ~8 polls without)
    assert 100.0 in reported and any(0 < p < 100 for p in reported)


async def test_a_notify_hook_given_by_the_caller_is_kept(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    # Only MJ_TOOL_FIELDS=full offers notifyHook (lean refuses it: tests/test_surface.py).
    full = settings.model_copy(update={"tool_fields": "full"})
    async with callback_session(full, mj, sim, clock) as (client, _receiver):
        with anyio.fail_after(20):
            result = await client.call_tool(
                "imagine", {"prompt": "a fox", "notifyHook": "https://93.184.216.34/hook", "wait": False}
            )
    assert result.structured_content is not None
    assert sim.tasks[result.structured_content["id"]].notify_hook == "https://93.184.216.34/hook"


async def test_without_a_public_url_submits_carry_no_hook(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    async with Client(create_server(settings, mj, clock=clock), mode="legacy") as client:  # type: ignore[arg-type]
        with anyio.fail_after(20):
            result = await client.call_tool("imagine", {"prompt": "a fox", "wait": False})
    assert result.structured_content is not None
    assert sim.tasks[result.structured_content["id"]].notify_hook is None


async def test_the_simulator_calls_back_once_per_change_and_never_while_queued(
    sim: Simulator, clock: FakeClock
) -> None:
    bodies: list[dict[str, Any]] = []

    async def post(url: str, body: bytes) -> object:
        assert url == "http://hook.test/cb"
        bodies.append(json.loads(body))
        return None

    async with MjClient("http://sim.test", None, transport=sim.transport(), sleep=clock.sleep) as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x", notify_hook="http://hook.test/cb"))
    for _ in range(100):
        await sim.send_callbacks(post)
        await sim.send_callbacks(post)  # nothing new in between: nothing sent
        clock.advance(0.1)
    keys = [f"{b['status']}:{b['progress']}" for b in bodies]
    assert len(keys) == len(set(keys))
    assert keys[0].startswith("SUBMITTED") and keys[-1] == "SUCCESS:100%"
    assert not any(k.startswith(("NOT_START", "MODAL")) for k in keys)


async def test_a_failed_callback_is_dropped_like_the_upstream_does(sim: Simulator, clock: FakeClock) -> None:
    async def refuse(url: str, body: bytes) -> object:
        raise httpx2.ConnectError("nobody listens")

    async with MjClient("http://sim.test", None, transport=sim.transport(), sleep=clock.sleep) as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x", notify_hook="http://hook.test/cb"))
    clock.advance(sim.job_seconds)
    assert await sim.send_callbacks(refuse) == 0
    assert sim.due_callbacks() == []  # not retried


# -- end to end, over real HTTP --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["stdio", "streamable-http"])
async def test_the_console_script_takes_callbacks_from_a_standalone_upstream(tmp_path: Path, transport: str) -> None:
    sim_log = tmp_path / "simulator.log"

    def env_for(own_port: int) -> dict[str, str]:
        return child_env(
            tmp_path,
            MJ_BASE_URL=upstream,
            MJ_API_KEY="any-key",
            MJ_PUBLIC_URL=f"http://127.0.0.1:{own_port}",
            MJ_PORT=str(own_port),
            MJ_POLL_INTERVAL="2",
            MJ_LOG_LEVEL="INFO",  # uvicorn's startup line tells when it listens
        )

    sim_args = ["simulate", "--port", "0", "--job-seconds", "4"]
    with serving(sim_args, child_env(tmp_path), sim_log) as upstream, anyio.fail_after(60):
        if transport == "stdio":
            own_port = free_port()
            params = StdioServerParameters(command=sys.executable, args=["-m", "mj_mcp"], env=env_for(own_port))
            with (tmp_path / "server.log").open("w") as errlog:
                async with Client(stdio_client(params, errlog=errlog)) as client:  # type: ignore[arg-type]
                    result = await client.call_tool("imagine", {"prompt": "a harbour at night"})
            public = f"http://127.0.0.1:{own_port}"
        else:

            def args_for(own_port: int) -> tuple[list[str], dict[str, str]]:
                return ["--transport", "streamable-http"], env_for(own_port)

            # The public URL names the port, so it is chosen beforehand (and retried if taken).
            with serving_on_a_free_port(args_for, tmp_path / "server.log") as public:
                async with Client(f"{public}/mcp") as client:
                    result = await client.call_tool("imagine", {"prompt": "a harbour at night"})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    # The upstream stores the callback URL in properties.notifyHook; its path is a secret, so it
    # never reaches the model (audit B9). The few polls below show the callback was used.
    assert CALLBACK_PREFIX not in json.dumps(result.structured_content)
    polls = sim_log.read_text().count("/mj/task/list-by-condition")
    assert polls <= 2, f"{polls} polls: the callbacks did not replace them"  # ~4 for a 4 s job without


async def test_the_stdio_listener_serves_the_route_on_its_port_and_stops_when_cancelled(
    receiver: CallbackReceiver,
) -> None:
    port = free_port()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            assert await tg.start(serve_callbacks, receiver, "127.0.0.1", port)
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.post(receiver.path, json={"id": "1"})).status_code == 202
                assert (await http.get("/health")).status_code == 404
            tg.cancel_scope.cancel()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port was given back


async def test_a_port_in_use_leaves_callbacks_off_and_the_server_polling(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        own = settings.model_copy(update={"public_url": PUBLIC, "port": port})
        async with Client(create_server(own, mj, clock=clock), mode="legacy") as client:  # type: ignore[arg-type]
            with anyio.fail_after(20):
                result = await client.call_tool("imagine", {"prompt": "a fox"})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    assert sim.tasks[result.structured_content["id"]].notify_hook is None  # no hook that leads nowhere
    assert "Callbacks are off" in caplog.text


async def test_a_stdio_server_with_a_public_url_listens_for_its_callbacks(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    port = free_port()
    own = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}", "port": port})
    async with Client(create_server(own, mj, clock=clock), mode="legacy") as client:  # type: ignore[arg-type]
        with anyio.fail_after(20):
            result = await client.call_tool("imagine", {"prompt": "a fox", "wait": False})
        assert result.structured_content is not None
        hook = sim.tasks[result.structured_content["id"]].notify_hook
        assert hook is not None and hook.startswith(f"http://127.0.0.1:{port}{CALLBACK_PREFIX}")
        async with httpx2.AsyncClient() as http:
            answer = await http.post(hook, json={"id": result.structured_content["id"], "status": "SUBMITTED"})
        assert answer.status_code == 200


def test_the_callback_listener_turns_nagle_off_so_keep_alive_callbacks_are_not_held_back() -> None:
    """An upstream sends its callbacks one after another over one connection. uvicorn writes a
    reply's head and body separately; with Nagle on, the body waits for the head's ACK, and the
    sender's delayed ACK makes that ~40 ms per callback. Accepted connections inherit the flag."""
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
