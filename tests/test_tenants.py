"""Multi-tenant HTTP (MJ_CLIENT_KEYS): two clients with different keys on one server never meet.

The end-to-end tests serve, over real loopback sockets in this process, a per-key simulator
(which calls back as upstreams do) and the MCP server in front of it, and connect two MCP clients
with different upstream keys. Each tries the other's task ids through every tool and resource,
forged callbacks, and subscriptions; the simulator's log shows each batched poll carries one key
and that key's ids only.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.subscriptions import ResourceUpdated
from mcp.types import CallToolResult, ResourceUpdatedNotification, TextResourceContents

from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.config import Settings, load_settings
from mj_mcp.errors import SettingsError
from mj_mcp.server import create_server
from mj_mcp.simulator import Simulator
from mj_mcp.tenancy import TenantHasher, key_from_headers
from mj_mcp.transports import build_http_app, check_bind
from tests.helpers import text

pytestmark = pytest.mark.anyio

KEY_A = "sk-tenant-a-0123456789"
KEY_B = "sk-tenant-b-9876543210"
TOKEN = "mcp-token-xyz"


# -- settings --------------------------------------------------------------------------------------


def test_client_keys_need_an_http_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MJ_API_KEY", raising=False)
    with pytest.raises(SettingsError, match="MJ_CLIENT_KEYS=1 needs an HTTP transport"):
        load_settings(client_keys=True, simulator=True, transport="stdio")


def test_client_keys_and_a_server_key_exclude_each_other() -> None:
    with pytest.raises(SettingsError, match="unset MJ_API_KEY"):
        load_settings(client_keys=True, transport="sse", base_url="https://up.example", api_key="sk-x")


def test_client_keys_need_no_server_key_and_read_no_local_files(tmp_path: Path) -> None:
    settings = load_settings(
        client_keys=True, transport="streamable-http", base_url="https://up.example", allowed_dirs=str(tmp_path)
    )
    assert settings.api_key is None and settings.readable_dirs == []
    assert load_settings(client_keys=True, transport="sse", simulator=True).client_keys


def test_the_console_script_exits_2_with_client_keys_on_stdio(capsys: pytest.CaptureFixture[str]) -> None:
    from mj_mcp.cli import main

    assert main(["--simulator", "--client-keys"]) == 2
    err = capsys.readouterr().err
    assert "MJ_CLIENT_KEYS=1 needs an HTTP transport" in err and "Traceback" not in err


def test_client_keys_may_listen_beyond_loopback_without_a_token() -> None:
    check_bind(load_settings(client_keys=True, transport="sse", simulator=True, host="0.0.0.0"))
    with pytest.raises(SettingsError):
        check_bind(load_settings(transport="sse", simulator=True, host="0.0.0.0"))


# -- identity --------------------------------------------------------------------------------------


def test_the_key_comes_from_bearer_or_x_mj_api_key_and_only_x_mj_api_key_behind_a_token() -> None:
    bearer = [(b"authorization", b"Bearer " + KEY_A.encode())]
    header = [(b"X-Mj-Api-Key", KEY_B.encode()), *bearer]
    assert key_from_headers(bearer, guarded=False) == KEY_A
    assert key_from_headers(header, guarded=False) == KEY_B
    assert key_from_headers(bearer, guarded=True) is None
    assert key_from_headers(header, guarded=True) == KEY_B
    for bad in (b"", b"  ", b"x" * 600, b"\xff\xfe", b"a\x01b"):
        assert key_from_headers([(b"x-mj-api-key", bad)], guarded=False) is None


def test_a_tenant_is_a_keyed_hash_that_never_shows_the_key() -> None:
    hasher = TenantHasher()
    tenant = hasher.tenant_of(KEY_A)
    assert tenant == hasher.tenant_of(KEY_A) and tenant.id != hasher.tenant_of(KEY_B).id
    assert tenant.id != TenantHasher().tenant_of(KEY_A).id  # another process, another secret
    assert KEY_A not in repr(tenant) and KEY_A not in str(tenant) and len(tenant.id) == 32


# -- end to end ------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on `sock` (already bound) in this process; yields its base URL."""
    config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(20):
            while not server.started:  # noqa: ASYNC110 - uvicorn has a flag for it, no event
                await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True


def bound() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Hosted:
    """A per-key simulator and a multi-tenant server in front of it, both over loopback HTTP."""

    def __init__(self, sim: Simulator, base: str, settings: Settings) -> None:
        self.sim = sim
        self.base = base
        self.settings = settings

    @asynccontextmanager
    async def session(self, key: str, *, mode: str = "legacy", on_message: Any = None) -> AsyncIterator[Client]:
        """An MCP client of the tenant of `key`, behind the server's token."""
        headers = {"Authorization": f"Bearer {TOKEN}", "X-Mj-Api-Key": key}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            streams: AbstractAsyncContextManager[Any] = (
                sse_client(f"{self.base}/sse", headers=headers)
                if self.settings.transport == "sse"
                else streamable_http_client(f"{self.base}/mcp", http_client=http)
            )
            async with Client(streams, mode=cast(Any, mode), message_handler=on_message) as client:
                yield client


@pytest.fixture
async def hosted(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Hosted]:
    """A hosted server on real loopback sockets, in front of a simulator on real time (slow tier)."""
    transport = cast(str, getattr(request, "param", "streamable-http"))
    sim = Simulator(job_seconds=0.6, per_key=True)
    sim_sock, mcp_sock = bound(), bound()
    public = f"http://127.0.0.1:{mcp_sock.getsockname()[1]}"
    async with serving(sim.standalone_app(), sim_sock) as sim_base:
        settings = load_settings(
            transport=transport,
            base_url=sim_base,
            client_keys=True,
            mcp_token=TOKEN,
            public_url=public,
            poll_interval=0.1,
            output_dir=str(tmp_path / "out"),
            max_jobs=3,
        )
        receiver = CallbackReceiver(public)
        server = create_server(settings, callbacks=receiver)
        async with serving(build_http_app(server, settings, callbacks=receiver), mcp_sock) as base:
            with anyio.fail_after(60):
                yield Hosted(sim, base, settings)


async def status_of(client: Client, uri: str) -> str:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents)
    return str(json.loads(content.text)["status"])


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.slow
async def test_a_request_without_an_upstream_key_is_401_with_a_message(hosted: Hosted) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        response = await http.post(f"{hosted.base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        health = await http.get(f"{hosted.base}/health")
    assert response.status_code == 401
    assert response.json()["error"] == "upstream_key_required"
    assert "X-Mj-Api-Key" in response.json()["message"]
    assert health.status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("hosted", ["streamable-http", "sse"], indirect=True)
async def test_one_tenant_never_reaches_anothers_task_through_any_tool_or_resource(hosted: Hosted) -> None:
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b:
        mine = structured(await a.call_tool("imagine", {"prompt": "a red fox", "wait": True, "timeout": 20}))
        task_id = mine["id"]
        assert mine["status"] == "SUCCESS"
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("get_task", {"taskId": task_id}),
            ("get_task", {"taskId": task_id, "wait": True, "timeout": 2}),
            ("action", {"taskId": task_id, "customId": "U1"}),
            ("image_seed", {"taskId": task_id}),
        ]
        for tool, arguments in attempts:
            result = await b.call_tool(tool, arguments)
            assert result.is_error, (tool, text(result))
        hosted.sim.job_seconds = 1000
        running = structured(await a.call_tool("imagine", {"prompt": "a slow fox", "wait": False}))["id"]
        cancel = await b.call_tool("cancel_task", {"taskId": running})
        assert cancel.is_error and "not found" in text(cancel)  # B's key cannot see it ...
        assert hosted.sim.tasks[running].cancelled_at is None  # ... and did not cancel it
        hosted.sim.job_seconds = 0.6
        listed = structured(await b.call_tool("list_tasks", {"ids": [task_id]}))
        assert listed["tasks"] == [] and listed.get("missing") == [task_id]  # only B's own question echoed
        recent = structured(await b.call_tool("recent_tasks", {}))
        assert task_id not in json.dumps(recent)
        for uri in (f"mj://tasks/{task_id}", f"mj://tasks/{task_id}/image"):
            with pytest.raises(Exception, match="no such task"):
                await b.read_resource(uri)
        assert task_id not in str(await b.read_resource("mj://tasks/recent"))
        # ... while its owner still reaches it, and presses its buttons.
        assert task_id in str(await a.read_resource(f"mj://tasks/{task_id}"))
        assert task_id in str(await a.read_resource("mj://tasks/recent"))
        pressed = structured(await a.call_tool("action", {"taskId": task_id, "customId": "U1", "timeout": 20}))
        assert pressed["status"] == "SUCCESS"
    for owner in {t.owner for t in hosted.sim.tasks.values()}:
        assert owner == KEY_A  # B's refused attempts started nothing


@pytest.mark.slow
async def test_batched_polls_carry_one_key_and_only_that_keys_ids(hosted: Hosted) -> None:
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b, anyio.create_task_group() as tg:
        results: list[dict[str, Any]] = []

        async def run(client: Client, prompt: str) -> None:
            results.append(structured(await client.call_tool("imagine", {"prompt": prompt, "timeout": 20})))

        for n in range(2):
            tg.start_soon(run, a, f"a castle {n}")
            tg.start_soon(run, b, f"a boat {n}")
    assert len(results) == 4 and all(r["status"] == "SUCCESS" for r in results)
    log = hosted.sim.store.list_log
    assert {owner for owner, _ in log} == {KEY_A, KEY_B}
    for owner, ids in log:
        assert all(hosted.sim.tasks[i].owner == owner for i in ids), (owner, ids)


@pytest.mark.slow
async def test_a_callback_on_one_tenants_path_cannot_move_anothers_task(hosted: Hosted) -> None:
    hosted.sim.job_seconds = 1000  # nothing finishes on its own: only callbacks could move it
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b:
        task_a = structured(await a.call_tool("imagine", {"prompt": "a slow owl", "wait": False}))["id"]
        task_b = structured(await b.call_tool("imagine", {"prompt": "a slow cat", "wait": False}))["id"]
    hook_a, hook_b = hosted.sim.tasks[task_a].notify_hook, hosted.sim.tasks[task_b].notify_hook
    assert hook_a and hook_b and hook_a != hook_b
    forged = hosted.sim.snapshot(task_a) | {"status": "SUCCESS", "progress": "100%"}
    async with httpx2.AsyncClient() as http:
        crossed = await http.post(hook_b, json=forged)
        guessed = await http.post(hook_b[: -len(hook_b.rsplit("/", 1)[1])] + "x" * 43, json=forged)
        own = await http.post(hook_a, json=hosted.sim.snapshot(task_a))
    assert crossed.status_code == 202 and crossed.json() == {"ok": True, "taken": False}
    assert guessed.status_code == 404
    assert own.status_code == 200  # its own path takes it (nobody waits on it now)
    async with hosted.session(KEY_A) as a:
        still = structured(await a.call_tool("get_task", {"taskId": task_a}))
    assert still["status"] != "SUCCESS"


@pytest.mark.slow
async def test_max_jobs_counts_per_tenant(hosted: Hosted) -> None:
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b:
        for n in range(3):
            structured(await a.call_tool("imagine", {"prompt": f"a tree {n}", "wait": False}))
        refused = await a.call_tool("imagine", {"prompt": "one too many", "wait": False})
        other = await b.call_tool("imagine", {"prompt": "a bird", "wait": False})
    assert refused.is_error and "MJ_MAX_JOBS" in text(refused)
    assert not other.is_error


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_legacy_subscriptions_hear_only_the_callers_own_tasks(hosted: Hosted) -> None:
    heard: dict[str, list[str]] = {"a": [], "b": []}
    a_heard = anyio.Event()

    def recorder(name: str) -> Any:
        async def handle(message: Any) -> None:
            if isinstance(message, ResourceUpdatedNotification):
                heard[name].append(message.params.uri)
                if name == "a":
                    a_heard.set()

        return handle

    async with (
        hosted.session(KEY_A, on_message=recorder("a")) as a,
        hosted.session(KEY_B, on_message=recorder("b")) as b,
    ):
        # The job runs until both have subscribed: a task that ended first would announce nothing.
        hosted.sim.job_seconds = 1000
        task_id = structured(await a.call_tool("imagine", {"prompt": "a moon", "wait": False}))["id"]
        uri = f"mj://tasks/{task_id}"
        await b.subscribe_resource(uri)  # pyright: ignore[reportDeprecated]
        await a.subscribe_resource(uri)  # pyright: ignore[reportDeprecated]
        hosted.sim.job_seconds = 0.6
        structured(await a.call_tool("get_task", {"taskId": task_id, "wait": True, "timeout": 20}))
        with anyio.fail_after(10):
            await a_heard.wait()
    assert uri in heard["a"] and heard["b"] == []


@pytest.mark.slow
async def test_a_listen_stream_hears_only_the_callers_own_tasks(hosted: Hosted) -> None:
    async with hosted.session(KEY_A, mode="auto") as a, hosted.session(KEY_B, mode="auto") as b:
        hosted.sim.job_seconds = 1000  # runs until A listens: a task that ended first would announce nothing
        task_id = structured(await a.call_tool("imagine", {"prompt": "a comet", "wait": False}))["id"]
        uri = f"mj://tasks/{task_id}"
        heard_b: list[str] = []

        async def listen_as_b() -> None:
            async with b.listen(resource_subscriptions=[uri]) as sub:
                async for event in sub:
                    heard_b.append(str(getattr(event, "uri", event)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen_as_b)
            with anyio.fail_after(15):
                async with a.listen(resource_subscriptions=[uri]) as sub:
                    hosted.sim.job_seconds = 0.6
                    async for event in sub:
                        assert isinstance(event, ResourceUpdated) and event.uri == uri
                        if await status_of(a, uri) == "SUCCESS":
                            break
            tg.cancel_scope.cancel()
    assert heard_b == []


@pytest.mark.slow
async def test_the_audit_log_names_the_tenant_and_nothing_shows_a_key(
    hosted: Hosted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b:
        structured(await a.call_tool("imagine", {"prompt": "a lamp", "wait": False}))
        structured(await b.call_tool("imagine", {"prompt": "a chair", "wait": False}))
        refused = await b.call_tool("get_task", {"taskId": "1234567890"})
    out = hosted.settings.output_dir
    assert out is not None
    audit = (out / "audit.jsonl").read_text()
    tenants = {json.loads(line)["tenant"] for line in audit.splitlines()}
    assert len(tenants) == 2 and all(len(t) == 32 for t in tenants)
    everything = audit + caplog.text + text(refused)
    assert KEY_A not in everything and KEY_B not in everything


@pytest.mark.slow
async def test_an_mcp_task_runs_with_its_tenants_key_and_is_hidden_from_another_tenant(hosted: Hosted) -> None:
    # A task-augmented call runs in the background, outside the request that carried the key: it
    # must still spend the caller's key, and its record must belong to the caller's tenant.
    async with hosted.session(KEY_A) as a, hosted.session(KEY_B) as b:
        send_a = a.session._dispatcher.send_raw_request  # pyright: ignore[reportPrivateUsage]
        send_b = b.session._dispatcher.send_raw_request  # pyright: ignore[reportPrivateUsage]
        with anyio.fail_after(30):
            created = await send_a("tools/call", {"name": "imagine", "arguments": {"prompt": "x"}, "task": {}}, {})
            task_id = created["task"]["taskId"]
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                with pytest.raises(Exception, match="No task"):
                    await send_b(method, {"taskId": task_id}, {})
            assert (await send_b("tasks/list", {}, {}))["tasks"] == []
            result = await send_a("tasks/result", {"taskId": task_id}, {})
    assert result["structuredContent"]["status"] == "SUCCESS"
    assert {t.owner for t in hosted.sim.tasks.values()} == {KEY_A}
