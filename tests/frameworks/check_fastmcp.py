"""mj-mcp through the FastMCP client (a developer's check, not run in CI): list every tool, then
imagine -> action U1, over stdio, Streamable HTTP and SSE (a new client, so a new session, per call
over SSE).

    python3 -m venv /tmp/fastmcp && /tmp/fastmcp/bin/pip install 'fastmcp==4.2.3'
    MJ_MCP_COMMAND=$PWD/.venv/bin/mj-mcp /tmp/fastmcp/bin/python tests/frameworks/check_fastmcp.py
"""

from __future__ import annotations

import asyncio
from typing import Any

import harness
from fastmcp import Client
from fastmcp.client.transports import SSETransport, StdioTransport, StreamableHttpTransport


def text_of(result: Any) -> str:
    return "\n".join(getattr(item, "text", "") for item in result.content)


async def exercise(make_client: Any) -> None:
    # timeout: the read timeout of each request (the client's default has none).
    async with make_client() as client:
        tools = await client.list_tools()
        assert len(tools) == harness.TOOLS, [t.name for t in tools]
        grid = await client.call_tool("imagine", {"prompt": harness.PROMPT}, timeout=600)
    assert grid.structured_content["status"] == "SUCCESS", text_of(grid)[:500]
    assert any(item.type == "image" for item in grid.content)
    async with make_client() as client:  # a new session
        upscale = await client.call_tool("action", {"taskId": grid.structured_content["id"], "customId": "U1"})
    assert upscale.structured_content["status"] == "SUCCESS", text_of(upscale)[:500]


async def over_stdio() -> None:
    command, args, env = harness.stdio_server()
    transport = StdioTransport(command=command, args=args, env=env, keep_alive=True)
    await exercise(lambda: Client(transport))


async def over_http(transport: str) -> None:
    with harness.http_server(transport) as url:
        if transport == "sse":
            await exercise(lambda: Client(SSETransport(f"{url}/sse", headers=harness.auth())))
        else:
            await exercise(lambda: Client(StreamableHttpTransport(f"{url}/mcp", headers=harness.auth())))


async def main() -> None:
    checks = harness.Checks("fastmcp")
    await checks.run("stdio: imagine -> U1", over_stdio)
    await checks.run("streamable-http: imagine -> U1 in two sessions", lambda: over_http("streamable-http"))
    await checks.run("sse: imagine -> U1 in two sessions", lambda: over_http("sse"))
    checks.finish()


if __name__ == "__main__":
    asyncio.run(main())
