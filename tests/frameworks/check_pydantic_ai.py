"""mj-mcp through Pydantic AI (`pydantic-ai-slim[mcp]`), with no model: an Agent whose model is a
scripted `FunctionModel`, so the tool calls go through the agent's own toolset, validation and
message path, and the "model" sees the tool declarations and results as a real one would.

Run with the python of a virtual environment that has `pydantic-ai-slim[mcp]` (see .ci/run):
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /path/to/venv/bin/python tests/frameworks/check_pydantic_ai.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import harness
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel


class ScriptedModel:
    """Plays the model: checks the tool declarations it is given, then makes `calls` one by one,
    each built from the text of the previous tool result."""

    def __init__(self, schemas: dict[str, dict[str, Any]], calls: list[Any]) -> None:
        self.schemas = schemas
        self.calls = list(calls)
        self.returns: list[Any] = []
        self.images = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        declared = {tool.name: tool.parameters_json_schema for tool in info.function_tools}
        assert declared == self.schemas, "the declarations the model sees are not the server's schemas"
        last = messages[-1]
        if isinstance(last, ModelRequest):
            for part in last.parts:
                if isinstance(part, ToolReturnPart):
                    self.returns.append(part.content)
                content = getattr(part, "content", None)
                items = content if isinstance(content, list) else [content]
                self.images += sum(isinstance(item, BinaryContent) and item.is_image for item in items)
        if not self.calls:
            return ModelResponse(parts=[TextPart("done")])
        name, make_args = self.calls.pop(0)
        previous = self.returns[-1] if self.returns else None
        return ModelResponse(parts=[ToolCallPart(name, make_args(text_of(previous)))])


def text_of(content: Any) -> str:
    if content is None:
        return ""
    items = content if isinstance(content, list) else [content]
    return "\n".join(
        item if isinstance(item, str) else str(item) for item in items if not isinstance(item, BinaryContent)
    )


IMAGINE = ("imagine", lambda _previous: {"prompt": harness.PROMPT})


def upscale(task_id: str | None = None) -> tuple[str, Any]:
    return "action", lambda previous: {"taskId": task_id or harness.task_id_in(previous), "customId": "U1"}


async def run(toolset: MCPToolset[Any], calls: list[Any]) -> ScriptedModel:
    async with toolset:
        listed = await toolset.list_tools()
        assert len(listed) == harness.TOOLS, [t.name for t in listed]
        model = ScriptedModel({tool.name: tool.input_schema for tool in listed}, calls)
        result = await Agent(FunctionModel(model), toolsets=[toolset]).run("Draw a paper boat, then upscale U1.")
    assert result.output == "done", result.output
    return model


async def imagine_then_upscale(make_toolset: Any) -> None:
    model = await run(make_toolset(), [IMAGINE, upscale()])
    assert len(model.returns) == 2, model.returns
    assert all("SUCCESS" in text_of(r) for r in model.returns), [text_of(r)[:300] for r in model.returns]
    assert model.images >= 2, f"the previews reached the model as {model.images} images"


def stdio() -> MCPToolset[Any]:
    command, args, env = harness.stdio_server()
    # read_timeout: the longest a tool call may take (default 300 s); a relaxed-mode job can take longer.
    return MCPToolset(StdioTransport(command=command, args=args, env=env), read_timeout=600)


async def over_stdio() -> None:
    await imagine_then_upscale(stdio)


async def over_streamable_http() -> None:
    with harness.http_server("streamable-http") as url:
        await imagine_then_upscale(lambda: MCPToolset(f"{url}/mcp", headers=harness.auth(), read_timeout=600))


async def over_sse_a_session_per_call() -> None:
    with harness.http_server("sse") as url:

        def toolset() -> MCPToolset[Any]:
            return MCPToolset(f"{url}/sse", headers=harness.auth(), read_timeout=600)

        first = await run(toolset(), [IMAGINE])
        task_id = harness.task_id_in(text_of(first.returns[0]))
        second = await run(toolset(), [upscale(task_id)])
        assert "SUCCESS" in text_of(second.returns[0]), text_of(second.returns[0])[:300]


async def main() -> None:
    checks = harness.Checks("pydantic-ai")
    await checks.run("stdio: declarations, imagine -> U1", over_stdio)
    await checks.run("streamable-http: declarations, imagine -> U1", over_streamable_http)
    await checks.run("sse: imagine and U1 in two sessions", over_sse_a_session_per_call)
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
