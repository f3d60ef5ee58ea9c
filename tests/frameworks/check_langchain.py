"""mj-mcp through LangChain (`langchain-mcp-adapters`), with no model and no network: the adapters' MCP
client and tool conversion, `tool.ainvoke` with a tool call, and the request payloads ChatOpenAI and
ChatAnthropic would send with the tools and the tool results (built offline by their own
`_get_request_payload`).

Run with the python of a virtual environment that has `langchain-mcp-adapters`, `langchain-openai`
and `langchain-anthropic` (see .ci/run):
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /path/to/venv/bin/python tests/frameworks/check_langchain.py

`MultiServerMCPClient.get_tools()` opens a new session for every call (over stdio: a new server
process), so imagine and action U1 run in different sessions; over stdio they run in different
processes, which share only the upstream (here `mj-mcp simulate`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import harness
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools
from langchain_openai import ChatOpenAI

# Offline: the keys are never sent anywhere; the payload is built, not posted.
MODELS = {
    "ChatOpenAI (chat completions)": ChatOpenAI(model="gpt-4o", api_key="sk-offline"),
    "ChatOpenAI (responses)": ChatOpenAI(model="gpt-4o", api_key="sk-offline", use_responses_api=True),
    "ChatAnthropic": ChatAnthropic(model="claude-sonnet-4-5", api_key="sk-ant-offline"),
}


def converts_every_tool(tools: list[BaseTool]) -> dict[str, BaseTool]:
    assert len(tools) == harness.TOOLS, [t.name for t in tools]
    for tool in tools:
        # No loss: the declaration LangChain makes is the server's schema, every constraint kept.
        assert isinstance(tool.args_schema, dict), tool.name
        assert convert_to_openai_tool(tool)["function"]["parameters"] == tool.args_schema, tool.name
    return {tool.name: tool for tool in tools}


async def call(tool: BaseTool, args: dict[str, Any], call_id: str) -> ToolMessage:
    """The framework's own path: a model's tool call in, a ToolMessage out."""
    message = await tool.ainvoke({"type": "tool_call", "name": tool.name, "args": args, "id": call_id})
    assert isinstance(message, ToolMessage), type(message)
    assert message.status != "error", message.content
    return message


def blocks(message: ToolMessage) -> list[dict[str, Any]]:
    content = message.content
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def text_of(message: ToolMessage) -> str:
    return "\n".join(b["text"] for b in blocks(message) if b.get("type") == "text")


def carried(message: ToolMessage) -> None:
    """Only text, and images as base64: never a URL or a file, which providers refuse."""
    for block in blocks(message):
        assert block["type"] in ("text", "image"), block["type"]
        if block["type"] == "image":
            assert block.get("base64") and not block.get("url"), {k: v for k, v in block.items() if k != "base64"}


def declared(name: str, tool: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A tool declaration in `name`'s payload: the tool's name and its parameters schema."""
    if name == "ChatAnthropic":
        return tool["name"], tool["input_schema"]
    if "function" in tool:
        return tool["function"]["name"], tool["function"]["parameters"]
    return tool["name"], tool["parameters"]


def tool_results(name: str, payload: dict[str, Any]) -> list[Any]:
    """The tool results' content as `name`'s payload carries them."""
    if name == "ChatAnthropic":
        return [
            block["content"]
            for message in payload["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block.get("type") == "tool_result"
        ]
    if "input" in payload:
        return [item["output"] for item in payload["input"] if item.get("type") == "function_call_output"]
    return [message["content"] for message in payload["messages"] if message["role"] == "tool"]


ACCEPTED: dict[str, Any] = {
    # The providers' documented shapes: Chat Completions takes only text in a tool message
    # ("Image URLs are only allowed for messages with role 'user'"), hence MJ_PREVIEW=none there.
    "ChatOpenAI (chat completions)": lambda part: part["type"] == "text",
    "ChatOpenAI (responses)": lambda part: (
        part["type"] == "input_text" or (part["type"] == "input_image" and part["image_url"].startswith("data:image/"))
    ),
    "ChatAnthropic": lambda part: (
        part["type"] == "text" or (part["type"] == "image" and part["source"]["type"] == "base64")
    ),
}


def payload_accepts(tools: dict[str, BaseTool], conversation: list[BaseMessage], *, preview: bool) -> None:
    """Each model's request payload, built offline, declares every tool unchanged and carries the
    results in shapes its API accepts (with a preview image only where the API takes one)."""
    schemas = {tool.name: tool.args_schema for tool in tools.values()}
    for name, model in MODELS.items():
        bound = model.bind_tools(list(tools.values()))
        payload = model._get_request_payload(conversation, **bound.kwargs)  # type: ignore[attr-defined]
        assert dict(declared(name, tool) for tool in payload["tools"]) == schemas, f"{name}: declarations differ"
        results = tool_results(name, payload)
        assert len(results) == 2, (name, len(results))
        parts = [part for result in results if isinstance(result, list) for part in result]
        has_image = any("image" in part["type"] for part in parts)
        if preview and name == "ChatOpenAI (chat completions)":
            assert has_image, "expected the preview in the tool message (the reason for MJ_PREVIEW=none)"
            continue
        rejected = [part for part in parts if not ACCEPTED[name](part)]
        assert not rejected, f"{name}: parts its API refuses: {json.dumps(rejected)[:300]}"
        assert has_image == preview, f"{name}: preview image {'missing' if preview else 'present'}"


async def imagine_then_upscale(tools: dict[str, BaseTool], *, preview: bool = True) -> None:
    grid = await call(tools["imagine"], {"prompt": harness.PROMPT}, "call_1")
    carried(grid)
    assert "SUCCESS" in text_of(grid), text_of(grid)
    task_id = harness.task_id_in(text_of(grid))
    upscale = await call(tools["action"], {"taskId": task_id, "customId": "U1"}, "call_2")
    carried(upscale)
    assert "SUCCESS" in text_of(upscale), text_of(upscale)
    conversation: list[BaseMessage] = [
        HumanMessage("Draw a paper boat, then upscale the first image."),
        AIMessage("", tool_calls=[{"name": "imagine", "args": {"prompt": harness.PROMPT}, "id": "call_1"}]),
        grid,
        AIMessage("", tool_calls=[{"name": "action", "args": {"taskId": task_id, "customId": "U1"}, "id": "call_2"}]),
        upscale,
    ]
    payload_accepts(tools, conversation, preview=preview)


async def over_stdio_a_process_per_call() -> None:
    with harness.simulator(float(harness.JOB_SECONDS)) as upstream:
        env = harness.server_env(upstream)
        client = MultiServerMCPClient(
            {"mj": {"transport": "stdio", "command": harness.command(), "args": [], "env": env}}
        )
        await imagine_then_upscale(converts_every_tool(await client.get_tools()))


async def over_stdio_one_session_without_preview() -> None:
    command, args, env = harness.stdio_server(MJ_PREVIEW="none")
    client = MultiServerMCPClient({"mj": {"transport": "stdio", "command": command, "args": args, "env": env}})
    async with client.session("mj") as session:
        await imagine_then_upscale(converts_every_tool(await load_mcp_tools(session)), preview=False)


async def over_http(transport: str, path: str, kind: str) -> None:
    with harness.http_server(transport) as url:
        connection = {"transport": kind, "url": f"{url}{path}", "headers": harness.auth()}
        client = MultiServerMCPClient({"mj": connection})  # type: ignore[dict-item]
        await imagine_then_upscale(converts_every_tool(await client.get_tools()))


async def main() -> None:
    checks = harness.Checks("langchain-mcp-adapters")
    await checks.run("stdio, a session (and process) per call: imagine -> U1, payloads", over_stdio_a_process_per_call)
    await checks.run(
        "stdio, one session (load_mcp_tools), MJ_PREVIEW=none: imagine -> U1, payloads (Chat Completions too)",
        over_stdio_one_session_without_preview,
    )
    await checks.run(
        "streamable-http, a session per call: imagine -> U1, payloads",
        lambda: over_http("streamable-http", "/mcp", "streamable_http"),
    )
    await checks.run("sse, a session per call: imagine -> U1, payloads", lambda: over_http("sse", "/sse", "sse"))
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
