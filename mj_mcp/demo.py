"""`mj-mcp demo`: a newcomer's first run, with no key and no network.

It starts `mj-mcp --simulator` over stdio as a subprocess, connects a real MCP client, lists
the tools, runs `imagine` with a live progress bar, presses U1, and prints where the images
were saved and what to try next. The same path any MCP client takes.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import anyio

__all__ = ["demo", "run_demo"]

PROMPT = "a lighthouse on a cliff at dawn, oil painting --ar 1:1 --v 7"
BAR_WIDTH = 30


def _bar(progress: float, message: str | None) -> str:
    filled = int(BAR_WIDTH * max(0.0, min(progress, 100.0)) / 100)
    return f"\r  [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress:5.1f}%  {message or '':<45}"


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


async def demo(out: TextIO, server: Any = None) -> int:
    """The demo, printed to `out`. `server` is what the MCP client connects to: by default
    `mj-mcp --simulator` over stdio; the tests hand it a server object to run in memory."""
    from mcp import Client

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        print(_bar(progress, message), end="", file=out, flush=True)

    say("mj-mcp demo: the server runs on its built-in simulator (no key, no network).")
    with anyio.fail_after(120):
        async with Client(server if server is not None else _simulator_over_stdio()) as client:
            tools = (await client.list_tools()).tools
            say(f"Connected over stdio. {len(tools)} tools: {', '.join(t.name for t in tools)}")
            say()
            say(f"imagine: {PROMPT}")
            grid = await client.call_tool("imagine", {"prompt": PROMPT}, progress_callback=progress)
            say()
            if grid.is_error:
                say(_text(grid))
                return 1
            say(_text(grid))
            structured: dict[str, Any] = grid.structured_content or {}
            task_id = str(structured.get("id"))
            say()
            say("action: pressing U1 (upscale the first image)")
            upscale = await client.call_tool(
                "action", {"taskId": task_id, "customId": "U1"}, progress_callback=progress
            )
            say()
            if upscale.is_error:
                say(_text(upscale))
                return 1
            say(_text(upscale))
    saved = [line.removeprefix("Saved: ") for line in _text(upscale).splitlines() if line.startswith("Saved: ")]
    say()
    if saved:
        say(f"Done. The images are in {os.path.dirname(saved[0])} (the upscale: {saved[0]}).")
    else:
        say("Done. Saving is off (MJ_OUTPUT_DIR=off); the image URLs are above.")
    say("Try next:")
    say("  - add it to your MCP client: see the README (Claude Desktop, Claude Code, Cursor, VS Code)")
    say("  - real images: set MJ_BASE_URL and MJ_API_KEY, then run `mj-mcp`")
    return 0


def _simulator_over_stdio() -> Any:
    """`mj-mcp --simulator` as a subprocess, as any MCP client starts it (no key, no network)."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if k.startswith("MJ_") or k in ("HOME", "PATH", "XDG_PICTURES_DIR")}
    env.pop("MJ_BASE_URL", None)
    env.pop("MJ_API_KEY", None)
    env.setdefault("MJ_POLL_INTERVAL", "0.5")
    env.setdefault("MJ_SIM_JOB_SECONDS", "5")
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mj_mcp", "--simulator"], env={**env, "PYTHONUNBUFFERED": "1"}
    )
    return stdio_client(params, errlog=sys.stderr)


def run_demo(out: TextIO | None = None) -> int:
    """Run the demo; returns the process exit code."""
    return anyio.run(demo, out or sys.stdout)
