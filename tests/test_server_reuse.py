"""Servers built again and again in one process (a test session each; MJ_CLIENT_KEYS hosting).

create_server shares what depends only on the settings (each tool's schemas, the resource
templates, the prompt) between the servers of a process. These tests check that sharing changes
nothing a client sees: a session leaves the shared schemas as they were, and each server's
resources still read through its own Runtime.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.server import MjServer, create_server
from mj_mcp.simulator import Simulator
from tests.helpers import SIM_URL, FakeClock, text

pytestmark = pytest.mark.anyio


async def listed(server: MjServer) -> str:
    """Every tool as the server hands it to the SDK's tools/list, as text (to compare later)."""
    return json.dumps([tool.model_dump(mode="json") for tool in await server.list_tools()], sort_keys=True)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_session_leaves_the_tools_that_servers_share_as_they_were(
    settings: Settings, mj: MjClient, clock: FakeClock, mode: str
) -> None:
    first = create_server(settings, mj, clock=clock)
    before = await listed(first)
    second = create_server(settings, mj, clock=clock)
    assert await listed(second) == before
    async with Client(second, mode=mode) as client:  # type: ignore[arg-type]
        await client.list_tools()
        with anyio.fail_after(30):
            started = await client.call_tool("imagine", {"prompt": "a fox", "wait": False})
            refused = await client.call_tool("imagine", {"prompt": "", "botType": "nope"})
            unknown = await client.call_tool("upscale", {})
    assert not started.is_error, text(started)
    assert refused.is_error and unknown.is_error
    assert await listed(first) == before


async def imagined(client: Client) -> str:
    with anyio.fail_after(30):
        result = await client.call_tool("imagine", {"prompt": "a red fox", "wait": False})
    assert not result.is_error and result.structured_content is not None, text(result)
    return str(result.structured_content["id"])


async def read_json(client: Client, uri: str) -> Any:
    contents = (await client.read_resource(uri)).contents
    return json.loads(contents[0].text)  # type: ignore[union-attr]


async def test_each_server_reads_its_resources_through_its_own_runtime(settings: Settings, clock: FakeClock) -> None:
    # Two servers, each on an upstream of its own, both serving at once: a read through one
    # never reaches the other's, though their resource templates are the same objects.
    sims = [Simulator(clock=clock, seed=7), Simulator(clock=clock, seed=8)]
    async with (
        MjClient(SIM_URL, None, transport=sims[0].transport(), sleep=clock.sleep) as mj_one,
        MjClient(SIM_URL, None, transport=sims[1].transport(), sleep=clock.sleep) as mj_two,
        Client(create_server(settings, mj_one, clock=clock)) as one,
        Client(create_server(settings, mj_two, clock=clock)) as two,
    ):
        task_id = await imagined(one)
        assert (await read_json(one, f"mj://tasks/{task_id}"))["id"] == task_id
        with pytest.raises(MCPError) as info:
            await two.read_resource(f"mj://tasks/{task_id}")
        assert "no such task" in info.value.error.message
        assert [t["id"] for t in await read_json(one, "mj://tasks/recent")] == [task_id]
        assert await read_json(two, "mj://tasks/recent") == []
        assert (await read_json(one, "mj://tasks/page/0"))["totalElements"] == 1
        assert (await read_json(two, "mj://tasks/page/0"))["totalElements"] == 0
