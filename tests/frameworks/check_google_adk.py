"""mj-mcp through Google ADK and google-genai, with no model and no network (a developer's check, not
run in CI): google-genai's MCP converter (`mcp_to_gemini_tool`) and ADK's `McpToolset` declarations
(Gemini `FunctionDeclaration`s) for every tool, then imagine -> action U1 through ADK's
`McpTool.run_async`, over stdio, Streamable HTTP and SSE.

    python3 -m venv /tmp/adk && /tmp/adk/bin/pip install 'google-adk==2.13.0'
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /tmp/adk/bin/python tests/frameworks/check_google_adk.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import harness
from google.adk.agents import LlmAgent
from google.adk.agents.invocation_context import InvocationContext
from google.adk.sessions import InMemorySessionService
from google.adk.tools.mcp_tool import McpToolset
from google.adk.tools.mcp_tool.mcp_session_manager import (
    SseConnectionParams,
    StdioConnectionParams,
    StreamableHTTPConnectionParams,
)
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from google.genai._mcp_utils import mcp_to_gemini_tool
from mcp import StdioServerParameters

# JSON Schema keywords and the Gemini Schema fields they become; anything else would be lost.
KEPT = {
    "type": "type",
    "description": "description",
    "enum": "enum",
    "items": "items",
    "properties": "properties",
    "required": "required",
    "minimum": "minimum",
    "maximum": "maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "pattern": "pattern",
    "default": "default",
    "nullable": "nullable",
    "title": "title",
}


def lost(schema: dict[str, Any], gemini: types.Schema, path: str) -> list[str]:
    """The keywords of `schema` that its Gemini conversion does not carry."""
    missing = [f"{path}.{key}" for key in schema if key not in KEPT or getattr(gemini, KEPT[key]) is None]
    for name, prop in schema.get("properties", {}).items():
        missing += lost(prop, (gemini.properties or {})[name], f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        assert gemini.items is not None, path
        missing += lost(schema["items"], gemini.items, f"{path}[]")
    return missing


KNOWN_DROPS = frozenset({"minLength", "maxLength", "minItems", "maxItems", "nullable"})
"""What google-genai's converter drops from any schema (google-genai 2.34 and 3.6): its
`_filter_to_supported_schema` keeps the keys named as the snake_case fields of `types.JSONSchema`
(`min_length` ...), so the camelCase JSON Schema keywords never pass; `nullable` is not JSON Schema."""


def converts(name: str, schema: dict[str, Any], gemini: types.Schema | None) -> set[str]:
    """Asserts that nothing but `KNOWN_DROPS` is lost; returns the dropped keywords."""
    assert gemini is not None, name
    losses = lost(schema, gemini, name)
    unexpected = [x for x in losses if x.rsplit(".", 1)[-1] not in KNOWN_DROPS]
    assert not unexpected, unexpected
    return {x.rsplit(".", 1)[-1] for x in losses}


def genai_converts(tools: list[Any]) -> None:
    dropped: set[str] = set()
    for tool in tools:
        declaration = mcp_to_gemini_tool(tool).function_declarations[0]  # raises on what it cannot take
        dropped |= converts(tool.name, tool.input_schema, declaration.parameters)
    print(f"  google-genai mcp_to_gemini_tool: every tool converts; it drops {sorted(dropped)}", flush=True)


async def tool_context(agent: LlmAgent) -> ToolContext:
    sessions = InMemorySessionService()
    session = await sessions.create_session(app_name="mj-mcp-check", user_id="check")
    invocation = InvocationContext(session_service=sessions, invocation_id="check", agent=agent, session=session)
    return ToolContext(invocation)


def text_of(result: Any) -> str:
    return json.dumps(result, default=str)


async def exercise(toolset: McpToolset, second: McpToolset | None = None) -> None:
    tools = await toolset.get_tools()
    assert len(tools) == harness.TOOLS, [t.name for t in tools]
    genai_converts([tool._mcp_tool for tool in tools])
    dropped: set[str] = set()
    for tool in tools:
        declaration = tool._get_declaration()  # what ADK sends to Gemini
        if declaration.parameters_json_schema is not None:  # ADK's JSON-schema mode: passed on unchanged
            assert declaration.parameters_json_schema == tool._mcp_tool.input_schema, tool.name
        else:
            dropped |= converts(tool.name, tool._mcp_tool.input_schema, declaration.parameters)
    print(f"  ADK McpTool declarations: every tool converts; dropped {sorted(dropped)}", flush=True)
    by_name = {tool.name: tool for tool in tools}
    context = await tool_context(LlmAgent(name="check", model="gemini-2.5-flash", tools=[toolset]))
    grid = await by_name["imagine"].run_async(args={"prompt": harness.PROMPT}, tool_context=context)
    assert "SUCCESS" in text_of(grid), text_of(grid)[:500]
    print(f"  imagine result as Gemini gets it: {len(text_of(grid))} characters")
    task_id = harness.task_id_in(text_of(grid))
    if second is not None:  # a new session for the next call
        by_name = {tool.name: tool for tool in await second.get_tools()}
    upscale = await by_name["action"].run_async(args={"taskId": task_id, "customId": "U1"}, tool_context=context)
    assert "SUCCESS" in text_of(upscale), text_of(upscale)[:500]


async def over_stdio() -> None:
    command, args, env = harness.stdio_server(MJ_PREVIEW="none")
    # timeout: ADK's read timeout for each call (default 5 s); a job needs minutes.
    params = StdioConnectionParams(
        server_params=StdioServerParameters(command=command, args=args, env=env), timeout=600
    )
    toolset = McpToolset(connection_params=params)
    try:
        await exercise(toolset)
    finally:
        await toolset.close()


async def over_http(transport: str, path: str, params_type: Any, separate_sessions: bool) -> None:
    with harness.http_server(transport, harness.base_env(MJ_PREVIEW="none")) as url:
        made = [
            McpToolset(
                connection_params=params_type(
                    url=f"{url}{path}", headers=harness.auth(), timeout=30, sse_read_timeout=600
                )
            )
            for _ in range(2 if separate_sessions else 1)
        ]
        try:
            await exercise(made[0], made[1] if separate_sessions else None)
        finally:
            for toolset in made:
                await toolset.close()


async def main() -> None:
    checks = harness.Checks("google-adk")
    await checks.run("stdio: declarations, imagine -> U1", over_stdio)
    await checks.run(
        "streamable-http: declarations, imagine -> U1",
        lambda: over_http("streamable-http", "/mcp", StreamableHTTPConnectionParams, False),
    )
    await checks.run("sse: imagine and U1 in two sessions", lambda: over_http("sse", "/sse", SseConnectionParams, True))
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
