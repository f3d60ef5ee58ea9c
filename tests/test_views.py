"""Results every client can carry: compact structured content declared by each tool's outputSchema,
task lines that answer "what did I make today?", and previews in the fewest bytes a model reads."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.types import CallToolResult, ImageContent
from PIL import Image

from benchmarks.preview import PROMPT_200, natural_grid, wire_bytes
from mj_mcp.images import PREVIEW_KEEP_BYTES, make_preview
from mj_mcp.media import Media, Preview
from mj_mcp.models import Task
from mj_mcp.results import Rendered, tasks_result
from mj_mcp.server import TOOLS
from mj_mcp.server.dispatch import call_result, output_schema
from mj_mcp.views import CancelView, TaskView, task_view
from tests.helpers import data_uri, text

pytestmark = pytest.mark.anyio

DISCORD_URL = (
    "https://cdn.discordapp.com/attachments/1372468820912115716/1372468820912115717/"
    "someone_a_lighthouse_on_a_basalt_cliff_at_dusk_watercolor_a6a3a450-6513-470e-a69e-0d37f2a74de4.png"
    "?ex=68a1b2c3&is=68a06143&hm=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0&"
)


def upstream_grid(prompt: str = PROMPT_200) -> Task:
    """A finished grid as a PLUS upstream sends it: Discord internals, the prompt four times, the hook."""
    job = "a6a3a450-6513-470e-a69e-0d37f2a74de4"
    buttons = [
        {
            "customId": f"MJ::JOB::{kind}::{n}::{job}",
            "emoji": "",
            "label": f"{kind[0].upper()}{n}",
            "style": 2,
            "type": 2,
        }
        for kind in ("upsample", "variation")
        for n in (1, 2, 3, 4)
    ]
    buttons.insert(
        4, {"customId": f"MJ::JOB::reroll::0::{job}::SOLO", "emoji": "🔄", "label": "", "style": 2, "type": 2}
    )
    return Task.model_validate(
        {
            "id": "1750000000000331",
            "action": "IMAGINE",
            "status": "SUCCESS",
            "prompt": prompt,
            "promptEn": prompt,
            "description": f"/imagine {prompt}",
            "state": None,
            "submitTime": 1750000000000,
            "startTime": 1750000001000,
            "finishTime": 1750000008000,
            "imageUrl": DISCORD_URL,
            "progress": "100%",
            "failReason": None,
            "properties": {
                "discordInstanceId": "1372468820912115716",
                "discordChannelId": "1372468820912115716",
                "messageId": "1372468820912115999",
                "nonce": "1372468820912115888",
                "flags": 0,
                "finalPrompt": f"{prompt} --v 7",
                "messageHash": job,
                "notifyHook": "https://hooks.example/secret-path",
            },
            "buttons": buttons,
            "imageWidth": 2048,
            "imageHeight": 2048,
            "botType": "MID_JOURNEY",
            "mode": None,
            "baseImageUrl": None,
        }
    )


# -- the compact task -------------------------------------------------------------------------------


def test_a_task_view_keeps_what_an_agent_acts_on_each_said_once() -> None:
    out = Path("/home/someone/Pictures/midjourney")
    quadrants = [out / f"imagine-1750000000000331-{n}.png" for n in range(1, 5)]
    view = task_view(
        upstream_grid(), saved=out / "imagine-1750000000000331.png", quadrants=quadrants, size=(2048, 2048)
    )
    data = view.dump()
    assert list(data) == [
        *("id", "action", "status", "prompt", "jobId", "imageUrl", "imageWidth", "imageHeight"),
        *("savedFile", "quadrantFiles", "buttons", "submitTime", "startTime", "finishTime"),
    ]
    wire = json.dumps(data, ensure_ascii=False)
    assert wire.count(PROMPT_200) == 1
    for internal in (
        "discordInstanceId",
        "messageId",
        "nonce",
        "flags",
        "notifyHook",
        "secret-path",
        "style",
        "botType",
    ):
        assert internal not in wire
    assert data["buttons"][4] == {
        "customId": "MJ::JOB::reroll::0::a6a3a450-6513-470e-a69e-0d37f2a74de4::SOLO",
        "emoji": "🔄",
    }
    assert data["buttons"][0] == {
        "customId": "MJ::JOB::upsample::1::a6a3a450-6513-470e-a69e-0d37f2a74de4",
        "label": "U1",
    }


def test_a_finished_imagine_with_a_200_character_prompt_is_at_most_2_kb() -> None:
    out = Path("/home/someone/Pictures/midjourney")
    quadrants = [out / f"imagine-1750000000000331-{n}.png" for n in range(1, 5)]
    data = task_view(upstream_grid(), saved=out / "imagine-1750000000000331.png", quadrants=quadrants).dump()
    assert len(PROMPT_200) == 200
    assert wire_bytes(data) <= 2048
    assert wire_bytes(upstream_grid().to_wire()) > wire_bytes(data) + 800  # what it was


def test_fields_that_say_something_new_are_kept() -> None:
    task = Task.model_validate(
        {
            "id": "5",
            "action": "DESCRIBE",
            "status": "SUCCESS",
            "prompt": "狐狸",
            "promptEn": "a fox",
            "description": "Queued behind a maintenance window",
            "state": "mine",
            "parentId": 4,
            "failReason": "",
            "properties": {"finalPrompt": "1️⃣ a fox in snow\n2️⃣ a red fox"},
            "imageUrls": [{"url": "https://cdn/1.png"}, {"url": ""}],
            "videoUrls": [{"url": "https://cdn/1.mp4", "thumbnail": "https://cdn/1.jpg"}],
            "buttons": None,
        }
    )
    assert task_view(task).dump() == {
        "id": "5",
        "action": "DESCRIBE",
        "status": "SUCCESS",
        "prompt": "狐狸",
        "promptEn": "a fox",
        "finalPrompt": "1️⃣ a fox in snow\n2️⃣ a red fox",
        "description": "Queued behind a maintenance window",
        "state": "mine",
        "parentId": "4",
        "imageUrls": [{"url": "https://cdn/1.png"}],
        "videoUrls": [{"url": "https://cdn/1.mp4", "thumbnail": "https://cdn/1.jpg"}],
    }
    repeated = Task(id="6", prompt="a fox", description="a fox", image_width=512, image_height=256)
    assert task_view(repeated).dump() == {"id": "6", "prompt": "a fox", "imageWidth": 512, "imageHeight": 256}
    assert "buttons" not in task_view(upstream_grid(), buttons=False).dump()


# -- output schemas -------------------------------------------------------------------------------


def _walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [d for item in node for d in _walk(item)]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(node, dict):
        return [node, *(d for value in node.values() for d in _walk(value))]  # pyright: ignore[reportUnknownVariableType]
    return []


async def test_every_tool_declares_a_portable_object_output_schema(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        schema = tool.output_schema
        assert schema is not None and schema["type"] == "object", tool.name
        Draft202012Validator.check_schema(schema)
        for node in _walk(schema):
            assert not {"additionalProperties", "$ref", "$defs", "exclusiveMinimum", "title"} & set(node), tool.name
    assert {spec.output for spec in TOOLS} >= {TaskView, CancelView}


async def _call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool(tool, args)


async def test_every_result_validates_against_its_tools_output_schema(client: Client) -> None:
    schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
    grid = await _call(client, "imagine", {"prompt": "a red fox in the snow"})
    grid_id = (grid.structured_content or {})["id"]
    running = await _call(client, "imagine", {"prompt": "a slow fox", "wait": False})
    calls: list[tuple[str, dict[str, Any]]] = [
        ("action", {"taskId": grid_id, "customId": "U1"}),
        ("get_task", {"taskId": grid_id}),
        ("list_tasks", {"ids": [grid_id, "nope"]}),
        ("query_tasks", {"pageNumber": 0, "pageSize": 2}),
        ("recent_tasks", {}),
        ("task_queue", {}),
        ("image_seed", {"taskId": grid_id}),
        ("upload_images", {"base64Array": [data_uri()]}),
        ("describe", {"base64": data_uri()}),
        ("shorten", {"prompt": "a very long and winding prompt about a lighthouse on a cliff at dusk"}),
        ("cancel_task", {"taskId": (running.structured_content or {})["id"]}),
        # errors: bad arguments, an unknown task, a FAILURE task (which carries the task)
        ("imagine", {}),
        ("get_task", {"taskId": "404404"}),
        ("imagine", {"prompt": "please simulate-failure"}),
        ("action", {"taskId": grid_id, "customId": "Vary (Strong)"}),
    ]
    results = [("imagine", grid), ("imagine", running)]
    results += [(tool, await _call(client, tool, args)) for tool, args in calls]
    assert sum(r.is_error for _, r in results) >= 4
    for tool, result in results:
        if not result.is_error:
            assert result.structured_content is not None, tool
        if result.structured_content is not None:
            Draft202012Validator(schemas[tool]).validate(result.structured_content)


def test_an_error_carries_structured_content_only_when_it_matches_the_schema() -> None:
    task = task_view(Task(id="7", status="FAILURE")).dump()
    kept = call_result("image", Rendered("Failed.", task, is_error=True), TaskView)
    assert kept.structured_content == task
    dropped = call_result("image", Rendered("Not found.", task, is_error=True), CancelView)
    assert (dropped.structured_content, dropped.is_error) == (None, True)
    assert output_schema(CancelView)["required"] == ["taskId", "cancelRequested"]


# -- through the server -----------------------------------------------------------------------------


async def test_a_finished_imagine_through_the_server_is_small_and_names_its_files(client: Client) -> None:
    result = await _call(client, "imagine", {"prompt": PROMPT_200})
    data = result.structured_content or {}
    assert wire_bytes(data) <= 2048
    assert (data["imageWidth"], data["imageHeight"]) == (1024, 1024)  # the downloaded picture's own size
    assert Path(data["savedFile"]).is_file() and len(data["quadrantFiles"]) == 4
    assert data["prompt"] == PROMPT_200 and "promptEn" not in data and "description" not in data


@pytest.mark.slow  # 25 finished jobs, each drawn, saved and split: seconds of Pillow
async def test_recent_tasks_of_25_is_small_and_each_line_says_when_what_and_where(make_server: Any) -> None:
    # One protocol era and no previews: the list's shape is what is measured, and 25 JPEG
    # previews in two eras made this the suite's slowest in-process test.
    async with Client(make_server(preview="none")) as client:
        for number in range(25):
            await _call(client, "imagine", {"prompt": f"{PROMPT_200[:180]} --seed {number}"})
        result = await _call(client, "recent_tasks", {"limit": 25})
    tasks = (result.structured_content or {})["tasks"]
    assert len(tasks) == 25
    assert wire_bytes(result.structured_content) <= 25 * 700  # was ~3.4 k a task
    assert all("buttons" not in t and Path(t["savedFile"]).is_file() for t in tasks)
    line = text(result).splitlines()[1]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(tasks[0]["submitTime"] / 1000))
    assert line.startswith(f'- {tasks[0]["id"]} {when} SUCCESS IMAGINE "{PROMPT_200[:59]}…" saved ')
    assert line.endswith(tasks[0]["savedFile"])


def test_a_task_line_has_the_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        task = Task(id="9", action="IMAGINE", status="SUCCESS", prompt="a fox", submit_time=1750000000000)
        line = tasks_result([task], saved=lambda _id: Path("/out/imagine-9.png")).text.splitlines()[1]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert line == '- 9 2025-06-16 00:06 SUCCESS IMAGINE "a fox" saved /out/imagine-9.png'


async def test_with_preview_none_there_is_no_image_but_the_same_structured_content(make_server: Any) -> None:
    async with Client(make_server(preview="none")) as client:
        result = await _call(client, "imagine", {"prompt": "a fox"})
    assert not any(isinstance(block, ImageContent) for block in result.content)
    assert (result.structured_content or {})["savedFile"]


# -- previews --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_grid() -> bytes:
    return natural_grid(2048)


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_natural_photo_grid_previews_as_a_jpeg_of_at_most_300_kb(photo_grid: bytes) -> None:
    assert len(photo_grid) > 4_000_000  # as hard to compress as a photograph: not a flat colour
    preview, mime = make_preview(photo_grid)
    picture = Image.open(io.BytesIO(preview))
    assert (mime, picture.format) == ("image/jpeg", "JPEG")
    assert 1024 <= max(picture.size) <= 1568
    assert len(preview) <= 300_000


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_large_photo_png_within_the_limits_becomes_a_smaller_jpeg(photo_grid: bytes) -> None:
    picture = Image.open(io.BytesIO(photo_grid)).resize((1000, 1000))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    original = buffer.getvalue()
    assert len(original) > PREVIEW_KEEP_BYTES
    preview, mime = make_preview(original)
    assert mime == "image/jpeg" and len(preview) < len(original) // 3
    assert Image.open(io.BytesIO(preview)).size == (1000, 1000)


def test_a_flat_png_within_the_limits_stays_lossless_png_when_jpeg_is_no_smaller() -> None:
    picture = Image.new("RGB", (1000, 1000), "white")
    for x in range(0, 1000, 2):  # one-pixel stripes: tiny in PNG, costly in JPEG
        picture.paste((0, 0, 0), (x, 0, x + 1, 1000))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=0)  # stored uncompressed: over the keep limit
    original = buffer.getvalue()
    assert len(original) > PREVIEW_KEEP_BYTES
    preview, mime = make_preview(original)
    assert mime == "image/png" and len(preview) < len(original)
    assert Image.open(io.BytesIO(preview)).convert("RGB").tobytes() == picture.tobytes()


def test_the_media_of_a_result_carries_the_size_into_the_view() -> None:
    media = Media(preview=Preview(b"x", "image/jpeg"), size=(2048, 1024))
    assert task_view(Task(id="1", image_width=1, image_height=1), size=media.size).dump()["imageWidth"] == 2048
