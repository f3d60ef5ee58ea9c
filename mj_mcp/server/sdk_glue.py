"""Every place this server reaches past the MCP SDK's public surface, in one module.

`MCPServer` builds a tool's schema and argument validation from a function's signature. Our
tools take their schema from the endpoint models instead (mj_mcp.server.schema) and validate
with those same models, so the SDK must pass the raw arguments through untouched: a
`FuncMetadata` over `_RawArguments`, in a `Tool` made directly. Resource subscriptions have no
public hook either; their handlers go on the low-level server. The 2025-11-25 form of MCP Tasks
needs the wire itself (`LegacyTasksWire`, a server middleware), and a call of a tool the server
does not offer is answered by another middleware. A resource template built once per process is
added to each server's resource manager directly (`add_template`). tests/test_sdk_glue.py pins down
each of these, so that an SDK release that changes them fails loudly there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resources import ResourceTemplate
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    TaskMetadata,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import ConfigDict, ValidationError

from mj_mcp.server.live import LiveTasks
from mj_mcp.server.tasks import McpTasks, legacy_task, owner_of

__all__ = [
    "CONTEXT_KWARG",
    "TASKS_CAPABILITY",
    "LegacyTasksWire",
    "add_template",
    "answer_unknown_tools",
    "make_tool",
    "serve_subscriptions",
]

CONTEXT_KWARG = "ctx"
"""The keyword under which a tool function receives the request's Context."""


class _RawArguments(ArgModelBase):
    """Hands the raw arguments through; the tool's own model validates them (with our messages)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def make_tool(
    fn: Callable[..., Awaitable[Any]],
    *,
    name: str,
    title: str | None,
    description: str,
    parameters: dict[str, Any],
    annotations: ToolAnnotations,
    output_schema: dict[str, Any] | None = None,
) -> Tool:
    """A tool with our schema whose function gets the Context as `ctx` and the raw arguments.

    `output_schema` is published as given; the SDK does not check results against it (no output
    model), since the function returns a finished CallToolResult."""
    return Tool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=parameters,
        fn_metadata=FuncMetadata(arg_model=_RawArguments, output_schema=output_schema),
        is_async=True,
        context_kwarg=CONTEXT_KWARG,
        annotations=annotations,
    )


def serve_subscriptions(server: MCPServer[Any], live: LiveTasks) -> None:
    """Route the subscription requests of both protocol eras to `live`."""
    # MCPServer has no public hook for these three methods; registering on its low-level server
    # is how the SDK's own in-memory transport reaches it too. Registering `resources/subscribe`
    # is also what makes legacy-era capabilities say `resources.subscribe: true`.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, live.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, live.unsubscribe)
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, live.listen)


def add_template(server: MCPServer[Any], template: ResourceTemplate) -> None:
    """Serve `template`, made once (`ResourceTemplate.from_function`), as `server.resource()` would.

    `server.resource()` builds the template from its function each time: a pydantic argument model
    and `validate_call` wrapper, milliseconds per template and server, and tests build a server per
    session. The resource manager has no public way to take a finished template; its own
    `add_template` stores what it built in `_templates`, under its URI template, as this does."""
    manager = server._resource_manager  # pyright: ignore[reportPrivateUsage]
    manager._templates[template.uri_template] = template  # pyright: ignore[reportPrivateUsage]


# -- MCP Tasks, 2025-11-25 form ---------------------------------------------------------------------

TASKS_PROTOCOL_VERSION = "2025-11-25"
"""The one handshake-era protocol version that has tasks."""

TASKS_CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
"""`capabilities.tasks` (2025-11-25): tasks/list, tasks/cancel, and task-augmented tools/call."""


class LegacyTasksWire:
    """Server middleware for the 2025-11-25 task form, which mcp 2.3 knows only as types.

    Its `MCPServer` ignores `params.task`, serves no `tasks/*` (TasksExtension adds them), never
    advertises `capabilities.tasks` or a tool's `execution`, and sieves a `tools/call` answer into
    a CallToolResult, so a `CreateTaskResult` could not leave through the handler. Middleware sees
    the wire: it relies on the runner handing it `ctx.params` raw, taking a middleware's own
    answer as the finished wire result, and `call_next` answering with the serialized result of
    the rest of the chain. tests/test_sdk_glue.py pins each of these down.
    """

    def __init__(self, tasks: McpTasks) -> None:
        self._tasks = tasks

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params or {}
        if ctx.method == "tools/call" and "task" in params:
            return await self._start(ctx, params, call_next)
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        if ctx.method == "initialize" and result.get("protocolVersion") == TASKS_PROTOCOL_VERSION:
            result["capabilities"] = {**result.get("capabilities", {}), "tasks": TASKS_CAPABILITY}
        elif ctx.method == "tools/list" and ctx.protocol_version == TASKS_PROTOCOL_VERSION:
            for tool in result.get("tools", []):
                if self._tasks.supports(tool.get("name")):
                    tool["execution"] = {"taskSupport": "optional"}
        return result

    async def _start(
        self, ctx: ServerRequestContext[Any, Any], params: Mapping[str, Any], call_next: CallNext
    ) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str) or not self._tasks.supports(name):
            # The spec's answer to a task-augmented call of a tool whose taskSupport is forbidden.
            raise MCPError(code=METHOD_NOT_FOUND, message=f"Tool {name!r} does not run as a task.")
        try:
            task = TaskMetadata.model_validate(params["task"] or {})
        except ValidationError:
            raise MCPError(code=INVALID_PARAMS, message='Invalid task metadata: expected {"ttl": <ms>}.') from None
        # The job is the plain call: the same request without `task`, through the rest of the chain.
        plain = replace(ctx, params={k: v for k, v in params.items() if k != "task"})

        async def job() -> dict[str, Any]:
            result = await call_next(plain)
            assert isinstance(result, dict)  # the runner's serialized tools/call answer
            return result

        record = await self._tasks.start(owner_of(ctx), name, task.ttl, job)
        return {"task": legacy_task(record)}


def answer_unknown_tools(server: MCPServer[Any], answer: Callable[[str, frozenset[str]], str]) -> None:
    """Answer a call of a tool this server does not offer with `answer(name, offered names)`.

    The SDK answers such a call itself ("Unknown tool: upscale", isError). A server middleware
    (public, if provisional, in mcp 2.3) lets that answer through and then replaces its text, for
    names the server's own tool list lacks: the SDK's wording is never matched, only its result.
    """

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        name = (ctx.params or {}).get("name") if ctx.method == "tools/call" else None
        if not isinstance(name, str) or not isinstance(result, dict) or not result.get("isError"):
            return result
        offered = frozenset(tool.name for tool in await server.list_tools())
        if name in offered:
            return result
        return {**result, "content": [{"type": "text", "text": answer(name, offered)}]}

    server.middleware.append(middleware)
