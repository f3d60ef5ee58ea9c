"""trueai's extras (upstream audit F): video endImage/loop/videoType/batchSize, action enableRemix,
describe language and the retexture route, end to end on each profile's simulator.

They are listed and sent only with MJ_UPSTREAM=trueai: the default (plus, lean) surface does not
grow by a byte, and no other profile lists or sends them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mj_mcp.config import load_settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import VideoRequest
from mj_mcp.server import create_server
from mj_mcp.server.runtime import client_from_settings
from mj_mcp.server.schema import surface_bytes
from mj_mcp.simulator import SimTask, Simulator
from mj_mcp.upstreams import EXTRA_FIELDS, UPSTREAM_NAMES
from tests.helpers import FakeClock, data_uri, text

pytestmark = pytest.mark.anyio

KEY = "sk-ExtrasKey0123456789abcdef"
FIXTURE = Path(__file__).parent / "fixtures" / "tools_list.json"
EXTRAS = frozenset[str]().union(*EXTRA_FIELDS.values())


def task_id(content: dict[str, Any] | None) -> str:
    assert content is not None
    return str(content["id"])


class Served:
    """The server on one profile, its simulator behind."""

    def __init__(self, sim: Simulator, client: Client) -> None:
        self.sim, self.client = sim, client

    async def tools(self) -> dict[str, dict[str, Any]]:
        listed = (await self.client.list_tools()).tools
        return {t.name: t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in listed}

    async def ok(self, tool: str, args: dict[str, Any]) -> SimTask:
        with anyio.fail_after(30):
            result = await self.client.call_tool(tool, args)
        assert not result.is_error, text(result)
        task = self.sim.store.get(task_id(result.structured_content))
        assert task is not None
        return task


async def served(upstream: str, tmp_path: Path, **settings: Any) -> AsyncIterator[Served]:
    clock = FakeClock()
    sim = Simulator(upstream=upstream, api_key=KEY, clock=clock, seed=7)  # type: ignore[arg-type]
    (tmp_path / "in").mkdir(exist_ok=True)
    loaded = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream=upstream, output_dir=str(tmp_path / "out"),
        allowed_dirs=[tmp_path / "in"], poll_interval=2.0, wait_timeout=600.0, **settings,
    )  # fmt: skip
    mj = client_from_settings(loaded, transport=sim.transport())
    async with mj, Client(create_server(loaded, mj, clock=clock)) as client:  # type: ignore[arg-type]
        yield Served(sim, client)


@pytest.fixture
async def trueai(tmp_path: Path) -> AsyncIterator[Served]:
    async for s in served("trueai", tmp_path):
        yield s


# -- the surface ---------------------------------------------------------------------------------


async def test_the_plus_lean_surface_is_the_snapshot_byte_for_byte(tmp_path: Path) -> None:
    async for plus in served("plus", tmp_path):
        tools = list((await plus.tools()).values())
        assert surface_bytes(tools) == surface_bytes(json.loads(FIXTURE.read_text(encoding="utf-8")))
        assert "retexture" not in {t["name"] for t in tools}


@pytest.mark.parametrize("upstream", [u for u in UPSTREAM_NAMES if u != "trueai"])
@pytest.mark.parametrize("fields", ["lean", "full"])
async def test_other_profiles_never_list_the_extras(tmp_path: Path, upstream: str, fields: str) -> None:
    async for other in served(upstream, tmp_path, tool_fields=fields):
        tools = await other.tools()
        assert "retexture" not in tools
        for name, tool in tools.items():
            assert not EXTRAS & set(tool["inputSchema"]["properties"]), name


async def test_trueai_lists_its_extras_and_retexture_even_in_lean_mode(trueai: Served) -> None:
    tools = await trueai.tools()
    assert {"endImage", "loop", "videoType", "batchSize"} <= set(tools["video"]["inputSchema"]["properties"])
    assert "enableRemix" in tools["action"]["inputSchema"]["properties"]
    assert "language" in tools["describe"]["inputSchema"]["properties"]
    assert tools["retexture"]["inputSchema"]["required"] == ["prompt", "image"]
    assert tools["video"]["inputSchema"]["properties"]["batchSize"]["enum"] == [1, 2, 4]


# -- each extra reaches the trueai simulator ------------------------------------------------------


async def test_video_end_image_reaches_trueai_as_the_last_frame(trueai: Served) -> None:
    task = await trueai.ok("video", {"prompt": "waves", "image": data_uri(), "endImage": data_uri("blue")})
    assert set(task.options) == {"endImage"}
    assert " --end http" in (task.final_prompt or "")


@pytest.mark.parametrize(
    ("extra", "in_prompt"),
    [
        ({"loop": True}, "--end loop"),
        ({"batchSize": 1}, "--bs 1"),
        ({"batchSize": 4}, None),  # Midjourney's default: TA adds no --bs
        ({"videoType": "vid_1.1_i2v_720"}, None),
    ],
)
async def test_each_video_extra_reaches_trueai(trueai: Served, extra: dict[str, Any], in_prompt: str | None) -> None:
    task = await trueai.ok("video", {"prompt": "waves", "image": data_uri(), **extra})
    assert task.options == extra
    if in_prompt is not None:
        assert in_prompt in (task.final_prompt or "")
    else:
        assert "--bs" not in (task.final_prompt or "")


async def test_action_enable_remix_reaches_trueai_and_waits_in_modal(trueai: Served) -> None:
    grid = await trueai.ok("imagine", {"prompt": "a red fox"})
    result = await trueai.client.call_tool(
        "action", {"taskId": grid.id, "customId": "V1", "enableRemix": True, "wait": False}
    )
    assert not result.is_error, text(result)
    pressed = trueai.sim.store.get(task_id(result.structured_content))
    assert pressed is not None
    assert pressed.options == {"enableRemix": True}
    assert pressed.modal_need == "prompt"


async def test_describe_language_reaches_trueai(trueai: Served) -> None:
    task = await trueai.ok("describe", {"base64": data_uri(), "language": "zh"})
    assert task.options == {"language": "zh"}


async def test_retexture_is_a_trueai_job(trueai: Served) -> None:
    task = await trueai.ok("retexture", {"prompt": "made of glass", "image": data_uri()})
    assert task.action == "RETEXTURE"
    assert ("POST", "/mj/submit/retexture") in trueai.sim.request_log


# -- other profiles never send them ---------------------------------------------------------------


async def test_an_extra_on_plus_is_refused_naming_the_upstream_that_reads_it(tmp_path: Path) -> None:
    async for plus in served("plus", tmp_path, tool_fields="full"):
        result = await plus.client.call_tool("video", {"prompt": "waves", "image": data_uri(), "loop": True})
        assert result.is_error
        assert "does not read loop" in text(result)
        assert not any("/submit/" in path for _, path in plus.sim.request_log)  # nothing sent


@pytest.mark.parametrize("upstream", ["plus", "new-api"])
async def test_the_client_never_sends_an_extra_to_another_profile(upstream: str) -> None:
    sim = Simulator(upstream=upstream, api_key=KEY, clock=FakeClock(), seed=7)  # type: ignore[arg-type]
    settings = load_settings(base_url="http://upstream.test", api_key=KEY, upstream=upstream, output_dir="off")
    request = VideoRequest(prompt="waves", end_image="https://example.com/a.png", loop=True, batch_size=1)
    async with client_from_settings(settings, transport=sim.transport()) as mj:
        reply = await mj.submit(ENDPOINTS["video"], request)
    task = sim.store.get(reply.task_id or "")
    assert task is not None
    assert task.options == {}
