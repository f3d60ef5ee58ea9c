"""Checks before spending (prompt parameters, modal rules, region masks) and task references in
image arguments: the pure parts, then end to end through an MCP client against the simulator."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from PIL import Image
from pydantic import ValidationError

from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import ImageInputError, InputError, UpstreamRejectedError
from mj_mcp.loading import ImageLoader
from mj_mcp.masks import Region, check_mask, region_mask
from mj_mcp.models import ImagineRequest, ModalRequest
from mj_mcp.promptcheck import PARAMETERS, check_prompt, parameters_of
from mj_mcp.references import ImageRef, TaskImages, parse_reference
from mj_mcp.simulator import Simulator
from tests.helpers import FakeClock, png_bytes, text

pytestmark = pytest.mark.anyio


# -- the prompt's parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "a lighthouse at dusk, watercolor",
        "a cat --ar 16:9 --v 7 --stylize 250 --chaos 20 --weird 100 --q 2 --seed 42 --no text words",
        "https://example.com/a--b.png a fox::2 snow::-0.5 --iw 1.5",
        "before -- after, a sign reading -- --ar 2:3",
        "a koi pond --zoom 1.5 --niji 6 --style raw",
        "a cat —ar 3:2 —tile",  # phones turn -- into an em dash; Midjourney reads both
        "a cat --sref https://example.com/s.png 12345 --sw 200 --sv 4 --p --raw --draft --fast",
        "a cat --ar {16:9, 1:1} {--v 6, --niji 6}",  # permutations stand for several prompts
        "a cat --v 6.1 --q .5",
        "waves --motion high --loop --bs 2 --video",
    ],
)
def test_prompts_midjourney_takes_pass(prompt: str) -> None:
    check_prompt(prompt)


@pytest.mark.parametrize(
    ("prompt", "problem", "fix"),
    [
        ("a cat --ar 16/9", "'16/9'", "--ar 16:9"),
        ("a cat --ar 1.5:1", "whole numbers", "--ar 3:2"),
        ("a cat --aspect 16x9", "'16x9'", "--aspect 16:9"),
        ("a cat --ar wide", "not a ratio", "--ar 16:9"),
        ("a cat --ar 0:1", "'0:1'", "above 0"),
        ("a cat --ar", "needs a value", "--ar 16:9"),
        ("a cat --v 7 --niji 6", "both --v 7 and --niji 6", "not both"),
        ("a cat --stylize 2000", "outside 0 to 1000", "--stylize 1000"),
        ("a cat --chaos 101", "outside 0 to 100", "--chaos 100"),
        ("a cat --weird 5000", "outside 0 to 3000", "--weird 3000"),
        ("a cat --q 3", "does not take '3'", "Use one of"),
        ("a cat --q 4 --v 6", "not offered by version 6", "--q 1"),
        ("a cat --zoom 3", "outside 1 to 2", "--zoom 2"),
        ("a cat --iw 5", "outside 0 to 3", "--iw 3"),
        ("a cat --s 12.5", "whole number", "from 0 to 1000"),
        ("a cat --seed lucky", "needs a number", "--seed 0"),
        ("a cat --stylise 200", "not a Midjourney parameter", "Did you mean --stylize?"),
        ("a cat --foo", "not a Midjourney parameter", "Known parameters include"),
        ("a cat --s=250", "name and value together", "--s 250"),
        ("a cat --v7", "name and value together", "--v 7"),
        ("a cat --v 9", "does not take '9'", "--v 7"),
        ("a cat --niji 8", "does not take '8'", "--niji 6"),
        ("a cat --c 50 dog", "'dog' follows it", "text before the parameters"),
    ],
)
def test_prompts_midjourney_refuses_are_refused_with_the_fix(prompt: str, problem: str, fix: str) -> None:
    with pytest.raises(InputError) as caught:
        check_prompt(prompt)
    assert problem in caught.value.message
    assert "nothing was sent" in caught.value.message
    assert fix in caught.value.hint


def test_parameters_are_the_dash_dash_tokens_with_the_words_up_to_the_next() -> None:
    parsed = parameters_of("a red fox -- not one https://x.y/a--b --no red green --AR 2:3")
    assert [(p.name, p.value) for p in parsed] == [("no", "red green"), ("ar", "2:3")]


def test_one_table_holds_every_name_once() -> None:
    names = [n for p in PARAMETERS for n in (p.name, *p.aliases)]
    assert len(names) == len(set(names))
    assert {"ar", "chaos", "stylize", "weird", "quality", "zoom", "iw", "v", "niji", "seed", "stop"} <= set(names)


# -- masks ---------------------------------------------------------------------------------------


def test_a_region_becomes_a_mask_white_inside_it_and_the_size_of_the_image() -> None:
    png = region_mask(Region(x=0.5, y=0, width=0.5, height=0.25), 200, 100)
    with Image.open(io.BytesIO(png)) as mask:
        assert (mask.format, mask.size, mask.mode) == ("PNG", (200, 100), "L")
        assert mask.getpixel((150, 10)) == 255
        assert mask.getpixel((99, 10)) == 0
        assert mask.getpixel((150, 25)) == 0
    check_mask(png, 200, 100, task_id="1")


@pytest.mark.parametrize(
    "region",
    [
        {"x": 0.5, "y": 0, "width": 0.6, "height": 0.5},
        {"x": 0, "y": 0, "width": 0, "height": 0.5},
        {"x": -0.1, "y": 0, "width": 0.5, "height": 0.5},
    ],
)
def test_a_region_outside_the_image_is_refused(region: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Region.model_validate(region)


def _png(size: tuple[int, int], colour: Any, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_mask_of_another_size_or_without_white_is_refused() -> None:
    with pytest.raises(InputError, match=r"64×64 pixels, but the image of task 7 is 1024×1024"):
        check_mask(_png((64, 64), 255), 1024, 1024, task_id="7")
    with pytest.raises(InputError, match="no white area"):
        check_mask(_png((64, 64), 0), 64, 64, task_id="7")
    with pytest.raises(InputError, match="no white area"):
        check_mask(_png((64, 64), (255, 255, 255, 0), "RGBA"), 64, 64, task_id="7")  # white, but transparent
    check_mask(_png((64, 64), (255, 255, 255, 255), "RGBA"), 64, 64, task_id="7")


# -- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "task_id", "quadrant"),
    [
        ("1712205491372920", "1712205491372920", None),
        (" 1712205491372920#2 ", "1712205491372920", 2),
        ("mj://tasks/1712205491372920/image", "1712205491372920", None),
        ("mj://tasks/1712205491372920", "1712205491372920", None),
        ("mj://tasks/1712205491372920/image#4", "1712205491372920", 4),
        ("task-7#9", "task-7", 9),  # checked later, with a message
    ],
)
def test_task_references_are_recognised(written: str, task_id: str, quadrant: int | None) -> None:
    assert parse_reference(written) == ImageRef(task_id, quadrant, written.strip())


@pytest.mark.parametrize(
    "written", ["fox", "fox.png", "in/1.png", "https://example.com/1", "data:image/png;base64,AAAA", "A" * 200]
)
def test_other_image_arguments_are_not_references(written: str) -> None:
    assert parse_reference(written) is None


def test_an_mj_uri_that_is_not_a_task_image_is_refused() -> None:
    with pytest.raises(ImageInputError, match="not a task image URI"):
        parse_reference("mj://queue")


async def test_a_file_whose_name_looks_like_a_task_id_is_read_as_the_file(tmp_path: Path) -> None:
    (tmp_path / "12345").write_bytes(png_bytes("blue"))
    async with ImageLoader([tmp_path]) as loader:
        assert loader.reference_in(str(tmp_path / "12345")) is None
        with pytest.raises(ImageInputError, match="cannot be read here"):
            await loader.load("99999")  # no resolver: a reference is refused, not looked up as a file


async def _finished_grid(mj: MjClient, clock: FakeClock) -> str:
    submitted = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a red fox"))
    assert submitted.task_id is not None
    clock.advance(10_000)
    return submitted.task_id


async def test_a_reference_reads_the_saved_file_before_downloading(
    mj: MjClient, sim: Simulator, clock: FakeClock, tmp_path: Path
) -> None:
    task_id = await _finished_grid(mj, clock)
    (tmp_path / f"imagine-{task_id}.png").write_bytes(png_bytes("green", (40, 40)))
    (tmp_path / f"imagine-{task_id}-3.png").write_bytes(png_bytes("blue", (20, 20)))
    saved = TaskImages(mj, tmp_path)
    assert (await saved(ImageRef(task_id, None, task_id)))[0] == png_bytes("green", (40, 40))
    assert (await saved(ImageRef(task_id, 3, task_id)))[0] == png_bytes("blue", (20, 20))
    before = len(sim.request_log)
    downloaded, source = await TaskImages(mj, None)(ImageRef(task_id, 2, task_id))
    assert source == f"task {task_id} quadrant 2"
    assert Image.open(io.BytesIO(downloaded)).size == (512, 512)  # a quarter of the 1024 px grid
    assert any(path.startswith("/sim/images/") for _, path in sim.request_log[before:])


# -- end to end, through an MCP client, against the simulator -------------------------------------


def _submits(sim: Simulator) -> list[str]:
    return [path for _, path in sim.request_log if "/submit/" in path or "/insight-face/" in path]


async def call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool(tool, args)


async def ok(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call(client, tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, sim: Simulator, tool: str, args: dict[str, Any]) -> str:
    """Call a tool that must refuse before anything is sent; its message."""
    before = _submits(sim)
    result = await call(client, tool, args)
    assert result.is_error, text(result)
    assert _submits(sim) == before, "a refused call sent a submit"
    return text(result)


async def _upscale(client: Client) -> dict[str, Any]:
    grid = await ok(client, "imagine", {"prompt": "a red fox in the snow"})
    return await ok(client, "action", {"taskId": grid["id"], "customId": "U1"})


@pytest.mark.parametrize("mode", ["auto"])
@pytest.mark.parametrize(
    ("prompt", "fix"),
    [
        ("a lighthouse --ar 16/9", "--ar 16:9"),
        ("a lighthouse --v 7 --niji 6", "not both"),
        ("a lighthouse --stylize 5000", "--stylize 1000"),
        ("a lighthouse --stylise 100", "--stylize"),
    ],
)
async def test_a_prompt_midjourney_would_refuse_sends_nothing(
    client: Client, sim: Simulator, prompt: str, fix: str
) -> None:
    assert fix in await refused(client, sim, "imagine", {"prompt": prompt})
    assert fix in await refused(client, sim, "shorten", {"prompt": prompt})


@pytest.mark.parametrize("mode", ["auto"])
async def test_modal_rules_are_checked_before_anything_is_sent(client: Client, sim: Simulator) -> None:
    upscale = await _upscale(client)
    zoom = await ok(client, "action", {"taskId": upscale["id"], "customId": "Custom Zoom"})
    message = await refused(client, sim, "modal", {"taskId": zoom["id"], "prompt": "a red fox"})
    assert "--zoom between 1 and 2" in message and "a red fox --zoom 1.5" in message
    message = await refused(client, sim, "modal", {"taskId": zoom["id"], "prompt": "a red fox --zoom 2.5"})
    assert "--zoom 2" in message
    assert "region" in await refused(
        client, sim, "modal", {"taskId": zoom["id"], "region": {"x": 0, "y": 0, "width": 1, "height": 1}}
    )

    region = await ok(client, "action", {"taskId": upscale["id"], "customId": "Vary (Region)"})
    message = await refused(client, sim, "modal", {"taskId": region["id"], "prompt": "a hat"})
    assert "region" in message and "maskBase64" in message
    small = "data:image/png;base64," + base64.b64encode(_png((64, 64), 0)).decode()
    message = await refused(client, sim, "modal", {"taskId": region["id"], "prompt": "a hat", "maskBase64": small})
    assert "64×64" in message and "1024×1024" in message
    black = "data:image/png;base64," + base64.b64encode(_png((1024, 1024), 0)).decode()
    message = await refused(client, sim, "modal", {"taskId": region["id"], "prompt": "a hat", "maskBase64": black})
    assert "no white area" in message
    both = {"taskId": region["id"], "maskBase64": black, "region": {"x": 0, "y": 0, "width": 1, "height": 1}}
    assert "not both" in await refused(client, sim, "modal", both)


@pytest.mark.parametrize("mode", ["auto"])
async def test_vary_region_by_region_works_end_to_end(client: Client, sim: Simulator) -> None:
    upscale = await _upscale(client)
    region = await ok(client, "action", {"taskId": upscale["id"], "customId": "Vary (Region)"})
    quarter = {"x": 0.25, "y": 0.25, "width": 0.5, "height": 0.5}
    done = await ok(client, "modal", {"taskId": region["id"], "prompt": "a blue hat", "region": quarter})
    assert (done["id"], done["status"]) == (region["id"], "SUCCESS")


@pytest.mark.parametrize("mode", ["auto"])
async def test_the_simulator_refuses_a_mask_of_another_size_as_the_upstream_does(client: Client, mj: MjClient) -> None:
    upscale = await _upscale(client)
    region = await ok(client, "action", {"taskId": upscale["id"], "customId": "Vary (Region)"})
    # Straight to the upstream, past the server's own check.
    small = "data:image/png;base64," + base64.b64encode(_png((64, 64), 255)).decode()
    with pytest.raises(UpstreamRejectedError, match="maskBase64"):
        await mj.submit(ENDPOINTS["modal"], ModalRequest(task_id=region["id"], prompt="x", mask_base64=small))


@pytest.mark.parametrize("mode", ["auto"])
async def test_blend_the_upscale_with_the_fox_by_task_ids(client: Client, sim: Simulator) -> None:
    grid = await ok(client, "imagine", {"prompt": "a red fox in the snow"})
    upscale = await ok(client, "action", {"taskId": grid["id"], "customId": "U2"})
    blend = await ok(client, "blend", {"base64Array": [upscale["id"], f"{grid['id']}#2"]})
    assert blend["status"] == "SUCCESS"
    uri = await ok(client, "blend", {"base64Array": [f"mj://tasks/{upscale['id']}/image", grid["id"]]})
    assert uri["status"] == "SUCCESS"
    described = await ok(client, "describe", {"base64": f"mj://tasks/{grid['id']}/image#3"})
    assert described["status"] == "SUCCESS"


@pytest.mark.parametrize("mode", ["auto"])
async def test_a_reference_to_a_missing_unfinished_or_non_grid_task_says_what_to_do(
    client: Client, sim: Simulator
) -> None:
    message = await refused(client, sim, "describe", {"base64": "1234567890123456"})
    assert "does not know" in message and "get_task" in message and "recent_tasks" in message
    running = await ok(client, "imagine", {"prompt": "a slow fox", "wait": False})
    message = await refused(client, sim, "describe", {"base64": running["id"]})
    assert "not finished yet" in message and "wait=true" in message
    upscale = await _upscale(client)
    message = await refused(client, sim, "describe", {"base64": f"{upscale['id']}#2"})
    assert "not a grid" in message
    assert "1 to 4" in await refused(client, sim, "describe", {"base64": f"{upscale['id']}#5"})
