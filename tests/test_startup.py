"""Start-up stays light: what a server needs only for pictures or downloads is imported on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import anyio
from mcp import Client
from mj_mcp.config import load_settings
from mj_mcp.server import create_server

async def session():
    server = create_server(load_settings(simulator=True, output_dir="off"))
    async with Client(server) as client:
        tools = await client.list_tools()
    return len(tools.tools)

count = anyio.run(session)
heavy = ("PIL", "httpcore2", "h11", "mj_mcp.simulator")
print(json.dumps({"tools": count, "loaded": sorted(m for m in heavy if m in sys.modules)}))
"""


@pytest.mark.slow
def test_a_simulator_session_up_to_tools_list_imports_no_pillow_no_connection_stack_and_no_simulator_yet() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["tools"] > 0
    assert answer["loaded"] == []
