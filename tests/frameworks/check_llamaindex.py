"""mj-mcp through LlamaIndex (`llama-index-tools-mcp`), with no model (a developer's check, not run in
CI): `McpToolSpec(...).to_tool_list_async()` turns every tool into a FunctionTool, whose
parameters are what the model is shown; imagine -> action U1 run through `FunctionTool.acall`.

`BasicMCPClient` opens a new session for every call (over stdio: a new server process), so this
runs against `mj-mcp simulate` as the upstream over stdio, and `mj-mcp --simulator` over HTTP.

    python3 -m venv /tmp/llamaindex && /tmp/llamaindex/bin/pip install 'llama-index-tools-mcp==0.6.0'
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /tmp/llamaindex/bin/python tests/frameworks/check_llamaindex.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import harness
from llama_index.tools.mcp import BasicMCPClient, McpToolSpec


def keywords(schema: dict[str, Any], path: str) -> set[str]:
    found = {f"{path}.{key}" for key in schema if key not in ("properties", "items", "$defs", "title")}
    for name, prop in schema.get("properties", {}).items():
        found |= keywords(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found |= keywords(schema["items"], f"{path}[]")
    return found


async def exercise(client: BasicMCPClient) -> None:
    listed = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
    tools = {tool.metadata.name: tool for tool in await McpToolSpec(client=client).to_tool_list_async()}
    assert sorted(tools) == sorted(listed) and len(tools) == harness.TOOLS, sorted(tools)
    lost: set[str] = set()
    for name, tool in tools.items():
        shown = tool.metadata.get_parameters_dict()  # what an LLM's function declaration gets
        assert sorted(shown["properties"]) == sorted(listed[name]["properties"]), name
        lost |= {k.split(".")[-1] for k in keywords(listed[name], name) - keywords(shown, name)}
    print(f"  llama-index declarations: every tool converts; keywords not shown to the model: {sorted(lost)}")
    grid = str(await tools["imagine"].acall(prompt=harness.PROMPT))
    assert "SUCCESS" in grid, grid[:500]
    print(f"  imagine result as the model gets it: {len(grid)} characters")
    upscale = str(await tools["action"].acall(taskId=harness.task_id_in(grid), customId="U1"))
    assert "SUCCESS" in upscale, upscale[:500]


async def over_stdio_a_process_per_call() -> None:
    with harness.simulator(float(harness.JOB_SECONDS)) as upstream:
        env = harness.server_env(upstream, MJ_PREVIEW="none")
        # timeout: the read timeout of each call (default 30 s); a job needs minutes.
        await exercise(BasicMCPClient(harness.command(), args=[], env=env, timeout=600))


async def over_http(transport: str, path: str) -> None:
    with harness.http_server(transport, harness.base_env(MJ_PREVIEW="none")) as url:
        await exercise(BasicMCPClient(f"{url}{path}", headers=harness.auth(), timeout=600, sse_read_timeout=600))


async def main() -> None:
    checks = harness.Checks("llama-index")
    await checks.run("stdio, a process per call: declarations, imagine -> U1", over_stdio_a_process_per_call)
    await checks.run("streamable-http, a session per call: imagine -> U1", lambda: over_http("streamable-http", "/mcp"))
    await checks.run("sse, a session per call: imagine -> U1", lambda: over_http("sse", "/sse"))
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
