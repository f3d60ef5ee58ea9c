"""Contract tests for what mj_mcp.server.sdk_glue relies on in the MCP SDK beyond its public surface.

Each test names one assumption. When an SDK release breaks one, the failure lands here, saying
which, rather than as a puzzling failure somewhere in the tool tests.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from mcp import Client
from mcp.server.context import ServerMiddleware
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import ResourceTemplate
from mcp.server.mcpserver.resources.resource_manager import ResourceManager
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from mj_mcp.server.live import LiveTasks
from mj_mcp.server.sdk_glue import (
    CONTEXT_KWARG,
    add_template,
    answer_unknown_tools,
    make_tool,
    serve_subscriptions,
)

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"taskId": {"type": "string", "description": "x"}}, "required": ["taskId"]}


def test_tool_takes_every_field_make_tool_sets() -> None:
    assert {
        "fn",
        "name",
        "title",
        "description",
        "parameters",
        "fn_metadata",
        "is_async",
        "context_kwarg",
        "annotations",
    } <= set(Tool.model_fields)


def test_func_metadata_hands_the_arguments_to_the_arg_models_dump() -> None:
    assert "model_dump_one_level" in vars(ArgModelBase)
    assert "arg_model" in FuncMetadata.model_fields
    assert "validate_arguments" in vars(FuncMetadata)


def test_the_low_level_server_takes_request_handlers() -> None:
    server: MCPServer[Any] = MCPServer("glue")
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    assert list(inspect.signature(lowlevel.add_request_handler).parameters)[:3] == ["method", "params_type", "handler"]


def glue_server(received: list[tuple[Context, dict[str, Any]]]) -> MCPServer[Any]:
    async def fn(ctx: Context, **arguments: Any) -> CallToolResult:
        received.append((ctx, arguments))
        return CallToolResult(content=[TextContent(text="done")], structured_content={"ok": True}, is_error=True)

    assert fn.__code__.co_varnames[0] == CONTEXT_KWARG
    tool = make_tool(
        fn,
        name="probe",
        title="Probe",
        description="Takes anything.",
        parameters=SCHEMA,
        annotations=ToolAnnotations(open_world_hint=True),
    )
    bus = InMemorySubscriptionBus()
    server: MCPServer[Any] = MCPServer("glue", tools=[tool], subscriptions=bus)
    serve_subscriptions(server, LiveTasks(bus))
    return server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_glued_tool_lists_our_schema_and_gets_the_raw_arguments_and_the_context(mode: str) -> None:
    received: list[tuple[Context, dict[str, Any]]] = []
    async with Client(glue_server(received), mode=mode) as client:  # type: ignore[arg-type]
        (listed,) = (await client.list_tools()).tools
        result = await client.call_tool("probe", {"taskId": 7, "unknown-arg": [1], "wait": "yes"})
    assert listed.input_schema == SCHEMA  # not rebuilt from the function's signature
    assert listed.title == "Probe"
    # Not validated, not renamed, nothing dropped: our own models do that, with our messages.
    ((ctx, arguments),) = received
    assert arguments == {"taskId": 7, "unknown-arg": [1], "wait": "yes"}
    assert isinstance(ctx, Context)
    # The CallToolResult the function returns is the answer, unchanged.
    assert result.is_error is True
    assert result.structured_content == {"ok": True}
    assert [c.text for c in result.content if isinstance(c, TextContent)] == ["done"]


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed", "ignore:resources/unsubscribe is removed")
async def test_subscription_handlers_on_the_low_level_server_are_announced_and_answered() -> None:
    async with Client(glue_server([]), mode="legacy") as client:  # type: ignore[arg-type]
        caps = client.server_capabilities.resources
        assert caps is not None and caps.subscribe
        await client.subscribe_resource("mj://tasks/1")  # pyright: ignore[reportDeprecated]
        await client.unsubscribe_resource("mj://tasks/1")  # pyright: ignore[reportDeprecated]


# -- MCP Tasks (LegacyTasksWire) ---------------------------------------------------------------------


def test_the_sdk_still_has_no_tasks_runtime_so_the_middleware_is_needed() -> None:
    from mcp_types.methods import CLIENT_REQUESTS, SERVER_RESULTS
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    from mj_mcp.server.sdk_glue import TASKS_PROTOCOL_VERSION

    # When the SDK serves tasks/* itself, or lets a tools/call answer be a CreateTaskResult, this
    # middleware should give way to it.
    assert ("tasks/get", TASKS_PROTOCOL_VERSION) not in CLIENT_REQUESTS
    assert SERVER_RESULTS[("tools/call", TASKS_PROTOCOL_VERSION)].__name__ == "CallToolResult"
    assert TASKS_PROTOCOL_VERSION not in MODERN_PROTOCOL_VERSIONS
    assert "middleware" in inspect.signature(MCPServer.__init__).parameters


async def test_middleware_sees_raw_params_and_wire_results_and_may_answer_itself() -> None:
    seen: list[tuple[str, Any, Any]] = []

    async def spy(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and "answer_myself" in (ctx.params or {}).get("arguments", {}):
            return {"content": [{"type": "text", "text": "mine"}]}
        result = await call_next(ctx)
        seen.append((ctx.method, dict(ctx.params or {}), result))
        return result

    server = MCPServer("contract", middleware=[spy])

    @server.tool(structured_output=False)
    def echo(answer_myself: bool = False) -> str:  # pyright: ignore[reportUnusedFunction]
        return "echo"

    async with Client(server, mode="legacy") as client:
        await client.call_tool("echo", {})
        mine = await client.call_tool("echo", {"answer_myself": True})
    assert isinstance(mine.content[0], TextContent) and mine.content[0].text == "mine"
    methods = {method: (params, result) for method, params, result in seen}
    assert isinstance(methods["initialize"][1], dict) and "protocolVersion" in methods["initialize"][1]
    params, result = methods["tools/call"]
    assert params["name"] == "echo"  # raw wire params, camelCase, before validation
    assert isinstance(result, dict) and result["content"][0]["text"] == "echo"  # already serialized


def test_the_tool_listing_drops_execution_so_the_middleware_adds_it() -> None:
    # MCPServer.list_tools builds each Tool without `execution`; the wire type has the field.
    from mcp.types import Tool as WireTool

    assert "execution" in WireTool.model_fields
    assert "execution" not in inspect.getsource(MCPServer.list_tools)


def test_the_server_takes_middleware_in_the_shape_answer_unknown_tools_uses() -> None:
    server: MCPServer[Any] = MCPServer("glue")
    assert isinstance(server.middleware, list)
    assert list(inspect.signature(ServerMiddleware.__call__).parameters) == ["self", "ctx", "call_next"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_unknown_tool_is_answered_as_an_error_result_that_the_middleware_rewords(mode: str) -> None:
    asked: list[tuple[str, frozenset[str]]] = []

    def answer(name: str, offered: frozenset[str]) -> str:
        asked.append((name, offered))
        return f"No tool `{name}`; use probe."

    server = glue_server([])
    answer_unknown_tools(server, answer)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        unknown = await client.call_tool("upscale", {})
        known = await client.call_tool("probe", {"taskId": "1"})
    # The SDK answers an unknown tool with an isError result (not a protocol error), whose text
    # the middleware replaces; a known tool's own error result is left as it is.
    assert unknown.is_error is True
    assert [c.text for c in unknown.content if isinstance(c, TextContent)] == ["No tool `upscale`; use probe."]
    assert asked == [("upscale", frozenset({"probe"}))]
    assert [c.text for c in known.content if isinstance(c, TextContent)] == ["done"]


# -- resource templates made once (add_template) ----------------------------------------------------


def test_the_resource_manager_keeps_its_templates_by_uri_template_where_add_template_puts_them() -> None:
    manager = ResourceManager()
    assert manager._templates == {}  # pyright: ignore[reportPrivateUsage]

    def probe(taskId: str) -> str:
        return taskId

    made = manager.add_template(probe, "probe://{taskId}")
    assert manager._templates == {"probe://{taskId}": made}  # pyright: ignore[reportPrivateUsage]
    assert manager.list_templates() == [made]


async def read_probe(ctx: Context, taskId: str) -> str:
    return f"{taskId} read by {ctx.mcp_server.name}"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_template_added_by_the_glue_is_listed_and_read_as_one_the_decorator_adds(mode: str) -> None:
    options: dict[str, Any] = {
        "name": "probe",
        "title": "A probe",
        "description": "Reads a probe.",
        "mime_type": "application/json",
    }
    decorated: MCPServer[Any] = MCPServer("decorated")
    decorated.resource("probe://{taskId}", **options)(read_probe)
    glued: MCPServer[Any] = MCPServer("glued")
    template = ResourceTemplate.from_function(read_probe, "probe://{taskId}", **options)
    add_template(glued, template)
    seen: list[tuple[Any, Any]] = []
    for server in (decorated, glued):
        async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
            templates = (await client.list_resource_templates()).resource_templates
            contents = (await client.read_resource("probe://7")).contents
        seen.append(([t.model_dump() for t in templates], [c.model_dump() for c in contents]))
    (decorated_templates, decorated_read), (glued_templates, glued_read) = seen
    assert glued_templates == decorated_templates
    assert [c.pop("text") for c in decorated_read] == ["7 read by decorated"]
    # The shared template gets each server's own Context: it finds its server through it.
    assert [c.pop("text") for c in glued_read] == ["7 read by glued"]
    assert glued_read == decorated_read
