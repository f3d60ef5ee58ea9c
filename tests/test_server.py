"""The MCP server through a real MCP client, in memory, in both protocol eras, against the simulator."""

from __future__ import annotations

import base64
import io
import itertools
import json
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from PIL import Image
from pydantic.json_schema import SkipJsonSchema

from mj_mcp.config import Settings, ToolFields
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.media import Preview
from mj_mcp.results import Link, Rendered, error_result
from mj_mcp.server import TOOLS
from mj_mcp.server.dispatch import call_result
from mj_mcp.server.schema import Surface, arguments_model, input_schema, model_schema, portable
from mj_mcp.server.tools import JobControls
from mj_mcp.simulator import FAIL_REASON, Fault, Quirks, Simulator
from mj_mcp.upstreams import PROFILES
from tests.conftest import ServerFactory
from tests.helpers import TOOL_NAMES, FakeClock, data_uri, png_bytes, text

pytestmark = pytest.mark.anyio

JOB_TOOLS = TOOL_NAMES[:13]
READ_TOOLS = ["get_task", "list_tasks", "query_tasks", "recent_tasks", "task_queue", "image_seed"]

Progress = list[tuple[float, float | None, str | None]]


@pytest.fixture
def image_file(settings: Settings) -> Path:
    assert settings.allowed_dirs
    path = settings.allowed_dirs[0] / "face.png"
    path.write_bytes(png_bytes("green"))
    return path


async def call(client: Client, tool: str, args: dict[str, Any], progress: Progress | None = None) -> CallToolResult:
    async def record(p: float, total: float | None, message: str | None) -> None:
        if progress is not None:
            progress.append((p, total, message))

    with anyio.fail_after(30):
        return await client.call_tool(tool, args, progress_callback=record)


async def imagine(client: Client, prompt: str = "a red fox in the snow") -> dict[str, Any]:
    result = await call(client, "imagine", {"prompt": prompt})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def press(client: Client, task_id: str, button: str) -> CallToolResult:
    return await call(client, "action", {"taskId": task_id, "customId": button})


# -- tools/list ----------------------------------------------------------------------------------


async def test_tools_list_has_exactly_the_twenty_tools_of_the_interface(client: Client) -> None:
    names = [t.name for t in (await client.list_tools()).tools]
    assert sorted(names) == sorted(TOOL_NAMES)


@pytest.mark.parametrize("tool_fields", ["lean", "full"])
async def test_every_input_schema_is_the_endpoint_model_flattened_with_its_controls(
    make_server: ServerFactory, mode: str, tool_fields: ToolFields
) -> None:
    async with Client(make_server(tool_fields=tool_fields), mode=mode) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
    for tool in tools:
        model = ENDPOINTS[tool.name].request
        # Fields the server fills in itself (trueai's describe `link`) are not offered to the model.
        fields = {
            f.alias or n
            for n, f in model.model_fields.items()
            if not any(isinstance(m, SkipJsonSchema) for m in f.metadata)
        }
        required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
        schema = tool.input_schema
        expected = set(fields)
        if tool.name in JOB_TOOLS and tool.name != "upload_images":
            expected |= {"wait", "timeout", "mode"}
        if tool.name == "modal":
            expected |= {"region"}  # the server draws the Vary (Region) mask from it
        if tool.name == "get_task":
            expected |= {"wait", "timeout"}
        if tool.name in ("recent_tasks", "task_queue"):
            expected |= {"limit", "since"} if tool.name == "recent_tasks" else {"limit"}
        # lean: MJ_TOOL_FIELDS leaves these out; the plus profile, another upstream's extras
        expected -= Surface(tool_fields, profile=PROFILES["plus"]).hidden(model)
        assert set(schema["properties"]) == expected, tool.name
        assert set(schema.get("required", [])) == required, tool.name
        assert "$defs" not in schema
        assert "$ref" not in json.dumps(schema)
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
        assert list(schema["properties"])[: len(required)] == [p for p in schema["properties"] if p in required]
        assert tool.description
        assert len(tool.description) < 400


async def test_the_interface_fields_and_enums_are_in_the_schemas(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(tool_fields="full"), mode=mode) as client:  # type: ignore[arg-type]
        tools = {t.name: t.input_schema for t in (await client.list_tools()).tools}
    assert tools["imagine"]["required"] == ["prompt"]
    assert {"base64Array", "botType", "instanceId", "modes", "remix", "notifyHook", "state"} <= set(
        tools["imagine"]["properties"]
    )
    assert tools["blend"]["properties"]["dimensions"]["enum"] == ["PORTRAIT", "SQUARE", "LANDSCAPE"]
    assert tools["blend"]["properties"]["base64Array"]["minItems"] == 2
    assert tools["blend"]["properties"]["base64Array"]["maxItems"] == 5
    assert tools["video"]["properties"]["motion"]["enum"] == ["low", "high"]
    assert tools["change"]["properties"]["action"]["enum"] == ["UPSCALE", "VARIATION", "REROLL"]
    assert tools["change"]["properties"]["index"]["minimum"] == 1
    assert tools["imagine"]["properties"]["mode"]["enum"] == ["fast", "relax", "turbo"]
    assert tools["get_task"]["properties"]["wait"]["default"] is False
    assert tools["imagine"]["properties"]["wait"]["default"] is True
    assert "mode" not in tools["get_task"]["properties"]
    assert set(tools["swap_face"]["required"]) == {"sourceBase64", "targetBase64"}
    assert tools["query_tasks"]["properties"]["pageNumber"]["minimum"] == 0


async def test_annotations_mark_reads_spending_and_destructive_tools(client: Client) -> None:
    for tool in (await client.list_tools()).tools:
        hints = tool.annotations
        assert hints is not None
        assert hints.open_world_hint is True, tool.name
        assert bool(hints.read_only_hint) == (tool.name in READ_TOOLS), tool.name
        if tool.name == "cancel_task":
            assert hints.destructive_hint is True
        if tool.name in JOB_TOOLS:
            assert hints.destructive_hint is False


@pytest.mark.parametrize("mode", ["auto"])  # the captured era; legacy clients parse into other models
async def test_the_tools_list_is_byte_identical_to_the_captured_listing(client: Client) -> None:
    """tests/fixtures/tools_list.json is tools/list as served before the server became a package:
    agents pay for these bytes on every turn, and a change in them must be a decision, not a drift."""
    listing = await client.list_tools()
    wire = listing.model_dump(by_alias=True, exclude_none=True, mode="json")["tools"]
    captured = (Path(__file__).parent / "fixtures" / "tools_list.json").read_text(encoding="utf-8")
    assert json.dumps(wire, ensure_ascii=False, indent=1) + "\n" == captured


async def test_the_tools_list_answer_stays_under_20_kb(client: Client) -> None:
    # Output schemas are not counted (interface.md "Tools"): no model reads them. They are bounded apart.
    listing = await client.list_tools()
    # `execution` (MCP Tasks, 2025-11-25 only) is protocol metadata the client acts on, not text a
    # model reads (interface.md counts name, title, description and input schema).
    dumped = listing.model_dump(
        by_alias=True, exclude_none=True, mode="json", exclude={"tools": {"__all__": {"execution", "output_schema"}}}
    )
    wire = json.dumps(dumped, separators=(",", ":"))
    assert len(wire.encode()) < 20_000
    for tool in listing.tools:
        assert len(json.dumps(tool.output_schema, separators=(",", ":"))) < 2_000, tool.name


async def test_the_readme_lists_every_tool_as_tools_list_describes_it(client: Client) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- tools:start -->")[1].split("<!-- tools:end -->")[0]
    listed = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    tools = (await client.list_tools()).tools
    assert listed == [t.name for t in tools]
    for tool in tools:
        endpoint = ENDPOINTS[tool.name]
        description = (tool.description or "").replace("|", "\\|")
        title = tool.annotations.title if tool.annotations else None
        row = f"| `{tool.name}` | {title} | `{endpoint.method} {endpoint.path}` | {description} |"
        assert row in section


# -- the main path: imagine -> U2 -> upscale, with progress --------------------------------------


async def test_imagine_waits_with_progress_and_returns_the_grid_with_an_image_the_model_can_see(
    client: Client, settings: Settings
) -> None:
    progress: Progress = []
    result = await call(client, "imagine", {"prompt": "a red fox in the snow --ar 1:1"}, progress)
    assert not result.is_error, text(result)
    task = result.structured_content
    assert task is not None
    assert task["status"] == "SUCCESS"
    assert task["action"] == "IMAGINE"
    assert [b.get("label") for b in task["buttons"]][:4] == ["U1", "U2", "U3", "U4"]

    percents = [p for p, _, _ in progress]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(set(percents)) >= 3
    assert all(total == 100 for _, total, _ in progress)
    messages = [m or "" for _, _, m in progress]
    assert any("IN_PROGRESS" in m for m in messages)
    assert messages[-1] == "SUCCESS"

    body = text(result)
    assert "SUCCESS" in body
    assert "IMAGINE" in body
    assert "U1, U2, U3, U4, 🔄, V1, V2, V3, V4" in body
    assert 'action with taskId="' in body
    images = [c for c in result.content if isinstance(c, ImageContent)]
    assert len(images) == 1
    raw = base64.b64decode(images[0].data)
    assert len(raw) <= 1_048_576
    preview = Image.open(io.BytesIO(raw))
    assert max(preview.size) <= 1568
    assert images[0].mime_type in ("image/jpeg", "image/webp", "image/png")
    assert task["imageUrl"] in body
    assert settings.output_dir is not None
    saved = [line.removeprefix("Saved: ") for line in body.splitlines() if line.startswith("Saved: ")]
    assert len(saved) == 1
    assert Path(saved[0]).is_file()
    assert Path(saved[0]).is_absolute()
    assert Path(saved[0]).parent == settings.output_dir.resolve()
    quadrants = sorted(settings.output_dir.glob("*-[1-4].png"))
    assert len(quadrants) == 4
    assert not [c for c in result.content if isinstance(c, ResourceLink)]  # frameworks choke on them
    # The first item alone (all smolagents keeps) names the task, status, buttons, URI and next call.
    first = result.content[0]
    assert isinstance(first, TextContent)
    assert first.text.startswith(f"IMAGINE task {task['id']}: SUCCESS")
    assert "Buttons: U1, U2, U3, U4, 🔄, V1, V2, V3, V4" in first.text
    assert f'Next: action with taskId="{task["id"]}"' in first.text
    assert f"Resources: mj://tasks/{task['id']}" in first.text


async def test_pressing_u2_by_label_upscales_the_second_image(client: Client) -> None:
    grid = await imagine(client)
    progress: Progress = []
    result = await call(client, "action", {"taskId": grid["id"], "customId": "U2"}, progress)
    assert not result.is_error, text(result)
    upscale = result.structured_content
    assert upscale is not None
    assert upscale["action"] == "UPSCALE"
    assert upscale["status"] == "SUCCESS"
    assert upscale["id"] != grid["id"]
    assert progress
    assert progress[-1][0] == 100
    body = text(result)
    assert "'Vary (Strong)'" in body
    assert "Zoom Out 2x" in body
    assert any(isinstance(c, ImageContent) for c in result.content)


@pytest.mark.parametrize("label", ["🔄", "V1", "Vary (Strong)", "vary (subtle)", "⬅️", "Zoom Out 2x"])
async def test_buttons_are_pressed_by_label_or_emoji(client: Client, label: str) -> None:
    grid = await imagine(client)
    target = grid
    if label not in ("🔄", "V1"):
        upscaled = await press(client, grid["id"], "U1")
        assert upscaled.structured_content is not None
        target = upscaled.structured_content
    result = await press(client, target["id"], label)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"


async def test_buttons_are_pressed_by_custom_id_too(client: Client) -> None:
    grid = await imagine(client)
    custom_id = grid["buttons"][2]["customId"]
    result = await press(client, grid["id"], custom_id)
    assert result.structured_content is not None
    assert result.structured_content["action"] == "UPSCALE"


async def test_an_unknown_button_lists_the_available_labels(client: Client, sim: Simulator) -> None:
    grid = await imagine(client)
    before = len(sim.request_log)
    result = await press(client, grid["id"], "U9")
    assert result.is_error
    body = text(result)
    assert "U9" in body
    assert "'U1'" in body
    assert "'V4'" in body
    assert "'🔄'" in body
    assert not any("/submit/" in p for _, p in sim.request_log[before:])


# -- MODAL ---------------------------------------------------------------------------------------


async def test_custom_zoom_returns_a_modal_task_and_modal_finishes_it(client: Client) -> None:
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U3")).structured_content
    assert upscale is not None
    modal = await press(client, upscale["id"], "Custom Zoom")
    assert not modal.is_error, text(modal)
    task = modal.structured_content
    assert task is not None
    assert task["status"] == "MODAL"
    assert task["id"] not in (grid["id"], upscale["id"])
    body = text(modal)
    assert "modal" in body
    assert "--zoom" in body
    assert task["id"] in body

    progress: Progress = []
    done = await call(client, "modal", {"taskId": task["id"], "prompt": "a red fox --zoom 1.5"}, progress)
    assert not done.is_error, text(done)
    assert done.structured_content is not None
    assert done.structured_content["status"] == "SUCCESS"
    assert done.structured_content["id"] == task["id"]
    assert progress[-1][0] == 100


async def test_vary_region_asks_for_a_mask_and_takes_one_from_a_file(client: Client, image_file: Path) -> None:
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U1")).structured_content
    assert upscale is not None
    modal = await press(client, upscale["id"], "Vary (Region)")
    task = modal.structured_content
    assert task is not None
    assert task["status"] == "MODAL"
    assert "maskBase64" in text(modal)
    # The mask is the size of the upscale (the simulator's pictures are 1024 px square).
    image_file.write_bytes(png_bytes("white", (1024, 1024)))
    done = await call(client, "modal", {"taskId": task["id"], "prompt": "a blue hat", "maskBase64": str(image_file)})
    assert not done.is_error, text(done)
    assert done.structured_content is not None
    assert done.structured_content["status"] == "SUCCESS"


async def test_a_modal_without_the_zoom_it_needs_is_a_clear_error(client: Client) -> None:
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U1")).structured_content
    assert upscale is not None
    modal = (await press(client, upscale["id"], "Custom Zoom")).structured_content
    assert modal is not None
    result = await call(client, "modal", {"taskId": modal["id"], "prompt": "no zoom here"})
    assert result.is_error
    assert "zoom" in text(result).lower()


# -- every other tool ----------------------------------------------------------------------------


async def test_describe_reads_a_local_file_and_shows_four_prompts(client: Client, image_file: Path) -> None:
    result = await call(client, "describe", {"base64": str(image_file)})
    assert not result.is_error, text(result)
    body = text(result)
    assert "1️⃣" in body
    assert "4️⃣" in body
    assert result.structured_content is not None
    assert result.structured_content["action"] == "DESCRIBE"
    assert not any(isinstance(c, ImageContent) for c in result.content)


async def test_blend_takes_data_uris_and_raw_base64(client: Client) -> None:
    raw = base64.b64encode(png_bytes("yellow")).decode()
    result = await call(client, "blend", {"base64Array": [data_uri("red"), raw], "dimensions": "PORTRAIT"})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["action"] == "BLEND"


async def test_shorten_shows_the_shortened_prompts(client: Client) -> None:
    result = await call(client, "shorten", {"prompt": "an extremely detailed long prompt about a castle"})
    assert not result.is_error, text(result)
    assert "Shortened prompts" in text(result)


async def test_swap_face_video_and_edit_run_to_success(client: Client, image_file: Path) -> None:
    swap = await call(client, "swap_face", {"sourceBase64": str(image_file), "targetBase64": data_uri("blue")})
    assert not swap.is_error, text(swap)
    video = await call(client, "video", {"prompt": "waves rolling", "image": data_uri(), "motion": "high"})
    assert not video.is_error, text(video)
    assert video.structured_content is not None
    urls = [v["url"] for v in video.structured_content["videoUrls"]]
    assert len(urls) == 4
    assert all(u in text(video) for u in urls)
    edit = await call(client, "edit", {"prompt": "white background", "image": str(image_file)})
    assert not edit.is_error, text(edit)
    assert edit.structured_content is not None
    assert edit.structured_content["action"] == "EDIT"


async def test_show_change_and_simple_change_work_on_a_grid(client: Client) -> None:
    grid = await imagine(client)
    show = await call(client, "show", {"jobId": grid["jobId"]})
    assert not show.is_error, text(show)
    change = await call(client, "change", {"taskId": grid["id"], "action": "VARIATION", "index": 2})
    assert not change.is_error
    assert change.structured_content is not None
    assert change.structured_content["action"] == "VARIATION"
    simple = await call(client, "simple_change", {"content": f"{grid['id']} U4"})
    assert not simple.is_error
    assert simple.structured_content is not None
    assert simple.structured_content["action"] == "UPSCALE"


async def test_upload_images_returns_urls(client: Client, image_file: Path) -> None:
    result = await call(client, "upload_images", {"base64Array": [str(image_file), data_uri()]})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    urls = result.structured_content["urls"]
    assert len(urls) == 2
    assert all(u in text(result) for u in urls)


async def test_the_read_tools_list_query_recent_queue_and_seed(client: Client) -> None:
    done = await imagine(client, "first")
    pending = await call(client, "imagine", {"prompt": "second", "wait": False})
    assert not pending.is_error
    assert pending.structured_content is not None
    pending_id = pending.structured_content["id"]
    assert "get_task" in text(pending)

    listed = await call(client, "list_tasks", {"ids": [done["id"], pending_id, "999"]})
    assert listed.structured_content is not None
    assert {t["id"] for t in listed.structured_content["tasks"]} == {done["id"], pending_id}
    assert "Not found: 999" in text(listed)

    page = await call(client, "query_tasks", {"pageSize": 1, "sort": "submitTime,desc"})
    assert page.structured_content is not None
    assert page.structured_content["totalElements"] == 2
    assert len(page.structured_content["content"]) == 1
    assert "pageNumber=1" in text(page)

    recent = await call(client, "recent_tasks", {})
    assert recent.structured_content is not None
    assert len(recent.structured_content["tasks"]) == 2
    queue = await call(client, "task_queue", {})
    assert queue.structured_content is not None
    assert [t["id"] for t in queue.structured_content["tasks"]] == [pending_id]

    seed = await call(client, "image_seed", {"taskId": done["id"]})
    assert seed.structured_content is not None
    assert seed.structured_content["seed"].isdigit()
    assert "--seed" in text(seed)

    fetched = await call(client, "get_task", {"taskId": done["id"]})
    assert fetched.structured_content is not None
    assert fetched.structured_content["id"] == done["id"]
    assert any(isinstance(c, ImageContent) for c in fetched.content)


async def test_get_task_with_wait_waits_for_the_task_with_progress(client: Client) -> None:
    pending = await call(client, "imagine", {"prompt": "later", "wait": False})
    assert pending.structured_content is not None
    progress: Progress = []
    result = await call(client, "get_task", {"taskId": pending.structured_content["id"], "wait": True}, progress)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    assert progress
    assert progress[-1][0] == 100


async def test_cancel_task_ends_a_running_task(client: Client) -> None:
    pending = await call(client, "imagine", {"prompt": "cancel me", "wait": False})
    assert pending.structured_content is not None
    result = await call(client, "cancel_task", {"taskId": pending.structured_content["id"]})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["task"]["status"] == "FAILURE"
    assert "FAILURE" in text(result)


# -- errors the model can act on -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        ("imagine", {}, "prompt: Field required"),
        ("imagine", {"prompt": ""}, "prompt"),
        ("imagine", {"prompt": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ("imagine", {"prompt": "x", "mode": "warp"}, "mode"),
        ("imagine", {"prompt": "x", "timeout": -1}, "timeout"),
        ("blend", {"base64Array": ["a"]}, "base64Array"),
        ("blend", {"base64Array": ["a", "b"], "dimensions": "WIDE"}, "dimensions"),
        ("change", {"taskId": "1", "action": "UPSCALE", "index": 9}, "index"),
        ("get_task", {}, "taskId"),
        ("list_tasks", {"ids": []}, "ids"),
    ],
)
async def test_bad_arguments_name_the_field_and_the_next_step(
    client: Client, tool: str, args: dict[str, Any], needle: str
) -> None:
    result = await call(client, tool, args)
    assert result.is_error
    body = text(result)
    assert needle in body
    assert f"call {tool} again" in body
    assert "Traceback" not in body
    assert "errors.pydantic.dev" not in body


async def test_a_task_id_sent_as_a_number_is_read_as_its_digits(client: Client) -> None:
    # The MCP Inspector CLI parses `--tool-arg taskId=1796173251888676` as JSON: a number.
    grid = await imagine(client)
    result = await press(client, int(grid["id"]), "U1")  # type: ignore[arg-type]  # the wire type on purpose
    assert not result.is_error, text(result)
    assert result.structured_content is not None and result.structured_content["status"] == "SUCCESS"
    found = await call(client, "list_tasks", {"ids": [int(grid["id"])]})
    assert not found.is_error, text(found)
    # Only integers: a fraction or a bool for a string is still refused, naming the field.
    for wrong in (1.5, True):
        refused = await call(client, "get_task", {"taskId": wrong})
        assert refused.is_error and "taskId" in text(refused)


async def test_an_unknown_task_is_an_error_that_points_to_recent_tasks(client: Client) -> None:
    result = await call(client, "get_task", {"taskId": "1111111111111111"})
    assert result.is_error
    assert "recent_tasks" in text(result)


async def test_a_failed_task_is_an_error_with_its_reason_and_the_task(client: Client) -> None:
    result = await call(client, "imagine", {"prompt": "please simulate-failure"})
    assert result.is_error
    assert FAIL_REASON in text(result)
    assert "Next:" in text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "FAILURE"
    assert "mj://tasks/" in text(result)


async def test_a_banned_prompt_is_an_error_naming_the_word(client: Client) -> None:
    result = await call(client, "imagine", {"prompt": "a bannedword cat"})
    assert result.is_error
    assert "bannedword" in text(result)
    assert "Rephrase" in text(result)


@pytest.mark.parametrize("quirks", [Quirks(queue_full="23")])
async def test_a_full_queue_says_to_wait_and_submit_again(client: Client) -> None:
    result = await call(client, "imagine", {"prompt": "x"})
    assert result.is_error
    assert "queue is full" in text(result)
    assert "submit again" in text(result)


async def test_a_file_outside_the_allowed_dirs_is_refused(client: Client, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    result = await call(client, "describe", {"base64": str(outside)})
    assert result.is_error
    assert "MJ_ALLOWED_DIRS" in text(result)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x.png", "http://169.254.169.254/latest", "http://[::1]/a.png"])
async def test_internal_urls_are_refused_even_when_only_passed_on(client: Client, sim: Simulator, url: str) -> None:
    result = await call(client, "imagine", {"prompt": "x", "base64Array": [url]})
    assert result.is_error
    assert "internal" in text(result).lower()
    assert not any("/submit/" in p for _, p in sim.request_log)


async def test_a_refused_key_is_reported_with_what_to_check(settings: Settings, clock: FakeClock, mode: str) -> None:
    from mj_mcp.client import MjClient
    from mj_mcp.server import create_server

    sim = Simulator(clock=clock, api_key="right")
    mj = MjClient("http://sim.test", "wrong-key-123", transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock), mode=mode) as client:  # type: ignore[arg-type]
        result = await call(client, "imagine", {"prompt": "x"})
    assert result.is_error
    assert "MJ_API_KEY" in text(result)
    assert "wrong-key-123" not in text(result)


# -- waiting: timeout, heartbeat, cancellation, wait=false ---------------------------------------


async def test_a_wait_that_times_out_returns_the_running_task_not_an_error(client: Client, sim: Simulator) -> None:
    sim.job_seconds = 8.0  # longer than the 3 s the call waits
    result = await call(client, "imagine", {"prompt": "slow", "timeout": 3})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] not in ("SUCCESS", "FAILURE")
    assert "get_task" in text(result)
    assert "wait=true" in text(result)


async def test_progress_keeps_coming_while_nothing_changes(
    make_server: ServerFactory, sim: Simulator, clock: FakeClock, mode: str
) -> None:
    sim.job_seconds = 600  # long IN_PROGRESS stretches without a new percentage
    stamps: list[float] = []

    async def record(p: float, total: float | None, message: str | None) -> None:
        stamps.append(clock.now())

    async with Client(make_server(), mode=mode) as client:  # type: ignore[arg-type]
        with anyio.fail_after(30):
            result = await client.call_tool("imagine", {"prompt": "x", "timeout": 120}, progress_callback=record)
    assert not result.is_error
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 12
    assert max(gaps) <= 10


async def test_wait_false_returns_at_once_with_the_submitted_task(client: Client, sim: Simulator) -> None:
    result = await call(client, "imagine", {"prompt": "x", "wait": False})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["status"] in ("NOT_START", "SUBMITTED")
    assert sum(1 for _, p in sim.request_log if p.endswith("/fetch")) == 1


async def test_a_cancelled_call_stops_waiting_and_leaves_the_job_alone(
    make_server: ServerFactory, sim: Simulator, mode: str
) -> None:
    sim.job_seconds = 10_000_000
    async with Client(make_server(), mode=mode) as client:  # type: ignore[arg-type]
        with anyio.move_on_after(0.5) as scope:
            await client.call_tool("imagine", {"prompt": "forever", "timeout": 1e9})
        assert scope.cancelled_caught
        await anyio.wait_all_tasks_blocked()
        count = len(sim.request_log)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        await anyio.wait_all_tasks_blocked()
        assert len(sim.request_log) == count  # nobody polls any more
        (task_id,) = sim.tasks
        assert sim.snapshot(task_id)["status"] in ("NOT_START", "SUBMITTED", "IN_PROGRESS")
        assert not any("/cancel" in p for _, p in sim.request_log)


# -- guard-rails ---------------------------------------------------------------------------------


async def test_read_only_leaves_only_the_read_tools(make_server: ServerFactory, mode: str) -> None:
    async with Client(make_server(read_only=True), mode=mode) as client:  # type: ignore[arg-type]
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == set(READ_TOOLS)


async def test_max_jobs_refuses_jobs_past_the_limit_without_sending_them(
    make_server: ServerFactory, sim: Simulator, mode: str
) -> None:
    async with Client(make_server(max_jobs=1), mode=mode) as client:  # type: ignore[arg-type]
        assert not (await call(client, "imagine", {"prompt": "one", "wait": False})).is_error
        second = await call(client, "imagine", {"prompt": "two"})
    assert second.is_error
    assert "MJ_MAX_JOBS" in text(second)
    assert sum(1 for _, p in sim.request_log if "/submit/" in p) == 1


# -- resources and the prompt --------------------------------------------------------------------


async def test_task_resources_read_the_task_and_its_image(client: Client) -> None:
    grid = await imagine(client)
    contents = (await client.read_resource(f"mj://tasks/{grid['id']}")).contents
    assert isinstance(contents[0], TextResourceContents)
    assert contents[0].mime_type == "application/json"
    assert json.loads(contents[0].text)["id"] == grid["id"]
    image = (await client.read_resource(f"mj://tasks/{grid['id']}/image")).contents[0]
    assert isinstance(image, BlobResourceContents)
    assert image.mime_type == "image/png"
    blob = base64.b64decode(image.blob)
    assert len(blob) <= 8 * 1024 * 1024
    assert Image.open(io.BytesIO(blob)).format == "PNG"


async def test_page_recent_and_queue_resources_read_as_json(client: Client) -> None:
    await imagine(client, "one")
    await call(client, "imagine", {"prompt": "two", "wait": False})
    page = json.loads((await client.read_resource("mj://tasks/page/0?pageSize=1")).contents[0].text)  # type: ignore[union-attr]
    assert page["size"] == 1
    assert page["totalElements"] == 2
    assert len(page["content"]) == 1
    filtered = json.loads(
        (await client.read_resource("mj://tasks/page/0?status=SUCCESS")).contents[0].text  # type: ignore[union-attr]
    )
    assert filtered["totalElements"] == 1
    recent = json.loads((await client.read_resource("mj://tasks/recent")).contents[0].text)  # type: ignore[union-attr]
    assert isinstance(recent, list)
    assert len(recent) == 2
    queue = json.loads((await client.read_resource("mj://queue")).contents[0].text)  # type: ignore[union-attr]
    assert isinstance(queue, list)
    assert len(queue) == 1


async def test_resources_and_templates_are_listed(client: Client) -> None:
    static = {str(r.uri) for r in (await client.list_resources()).resources}
    assert {"mj://tasks/recent", "mj://queue"} <= static
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert "mj://tasks/{taskId}" in templates
    assert "mj://tasks/{taskId}/image" in templates
    assert any(t.startswith("mj://tasks/page/{pageNumber}") for t in templates)


@pytest.mark.parametrize("uri", ["mj://tasks/1111111111111111", "mj://tasks/1111111111111111/image"])
async def test_an_unknown_task_resource_is_resource_not_found(client: Client, uri: str) -> None:
    with pytest.raises(MCPError) as info:
        await client.read_resource(uri)
    assert info.value.error.code == -32602


@pytest.mark.parametrize("uri", ["mj://tasks/page/x", "mj://tasks/page/-1", "mj://tasks/page/0?pageSize=abc"])
async def test_a_bad_page_resource_is_invalid_params_and_says_what_is_wrong(client: Client, uri: str) -> None:
    with pytest.raises(MCPError) as info:
        await client.read_resource(uri)
    assert info.value.error.code == -32602
    assert "pageNumber" in info.value.error.message or "pageSize" in info.value.error.message
    assert "0-based page number" in info.value.error.message


async def test_the_prompt_helps_write_a_midjourney_prompt(client: Client) -> None:
    prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert "midjourney_prompt" in prompts
    got = await client.get_prompt("midjourney_prompt", {"description": "a cat astronaut", "aspect_ratio": "16:9"})
    message = got.messages[0].content
    assert isinstance(message, TextContent)
    assert "a cat astronaut" in message.text
    assert "--ar 16:9" in message.text
    assert "--stylize" in message.text


# -- image arguments given as URLs ---------------------------------------------------------------


@pytest.fixture
async def url_client(settings: Settings, mj: Any, clock: FakeClock, mode: str) -> Any:
    import httpx2

    from mj_mcp.loading import ImageLoader
    from mj_mcp.server import create_server

    async def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=png_bytes("purple"), headers={"Content-Type": "image/png"})

    async def resolve(host: str) -> list[str]:
        return ["93.184.216.34"]  # a public address, so the guard lets it through

    assert settings.allowed_dirs
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(serve))
    loader = ImageLoader(settings.allowed_dirs, http=http, resolver=resolve)
    async with http, Client(create_server(settings, mj, clock=clock, image_loader=loader), mode=mode) as c:  # type: ignore[arg-type]
        yield c


async def test_imagine_puts_image_urls_at_the_front_of_the_prompt(url_client: Client, sim: Simulator) -> None:
    url = "https://img.example.com/cat.png"
    result = await call(url_client, "imagine", {"prompt": "a cat", "base64Array": [url, data_uri()]})
    assert not result.is_error, text(result)
    (task,) = sim.tasks.values()
    # The upstream puts its uploads of the data URIs first, then our URL, then the words.
    assert task.prompt is not None
    assert task.prompt.endswith(f"{url} a cat")
    assert task.prompt.startswith("http://sim.test/sim/uploads/")


async def test_describe_downloads_an_image_url_and_sends_its_bytes(url_client: Client, sim: Simulator) -> None:
    result = await call(url_client, "describe", {"base64": "https://img.example.com/cat.png"})
    assert not result.is_error, text(result)
    (task,) = sim.tasks.values()
    assert task.source_url is not None and task.source_url.startswith("http://sim.test/sim/")


async def test_empty_optional_image_fields_are_treated_as_absent(client: Client) -> None:
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U1")).structured_content
    assert upscale is not None
    modal = (await press(client, upscale["id"], "Custom Zoom")).structured_content
    assert modal is not None
    done = await call(client, "modal", {"taskId": modal["id"], "prompt": "fox --zoom 2", "maskBase64": ""})
    assert not done.is_error, text(done)


def test_the_listed_schema_is_the_schema_of_the_model_that_validates_the_call() -> None:
    """tools/list puts each schema together from the DTO and its controls without building the
    arguments model; this keeps the two from drifting apart."""
    for spec in TOOLS:
        listed = input_schema(spec.request, spec.controls)
        validating = model_schema(arguments_model(spec.name, spec.request, spec.controls))
        required = validating.get("required", [])
        expected = {
            name: portable(prop) if name in required else {**portable(prop), "nullable": True}
            for name, prop in validating["properties"].items()
        }
        assert listed["properties"] == expected, spec.name
        assert sorted(listed.get("required", [])) == sorted(validating.get("required", [])), spec.name


def test_the_compact_schema_drops_titles_and_null_defaults_and_lists_optional_t_as_t() -> None:
    from typing import Literal

    from pydantic import Field

    from mj_mcp.models import WireModel

    class Inner(WireModel):
        """A nested model, inlined."""

        size: int = 1

    class Probe(WireModel):
        colour: Literal["red"]
        either: int | str | None = Field(default=None, description="Two types or nothing.")
        maybe: str | None = Field(default=None, max_length=3, description="A string or nothing.")
        inner: Inner | None = None

    schema = model_schema(Probe)
    assert '"title"' not in json.dumps(schema)
    props = schema["properties"]
    assert props["colour"] == {"const": "red", "type": "string"}
    # A union of several types keeps its null; a single type is listed alone, its keywords first.
    assert props["either"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}],
        "description": "Two types or nothing.",
    }
    assert list(props["maybe"].items()) == [
        ("maxLength", 3),
        ("type", "string"),
        ("description", "A string or nothing."),
    ]
    assert props["inner"] == {
        "additionalProperties": False,
        "description": "A nested model, inlined.",
        "properties": {"size": {"default": 1, "type": "integer"}},
        "type": "object",
    }
    assert schema["required"] == ["colour"]


def test_each_tool_spec_holds_its_endpoint_its_request_model_and_the_controls_that_apply() -> None:
    for spec in TOOLS:
        assert spec.endpoint is ENDPOINTS[spec.name]
        assert spec.request is spec.endpoint.request, spec.name
        # wait/timeout/mode belong to the calls that start a task to wait for.
        assert issubclass(spec.controls, JobControls) == spec.endpoint.creates_task, spec.name


def test_a_rendered_result_becomes_mcp_content_in_its_order() -> None:
    rendered = Rendered(
        "main",
        {"id": "1"},
        notes=("first note", "second note"),
        preview=Preview(b"img", "image/png"),
        links=(Link("1", "IMAGINE SUCCESS"), Link("2")),
    )
    result = call_result("image", rendered)
    # One text item first: clients that keep only content[0] (smolagents) still get it all.
    assert [type(c).__name__ for c in result.content] == ["TextContent", "ImageContent"]
    first = result.content[0]
    assert isinstance(first, TextContent)
    assert first.text == "main\nfirst note\nsecond note\nResources: mj://tasks/1, mj://tasks/2"
    image = result.content[1]
    assert isinstance(image, ImageContent) and base64.b64decode(image.data) == b"img"
    assert (result.structured_content, result.is_error) == ({"id": "1"}, False)
    text_only = call_result("none", rendered)  # MJ_PREVIEW=none
    assert [type(c).__name__ for c in text_only.content] == ["TextContent"]
    error = call_result("image", error_result("bad"))
    assert (error.structured_content, error.is_error) == (None, True)


# -- upstream dialects and the next step ---------------------------------------------------------


async def test_change_without_an_index_for_an_upscale_is_refused_before_anything_is_sent(
    client: Client, sim: Simulator
) -> None:
    grid = await imagine(client)
    before = len(sim.request_log)
    result = await call(client, "change", {"taskId": grid["id"], "action": "UPSCALE"})
    assert result.is_error
    assert "index" in text(result)
    assert len(sim.request_log) == before


async def test_pressing_a_button_on_a_running_task_says_to_wait_for_it_first(client: Client) -> None:
    running = await call(client, "imagine", {"prompt": "a fox", "wait": False})
    assert running.structured_content is not None
    result = await press(client, running.structured_content["id"], "U1")
    assert result.is_error
    assert "no buttons yet" in text(result)
    assert "get_task" in text(result) and "wait=true" in text(result)


async def test_a_finished_task_without_buttons_points_to_change_and_simple_change(
    client: Client, sim: Simulator
) -> None:
    # The original midjourney-proxy lists no buttons on its tasks.
    bare = {"id": "1750000000000123", "action": "IMAGINE", "status": "SUCCESS", "progress": "100%"}
    sim.inject(Fault(kind="status", status=200, body=json.dumps(bare), path="/1750000000000123/fetch"))
    result = await press(client, "1750000000000123", "U2")
    assert result.is_error
    assert "simple_change" in text(result)
    assert "change (taskId=1750000000000123" in text(result)


async def custom_zoom_modal(client: Client) -> dict[str, Any]:
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U3")).structured_content
    assert upscale is not None
    modal = (await press(client, upscale["id"], "Custom Zoom")).structured_content
    assert modal is not None and modal["status"] == "MODAL"
    return modal


async def test_modal_waits_through_a_lagging_read_that_still_shows_modal(client: Client, sim: Simulator) -> None:
    """new-api refreshes its copy of a task every ~15 s: the first read after the confirmation may
    still say MODAL, and stopping there would have the model pay for a second modal call."""
    modal = await custom_zoom_modal(client)
    stale = [{**modal, "status": "MODAL", "progress": "0%"}]
    sim.inject(Fault(kind="status", status=200, body=json.dumps(stale), path="/list-by-condition", times=2))
    done = await call(client, "modal", {"taskId": modal["id"], "prompt": "a fox --zoom 1.5"})
    assert not done.is_error, text(done)
    assert done.structured_content is not None
    assert done.structured_content["status"] == "SUCCESS"
    assert not sim.pending_faults


async def test_a_modal_the_upstream_never_takes_says_so_instead_of_asking_for_another(
    client: Client, sim: Simulator
) -> None:
    modal = await custom_zoom_modal(client)
    stuck = {**modal, "status": "MODAL", "progress": "0%"}
    sim.inject(
        Fault(kind="status", status=200, body=json.dumps([stuck]), path="/list-by-condition", times=None),
        Fault(kind="status", status=200, body=json.dumps(stuck), path="/fetch", times=None),
    )
    result = await call(client, "modal", {"taskId": modal["id"], "prompt": "a fox --zoom 1.5"})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "MODAL"
    assert "did not take it" in text(result)
    assert "may be charged" in text(result)


async def test_a_modal_task_read_with_get_task_says_what_modal_needs(client: Client) -> None:
    modal = await custom_zoom_modal(client)
    result = await call(client, "get_task", {"taskId": modal["id"]})
    assert "modal" in text(result)
    assert "--zoom" in text(result)


async def test_imagine_all_from_a_describe_names_every_task_it_started(client: Client, image_file: Path) -> None:
    described = await call(client, "describe", {"base64": str(image_file)})
    assert described.structured_content is not None
    result = await press(client, described.structured_content["id"], "Imagine all")
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    (resources,) = [line for line in text(result).splitlines() if line.startswith("Resources: ")]
    links = resources.removeprefix("Resources: ").split(", ")
    assert len(set(links)) == 4
    assert f"mj://tasks/{result.structured_content['id']}" in links
    assert "3 more task(s)" in text(result)


async def test_a_vary_region_mask_given_as_jpeg_is_sent_as_the_png_the_upstream_reads(
    client: Client, settings: Settings
) -> None:
    assert settings.allowed_dirs
    mask = settings.allowed_dirs[0] / "mask.jpg"
    Image.new("L", (1024, 1024), 255).save(mask, "JPEG")
    grid = await imagine(client)
    upscale = (await press(client, grid["id"], "U1")).structured_content
    assert upscale is not None
    region = (await press(client, upscale["id"], "Vary (Region)")).structured_content
    assert region is not None
    done = await call(client, "modal", {"taskId": region["id"], "prompt": "a hat", "maskBase64": str(mask)})
    assert not done.is_error, text(done)


async def test_a_video_result_shows_a_video_thumbnail_and_offers_the_video_buttons(client: Client) -> None:
    video = await call(client, "video", {"prompt": "waves", "image": data_uri("blue")})
    assert not video.is_error, text(video)
    body = text(video)
    assert "Start image:" in body
    assert "Saved:" not in body  # the start image is the input, not a result
    assert "four videos" in body
    assert "V1" not in body
    assert any(isinstance(c, ImageContent) for c in video.content)


async def test_a_cancelled_task_says_it_was_cancelled_not_to_retry(client: Client) -> None:
    running = await call(client, "imagine", {"prompt": "a fox", "wait": False})
    assert running.structured_content is not None
    task_id = running.structured_content["id"]
    await call(client, "cancel_task", {"taskId": task_id})
    result = await call(client, "get_task", {"taskId": task_id})
    assert not result.is_error  # the lookup worked: an ended task reads fine (interface.md)
    assert "cancelled" in text(result)


async def test_with_preview_none_a_finished_task_comes_back_as_text_and_structured_content_only(
    make_server: ServerFactory,
) -> None:
    async with Client(make_server(preview="none")) as client:  # type: ignore[arg-type]
        result = await call(client, "imagine", {"prompt": "a lighthouse"})
        assert not result.is_error, text(result)
        assert not [c for c in result.content if isinstance(c, ImageContent | ResourceLink)]
        assert result.structured_content is not None and result.structured_content["status"] == "SUCCESS"
        assert "Saved: " in text(result)
