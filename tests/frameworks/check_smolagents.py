"""mj-mcp through smolagents (+ mcpadapt), with no model (a developer's check, not run in CI):
`ToolCollection.from_mcp` turns every tool into a smolagents Tool; a code agent's call sends every
input, the unused optional ones as None, which is what these calls do too.

    python3 -m venv /tmp/smol && /tmp/smol/bin/pip install 'smolagents[mcp]==1.26.0' 'mcpadapt==0.1.19'
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /tmp/smol/bin/python tests/frameworks/check_smolagents.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import harness
from mcp import StdioServerParameters
from smolagents import ToolCollection


def call(tool: Any, **given: Any) -> str:
    arguments = dict.fromkeys(tool.inputs) | given  # smolagents sends every input
    return str(tool(**arguments, sanitize_inputs_outputs=True))


def exercise(parameters: Any) -> None:
    with ToolCollection.from_mcp(parameters, trust_remote_code=True) as collection:
        tools = {tool.name: tool for tool in collection.tools}
        assert len(tools) == harness.TOOLS, sorted(tools)
        for tool in tools.values():
            tool.validate_arguments()  # smolagents' own check of the converted inputs
        grid = call(tools["imagine"], prompt=harness.PROMPT)
        assert "SUCCESS" in grid, grid[:500]
        # Only content[0] reaches the agent: it names the buttons, the next call and the task's URI.
        task_id = harness.task_id_in(grid)
        assert "Buttons: U1" in grid and f'action with taskId="{task_id}"' in grid, grid
        assert f"mj://tasks/{task_id}" in grid, grid
        upscale = call(tools["action"], taskId=task_id, customId="U1")
        assert "SUCCESS" in upscale, upscale[:500]
        failed = call(tools["imagine"], prompt=harness.FAILING_PROMPT)  # an error result reaches it as text
        assert "FAILURE" in failed and "Next:" in failed, failed


async def over_stdio() -> None:
    command, args, env = harness.stdio_server(MJ_PREVIEW="none")
    await asyncio.to_thread(exercise, StdioServerParameters(command=command, args=args, env=env))


async def over_http(transport: str, path: str) -> None:
    with harness.http_server(transport, harness.base_env(MJ_PREVIEW="none")) as url:
        parameters = {"url": f"{url}{path}", "transport": transport, "headers": harness.auth()}
        await asyncio.to_thread(exercise, parameters)


def exercise_structured(parameters: Any) -> None:
    """`structured_output=True` (smolagents' coming default): a tool returns the structured content,
    the compact task its outputSchema declares; an error result still comes back as its text."""
    with ToolCollection.from_mcp(parameters, trust_remote_code=True, structured_output=True) as collection:
        tools = {tool.name: tool for tool in collection.tools}
        grid = tools["imagine"](**(dict.fromkeys(tools["imagine"].inputs) | {"prompt": harness.PROMPT}))
        assert grid["status"] == "SUCCESS" and grid["buttons"], grid
        arguments = dict.fromkeys(tools["action"].inputs) | {"taskId": grid["id"], "customId": "U1"}
        assert tools["action"](**arguments)["status"] == "SUCCESS"
        unknown = tools["get_task"](**(dict.fromkeys(tools["get_task"].inputs) | {"taskId": harness.UNKNOWN_TASK}))
        assert "not found" in str(unknown), unknown


async def over_stdio_structured() -> None:
    command, args, env = harness.stdio_server(MJ_PREVIEW="none")
    await asyncio.to_thread(exercise_structured, StdioServerParameters(command=command, args=args, env=env))


async def main() -> None:
    checks = harness.Checks("smolagents")
    await checks.run("stdio: every input sent, None for the unused; imagine -> U1", over_stdio)
    await checks.run("streamable-http: imagine -> U1", lambda: over_http("streamable-http", "/mcp"))
    await checks.run("sse: imagine -> U1", lambda: over_http("sse", "/sse"))
    await checks.run("stdio, structured_output=True: the compact task, errors as text", over_stdio_structured)
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
