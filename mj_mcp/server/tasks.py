"""MCP Tasks: a job tool's call can return at once with a task that the client polls.

A Midjourney job takes a minute or more, and a client with a short request timeout fails a call
that waits for it, however good the heartbeat. With a task-augmented `tools/call` the server
answers at once with a task, runs the very same call in the background (in a task group that
lives as long as the server's Runtime, not the request), and the client asks for its status and
finally its result, which is exactly what the plain call would have returned.

Two wire forms, one engine (`McpTasks`, records in a `TaskStore`):

- 2025-11-25: `tools/call` params carry `task`; the answer is `{"task": {...}}`; `tasks/get`,
  `tasks/result` (waits), `tasks/list`, `tasks/cancel`. The SDK ignores `params.task` and sieves
  a `tools/call` answer into a CallToolResult, so this form is hooked in by middleware
  (sdk_glue.LegacyTasksWire), which also advertises `capabilities.tasks` and each job tool's
  `execution.taskSupport`.
- 2026-07-28, the `io.modelcontextprotocol/tasks` extension (SEP-2663): a client that declares it
  gets `resultType: "task"` from `tools/call` and polls `tasks/get`, which carries the result
  inline once the task is done. Served through the SDK's public Extension API (`TasksExtension`).

Which tools support tasks is asked of the endpoint table (`creates_task`): the tools that start a
job. A task belongs to its owner (`owner_of`: the tenant and the MCP session), so another client
asking by id finds nothing. Cancelling a task stops our wait; the Midjourney job itself may go on
upstream.

With MJ_REDIS_URL the records live in Redis (mj_mcp.redistasks), so any instance answers for any
task: `tasks/result` on an instance that does not run the job waits for the record to finish
(woken through Redis, and reading it again every poll interval at the latest), and `tasks/cancel`
there marks the record cancelled and asks the running instance to stop the job.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final, Literal, TypeVar

import anyio
from anyio.abc import TaskGroup
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    CancelTaskRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    Result,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS, SUPPORTED_PROTOCOL_VERSIONS
from pydantic import Field

from mj_mcp.clock import Clock, SystemClock
from mj_mcp.taskstore import MemoryTaskStore, Page, TaskRecord, TaskStore, TaskStoreFull, now_utc
from mj_mcp.tenancy import current_tenant

__all__ = [
    "CANCEL_NOTE",
    "RELATED_TASK_KEY",
    "TASKS_EXTENSION",
    "McpTasks",
    "ModernTask",
    "StoreOpener",
    "TasksExtension",
    "legacy_task",
    "owner_of",
]

logger = logging.getLogger(__name__)

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
RELATED_TASK_KEY: Final = "io.modelcontextprotocol/related-task"
SESSION_HEADER: Final = "mcp-session-id"
DEFAULT_TTL_MS: Final = 60 * 60 * 1000
MAX_TTL_MS: Final = 24 * 60 * 60 * 1000
PAGE_SIZE: Final = 50
CANCEL_NOTE: Final = (
    "Cancelled: the server stopped waiting. Cancelling an MCP task does not cancel the Midjourney job, "
    "which may still finish (and be charged) upstream; cancel_task stops it where the upstream allows."
)
LEGACY_VERSIONS: Final = frozenset(SUPPORTED_PROTOCOL_VERSIONS) - frozenset(MODERN_PROTOCOL_VERSIONS)

Job = Callable[[], Awaitable[dict[str, Any]]]
"""The plain call, to run in the background: it answers with the wire form of its CallToolResult."""
StoreOpener = Callable[[Callable[[str], None]], AbstractAsyncContextManager[TaskStore]]
"""Opens a shared store for as long as the server runs; it calls back with the ids of tasks to stop."""

T = TypeVar("T")


def owner_of(ctx: ServerRequestContext[Any, Any]) -> str:
    """Whose a task is: the tenant (MJ_CLIENT_KEYS) and the MCP session of an HTTP request.

    Without a session id (stdio and in-memory serve one client; sessionless HTTP) the tenant alone
    decides, and without tenants too the owner is "" (one client, or ids of 128 random bits).

    Across instances (MJ_REDIS_URL): tenant ids are the same on every instance (their secret is
    shared through Redis), so a tenant's task is its own wherever it is asked for. A session id is
    issued by one instance, and a session lives on the instance that issued it, so its tasks are
    answered wherever that session's requests land. With MJ_STATELESS no session id is issued:
    the owner is the tenant (MJ_CLIENT_KEYS) or "" (everyone who knows the task id), which is what
    lets any instance answer. A client-chosen session header can only narrow ownership, never
    reach another tenant's tasks."""
    request: Any = ctx.request
    headers = getattr(request, "headers", None)
    session = headers.get(SESSION_HEADER) if headers is not None else None
    tenant = current_tenant()
    parts = ([f"tenant:{tenant.id}"] if tenant is not None else []) + (
        [f"session:{session}"] if isinstance(session, str) and session else []
    )
    return " ".join(parts)


class McpTasks:
    """Starts task-augmented calls in the background and answers for their records."""

    def __init__(
        self,
        task_tools: frozenset[str],
        *,
        store: TaskStore | None = None,
        open_store: StoreOpener | None = None,
        clock: Clock | None = None,
        poll_interval_ms: int = 1000,
    ) -> None:
        self.task_tools = task_tools
        self._clock = clock or SystemClock()
        self._store: TaskStore = store if store is not None else MemoryTaskStore(self._clock)
        self._open_store = open_store
        self._poll_interval_ms = poll_interval_ms
        self._group: TaskGroup | None = None
        self._done: dict[str, anyio.Event] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}

    def supports(self, tool: str) -> bool:
        return tool in self.task_tools

    @asynccontextmanager
    async def running(self, inner: AbstractAsyncContextManager[T]) -> AsyncGenerator[T]:
        """Open `inner` (the Runtime) with a task group for the background calls around it.

        A shared store (`open_store`) is opened first and closed last: the background calls write
        their outcome to it as they are cancelled. The calls are cancelled before the Runtime they
        use is closed."""
        async with AsyncExitStack() as stack:
            if self._open_store is not None:
                self._store = await stack.enter_async_context(self._open_store(self._stop))
            value = await stack.enter_async_context(inner)
            group = await stack.enter_async_context(anyio.create_task_group())
            self._group = group
            try:
                yield value
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def start(self, owner: str, tool: str, ttl_ms: int | None, job: Job) -> TaskRecord:
        """Record a new task for `owner` and run `job` in the background."""
        if self._group is None:
            raise MCPError(code=INTERNAL_ERROR, message="The server is not running yet.")
        ttl = DEFAULT_TTL_MS if ttl_ms is None else max(1, min(ttl_ms, MAX_TTL_MS))
        stamp = now_utc()
        draft = TaskRecord(
            task_id=secrets.token_urlsafe(16),  # 128 random bits: ids are not guessable
            owner=owner,
            tool=tool,
            status="working",
            status_message=f"{tool} is running.",
            created_at=stamp,
            last_updated_at=stamp,
            ttl_ms=ttl,
            poll_interval_ms=self._poll_interval_ms,
            expires_at=self._clock.now() + ttl / 1000,
        )
        try:
            record = await self._store.create(draft)
        except TaskStoreFull as exc:
            raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None
        self._done[record.task_id] = anyio.Event()
        self._scopes[record.task_id] = anyio.CancelScope()
        self._group.start_soon(self._run, record, job)
        return record

    async def get(self, owner: str, task_id: str) -> TaskRecord:
        record = await self._store.get(owner, task_id)
        if record is None:
            raise MCPError(code=INVALID_PARAMS, message=f"No task {task_id!r} (unknown, expired or not yours).")
        return record

    async def result(self, owner: str, task_id: str) -> TaskRecord:
        """The task once it is done, waiting for it if it is still working (here or elsewhere)."""
        record = await self.get(owner, task_id)
        while not record.terminal:
            done = self._done.get(task_id)
            if done is not None:
                await done.wait()
            else:  # another instance runs it: woken by the store, or read again after a poll interval
                await self._store.settled(task_id, record.poll_interval_ms / 1000)
            record = await self.get(owner, task_id)
        return record

    async def cancel(self, owner: str, task_id: str) -> TaskRecord:
        record = await self.get(owner, task_id)
        cancelled = record.moved("cancelled", CANCEL_NOTE)
        if not await self._store.update(cancelled):  # finished meanwhile (maybe on another instance)
            record = await self.get(owner, task_id)
            raise MCPError(code=INVALID_PARAMS, message=f"Task {task_id!r} is already {record.status}.")
        if task_id in self._scopes:
            self._stop(task_id)
        else:
            await self._store.cancel_elsewhere(task_id)
        return cancelled

    async def page(self, owner: str, cursor: str | None) -> Page:
        try:
            return await self._store.page(owner, cursor, PAGE_SIZE)
        except ValueError as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None

    def _stop(self, task_id: str) -> None:
        """Stop the background call of `task_id` if it runs here (its record says cancelled)."""
        scope = self._scopes.get(task_id)
        if scope is not None:
            scope.cancel()

    async def _run(self, record: TaskRecord, job: Job) -> None:
        task_id = record.task_id
        outcome = record.moved("cancelled", CANCEL_NOTE)
        try:
            with self._scopes[task_id]:
                outcome = _finished(record, await job())
        except MCPError as exc:
            outcome = record.moved("failed", exc.error.message, error=exc.error.model_dump(mode="json"))
        except Exception:
            logger.exception("MCP task %s (%s) failed", task_id, record.tool)
            message = f"{record.tool} failed with an internal error (logged)."
            outcome = record.moved("failed", message, error={"code": INTERNAL_ERROR, "message": message})
        finally:
            # Shielded: this also runs when the server shuts down, and the record must say so.
            # A record cancelled meanwhile stays cancelled (the store keeps a finished record).
            with anyio.CancelScope(shield=True):
                try:
                    await self._store.update(outcome)
                except Exception:  # a shared store out of reach must not take the server down
                    logger.exception("Could not record the outcome of MCP task %s", task_id)
                finally:
                    self._scopes.pop(task_id, None)
                    self._done.pop(task_id).set()


def _finished(record: TaskRecord, result: dict[str, Any]) -> TaskRecord:
    """A tool error (`isError`) fails the task; its text becomes the status message."""
    if result.get("isError"):
        texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
        return record.moved("failed", (texts[0] if texts else "The tool reported an error.")[:500], result=result)
    return record.moved("completed", f"{record.tool} finished.", result=result)


# -- wire forms -------------------------------------------------------------------------------------


def legacy_task(record: TaskRecord) -> dict[str, Any]:
    """A record as the 2025-11-25 `Task` object."""
    return {
        "taskId": record.task_id,
        "status": record.status,
        "statusMessage": record.status_message,
        "createdAt": record.created_at.isoformat(),
        "lastUpdatedAt": record.last_updated_at.isoformat(),
        "ttl": record.ttl_ms,
        "pollInterval": record.poll_interval_ms,
    }


class ModernTask(Result):
    """A task as the 2026 extension speaks it: the `tools/call` answer (`resultType: "task"`),
    and the `tasks/get` / `tasks/cancel` answers, which carry the outcome once there is one."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: Literal["working", "input_required", "completed", "failed", "cancelled"]
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(default=None)

    @classmethod
    def of(cls, record: TaskRecord, *, with_outcome: bool) -> ModernTask:
        return cls(
            task_id=record.task_id,
            status=record.status,
            status_message=record.status_message,
            created_at=record.created_at.isoformat(),
            last_updated_at=record.last_updated_at.isoformat(),
            ttl_ms=record.ttl_ms,
            poll_interval_ms=record.poll_interval_ms,
            result=record.result if with_outcome else None,
            error=record.error if with_outcome else None,
        )


def _modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _declared_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS_EXTENSION in capabilities.extensions)


class TasksExtension(Extension):
    """The task methods of both eras, and the 2026 task-augmented `tools/call`."""

    identifier = TASKS_EXTENSION

    def __init__(self, tasks: McpTasks) -> None:
        self._tasks = tasks

    def methods(self) -> Sequence[MethodBinding]:
        legacy_only = LEGACY_VERSIONS
        return (
            MethodBinding("tasks/get", GetTaskRequestParams, self._get),
            MethodBinding("tasks/cancel", CancelTaskRequestParams, self._cancel),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, self._result, protocol_versions=legacy_only),
            MethodBinding("tasks/list", PaginatedRequestParams, self._list, protocol_versions=legacy_only),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if not (_modern(ctx) and _declared_extension(ctx) and self._tasks.supports(params.name)):
            return await call_next(ctx)

        async def job() -> dict[str, Any]:
            result = await call_next(ctx)
            assert isinstance(result, CallToolResult)  # MCPServer's tools answer nothing else
            return result.model_dump(by_alias=True, mode="json", exclude_none=True)

        record = await self._tasks.start(owner_of(ctx), params.name, None, job)
        return ModernTask.of(record, with_outcome=False)

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: GetTaskRequestParams) -> HandlerResult:
        record = await self._tasks.get(owner_of(ctx), params.task_id)
        return ModernTask.of(record, with_outcome=True) if _modern(ctx) else legacy_task(record)

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: CancelTaskRequestParams) -> HandlerResult:
        record = await self._tasks.cancel(owner_of(ctx), params.task_id)
        return ModernTask.of(record, with_outcome=True) if _modern(ctx) else legacy_task(record)

    async def _result(self, ctx: ServerRequestContext[Any, Any], params: GetTaskPayloadRequestParams) -> HandlerResult:
        record = await self._tasks.result(owner_of(ctx), params.task_id)
        related = {RELATED_TASK_KEY: {"taskId": record.task_id}}
        if record.result is not None:
            return {**record.result, "_meta": {**record.result.get("_meta", {}), **related}}
        error = record.error or {"code": INTERNAL_ERROR, "message": record.status_message}
        raise MCPError(code=error["code"], message=error["message"], data=error.get("data"))

    async def _list(self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams) -> HandlerResult:
        page = await self._tasks.page(owner_of(ctx), params.cursor)
        listed: dict[str, Any] = {"tasks": [legacy_task(r) for r in page.records]}
        if page.next_cursor is not None:
            listed["nextCursor"] = page.next_cursor
        return listed
