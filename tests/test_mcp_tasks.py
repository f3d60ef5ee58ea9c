"""MCP Tasks: job tools as tasks, in the 2025-11-25 form and as the 2026 `io.modelcontextprotocol/tasks`
extension, against the simulator on the fake clock. (The official TypeScript client: tests/interop/tasks.mjs.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolResult,
    CancelTaskRequestParams,
    GetTaskRequestParams,
    Request,
)

from mj_mcp.server import MjServer
from mj_mcp.server.tasks import CANCEL_NOTE, TASKS_EXTENSION, McpTasks, ModernTask
from mj_mcp.taskstore import MemoryTaskStore, TaskRecord, TaskStoreFull
from tests.conftest import ServerFactory
from tests.helpers import FakeClock, task_record, text

pytestmark = pytest.mark.anyio

JOB_TOOLS = {"imagine", "blend", "describe", "shorten", "action", "modal", "swap_face", "video", "edit", "show"}
JOB_TOOLS |= {"change", "simple_change"}


def raw(client: Client) -> Any:
    # The Python client knows no 2025-11-25 task shapes (it sieves a tools/call answer into a
    # CallToolResult), so these tests speak the wire through its dispatcher.
    return client.session._dispatcher.send_raw_request  # pyright: ignore[reportPrivateUsage]


async def legacy_call(client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(30):
        return await raw(client)(method, params, {})


# -- 2025-11-25 -------------------------------------------------------------------------------------


@pytest.fixture
async def legacy(make_server: ServerFactory) -> AsyncIterator[Client]:
    async with Client(make_server(), mode="legacy") as c:  # type: ignore[arg-type]
        yield c


async def test_job_tools_advertise_task_support_and_the_server_the_tasks_capability(legacy: Client) -> None:
    tasks = legacy.session.server_capabilities.tasks  # type: ignore[union-attr]
    assert tasks is not None and tasks.list is not None and tasks.cancel is not None
    assert tasks.requests is not None and tasks.requests.tools is not None and tasks.requests.tools.call is not None
    listed = (await legacy_call(legacy, "tools/list", {}))["tools"]
    supporting = {t["name"] for t in listed if t.get("execution") == {"taskSupport": "optional"}}
    assert supporting == JOB_TOOLS  # the endpoint table's creates_task: not upload_images, no reads
    assert all("execution" not in t for t in listed if t["name"] not in JOB_TOOLS)


async def test_a_task_augmented_call_answers_at_once_and_its_result_is_the_plain_calls(legacy: Client) -> None:
    created = await legacy_call(
        legacy, "tools/call", {"name": "imagine", "arguments": {"prompt": "a fox"}, "task": {"ttl": 60_000}}
    )
    task = created["task"]
    assert task["status"] == "working" and task["ttl"] == 60_000 and task["pollInterval"] == 2000
    assert set(task) == {"taskId", "status", "statusMessage", "createdAt", "lastUpdatedAt", "ttl", "pollInterval"}
    got = await legacy_call(legacy, "tasks/get", {"taskId": task["taskId"]})
    assert got["taskId"] == task["taskId"]

    result = await legacy_call(legacy, "tasks/result", {"taskId": task["taskId"]})
    assert result.pop("_meta") == {"io.modelcontextprotocol/related-task": {"taskId": task["taskId"]}}
    plain = await legacy_call(legacy, "tools/call", {"name": "imagine", "arguments": {"prompt": "a fox"}})
    assert set(result) == set(plain)
    assert [c["type"] for c in result["content"]] == [c["type"] for c in plain["content"]]
    assert result["structuredContent"]["status"] == plain["structuredContent"]["status"] == "SUCCESS"
    assert (await legacy_call(legacy, "tasks/get", {"taskId": task["taskId"]}))["status"] == "completed"

    listed = await legacy_call(legacy, "tasks/list", {})
    assert [t["taskId"] for t in listed["tasks"]] == [task["taskId"]] and "nextCursor" not in listed


async def test_a_tool_error_fails_the_task_and_its_result_carries_the_error(legacy: Client) -> None:
    created = await legacy_call(
        legacy, "tools/call", {"name": "action", "arguments": {"taskId": "nope", "customId": "U1"}, "task": {}}
    )
    result = await legacy_call(legacy, "tasks/result", {"taskId": created["task"]["taskId"]})
    assert result["isError"] is True
    got = await legacy_call(legacy, "tasks/get", {"taskId": created["task"]["taskId"]})
    assert got["status"] == "failed" and got["statusMessage"] == result["content"][0]["text"][:500]


async def test_cancelling_stops_the_wait_and_says_the_upstream_job_goes_on(legacy: Client) -> None:
    created = await legacy_call(legacy, "tools/call", {"name": "imagine", "arguments": {"prompt": "x"}, "task": {}})
    task_id = created["task"]["taskId"]
    cancelled = await legacy_call(legacy, "tasks/cancel", {"taskId": task_id})
    assert cancelled["status"] == "cancelled" and cancelled["statusMessage"] == CANCEL_NOTE
    with pytest.raises(MCPError, match="does not cancel the Midjourney job"):
        await legacy_call(legacy, "tasks/result", {"taskId": task_id})
    with pytest.raises(MCPError, match="already cancelled") as again:
        await legacy_call(legacy, "tasks/cancel", {"taskId": task_id})
    assert again.value.error.code == INVALID_PARAMS


async def test_a_read_tool_does_not_run_as_a_task_and_bad_task_params_are_refused(legacy: Client) -> None:
    with pytest.raises(MCPError) as refused:
        await legacy_call(legacy, "tools/call", {"name": "get_task", "arguments": {"taskId": "1"}, "task": {}})
    assert refused.value.error.code == METHOD_NOT_FOUND
    with pytest.raises(MCPError) as bad:
        await legacy_call(legacy, "tools/call", {"name": "imagine", "arguments": {}, "task": {"ttl": "soon"}})
    assert bad.value.error.code == INVALID_PARAMS
    with pytest.raises(MCPError, match="No task") as unknown:
        await legacy_call(legacy, "tasks/get", {"taskId": "guessed"})
    assert unknown.value.error.code == INVALID_PARAMS
    with pytest.raises(MCPError, match="cursor"):
        await legacy_call(legacy, "tasks/list", {"cursor": "x"})


async def test_a_plain_call_is_unchanged(legacy: Client) -> None:
    result = await legacy.call_tool("imagine", {"prompt": "a plain fox"})
    assert not result.is_error, text(result)
    assert result.structured_content is not None and result.structured_content["status"] == "SUCCESS"


# -- over Streamable HTTP: sessions, and the 2026 extension ----------------------------------------


@asynccontextmanager
async def http_app(server: MjServer) -> AsyncIterator[httpx2.AsyncClient]:
    app = server.streamable_http_app()
    async with server.shared_runtime(), server.session_manager.run():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http


def over(http: httpx2.AsyncClient, **options: Any) -> Client:
    return Client(streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http), **options)


async def test_one_session_cannot_read_or_cancel_another_sessions_task(make_server: ServerFactory) -> None:
    server = make_server()
    assert isinstance(server, MjServer)
    async with http_app(server) as http, over(http, mode="legacy") as alice, over(http, mode="legacy") as bob:
        created = await legacy_call(alice, "tools/call", {"name": "imagine", "arguments": {"prompt": "x"}, "task": {}})
        task_id = created["task"]["taskId"]
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            with pytest.raises(MCPError, match="No task"):
                await legacy_call(bob, method, {"taskId": task_id})
        assert (await legacy_call(bob, "tasks/list", {}))["tasks"] == []
        result = await legacy_call(alice, "tasks/result", {"taskId": task_id})
        assert result["structuredContent"]["status"] == "SUCCESS"


class GetTask(Request[GetTaskRequestParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: GetTaskRequestParams
    name_param: ClassVar[str | None] = "taskId"


class CancelTask(Request[CancelTaskRequestParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: CancelTaskRequestParams
    name_param: ClassVar[str | None] = "taskId"


class TaskPolling(ClientExtension):
    """A 2026-era client of the tasks extension: finishes a `resultType: "task"` answer by polling."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.seen: list[str] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=ModernTask, resolve=self._poll)]

    async def _poll(self, created: ModernTask, ctx: ClaimContext) -> CallToolResult:
        task = created
        while task.status == "working":
            self.seen.append(task.status)
            await anyio.lowlevel.checkpoint()
            request = GetTask(params=GetTaskRequestParams(task_id=created.task_id))
            task = await ctx.session.send_request(request, ModernTask)
        self.seen.append(task.status)
        assert task.result is not None
        return CallToolResult.model_validate(task.result)


async def test_a_2026_client_with_the_extension_gets_a_task_and_polls_it_to_the_result(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    assert isinstance(server, MjServer)
    polling = TaskPolling()
    async with http_app(server) as http, over(http, extensions=[polling]) as client:
        assert client.session.protocol_version == "2026-07-28"
        with anyio.fail_after(30):
            result = await client.call_tool("imagine", {"prompt": "a fox"})
        assert not result.is_error, text(result)
        assert result.structured_content is not None and result.structured_content["status"] == "SUCCESS"
        assert polling.seen[0] == "working" and polling.seen[-1] == "completed"

        with anyio.fail_after(30):
            created = await client.session.call_tool("imagine", {"prompt": "x"}, allow_claimed=True)
            assert isinstance(created, ModernTask) and created.status == "working" and created.result is None
            request = CancelTask(params=CancelTaskRequestParams(task_id=created.task_id))
            cancelled = await client.session.send_request(request, ModernTask)
        assert cancelled.status == "cancelled" and cancelled.status_message == CANCEL_NOTE


async def test_a_2026_client_without_the_extension_gets_the_plain_result(make_server: ServerFactory) -> None:
    server = make_server()
    assert isinstance(server, MjServer)
    async with http_app(server) as http, over(http) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("imagine", {"prompt": "a fox"})
        assert result.structured_content is not None and result.structured_content["status"] == "SUCCESS"


# -- the store --------------------------------------------------------------------------------------


def record(task_id: str, owner: str = "a", *, expires_at: float = 100.0, status: Any = "working") -> TaskRecord:
    return task_record(task_id, owner, status=status, expires_at=expires_at)


async def test_records_expire_at_their_ttl_and_belong_to_their_owner() -> None:
    clock = FakeClock(start=0.0)
    store = MemoryTaskStore(clock)
    await store.create(record("t1", expires_at=10.0))
    assert await store.get("a", "t1") is not None
    assert await store.get("b", "t1") is None
    clock.advance(10.0)
    assert await store.get("a", "t1") is None
    await store.update(record("t1", status="completed"))  # a record that expired stays gone
    assert await store.get("a", "t1") is None


async def test_the_cap_drops_the_oldest_finished_record_and_refuses_when_all_work() -> None:
    store = MemoryTaskStore(FakeClock(start=0.0), cap=2)
    await store.create(record("done", status="completed"))
    await store.create(record("w1"))
    await store.create(record("w2"))
    assert await store.get("a", "done") is None
    with pytest.raises(TaskStoreFull):
        await store.create(record("w3"))


async def test_pages_follow_their_cursor_and_show_only_the_owners_records() -> None:
    store = MemoryTaskStore(FakeClock(start=0.0))
    for i in range(5):
        await store.create(record(f"t{i}", owner="a" if i != 2 else "b"))
    first = await store.page("a", None, 2)
    assert [r.task_id for r in first.records] == ["t0", "t1"] and first.next_cursor is not None
    second = await store.page("a", first.next_cursor, 2)
    assert [r.task_id for r in second.records] == ["t3", "t4"] and second.next_cursor is None
    with pytest.raises(ValueError, match="cursor"):
        await store.page("a", "zz", 2)


# -- the engine -------------------------------------------------------------------------------------


@asynccontextmanager
async def nothing() -> AsyncIterator[None]:
    yield None


async def test_a_job_that_raises_fails_its_task_with_the_error_and_nothing_starts_before_the_runtime() -> None:
    tasks = McpTasks(frozenset({"imagine"}), clock=FakeClock(start=0.0))
    with pytest.raises(MCPError, match="not running"):
        await tasks.start("a", "imagine", None, _boom)

    async def refused() -> dict[str, Any]:
        raise MCPError(code=INVALID_PARAMS, message="refused upstream")

    async with tasks.running(nothing()):
        crashed = await tasks.start("a", "imagine", 5, _boom)
        rejected = await tasks.start("a", "imagine", 10**12, refused)
        with anyio.fail_after(5):
            crashed_done = await tasks.result("a", crashed.task_id)
            rejected_done = await tasks.result("a", rejected.task_id)
    assert crashed.ttl_ms == 5 and rejected.ttl_ms == 24 * 60 * 60 * 1000
    assert crashed_done.status == "failed" and "internal error" in crashed_done.status_message
    assert rejected_done.status == "failed" and rejected_done.error is not None
    assert rejected_done.error["message"] == "refused upstream"


async def test_a_full_store_refuses_a_new_task() -> None:
    clock = FakeClock(start=0.0)
    tasks = McpTasks(frozenset({"imagine"}), store=MemoryTaskStore(clock, cap=1), clock=clock)
    never = anyio.Event()

    async def waits() -> dict[str, Any]:
        await never.wait()
        return {}

    async with tasks.running(nothing()):
        await tasks.start("a", "imagine", None, waits)
        with pytest.raises(MCPError, match="still working"):
            await tasks.start("a", "imagine", None, waits)


async def _boom() -> dict[str, Any]:
    raise RuntimeError("boom")
