"""mj-mcp through the OpenAI Agents SDK (`openai-agents`), with no model: the SDK's own MCP client,
its strict-schema conversion and its FunctionTool invocation path.

Run with the python of a virtual environment that has `openai-agents` (see .ci/run):
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /path/to/venv/bin/python tests/frameworks/check_openai_agents.py

Checks, over stdio, Streamable HTTP and SSE: every tool is listed and converts to a strict schema
(no fallback), a strict model's arguments (every optional field filled with an empty value) are
accepted, imagine -> action U1 runs through `FunctionTool.on_invoke_tool`. Then the "Done when" case
of issue 14: with the SDK's default 5 s client timeout, a 12 s job retried once reaches the
upstream once and the agent gets the finished task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import harness
from agents import Agent, RunContextWrapper
from agents.mcp import MCPServer, MCPServerSse, MCPServerStdio, MCPServerStreamableHttp, MCPUtil
from agents.mcp._compat import tool_input_schema
from agents.strict_schema import ensure_strict_json_schema
from agents.tool import FunctionTool
from agents.tool_context import ToolContext

RETRY_JOB_SECONDS = 12.0
"""The "Done when" job: longer than two of the SDK's default 5 s client timeouts."""
MODEL_TURN = 5.0
"""How long the model takes to read the timeout error and call again (a reasoning model's turn)."""


def empty_value(schema: dict[str, Any]) -> Any:
    """What a strict-mode model puts in an optional field it does not mean to use."""
    kind = schema.get("type")
    if kind == "string":
        return ""
    if kind == "array":
        return []
    return None


def strict_arguments(tool: FunctionTool, given: dict[str, Any]) -> str:
    """`given`, plus every other property of the strict schema filled the way a strict model does
    (strict mode makes every property required)."""
    schema = tool.params_json_schema
    assert sorted(schema["required"]) == sorted(schema["properties"]), tool.name
    filled = {name: empty_value(prop) for name, prop in schema["properties"].items()}
    return json.dumps({**filled, **given})


async def invoke(tool: FunctionTool, arguments: str) -> Any:
    context = ToolContext(
        context=None, tool_name=tool.name, tool_call_id=f"call-{time.monotonic_ns()}", tool_arguments=arguments
    )
    return await tool.on_invoke_tool(context, arguments)


def text_of(output: Any) -> str:
    """The model-visible text of a tool output (a text item, a list of items, or a string)."""
    items = output if isinstance(output, list) else [output]
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(item["text"])
        else:
            texts.append(getattr(item, "text", "") or "")
    return "\n".join(texts)


def images_of(output: Any) -> list[str]:
    items = output if isinstance(output, list) else [output]
    return [item["image_url"] for item in items if isinstance(item, dict) and item.get("type") == "image"]


async def function_tools(server: MCPServer) -> dict[str, FunctionTool]:
    agent = Agent(name="mj-mcp check")
    tools = await MCPUtil.get_function_tools(server, True, RunContextWrapper(context=None), agent)
    return {tool.name: tool for tool in tools if isinstance(tool, FunctionTool)}


async def converts_every_tool(server: MCPServer) -> dict[str, FunctionTool]:
    listed = await server.list_tools()
    assert len(listed) == harness.TOOLS, [t.name for t in listed]
    for mcp_tool in listed:
        # The conversion MCPUtil runs: it logs and falls back to a non-strict schema when this raises.
        schema = tool_input_schema(mcp_tool)  # inputSchema, under the name of the installed mcp
        converted = ensure_strict_json_schema(json.loads(json.dumps(schema)))
        assert sorted(converted["properties"]) == sorted(schema["properties"]), mcp_tool.name
    tools = await function_tools(server)
    assert sorted(tools) == sorted(t.name for t in listed)
    fallbacks = [name for name, tool in tools.items() if not tool.strict_json_schema]
    assert not fallbacks, f"strict conversion fell back for {fallbacks}"
    return tools


async def imagine_then_upscale(tools: dict[str, FunctionTool]) -> None:
    grid = await invoke(tools["imagine"], strict_arguments(tools["imagine"], {"prompt": harness.PROMPT}))
    text = text_of(grid)
    assert "SUCCESS" in text, text
    images = images_of(grid)
    assert images and all(url.startswith("data:image/") for url in images), "the preview is a data URL"
    task_id = harness.task_id_in(text)
    upscale = await invoke(tools["action"], strict_arguments(tools["action"], {"taskId": task_id, "customId": "U1"}))
    assert "SUCCESS" in text_of(upscale), text_of(upscale)
    # Strict mode fills every filter: "" and [] must read as absent, not as "match nothing".
    found = await invoke(tools["query_tasks"], strict_arguments(tools["query_tasks"], {"pageSize": 10}))
    assert task_id in text_of(found), text_of(found)[:500]
    queue = await invoke(tools["task_queue"], strict_arguments(tools["task_queue"], {}))
    assert "error occurred" not in text_of(queue).lower(), text_of(queue)


@contextlib.asynccontextmanager
async def connected(server: MCPServer) -> AsyncIterator[MCPServer]:
    async with server:
        yield server


def stdio(**options: Any) -> MCPServerStdio:
    command, args, env = harness.stdio_server()
    return MCPServerStdio({"command": command, "args": args, "env": env}, **options)


async def over_stdio() -> None:
    # A job outlives the default 5 s: the README's setting for a long job.
    async with connected(stdio(client_session_timeout_seconds=600)) as server:
        await imagine_then_upscale(await converts_every_tool(server))


async def over_streamable_http() -> None:
    with harness.http_server("streamable-http") as url:
        params = {"url": f"{url}/mcp", "headers": harness.auth()}
        async with connected(MCPServerStreamableHttp(params, client_session_timeout_seconds=600)) as server:
            await imagine_then_upscale(await converts_every_tool(server))


async def over_sse_a_session_per_call() -> None:
    with harness.http_server("sse") as url:
        params = {"url": f"{url}/sse", "headers": harness.auth()}
        async with connected(MCPServerSse(params, client_session_timeout_seconds=600)) as server:
            tools = await converts_every_tool(server)
            grid = await invoke(tools["imagine"], json.dumps({"prompt": harness.PROMPT}))
        task_id = harness.task_id_in(text_of(grid))
        async with connected(MCPServerSse(params, client_session_timeout_seconds=600)) as server:
            tools = await function_tools(server)
            upscale = await invoke(tools["action"], json.dumps({"taskId": task_id, "customId": "U1"}))
        assert "SUCCESS" in text_of(upscale), text_of(upscale)


async def errors_and_no_preview() -> None:
    """Error results (the SDK's client skips the outputSchema check only for those) reach the model
    as their text; MJ_PREVIEW=none leaves a text-only result; `use_structured_content` gives the
    model the compact task instead."""
    with harness.http_server("streamable-http", harness.base_env(MJ_PREVIEW="none")) as url:
        params = {"url": f"{url}/mcp", "headers": harness.auth()}
        async with connected(MCPServerStreamableHttp(params, client_session_timeout_seconds=600)) as server:
            tools = await function_tools(server)
            grid = await invoke(tools["imagine"], json.dumps({"prompt": harness.PROMPT}))
            assert "SUCCESS" in text_of(grid) and not images_of(grid), grid
            unknown = await invoke(tools["get_task"], json.dumps({"taskId": harness.UNKNOWN_TASK}))
            assert "not found" in text_of(unknown), text_of(unknown)
            failed = await invoke(tools["imagine"], json.dumps({"prompt": harness.FAILING_PROMPT}))
            assert "FAILURE" in text_of(failed) and "Next:" in text_of(failed), text_of(failed)
        structured = MCPServerStreamableHttp(params, client_session_timeout_seconds=600, use_structured_content=True)
        async with connected(structured) as server:
            tools = await function_tools(server)
            task = json.loads(
                text_of(await invoke(tools["get_task"], json.dumps({"taskId": harness.task_id_in(text_of(grid))})))
            )
            assert task["status"] == "SUCCESS" and task["buttons"], task


async def default_timeout_retry_pays_once() -> None:
    """The SDK's default 5 s client timeout against a 12 s job: the agent's retry joins the job.

    The model reads the timeout error and calls again: one retry, after a model turn, gets the
    finished task; retries sent at once each give up after 5 s too, and still pay only once.
    """
    for model_turn, most_attempts in ((MODEL_TURN, 2), (0.0, 4)):
        with harness.simulator(RETRY_JOB_SECONDS) as upstream:
            command = harness.command()
            env = harness.server_env(upstream, MJ_POLL_INTERVAL="0.5")
            async with connected(MCPServerStdio({"command": command, "args": [], "env": env})) as server:
                assert server.client_session_timeout_seconds == 5  # the SDK's default, untouched
                tools = await function_tools(server)
                arguments = json.dumps({"prompt": harness.PROMPT})
                started = time.monotonic()
                outputs = [text_of(await invoke(tools["imagine"], arguments))]
                assert "SUCCESS" not in outputs[0], outputs[0]  # the client gave up after 5 s
                while "SUCCESS" not in outputs[-1] and len(outputs) < most_attempts:
                    await asyncio.sleep(model_turn)
                    outputs.append(text_of(await invoke(tools["imagine"], arguments)))
                assert "SUCCESS" in outputs[-1], outputs
                print(
                    f"  model turn {model_turn:.0f} s: finished task on attempt {len(outputs)}, "
                    f"after {time.monotonic() - started:.1f} s",
                    flush=True,
                )
            assert harness.submits(upstream) == 1, f"the upstream saw {harness.submits(upstream)} imagine submits"


async def main() -> None:
    checks = harness.Checks("openai-agents")
    await checks.run("stdio: strict schemas, imagine -> U1", over_stdio)
    await checks.run("streamable-http: strict schemas, imagine -> U1", over_streamable_http)
    await checks.run("sse: imagine and U1 in two sessions", over_sse_a_session_per_call)
    await checks.run("streamable-http, MJ_PREVIEW=none: errors as text, structured content", errors_and_no_preview)
    await checks.run(
        "default 5 s timeout, 12 s job, retried: one submit, finished task", default_timeout_retry_pays_once
    )
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
