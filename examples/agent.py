"""A small agent loop over mj-mcp: imagine, look at the grid, pick a quadrant, upscale it.

Run from a checkout (no key needed, it uses the simulator):

    .venv/bin/python examples/agent.py "a red fox in the snow, watercolor"

With a real upstream, set MJ_BASE_URL and MJ_API_KEY and pass --real.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import anyio
from mcp import Client, StdioServerParameters


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


async def main(prompt: str, real: bool) -> int:
    args = ["-m", "mj_mcp"] if real else ["-m", "mj_mcp", "--simulator"]
    env = {k: v for k, v in os.environ.items() if k.startswith("MJ_") or k in ("HOME", "PATH")}
    server = StdioServerParameters(command=sys.executable, args=args, env=env)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        print(f"  {progress:5.1f}% {message or ''}", file=sys.stderr)

    async with Client(server) as client:
        grid = await client.call_tool("imagine", {"prompt": prompt}, progress_callback=progress)
        print(text_of(grid))
        if grid.is_error:
            return 1
        task: dict[str, Any] = grid.structured_content or {}
        # A real agent would look at the preview image here and choose; we take the first quadrant.
        labels = [b.get("label") for b in task.get("buttons", []) if str(b.get("label", "")).startswith("U")]
        choice = labels[0] if labels else "U1"
        print(f"\nUpscaling {choice} ...")
        upscale = await client.call_tool(
            "action", {"taskId": task["id"], "customId": choice}, progress_callback=progress
        )
        print(text_of(upscale))
        return 1 if upscale.is_error else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("prompt", nargs="?", default="a red fox in the snow, watercolor --ar 3:2")
    parser.add_argument("--real", action="store_true", help="use MJ_BASE_URL/MJ_API_KEY instead of the simulator")
    ns = parser.parse_args()
    raise SystemExit(anyio.run(main, ns.prompt, ns.real))
