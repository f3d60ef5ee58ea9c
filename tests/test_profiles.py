"""Each upstream profile end to end: the server built from `MJ_BASE_URL`, `MJ_API_KEY` and
`MJ_UPSTREAM` alone, against the simulator playing that upstream as strictly as the real software.

It lists exactly the tools the upstream offers (directly, or done another way), a speed mode
reaches the upstream in the way that upstream reads it (the simulator records the mode each job
ran in), and every listed tool works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mj_mcp.config import Settings, load_settings
from mj_mcp.server import TOOLS, create_server
from mj_mcp.server.runtime import client_from_settings
from mj_mcp.simulator import Quirks, Simulator
from mj_mcp.simulator.profiles import PROFILE_BY_NAME
from mj_mcp.upstreams import PROFILES, UPSTREAM_NAMES
from tests.helpers import FakeClock, data_uri, text

pytestmark = pytest.mark.anyio

KEY = "sk-ProfileKey0123456789abcdef"


class Upstream:
    """A server configured for one profile, with the simulator playing it behind."""

    def __init__(self, name: str, sim: Simulator, settings: Settings, client: Client) -> None:
        self.name = name
        self.sim = sim
        self.settings = settings
        self.client = client

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(30):
            return await self.client.call_tool(tool, args)

    async def ok(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, args)
        assert not result.is_error, f"{self.name}: {tool} failed: {text(result)}"
        return result.structured_content or {}


@pytest.fixture(params=UPSTREAM_NAMES)
async def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Upstream]:
    name = str(request.param)
    clock = FakeClock()
    sim = Simulator(upstream=name, api_key=KEY, clock=clock, seed=7)  # type: ignore[arg-type]
    (tmp_path / "in").mkdir()
    settings = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream=name, output_dir=str(tmp_path / "out"),
        allowed_dirs=[tmp_path / "in"], poll_interval=2.0, wait_timeout=600.0,
    )  # fmt: skip
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        yield Upstream(name, sim, settings, client)


async def test_only_what_the_upstream_offers_is_listed(upstream: Upstream) -> None:
    listed = {tool.name for tool in (await upstream.client.list_tools()).tools}
    profile = PROFILES[upstream.settings.upstream]
    assert listed == {spec.name for spec in TOOLS if profile.offers(spec.endpoint)}
    assert {"imagine", "get_task"} <= listed


@pytest.mark.parametrize("mode", ["fast", "relax"])
async def test_a_speed_mode_reaches_the_upstream_the_way_it_reads_it(upstream: Upstream, mode: str) -> None:
    task = await upstream.ok("imagine", {"prompt": "a lighthouse at dusk", "mode": mode})
    recorded = upstream.sim.store.get(task["id"])
    assert recorded is not None
    assert recorded.effective_mode == mode.upper()
    assert recorded.mode == mode.upper()


async def test_every_listed_tool_works(upstream: Upstream) -> None:
    listed = {tool.name for tool in (await upstream.client.list_tools()).tools}
    done: set[str] = set()

    async def use(tool: str, args: dict[str, Any]) -> dict[str, Any]:
        done.add(tool)
        return await upstream.ok(tool, args)

    grid = await use("imagine", {"prompt": "a watercolor lighthouse"})
    grid_id = grid["id"]
    await use("get_task", {"taskId": grid_id})
    await use("list_tasks", {"ids": [grid_id]})
    await use("describe", {"base64": data_uri()})
    await use("blend", {"base64Array": [data_uri(), data_uri("blue")]})
    await use("change", {"taskId": grid_id, "action": "UPSCALE", "index": 2})
    await use("simple_change", {"content": f"{grid_id} V1"})
    optional: list[tuple[str, dict[str, Any]]] = [
        ("action", {"taskId": grid_id, "customId": "U1"}),
        ("shorten", {"prompt": "a very long and winding prompt about a lighthouse on a cliff at dusk"}),
        ("image_seed", {"taskId": grid_id}),
        ("recent_tasks", {}),
        ("task_queue", {}),
        ("query_tasks", {"pageNumber": 0}),
        ("upload_images", {"base64Array": [data_uri()]}),
        ("swap_face", {"sourceBase64": data_uri(), "targetBase64": data_uri("blue")}),
        ("video", {"prompt": "waves rolling", "image": data_uri(), "motion": "low"}),
        ("edit", {"prompt": "white background", "image": data_uri()}),
        ("retexture", {"prompt": "made of glass", "image": data_uri()}),
        ("show", {"jobId": str(grid.get("jobId", grid_id))}),
    ]
    for tool, args in optional:
        if tool in listed:
            await use(tool, args)
    if "cancel_task" in listed:
        queued = await use("imagine", {"prompt": "a fox to cancel", "wait": False})
        await use("cancel_task", {"taskId": queued["id"]})
    if "modal" in listed:
        upscale = await use("action", {"taskId": grid_id, "customId": "U3"})
        zoom = await upstream.ok("action", {"taskId": upscale["id"], "customId": "Custom Zoom"})
        assert zoom["status"] == "MODAL"
        await use("modal", {"taskId": zoom["id"], "prompt": "a lighthouse --zoom 1.5"})
    assert listed <= done, f"{upstream.name}: listed but not tried: {sorted(listed - done)}"


async def test_the_built_in_simulator_plays_the_upstream_that_mj_upstream_names(tmp_path: Path) -> None:
    settings = load_settings(simulator=True, upstream="novicezk", output_dir="off", sim_job_seconds=0.05)
    async with Client(create_server(settings)) as client:  # type: ignore[arg-type]
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert "action" not in listed  # novicezk has no buttons API
        assert "change" in listed
        with anyio.fail_after(30):
            result = await client.call_tool("imagine", {"prompt": "a lighthouse", "timeout": 20})
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        assert "buttons" not in result.structured_content or not result.structured_content["buttons"]


async def test_buttons_new_api_cannot_relay_are_neither_offered_nor_sent(tmp_path: Path) -> None:
    clock = FakeClock()
    sim = Simulator(upstream="new-api", api_key=KEY, clock=clock, seed=7)
    settings = load_settings(base_url="http://upstream.test", api_key=KEY, upstream="new-api", output_dir="off")
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        described = await client.call_tool("describe", {"base64": data_uri()})
        assert not described.is_error, text(described)
        task = described.structured_content or {}
        assert not [b for b in task.get("buttons", []) if "PicReader" in b["customId"]]
        assert "press a number" not in text(described)
        full = await mj.fetch(task["id"])  # what the upstream itself lists
        picreader = next(b for b in full.buttons if "PicReader" in b.custom_id)
        for wanted in (picreader.custom_id, picreader.display):
            pressed = await client.call_tool("action", {"taskId": task["id"], "customId": wanted})
            assert pressed.is_error
            assert "cannot relay" in text(pressed)
        assert not [path for _, path in sim.request_log if path.endswith("/submit/action")]


@pytest.mark.parametrize(
    ("configured", "actual", "tool", "args"),
    [
        ("plus", "new-api", "recent_tasks", {}),  # new-api's dashboard page where JSON belongs
        ("plus", "novicezk", "shorten", {"prompt": "a long winding prompt about a lighthouse"}),  # Spring's 404
    ],
)
async def test_a_wrong_profile_is_named_with_the_mj_upstream_that_fits(
    configured: str, actual: str, tool: str, args: dict[str, Any]
) -> None:
    clock = FakeClock()
    sim = Simulator(upstream=actual, api_key=KEY, clock=clock, seed=7)  # type: ignore[arg-type]
    settings = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream=configured, auth_header="mj-api-secret", output_dir="off"
    )
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        result = await client.call_tool(tool, args)
    assert result.is_error
    assert f"MJ_UPSTREAM={actual}" in text(result)


async def test_trueai_that_refuses_uploads_describes_a_url_given_as_its_link() -> None:
    clock = FakeClock()
    preset = PROFILE_BY_NAME["trueai"].preset
    sim = Simulator(
        upstream="trueai", api_key=KEY, clock=clock, seed=7, quirks=Quirks(**preset, uploads_forbidden=True)
    )
    settings = load_settings(base_url="http://upstream.test", api_key=KEY, upstream="trueai", output_dir="off")
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        by_url = await client.call_tool("describe", {"base64": "https://cdn.example.com/a-lighthouse.png"})
        assert not by_url.is_error, text(by_url)
        assert (by_url.structured_content or {}).get("status") == "SUCCESS"
        uploaded = await client.call_tool("describe", {"base64": data_uri()})
        assert uploaded.is_error  # an upload is what this trueai refuses
