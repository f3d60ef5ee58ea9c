"""new-api in front of a trueai channel: `change` (and `simple_change`, sent as change there)
reaches the channel, which has no change route and answers 404, so nothing started. The server
then presses the grid button the change names with `action`: one paid job, not two."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mj_mcp.config import load_settings
from mj_mcp.server import create_server
from mj_mcp.server.runtime import client_from_settings
from mj_mcp.simulator import Simulator
from tests.helpers import FakeClock, text

pytestmark = pytest.mark.anyio

KEY = "sk-GatewayKey0123456789abcdef"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Simulator, Client]]:
    clock = FakeClock()
    sim = Simulator(upstream="new-api", channel="trueai", api_key=KEY, clock=clock, seed=7)
    (tmp_path / "in").mkdir()
    settings = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream="new-api", output_dir=str(tmp_path / "out"),
        allowed_dirs=[tmp_path / "in"], poll_interval=2.0, wait_timeout=600.0,
    )  # fmt: skip
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        yield sim, client


async def ok(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(30):
        result = await client.call_tool(tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


def submits(sim: Simulator) -> list[str]:
    return [path for method, path in sim.request_log if method == "POST" and "/submit/" in path]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("change", {"action": "UPSCALE", "index": 2}),
        ("simple_change", {"content": "{id} U2"}),
    ],
)
async def test_a_change_the_trueai_channel_lacks_is_pressed_as_its_button_once(
    gateway: tuple[Simulator, Client], tool: str, args: dict[str, Any]
) -> None:
    sim, client = gateway
    grid = await ok(client, "imagine", {"prompt": "a red fox"})
    filled = {k: v.format(id=grid["id"]) if isinstance(v, str) else v for k, v in args.items()}
    if tool == "change":
        filled["taskId"] = grid["id"]
    upscaled = await ok(client, tool, filled)
    assert upscaled["action"] == "UPSCALE"
    assert upscaled["status"] == "SUCCESS"
    # The change got the channel's 404 (nothing started); then U2 was pressed, once.
    assert submits(sim)[-2:] == ["/mj/submit/change", "/mj/submit/action"]
    pressed = sim.store.get(upscaled["id"])
    assert pressed is not None and pressed.custom_id.startswith("MJ::JOB::upsample::2::")
    assert len([t for t in sim.store.tasks.values() if t.parent_id == grid["id"]]) == 1
