"""mj-mcp through the MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`, the TypeScript SDK's
client), with no model: every call is a separate CLI invocation, so a session (over stdio a server
process) per call. tools/list, then imagine -> action U1 in two invocations, an error result and a
FAILURE result (the TS client checks any structuredContent against the outputSchema, errors too).

Over Streamable HTTP and SSE the invocations talk to one running `mj-mcp --simulator`; over stdio
each starts its own mj-mcp, so those share `mj-mcp simulate` as an external upstream (a
`--simulator`'s tasks live in its own process).

The inspector is installed, pinned, into a prefix of its own (111 MB with its web UI and TUI, too heavy for
tests/interop/package.json): `INSPECTOR_PREFIX`, default ${TMPDIR:-/tmp}/mj-mcp-inspector. Any
python 3 runs this (standard library only):

    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp python3 tests/frameworks/check_inspector.py
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import harness

VERSION = "2.12.0"
"""The inspector pinned (its TS SDK client 2.3.1; it asks for Node >= 22.19, and runs on Node 20)."""
TOOL_IS_ERROR = 5
"""The CLI's exit status for a result with `isError: true` (the result is still on stdout)."""
PACKAGE = f"@modelcontextprotocol/inspector@{VERSION}"


def inspector() -> Path:
    """The pinned inspector's executable, installed into its prefix on first use."""
    prefix = Path(os.environ.get("INSPECTOR_PREFIX") or Path(tempfile.gettempdir(), "mj-mcp-inspector"))
    executable = prefix / "node_modules" / ".bin" / "mcp-inspector"
    installed = prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != VERSION:
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
            check=True,
        )
    return executable


async def cli(target: list[str], method: str, *args: str) -> Any:
    """One inspector invocation (a new session): its JSON answer."""
    process = await asyncio.create_subprocess_exec(
        str(inspector()),
        "--cli",
        *target,
        "--method",
        method,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode not in (0, TOOL_IS_ERROR):
        raise AssertionError(f"inspector {method} {args}: exit {process.returncode}\n{err.decode()[-2000:]}")
    answer = json.loads(out)
    assert (process.returncode == TOOL_IS_ERROR) == bool(answer.get("isError")), (process.returncode, answer)
    return answer


async def call(target: list[str], tool: str, **arguments: str) -> dict[str, Any]:
    args = [f"{name}={value}" for name, value in arguments.items()]
    return await cli(target, "tools/call", "--tool-name", tool, *(x for a in args for x in ("--tool-arg", a)))


def first_text(result: dict[str, Any]) -> str:
    first = result["content"][0]
    assert first["type"] == "text", first
    return str(first["text"])


async def exercise(target: list[str], *, preview: bool = True) -> None:
    listed = await cli(target, "tools/list", "--strict")  # exits 6 on a schema portability error
    assert len(listed["tools"]) == harness.TOOLS, [t["name"] for t in listed["tools"]]
    assert all("outputSchema" in tool for tool in listed["tools"])
    grid = await call(target, "imagine", prompt=harness.PROMPT)
    task = grid["structuredContent"]
    assert not grid.get("isError") and task["status"] == "SUCCESS", grid
    text = first_text(grid)  # content[0] alone names the task, its buttons, its URI and the next call
    assert harness.task_id_in(text) == task["id"] and f"mj://tasks/{task['id']}" in text, text
    assert "Buttons: U1" in text and f'action with taskId="{task["id"]}"' in text, text
    images = [item for item in grid["content"] if item["type"] == "image"]
    assert len(images) == (1 if preview else 0), [item["type"] for item in grid["content"]]
    upscale = await call(target, "action", taskId=task["id"], customId="U1")  # another session
    assert not upscale.get("isError") and upscale["structuredContent"]["status"] == "SUCCESS", upscale
    unknown = await call(target, "get_task", taskId=harness.UNKNOWN_TASK)
    assert unknown.get("isError") and "not found" in first_text(unknown).lower(), unknown
    failed = await call(target, "imagine", prompt=harness.FAILING_PROMPT)
    assert failed.get("isError") and failed["structuredContent"]["status"] == "FAILURE", failed


async def over_stdio_a_process_per_call() -> None:
    with harness.simulator(float(harness.JOB_SECONDS)) as upstream:
        env = harness.server_env(upstream, MJ_PREVIEW="none")
        target = [harness.command(), *(x for k, v in env.items() if k.startswith("MJ_") for x in ("-e", f"{k}={v}"))]
        await exercise(target, preview=False)


async def over_http(transport: str, path: str) -> None:
    with harness.http_server(transport) as url:
        header = f"Authorization: {harness.auth()['Authorization']}"
        cli_transport = "http" if transport == "streamable-http" else transport
        await exercise([f"{url}{path}", "--transport", cli_transport, "--header", header])


async def main() -> None:
    inspector()  # install before the clocks start
    checks = harness.Checks("mcp-inspector-cli")
    await checks.run("stdio, a process per call, MJ_PREVIEW=none: imagine -> U1, errors", over_stdio_a_process_per_call)
    await checks.run(
        "streamable-http, a session per call: imagine -> U1, errors", lambda: over_http("streamable-http", "/mcp")
    )
    await checks.run("sse, a session per call: imagine -> U1, errors", lambda: over_http("sse", "/sse"))
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
