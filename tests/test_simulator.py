"""The simulator speaks the upstream API faithfully: lifecycle, codes, shapes, quirks, faults.

Everything runs in-process through `Simulator.transport()` with a `ManualClock`: no sleeps.
The request examples and response shapes come from the seed documents (reseller API docs).
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.models import Button, Page, SubmitResult, Task
from mj_mcp.simulator import (
    FAIL_REASON,
    INSTANCE_ID,
    Fault,
    ManualClock,
    Quirks,
    Simulator,
    WallClock,
    media,
    run_simulator,
)
from mj_mcp.simulator.actions import MSG_MASK_SIZE
from mj_mcp.simulator.prompts import numbered_line
from tests.helpers import FakeClock
from tests.sim_http import (
    JOB,
    NA_KEY,
    assert_code,
    fetch,
    finished,
    image_of,
    imagine_done,
    png_uri,
    post,
    press,
    press_done,
    submit,
    upscale_done,
)

# ---------------------------------------------------------------------------------------------
# Seed material (tests/fixtures/seeds): request examples and the fields of the documented replies

SEED_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "/mj/submit/imagine",
        {
            "base64Array": [],
            "instanceId": "",
            "modes": [],
            "notifyHook": "",
            "prompt": "Cat",
            "remix": True,
            "state": "",
        },
    ),
    (
        "/mj/submit/blend",
        {
            "base64Array": ["data:image/png;base64,xxx1", "data:image/png;base64,xxx2"],
            "dimensions": "SQUARE",
            "instanceId": "",
            "modes": [],
            "notifyHook": "",
            "remix": True,
            "state": "",
        },
    ),
    (
        "/mj/submit/shorten",
        {"instanceId": "", "modes": [], "notifyHook": "", "prompt": "Cat", "remix": True, "state": ""},
    ),
    (
        "/mj/submit/video",
        {
            "prompt": "飞来一只蜜蜂",
            "motion": "low",
            "image": "https://cdn.discordapp.com/attachments/1/2/tulip.jpg?ex=68617307&is=68602187&hm=f9",
            "notifyHook": "https://sse.open-hk.com/openai/mjapi/9-8/",
            "state": "9",
        },
    ),
    (
        "/mj/submit/edits",
        {
            "prompt": "改为白色背景",
            "image": "https://cdn.discordapp.com/attachments/1/2/tulip.jpg",
            "notifyHook": "https://yourback.com/",
            "state": "abc",
        },
    ),
]

SEED_TASK_FIELDS = {
    "action",
    "buttons",
    "description",
    "failReason",
    "finishTime",
    "id",
    "imageUrl",
    "progress",
    "prompt",
    "promptEn",
    "properties",
    "startTime",
    "state",
    "status",
    "submitTime",
}
TOO_LONG = "参数错误: state String should have at most 255 characters"
SEED_BUTTON_FIELDS = {"customId", "emoji", "label", "style", "type"}
PAGE_FIELDS = {
    "content",
    "pageable",
    "last",
    "totalPages",
    "totalElements",
    "size",
    "number",
    "sort",
    "first",
    "numberOfElements",
    "empty",
}
PAGEABLE_FIELDS = {"sort", "offset", "pageNumber", "pageSize", "paged", "unpaged"}


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


# These override the shared conftest's fixtures of the same names: here `client` is a plain HTTP
# client of the simulator and `clock` the simulator's own ManualClock.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    return Simulator(clock=clock, seed=7)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as c:
        yield c


# ---------------------------------------------------------------------------------------------
# Lifecycle


@pytest.mark.anyio
async def test_imagine_walks_from_not_start_to_success_with_grid_buttons(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a cat in a garden"})
    seen: list[dict[str, Any]] = []
    for _ in range(10):
        seen.append(await fetch(client, task_id))
        clock.advance(1.0)

    assert seen[0]["status"] == "NOT_START"
    assert seen[0]["progress"] is None
    assert seen[0]["startTime"] is None
    assert seen[1]["status"] == "SUBMITTED"
    assert seen[1]["progress"] == "0%"
    assert seen[1]["startTime"] == seen[1]["submitTime"] + 1000
    running = [t for t in seen if t["status"] == "IN_PROGRESS"]
    percents = [int(t["progress"].rstrip("%")) for t in running]
    assert len(set(percents)) >= 3
    assert percents == sorted(percents)
    assert all(0 < p < 100 for p in percents)
    assert all(t["imageUrl"].endswith("/preview.webp") for t in running)
    assert all(not t["buttons"] for t in seen if t["status"] != "SUCCESS")

    done = seen[-1]
    assert done["status"] == "SUCCESS"
    assert done["progress"] == "100%"
    assert done["finishTime"] == done["submitTime"] + 8000
    assert done["imageUrl"] == f"http://sim/sim/images/{task_id}.png"
    props = done["properties"]
    assert props["finalPrompt"] == "a cat in a garden --v 7"
    assert uuid.UUID(props["messageHash"]).version == 4
    assert props["discordInstanceId"] == props["discordChannelId"] == INSTANCE_ID
    h = props["messageHash"]
    assert [b["customId"] for b in done["buttons"]] == [
        *(f"MJ::JOB::upsample::{n}::{h}" for n in range(1, 5)),
        f"MJ::JOB::reroll::0::{h}::SOLO",
        *(f"MJ::JOB::variation::{n}::{h}" for n in range(1, 5)),
    ]
    assert [b["label"] or b["emoji"] for b in done["buttons"]] == [
        "U1",
        "U2",
        "U3",
        "U4",
        "🔄",
        "V1",
        "V2",
        "V3",
        "V4",
    ]


@pytest.mark.anyio
async def test_submit_answers_the_documented_envelope_with_a_sixteen_digit_string_id(
    client: httpx2.AsyncClient,
) -> None:
    reply = await post(client, "/mj/submit/imagine", {"prompt": "cat"})
    assert set(reply) == {"code", "description", "result", "properties"}
    assert reply["description"] == "提交成功"
    assert re.fullmatch(r"\d{16}", reply["result"])
    assert reply["properties"] == {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
    assert SubmitResult.model_validate(reply).task_id == reply["result"]


@pytest.mark.anyio
async def test_ids_submitted_in_the_same_millisecond_are_unique(client: httpx2.AsyncClient) -> None:
    ids = [await submit(client, "/mj/submit/imagine", {"prompt": f"cat {i}"}) for i in range(60)]
    assert len(set(ids)) == 60
    assert all(i.startswith("1750000000000") for i in ids)


class _StuckRandom(random.Random):
    """Always the same "random" digits: every id after the first collides."""

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return 42


@pytest.mark.anyio
async def test_ids_stay_unique_when_the_random_digits_keep_colliding(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    sim.store.rng = _StuckRandom()
    ids = [await submit(client, "/mj/submit/imagine", {"prompt": "cat"}) for _ in range(3)]
    assert ids == ["1750000000000042", "1750000000001042", "1750000000002042"]


@pytest.mark.anyio
async def test_a_prompt_with_the_failing_marker_starts_then_fails_with_empty_progress(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat simulate-failure"})
    clock.advance(2.5)
    assert (await fetch(client, task_id))["status"] == "IN_PROGRESS"
    clock.advance(JOB)
    task = await fetch(client, task_id)
    assert task["status"] == "FAILURE"
    assert task["progress"] == ""
    assert task["failReason"] == FAIL_REASON
    assert task["finishTime"] == task["submitTime"] + 4000
    assert task["buttons"] == []
    assert task["imageUrl"] is None


@pytest.mark.anyio
async def test_a_zero_second_job_is_finished_at_once(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, job_seconds=0)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
        assert (await fetch(client, task_id))["status"] == "SUCCESS"


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="job_seconds"):
        Simulator(job_seconds=-1)
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1)


def test_snapshot_gives_the_task_as_fetch_would(sim: Simulator) -> None:
    with pytest.raises(KeyError):
        sim.snapshot("nope")


# ---------------------------------------------------------------------------------------------
# Seed payloads and reply shapes


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "body"), SEED_REQUESTS, ids=[p for p, _ in SEED_REQUESTS])
async def test_the_seed_request_examples_are_accepted(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    reply = await post(client, path, body)
    assert reply["code"] == 1, reply


@pytest.mark.anyio
async def test_the_seed_examples_that_reference_unknown_tasks_get_404_with_code_3(
    client: httpx2.AsyncClient,
) -> None:
    action = {
        "customId": "MJ::JOB::upsample::2::3dbbd469-36af-4a0f-8f02-df6c579e7011",
        "notifyHook": "",
        "state": "",
        "taskId": "14001934816969359",
    }
    modal = {"maskBase64": "", "prompt": "", "taskId": "14001934816969359"}
    for path, body in (("/mj/submit/action", action), ("/mj/submit/modal", modal)):
        response = await client.post(path, json=body)
        assert response.status_code == 404
        assert response.json() == {
            "code": 3,
            "description": "关联任务不存在或已失效",
            "result": None,
            "properties": {},
        }


@pytest.mark.anyio
async def test_the_seed_describe_example_with_fake_base64_is_a_base64_error(client: httpx2.AsyncClient) -> None:
    reply = await post(client, "/mj/submit/describe", {"base64": "data:image/png;base64,xxx", "modes": []})
    assert_code(reply, 4, "base64格式错误")


@pytest.mark.anyio
async def test_a_fetched_task_has_every_field_of_the_documented_task_and_button(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task = await imagine_done(client, clock)
    assert set(task) >= SEED_TASK_FIELDS
    assert all(set(b) == SEED_BUTTON_FIELDS for b in task["buttons"])
    assert all(b["type"] == 2 and b["style"] == 2 for b in task["buttons"])
    assert isinstance(task["submitTime"], int)
    parsed = Task.model_validate(task)
    assert parsed.finished
    assert parsed.percent == 100
    assert all(isinstance(b, Button) for b in parsed.buttons)


@pytest.mark.anyio
async def test_the_paged_query_answers_a_spring_page_with_the_seed_fields(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    for i in range(3):
        await submit(client, "/mj/submit/imagine", {"prompt": f"cat {i}"})
    page = await post(client, "/mj/task/query", {"pageNumber": 0, "pageSize": 10})
    assert set(page) == PAGE_FIELDS
    assert set(page["pageable"]) == PAGEABLE_FIELDS
    assert page["sort"] == {"empty": True, "sorted": False, "unsorted": True}
    assert (page["totalElements"], page["totalPages"], page["numberOfElements"]) == (3, 1, 3)
    assert (page["first"], page["last"], page["empty"], page["size"], page["number"]) == (True, True, False, 10, 0)
    assert all(set(t) >= SEED_TASK_FIELDS for t in page["content"])
    assert Page.model_validate(page).total_elements == 3


# ---------------------------------------------------------------------------------------------
# Submit endpoints


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "description"),
    [
        ("/mj/submit/imagine", {"prompt": "   "}, "prompt不能为空"),
        ("/mj/submit/imagine", {}, "prompt不能为空"),
        ("/mj/submit/imagine", {"prompt": "cat", "base64Array": ["not base64!"]}, "base64格式错误"),
        ("/mj/submit/imagine", {"prompt": "cat", "base64Array": ["data:image/png;base64,@@"]}, "base64格式错误"),
        ("/mj/submit/imagine", {"prompt": "cat", "base64Array": ["data:nonsense"]}, "base64格式错误"),
        ("/mj/submit/blend", {"base64Array": ["AAAA"]}, "图片参数错误，2~5张图片"),
        ("/mj/submit/blend", {"base64Array": ["AAAA"] * 6}, "图片参数错误，2~5张图片"),
        ("/mj/submit/blend", {"base64Array": "AAAA"}, "图片参数错误，2~5张图片"),
        ("/mj/submit/describe", {"base64": ""}, "base64不能为空"),
        ("/mj/submit/shorten", {"prompt": ""}, "prompt不能为空"),
        ("/mj/submit/action", {"taskId": "1", "customId": " "}, "参数错误"),
        ("/mj/submit/modal", {"prompt": "x"}, "参数错误"),
        ("/mj/insight-face/swap", {"targetBase64": "AAAA"}, "人脸图片不能为空"),
        ("/mj/insight-face/swap", {"sourceBase64": "AAAA"}, "目标图片不能为空"),
        ("/mj/insight-face/swap", {"sourceBase64": "AAAA", "targetBase64": "AAAA"}, "人脸图片和目标图片不能相同"),
        ("/mj/submit/video", {"prompt": ""}, "Prompt 不能为空"),
        ("/mj/submit/video", {"prompt": "bees", "image": "%%%"}, "base64格式错误"),
        ("/mj/submit/edits", {"prompt": "x"}, "image或prompt不能为空"),
        ("/mj/submit/edits", {"image": "AAAA"}, "image或prompt不能为空"),
        ("/mj/submit/upload-discord-images", {"base64Array": []}, "base64 参数错误"),
        ("/mj/submit/upload-discord-images", {"base64Array": ["%%%"]}, "base64格式错误"),
        ("/mj/submit/upload-discord-images", {"base64Array": ["data:image/png;base64,"]}, "base64格式错误"),
        ("/mj/submit/show", {"jobId": ""}, "请填写 job id 或 url"),
        ("/mj/submit/show", {"jobId": "not-a-job"}, "job id 格式错误"),
        ("/mj/submit/show", {"jobId": "x3dbbd469-36af-4a0f-8f02-df6c579e7011"}, "job id 格式错误"),
        ("/mj/submit/change", {"action": "UPSCALE", "index": 1}, "taskId不能为空"),
        ("/mj/submit/change", {"taskId": "1", "index": 1}, "action参数错误"),
        ("/mj/submit/change", {"taskId": "1", "action": "DESCRIBE"}, "action参数错误"),
        ("/mj/submit/simple-change", {"content": "123 U5"}, "content参数错误"),
        ("/mj/submit/simple-change", {"content": "123"}, "content参数错误"),
        ("/mj/submit/imagine", {"prompt": "cat", "state": "s" * 300}, TOO_LONG),
    ],
)
async def test_invalid_submits_answer_code_4_with_the_upstream_message(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any], description: str
) -> None:
    assert_code(await post(client, path, body), 4, description)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/mj/submit/imagine", b'{"prompt": "cat"'),
        ("/mj/submit/imagine", b"[1, 2]"),
        ("/mj/submit/imagine", b""),
        ("/mj/submit/blend", b'{"base64Array": ["AAAA", "AAAB"], "dimensions": "WIDE"}'),
        ("/mj/submit/video", b'{"prompt": "bees", "motion": "fast"}'),
        ("/mj/submit/change", b'{"taskId": "1", "action": "ZOOMIN", "index": 1}'),
        ("/mj/task/list-by-condition", b'{"ids": "abc"}'),
        ("/mj/task/query", b'{"pageSize": 1000}'),
    ],
)
async def test_unreadable_bodies_get_spring_400_json(client: httpx2.AsyncClient, path: str, content: bytes) -> None:
    response = await client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["error"], body["path"]) == (400, "Bad Request", path)
    assert re.match(r"\d{4}-\d\d-\d\dT", body["timestamp"])


@pytest.mark.anyio
async def test_unknown_keys_are_ignored_and_key_case_does_not_matter(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    task_id = await submit(
        client,
        "/mj/submit/imagine",
        {"PROMPT": "cat", "accountFilter": {"modes": ["FAST"]}, "notifyhook": "http://hook", "whatever": 1},
    )
    assert sim.tasks[task_id].notify_hook == "http://hook"
    assert (await fetch(client, task_id))["properties"]["notifyHook"] == "http://hook"
    swap = {
        "sourceBase64": png_uri((1, 2, 3)),
        "targetBase64": png_uri((4, 5, 6)),
        "accountFilter": {"instanceId": "a", "modes": ["FAST"]},
    }
    await submit(client, "/mj/insight-face/swap", swap)


@pytest.mark.anyio
async def test_imagine_uploads_image_prompts_and_serves_them_back(client: httpx2.AsyncClient) -> None:
    image = png_uri((10, 200, 10))
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat", "base64Array": [image]})
    task = await fetch(client, task_id)
    url, rest = task["prompt"].split(" ", 1)
    assert rest == "cat"
    assert re.fullmatch(r"http://sim/sim/uploads/upload_\w+\.png", url)
    served = await client.get(url)
    assert served.headers["content-type"] == "image/png"
    assert served.content == base64.b64decode(image.split(",", 1)[1])


@pytest.mark.anyio
async def test_imagine_with_video_flag_becomes_a_video_job(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    task = await finished(client, clock, await submit(client, "/mj/submit/imagine", {"prompt": "waves --video"}))
    assert task["action"] == "VIDEO"
    assert len(task["videoUrls"]) == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("dimensions", "ratio", "size"),
    [(None, "1:1", (1024, 1024)), ("PORTRAIT", "2:3", (682, 1024)), ("LANDSCAPE", "3:2", (1024, 682))],
)
async def test_blend_turns_dimensions_into_an_aspect_ratio(
    client: httpx2.AsyncClient,
    clock: ManualClock,
    dimensions: str | None,
    ratio: str,
    size: tuple[int, int],
) -> None:
    body: dict[str, Any] = {"base64Array": [png_uri((1, 1, 1)), png_uri((2, 2, 2))]}
    if dimensions:
        body["dimensions"] = dimensions
    task = await finished(client, clock, await submit(client, "/mj/submit/blend", body))
    assert task["action"] == "BLEND"
    assert task["prompt"].endswith(f"--ar {ratio}")
    assert task["description"] == f"/blend {task['id']} 2"
    assert (await image_of(client, task["imageUrl"])).size == size
    assert len(task["buttons"]) == 9


@pytest.mark.anyio
async def test_describe_returns_four_prompts_and_picreader_buttons(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    image = png_uri((0, 0, 255), size=(30, 20))
    task_id = await submit(client, "/mj/submit/describe", {"base64": image})
    clock.advance(3)
    running = await fetch(client, task_id)
    assert (running["prompt"], running["buttons"]) == (None, [])
    assert "finalPrompt" not in running["properties"]
    task = await finished(client, clock, task_id)
    text = task["properties"]["finalPrompt"]
    assert task["prompt"] == task["promptEn"] == text
    items = text.split("\n\n")
    assert [item[:3] for item in items] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert all(item.endswith("--ar 3:2") for item in items)
    assert [(b["customId"], b["emoji"], b["label"]) for b in task["buttons"]] == [
        ("MJ::Job::PicReader::1", "1️⃣", ""),
        ("MJ::Job::PicReader::2", "2️⃣", ""),
        ("MJ::Job::PicReader::3", "3️⃣", ""),
        ("MJ::Job::PicReader::4", "4️⃣", ""),
        ("MJ::Picread::Retry", "🔄", ""),
        ("MJ::Job::PicReader::all", "🎉", "Imagine all"),
    ]
    served = await client.get(task["imageUrl"])
    assert served.content == base64.b64decode(image.split(",", 1)[1])
    assert (await client.get(f"/sim/images/{task['id']}.png")).status_code == 404


@pytest.mark.anyio
async def test_describe_accepts_bytes_it_cannot_open_as_a_square_image(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task = await finished(client, clock, await submit(client, "/mj/submit/describe", {"base64": "AAAAAAAA"}))
    assert task["prompt"].count("--ar 1:1") == 4


@pytest.mark.anyio
async def test_describe_buttons_lead_to_modal_imagine_all_and_a_new_describe(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task = await finished(client, clock, await submit(client, "/mj/submit/describe", {"base64": png_uri()}))
    line2 = task["prompt"].split("\n\n")[1].removeprefix("2️⃣ ")

    modal = await press(client, task, "MJ::Job::PicReader::2")
    assert (modal["code"], modal["description"]) == (21, "Waiting for window confirm")
    assert modal["properties"] == {"finalPrompt": line2, "remix": True}
    assert modal["result"] != task["id"]
    confirmed = await post(client, "/mj/submit/modal", {"taskId": modal["result"]})
    assert confirmed["result"] == modal["result"]
    imagined = await finished(client, clock, modal["result"])
    assert (imagined["action"], imagined["prompt"]) == ("IMAGINE", line2)

    everything = await press(client, task, "Imagine all")
    ids = everything["result"].split(",")
    assert (everything["code"], len(ids)) == (1, 4)
    assert [(await fetch(client, i))["action"] for i in ids] == ["IMAGINE"] * 4

    retry = await press_done(client, clock, task, "MJ::Picread::Retry")
    assert retry["action"] == "DESCRIBE"
    assert retry["imageUrl"] == task["imageUrl"]
    assert retry["prompt"] != task["prompt"]
    assert retry["parentId"] == task["id"]


@pytest.mark.anyio
async def test_shorten_returns_markdown_and_prompt_analyzer_buttons(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    prompt = "a majestic red fox sitting in a snowy forest at dawn --ar 16:9 --v 6"
    task = await finished(client, clock, await submit(client, "/mj/submit/shorten", {"prompt": prompt}))
    text = task["properties"]["finalPrompt"]
    assert text.startswith("## Important tokens\n")
    assert "\n\n## Shortened prompts\n1️⃣ " in text
    assert re.findall(r"(\d)\ufe0f\u20e3", text) == ["1", "2", "3", "4", "5"]
    assert task["prompt"] == prompt
    assert task["imageUrl"] is None
    assert [b["customId"] for b in task["buttons"]][:5] == [f"MJ::Job::PromptAnalyzer::{n}" for n in range(1, 6)]
    assert task["buttons"][5]["label"] == "Show Details"

    modal = await press(client, task, "3️⃣")
    assert modal["code"] == 21
    assert modal["properties"]["finalPrompt"] == re.findall(r"3️⃣ (.+)", text)[0]
    assert numbered_line(text, 9) is None
    assert_code(await press(client, task, "Show Details"), 4, "未知的 Action 类型")


@pytest.mark.anyio
async def test_action_checks_its_arguments_in_the_upstream_order(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    running_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
    reply = await post(client, "/mj/submit/action", {"taskId": running_id, "customId": "MJ::JOB::upsample::1::x"})
    assert_code(reply, 4, "关联任务状态错误")

    done = await finished(client, clock, running_id)
    for custom_id in ("MJ::JOB::upsample::1::other-hash", "MJ::Nonsense::1", "MJ::BOOKMARK::x"):
        reply = await post(client, "/mj/submit/action", {"taskId": done["id"], "customId": custom_id})
        assert_code(reply, 4, "未知的 Action 类型")


@pytest.mark.anyio
async def test_upscale_makes_a_single_image_task_with_the_v7_button_set(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    grid = await imagine_done(client, clock)
    upscale = await press_done(client, clock, grid, "U2")
    h = upscale["properties"]["messageHash"]
    assert (upscale["action"], upscale["parentId"]) == ("UPSCALE", grid["id"])
    assert upscale["properties"]["action_index"] == 2
    assert upscale["description"] == f"/up {grid['id']} U2"
    assert h != grid["properties"]["messageHash"]
    assert [(b["label"], b["emoji"], b["customId"]) for b in upscale["buttons"]] == [
        ("Upscale (Subtle)", "upscale_1", f"MJ::JOB::upsample_v7_2x_subtle::1::{h}::SOLO"),
        ("Upscale (Creative)", "upscale_1", f"MJ::JOB::upsample_v7_2x_creative::1::{h}::SOLO"),
        ("Vary (Subtle)", "🪄", f"MJ::JOB::low_variation::1::{h}::SOLO"),
        ("Vary (Strong)", "🪄", f"MJ::JOB::high_variation::1::{h}::SOLO"),
        ("Vary (Region)", "🖌️", f"MJ::Inpaint::1::{h}::SOLO"),
        ("Zoom Out 2x", "🔍", f"MJ::Outpaint::50::1::{h}::SOLO"),
        ("Zoom Out 1.5x", "🔍", f"MJ::Outpaint::75::1::{h}::SOLO"),
        ("Custom Zoom", "🔍", f"MJ::CustomZoom::{h}"),
        ("", "⬅️", f"MJ::JOB::pan_left::1::{h}::SOLO"),
        ("", "➡️", f"MJ::JOB::pan_right::1::{h}::SOLO"),
        ("", "⬆️", f"MJ::JOB::pan_up::1::{h}::SOLO"),
        ("", "⬇️", f"MJ::JOB::pan_down::1::{h}::SOLO"),
        ("Animate (High motion)", "🎞️", f"MJ::JOB::animate_high::1::{h}::SOLO"),
        ("Animate (Low motion)", "🎞️", f"MJ::JOB::animate_low::1::{h}::SOLO"),
        ("", "❤️", f"MJ::BOOKMARK::{h}"),
    ]


@pytest.mark.anyio
async def test_an_upscale_is_drawn_from_its_quadrant_of_the_grid(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    grid = await imagine_done(client, clock, "a lighthouse")
    grid_img = (await image_of(client, grid["imageUrl"])).convert("RGB")
    assert grid_img.size == (1024, 1024)
    corners = {1: (511, 0), 2: (1023, 0), 3: (511, 512), 4: (1023, 512)}
    for n in (2, 3):
        upscale = await press_done(client, clock, grid, f"U{n}")
        single = (await image_of(client, upscale["imageUrl"])).convert("RGB")
        assert single.size == (1024, 1024)
        assert single.getpixel((1023, 0)) == grid_img.getpixel(corners[n])
    assert grid_img.getpixel(corners[1]) != grid_img.getpixel(corners[2])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prompt", "family_ids", "spatial"),
    [
        ("cat --v 6.1", ["upsample_v6r1_2x_subtle", "upsample_v6r1_2x_creative"], True),
        ("cat --v 6", ["upsample_v6_2x_subtle", "upsample_v6_2x_creative"], True),
        ("cat --niji 6", ["upsample_v6_2x_subtle", "upsample_v6_2x_creative"], True),
        ("cat --niji", ["upsample_v6_2x_subtle", "upsample_v6_2x_creative"], True),
        ("cat --niji 7", ["upsample_v7_2x_subtle", "upsample_v7_2x_creative"], True),
        ("cat --niji 5", ["upsample_v5_2x", "upsample_v5_4x"], True),
        ("cat --version 5.2", ["upsample_v5_2x", "upsample_v5_4x"], True),
        ("cat --v 4", ["upsample_v5_2x", "upsample_v5_4x"], False),
        ("cat --v 8", [], False),
    ],
)
async def test_single_image_buttons_follow_the_model_version(
    client: httpx2.AsyncClient, clock: ManualClock, prompt: str, family_ids: list[str], spatial: bool
) -> None:
    upscale = await upscale_done(client, clock, prompt)
    ids = [b["customId"] for b in upscale["buttons"]]
    assert [i.split("::")[2] for i in ids if i.startswith("MJ::JOB::upsample_")] == family_ids
    assert any(i.startswith("MJ::JOB::pan_left") for i in ids) == spatial
    assert any(i.startswith("MJ::CustomZoom::") for i in ids) == spatial
    assert ids[-1].startswith("MJ::BOOKMARK::")
    assert upscale["properties"]["finalPrompt"] == prompt


@pytest.mark.anyio
async def test_niji_prompts_run_on_the_niji_bot(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    assert (await imagine_done(client, clock, "cat --niji 6"))["botType"] == "NIJI_JOURNEY"
    body = {"prompt": "cat", "botType": "NIJI_JOURNEY"}
    assert (await fetch(client, await submit(client, "/mj/submit/imagine", body)))["botType"] == "NIJI_JOURNEY"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("from_upscale", "wanted", "action", "button_count"),
    [
        (False, "V3", "VARIATION", 9),
        (False, "🔄", "IMAGINE", 9),
        (True, "Vary (Subtle)", "VARIATION", 9),
        (True, "Vary (Strong)", "VARIATION", 9),
        (True, "⬅️", "PAN", 9),
        (True, "⬇️", "PAN", 9),
        (True, "Zoom Out 2x", "ZOOM", 9),
        (True, "Zoom Out 1.5x", "ZOOM", 9),
        (True, "Upscale (Subtle)", "UPSCALE_HD", 8),
        (True, "Upscale (Creative)", "UPSCALE_HD", 8),
        (True, "Animate (High motion)", "VIDEO", 5),
    ],
)
async def test_buttons_make_new_tasks_of_the_mapped_action(
    client: httpx2.AsyncClient,
    clock: ManualClock,
    from_upscale: bool,
    wanted: str,
    action: str,
    button_count: int,
) -> None:
    grid = await imagine_done(client, clock, "a red fox")
    parent = await press_done(client, clock, grid, "U1") if from_upscale else grid
    child = await press_done(client, clock, parent, wanted)
    assert child["action"] == action
    assert child["parentId"] == parent["id"]
    assert child["prompt"] == "a red fox"
    assert len(child["buttons"]) == button_count
    assert (await client.get(child["imageUrl"])).status_code == 200


@pytest.mark.anyio
async def test_upscale_hd_offers_vary_zoom_animate_and_reroll(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    hd = await press_done(client, clock, await upscale_done(client, clock), "Upscale (Subtle)")
    assert [b["label"] or b["emoji"] for b in hd["buttons"]] == [
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out 2x",
        "Zoom Out 1.5x",
        "Custom Zoom",
        "Animate (High motion)",
        "Animate (Low motion)",
        "🔄",
    ]
    again = await press_done(client, clock, hd, "🔄")
    assert again["action"] == "UPSCALE_HD"


@pytest.mark.anyio
async def test_bookmark_answers_code_1_with_the_parent_id_and_creates_nothing(
    client: httpx2.AsyncClient, clock: ManualClock, sim: Simulator
) -> None:
    upscale = await upscale_done(client, clock)
    count = len(sim.tasks)
    reply = await press(client, upscale, "❤️")
    assert (reply["code"], reply["result"]) == (1, upscale["id"])
    assert len(sim.tasks) == count


@pytest.mark.anyio
async def test_custom_zoom_waits_in_modal_until_confirmed_with_a_zoom_between_1_and_2(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    upscale = await upscale_done(client, clock, "a koi pond")
    modal = await press(client, upscale, "Custom Zoom")
    assert modal == {
        "code": 21,
        "description": "Waiting for window confirm",
        "result": modal["result"],
        "properties": {"finalPrompt": "a koi pond", "remix": True},
    }
    task_id = modal["result"]
    clock.advance(100)
    waiting = await fetch(client, task_id)
    assert (waiting["status"], waiting["action"], waiting["progress"]) == ("MODAL", "ZOOM", None)
    assert waiting["properties"]["remix"] is True
    assert waiting["properties"]["finalPrompt"] == "a koi pond --v 7"

    for prompt in ("a koi pond", "a koi pond --zoom 3", "a koi pond --zoom 0.5"):
        reply = await post(client, "/mj/submit/modal", {"taskId": task_id, "prompt": prompt})
        assert_code(reply, 4, "--zoom参数错误，取值范围 1~2")
    reply = await post(client, "/mj/submit/modal", {"taskId": task_id, "prompt": "a koi pond --zoom 1.5"})
    assert (reply["code"], reply["result"]) == (1, task_id)
    assert (await fetch(client, task_id))["status"] == "NOT_START"
    done = await finished(client, clock, task_id)
    assert done["prompt"] == "a koi pond --zoom 1.5"
    assert len(done["buttons"]) == 9

    again = await post(client, "/mj/submit/modal", {"taskId": task_id, "prompt": "other --zoom 2"})
    assert (again["code"], again["result"]) == (1, task_id)
    assert (await fetch(client, task_id))["prompt"] == "a koi pond --zoom 1.5"


@pytest.mark.anyio
async def test_vary_region_needs_a_valid_mask_before_it_runs(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    upscale = await upscale_done(client, clock)
    modal = await press(client, upscale, "Vary (Region)")
    assert modal["code"] == 21
    task_id = modal["result"]
    assert_code(await post(client, "/mj/submit/modal", {"taskId": task_id}), 4, "maskBase64不能为空")
    bad = {"taskId": task_id, "maskBase64": "%%%"}
    assert_code(await post(client, "/mj/submit/modal", bad), 4, "base64格式错误")
    wrong_size = {"taskId": task_id, "maskBase64": png_uri((255, 255, 255)), "prompt": "a hat"}
    assert_code(await post(client, "/mj/submit/modal", wrong_size), 4, MSG_MASK_SIZE)
    good = {"taskId": task_id, "maskBase64": png_uri((255, 255, 255), (1024, 1024)), "prompt": "a hat"}
    assert (await post(client, "/mj/submit/modal", good))["code"] == 1
    done = await finished(client, clock, task_id)
    assert (done["action"], done["prompt"]) == ("VARIATION", "a hat")


@pytest.mark.anyio
async def test_modal_refuses_a_blank_prompt_and_banned_words(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    shorten = await finished(client, clock, await submit(client, "/mj/submit/shorten", {"prompt": "cat"}))
    modal = await press(client, shorten, "1️⃣")
    task_id = modal["result"]
    reply = await post(client, "/mj/submit/modal", {"taskId": task_id, "prompt": "a bannedword"})
    assert reply["code"] == 24
    assert (await post(client, "/mj/submit/modal", {"taskId": task_id}))["code"] == 1


@pytest.mark.anyio
async def test_modal_without_any_prompt_is_refused(client: httpx2.AsyncClient, sim: Simulator) -> None:
    grid_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
    sim.tasks[grid_id].prompt = None
    sim.tasks[grid_id].final_prompt = None
    sim.tasks[grid_id].queued_at = None
    assert_code(await post(client, "/mj/submit/modal", {"taskId": grid_id}), 4, "prompt不能为空")


@pytest.mark.anyio
async def test_enable_remix_turns_a_variation_into_a_modal(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    grid = await imagine_done(client, clock)
    reply = await press(client, grid, "V1", enableRemix=True)
    assert reply["code"] == 21
    assert (await fetch(client, reply["result"]))["status"] == "MODAL"
    remixed = await post(client, "/mj/submit/modal", {"taskId": reply["result"], "prompt": "a dog"})
    assert remixed["code"] == 1
    assert (await finished(client, clock, reply["result"]))["action"] == "VARIATION"


@pytest.mark.anyio
async def test_swap_face_makes_a_single_image_without_buttons(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    body = {"sourceBase64": png_uri((1, 1, 1)), "targetBase64": png_uri((9, 9, 9)), "state": "s1"}
    task = await finished(client, clock, await submit(client, "/mj/insight-face/swap", body))
    assert (task["action"], task["botType"], task["state"], task["buttons"]) == ("SWAP_FACE", "INSIGHT_FACE", "s1", [])
    assert (await image_of(client, task["imageUrl"])).size == (1024, 1024)


@pytest.mark.anyio
async def test_video_succeeds_with_four_served_videos_and_upscale_buttons(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    first_frame = png_uri((5, 50, 5))
    body = {"prompt": "a bee arrives", "image": first_frame, "motion": "high"}
    task = await finished(client, clock, await submit(client, "/mj/submit/video", body))
    assert task["action"] == "VIDEO"
    assert task["videoUrl"] == task["videoUrls"][0]["url"]
    assert len(task["videoUrls"]) == 4
    for entry in task["videoUrls"]:
        video = await client.get(entry["url"])
        assert video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"
        assert (await image_of(client, entry["thumbnail"])).format == "PNG"
    assert (await client.get(task["imageUrl"])).content == base64.b64decode(first_frame.split(",", 1)[1])
    assert task["properties"]["finalPrompt"].endswith("a bee arrives --video 1 --motion high --v 7")
    h = task["properties"]["messageHash"]
    assert [b["customId"] for b in task["buttons"]] == [
        *(f"MJ::JOB::video_virtual_upscale::{n}::{h}" for n in range(1, 5)),
        f"MJ::JOB::reroll::0::{h}::SOLO",
    ]

    upscaled = await press_done(client, clock, task, "U2")
    assert upscaled["action"] == "UPSCALE"
    assert len(upscaled["videoUrls"]) == 1
    assert [b["label"] for b in upscaled["buttons"]] == ["Extend (High motion)", "Extend (Low motion)"]
    extended = await press_done(client, clock, upscaled, "Extend (Low motion)")
    assert extended["action"] == "VIDEO"

    rerolled = await press_done(client, clock, task, "🔄")
    assert (rerolled["action"], rerolled["imageUrl"]) == ("VIDEO", task["imageUrl"])


@pytest.mark.anyio
async def test_videos_of_unknown_or_non_video_tasks_are_not_found(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    grid = await imagine_done(client, clock)
    assert (await client.get(f"/sim/videos/{grid['id']}/0.mp4")).status_code == 404
    assert (await client.get("/sim/videos/123/0.mp4")).status_code == 404


@pytest.mark.anyio
async def test_edits_returns_four_image_urls_and_the_alias_route_works(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    body = {"prompt": "white background", "image": png_uri()}
    task = await finished(client, clock, await submit(client, "/mj/submit/edits", body))
    assert (task["action"], task["buttons"]) == ("EDIT", [])
    assert len(task["imageUrls"]) == 4
    quadrant = await image_of(client, task["imageUrls"][0]["url"])
    assert quadrant.size == (512, 512)
    assert task["baseImageUrl"].startswith("http://sim/sim/uploads/")
    assert f"--dref {task['baseImageUrl']}" in task["properties"]["finalPrompt"]
    alias = await submit(client, "/mj/submit/edit", {"prompt": "red background", "image": "https://x.test/a.png"})
    assert (await fetch(client, alias))["baseImageUrl"] == "https://x.test/a.png"


@pytest.mark.anyio
async def test_upload_returns_urls_that_serve_the_uploaded_bytes(client: httpx2.AsyncClient, sim: Simulator) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    raw_jpeg = base64.b64encode(jpeg.getvalue()).decode()
    images = [png_uri((1, 2, 3)), raw_jpeg, png_uri((3, 2, 1)).split(",", 1)[1]]
    count = len(sim.tasks)
    reply = await post(client, "/mj/submit/upload-discord-images", {"base64Array": images})
    assert (reply["code"], reply["description"], reply["properties"]) == (1, "提交成功", {})
    assert [url.rsplit(".", 1)[1] for url in reply["result"]] == ["png", "jpg", "png"]
    for url, image in zip(reply["result"], images, strict=True):
        served = await client.get(url)
        assert served.content == base64.b64decode(image.split(",")[-1])
    assert len(sim.tasks) == count
    assert (await client.get("/sim/uploads/nothing.png")).status_code == 404


@pytest.mark.anyio
async def test_uploads_are_bounded_and_sniffed(client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "UPLOAD_LIMIT", 2)
    blobs = [base64.b64encode(data).decode() for data in (b"GIF89a..", b"RIFF\0\0\0\0WEBPVP8 ", b"\x00\x01\x02")]
    reply = await post(client, "/mj/submit/upload-discord-images", {"base64Array": blobs})
    assert [u.rsplit(".", 1)[1] for u in reply["result"]] == ["gif", "webp", "bin"]
    assert (await client.get(reply["result"][0])).status_code == 404
    assert (await client.get(reply["result"][2])).status_code == 200


@pytest.mark.anyio
async def test_show_recalls_a_known_job_or_creates_a_show_task(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    grid = await imagine_done(client, clock)
    h = grid["properties"]["messageHash"]
    known = await post(client, "/mj/submit/show", {"jobId": h})
    assert (known["code"], known["result"]) == (1, grid["id"])

    job = "3dbbd469-36af-4a0f-8f02-df6c579e7011"
    url = f"https://cdn.midjourney.com/{job}/0_0.png"
    shown = await finished(client, clock, await submit(client, "/mj/submit/show", {"jobId": url}))
    assert (shown["action"], shown["properties"]["messageHash"]) == ("SHOW", job)
    assert shown["buttons"][0]["customId"] == f"MJ::JOB::upsample::1::{job}"
    assert (await press_done(client, clock, shown, "🔄"))["action"] == "IMAGINE"


@pytest.mark.anyio
async def test_change_and_simple_change_press_the_grid_buttons(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    grid = await imagine_done(client, clock)
    up = await post(client, "/mj/submit/change", {"taskId": grid["id"], "action": "UPSCALE", "index": 2})
    upscale = await finished(client, clock, up["result"])
    assert (upscale["action"], upscale["description"]) == ("UPSCALE", f"/up {grid['id']} U2")
    varied = await post(client, "/mj/submit/simple-change", {"content": f"{grid['id']} v3"})
    assert (await fetch(client, varied["result"]))["action"] == "VARIATION"
    rerolled = await post(client, "/mj/submit/simple-change", {"content": f" {grid['id']}  r "})
    reroll = await finished(client, clock, rerolled["result"])
    assert reroll["action"] == "REROLL"
    again = await post(client, "/mj/submit/change", {"taskId": reroll["id"], "action": "REROLL"})
    assert (await fetch(client, again["result"]))["action"] == "REROLL"

    missing_index = await client.post("/mj/submit/change", json={"taskId": grid["id"], "action": "VARIATION"})
    assert missing_index.status_code == 500  # NZ's NullPointerException
    assert missing_index.json()["error"] == "Internal Server Error"
    not_a_grid = await post(client, "/mj/submit/change", {"taskId": upscale["id"], "action": "UPSCALE", "index": 1})
    assert_code(not_a_grid, 4, "关联任务不允许执行变化")
    running = await post(client, "/mj/submit/change", {"taskId": again["result"], "action": "UPSCALE", "index": 1})
    assert_code(running, 4, "关联任务状态错误")
    response = await client.post("/mj/submit/simple-change", json={"content": "404404 U1"})
    assert (response.status_code, response.json()["code"]) == (404, 3)


# ---------------------------------------------------------------------------------------------
# Read endpoints


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("quirk", "status", "content"),
    [
        ("204", 204, b""),
        ("empty200", 200, b""),
        ("400", 400, b'{"description":"task_no_found ","type":"upstream_error","code":4}'),
    ],
)
async def test_fetching_an_unknown_task_answers_in_the_chosen_dialect(
    clock: ManualClock, quirk: Any, status: int, content: bytes
) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(unknown_fetch=quirk))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        response = await client.get("/mj/task/1234567890123456/fetch")
    assert (response.status_code, response.content) == (status, content)


@pytest.mark.anyio
async def test_list_by_condition_omits_missing_ids_and_accepts_empty_lists(client: httpx2.AsyncClient) -> None:
    a = await submit(client, "/mj/submit/imagine", {"prompt": "a"})
    b = await submit(client, "/mj/submit/imagine", {"prompt": "b"})
    tasks = await post(client, "/mj/task/list-by-condition", {"ids": [a, "missing", f" {b} ", a]})
    assert [t["id"] for t in tasks] == [a, b]
    assert await post(client, "/mj/task/list-by-condition", {"ids": []}) == []
    assert await post(client, "/mj/task/list-by-condition", {"ids": None}) == []
    assert await post(client, "/mj/task/list-by-condition", {}) == []
    assert [t["id"] for t in await post(client, "/mj/task/list-by-ids", {"ids": [b]})] == [b]


@pytest.mark.anyio
async def test_list_by_condition_can_be_switched_off_to_test_client_fallbacks(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(list_by_condition=False))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        for path in ("/mj/task/list-by-condition", "/mj/task/list-by-ids"):
            assert (await client.post(path, json={"ids": ["1"]})).status_code == 404
        assert (await client.get("/mj/task/list")).status_code == 200


@pytest.mark.anyio
async def test_recent_tasks_are_the_latest_hundred_newest_first(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    ids: list[str] = []
    for i in range(103):
        ids.append(await submit(client, "/mj/submit/imagine", {"prompt": f"cat {i}"}))
        clock.advance(0.001 * (i % 2))
    response = await client.get("/mj/task/list")
    listed = [t["id"] for t in response.json()]
    assert listed == list(reversed(ids))[:100]


@pytest.mark.anyio
async def test_the_queue_lists_unfinished_tasks_oldest_first(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    upscale = await upscale_done(client, clock)
    await press(client, upscale, "Custom Zoom")  # a MODAL task is not queued
    running = await submit(client, "/mj/submit/imagine", {"prompt": "running"})
    clock.advance(3)
    submitted = await submit(client, "/mj/submit/imagine", {"prompt": "submitted"})
    clock.advance(1)
    waiting = await submit(client, "/mj/submit/imagine", {"prompt": "waiting"})
    queue = (await client.get("/mj/task/queue")).json()
    assert [(t["id"], t["status"]) for t in queue] == [
        (running, "IN_PROGRESS"),
        (submitted, "SUBMITTED"),
        (waiting, "NOT_START"),
    ]


@pytest.mark.anyio
async def test_the_paged_query_filters_sorts_and_pages(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    cats = [await submit(client, "/mj/submit/imagine", {"prompt": f"cat {i}", "state": "pets"}) for i in range(3)]
    clock.advance(1)
    dog = await finished(client, clock, await submit(client, "/mj/submit/imagine", {"prompt": "dog"}))
    failing = await submit(client, "/mj/submit/imagine", {"prompt": "bird simulate-failure"})
    clock.advance(JOB)

    async def ids(**filters: Any) -> list[str]:
        page = await post(client, "/mj/task/query", {"pageSize": 100, **filters})
        return [t["id"] for t in page["content"]]

    assert await ids(prompt="cat") == cats
    assert await ids(state="pets") == cats
    assert await ids(id=dog["id"]) == [dog["id"]]
    assert await ids(ids=[cats[0], failing]) == [cats[0], failing]
    assert await ids(status="FAILURE") == [failing]
    assert await ids(statusSet=["FAILURE", "NOT_START"]) == [failing]
    assert await ids(failReason="Invalid parameter") == [failing]
    assert await ids(action="UPSCALE") == []
    assert await ids(description="/imagine dog") == [dog["id"]]
    assert await ids(promptEn="bird") == [failing]
    assert len(await ids(instanceId=INSTANCE_ID)) == 5
    assert await ids(instanceId="other") == []
    assert await ids(sort="submitTime,desc") == [failing, dog["id"], *cats]
    assert await ids(sort="finishTime,asc", prompt="cat") == cats

    page = await post(client, "/mj/task/query", {"pageNumber": 1, "pageSize": 2, "sort": "id,asc"})
    assert [t["id"] for t in page["content"]] == sorted([*cats, dog["id"], failing])[2:4]
    assert page["pageable"] == {
        "sort": {"empty": False, "sorted": True, "unsorted": False},
        "offset": 2,
        "pageNumber": 1,
        "pageSize": 2,
        "paged": True,
        "unpaged": False,
    }
    assert (page["first"], page["last"], page["totalPages"], page["totalElements"]) == (False, False, 3, 5)
    last = await post(client, "/mj/task/query", {"pageNumber": 9, "pageSize": 2})
    assert (last["empty"], last["numberOfElements"], last["last"]) == (True, 0, True)
    empty = (await client.post("/mj/task/query", content=b"")).json()
    assert empty["size"] == 10

    late = await submit(client, "/mj/submit/imagine", {"prompt": "late"})
    assert (await ids(sort="finishTime,asc"))[0] == late
    assert (await ids(sort="finishTime,desc"))[-1] == late


@pytest.mark.anyio
async def test_image_seed_needs_a_finished_task(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    missing = await client.get("/mj/task/404/image-seed")
    assert (missing.status_code, missing.json()["code"]) == (404, 3)
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
    early = await client.get(f"/mj/task/{task_id}/image-seed")
    assert (early.status_code, early.json()["code"], early.json()["description"]) == (400, 4, "关联任务状态错误")
    await finished(client, clock, task_id)
    seed = (await client.get(f"/mj/task/{task_id}/image-seed")).json()
    assert seed["code"] == 1
    assert seed["result"].isdigit()
    assert (await client.get(f"/mj/task/{task_id}/image-seed")).json()["result"] == seed["result"]


@pytest.mark.anyio
async def test_cancel_fails_an_unfinished_task_and_answers_an_empty_200(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
    clock.advance(3)
    response = await client.post(f"/mj/task/{task_id}/cancel")
    assert (response.status_code, response.content) == (200, b"")
    clock.advance(JOB)
    task = await fetch(client, task_id)
    assert (task["status"], task["progress"], task["failReason"]) == ("FAILURE", "", "取消任务")
    assert task["finishTime"] == task["submitTime"] + 3000
    assert task["startTime"] == task["submitTime"] + 1000
    assert (await client.post("/mj/task/unknown/cancel")).content == b""

    grid = await imagine_done(client, clock)
    await client.post(f"/mj/task/{grid['id']}/cancel")
    assert (await fetch(client, grid["id"]))["status"] == "SUCCESS"

    queued = await submit(client, "/mj/submit/imagine", {"prompt": "queued"})
    await client.post(f"/mj/task/{queued}/cancel")
    assert (await fetch(client, queued))["startTime"] is None


@pytest.mark.anyio
async def test_cancel_answers_the_plus_body_when_asked(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(cancel_empty_body=False))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "cat"})
        first = (await client.post(f"/mj/task/{task_id}/cancel")).json()
        assert first == {"code": 1, "description": "success", "result": task_id}
        assert (await client.post(f"/mj/task/{task_id}/cancel")).json()["code"] == 4
        assert (await client.post("/mj/task/nope/cancel")).json()["code"] == 3


@pytest.mark.anyio
async def test_a_cancelled_modal_task_is_a_failure_and_cannot_be_confirmed(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    modal = await press(client, await upscale_done(client, clock), "Custom Zoom")
    await client.post(f"/mj/task/{modal['result']}/cancel")
    task = await fetch(client, modal["result"])
    assert (task["status"], task["failReason"]) == ("FAILURE", "取消任务")
    await post(client, "/mj/submit/modal", {"taskId": modal["result"], "prompt": "x --zoom 2"})
    assert (await fetch(client, modal["result"]))["status"] == "FAILURE"


# ---------------------------------------------------------------------------------------------
# Quirks


@pytest.mark.anyio
async def test_result_as_number_sends_ids_as_json_numbers(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(result_as_number=True))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        reply = await post(client, "/mj/submit/imagine", {"prompt": "cat"})
        assert isinstance(reply["result"], int)
        assert SubmitResult.model_validate(reply).task_id == str(reply["result"])
        assert (await fetch(client, str(reply["result"])))["id"] == str(reply["result"])


@pytest.mark.anyio
async def test_queue_position_answers_code_22_and_starts_later(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(queue_position=3))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        reply = await post(client, "/mj/submit/imagine", {"prompt": "cat"})
        assert (reply["code"], reply["description"]) == (22, "排队中，前面还有3个任务")
        assert reply["properties"]["numberOfQueues"] == 3
        assert SubmitResult.model_validate(reply).queue_position == 3
        clock.advance(3.5)
        assert (await fetch(client, reply["result"]))["status"] == "NOT_START"
        clock.advance(0.5)
        assert (await fetch(client, reply["result"]))["status"] == "SUBMITTED"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("quirk", "code", "description"), [("9", 9, "提交失败，队列已满，请稍后重试"), ("23", 23, "队列已满，请稍后尝试")]
)
async def test_a_full_queue_refuses_new_jobs(clock: ManualClock, quirk: Any, code: int, description: str) -> None:
    sim = Simulator(clock=clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        grid = await imagine_done(client, clock)
        sim.quirks.queue_full = quirk
        assert_code(await post(client, "/mj/submit/imagine", {"prompt": "cat"}), code, description)
        assert_code(await press(client, grid, "U1"), code, description)
        assert len(sim.tasks) == 1


@pytest.mark.anyio
async def test_banned_words_answer_code_24_with_the_word(client: httpx2.AsyncClient, sim: Simulator) -> None:
    reply = await post(client, "/mj/submit/imagine", {"prompt": "a BannedWord here"})
    assert (reply["code"], reply["description"], reply["result"]) == (24, "可能包含敏感词", None)
    assert reply["properties"] == {"promptEn": "a BannedWord here", "bannedWord": "bannedword"}
    for path, body in (
        ("/mj/submit/shorten", {"prompt": "bannedword"}),
        ("/mj/submit/video", {"prompt": "bannedword"}),
    ):
        assert (await post(client, path, body))["code"] == 24
    sim.quirks.banned_words = ("", "gore")
    assert (await post(client, "/mj/submit/imagine", {"prompt": "bannedword"}))["code"] == 1
    assert (await post(client, "/mj/submit/edits", {"prompt": "gore", "image": "AAAA"}))["code"] == 24


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-1"},
        {"Authorization": "sk-1"},
        {"mj-api-secret": "sk-1"},
        {"authorization": "bearer sk-1"},
    ],
)
async def test_every_supported_auth_header_style_is_accepted(clock: ManualClock, headers: dict[str, str]) -> None:
    sim = Simulator(clock=clock, api_key="sk-1")
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim", headers=headers) as client:
        assert (await post(client, "/mj/submit/imagine", {"prompt": "cat"}))["code"] == 1
        assert (await client.get("/fast/mj/task/list")).status_code == 200


@pytest.mark.anyio
async def test_a_missing_or_wrong_key_gets_401(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, api_key="sk-1")
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        for headers in ({}, {"Authorization": "Bearer sk-2"}, {"mj-api-secret": "Bearer sk-1"}):
            response = await client.post("/mj/submit/imagine", json={"prompt": "cat"}, headers=headers)
            assert (response.status_code, response.content) == (401, b"")
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/sim/images/1.png")).status_code == 404
        sim.quirks.auth_plain_text = True
        response = await client.get("/mj/task/list")
        assert (response.status_code, response.text) == (401, "Authorization header missing.")
        assert response.headers["content-type"].startswith("text/plain")
        assert len(sim.tasks) == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("prefix", "mode"),
    [
        ("", None),
        ("/fast", "FAST"),
        ("/relax", "RELAX"),
        ("/turbo", "TURBO"),
        ("/mj-fast", "FAST"),
        ("/mj-relax", "RELAX"),
        ("/mj-turbo", "TURBO"),
    ],
)
async def test_mode_prefixes_reach_every_route_and_set_the_task_mode(
    client: httpx2.AsyncClient, sim: Simulator, clock: ManualClock, prefix: str, mode: str | None
) -> None:
    task_id = await submit(client, f"{prefix}/mj/submit/imagine", {"prompt": "cat"})
    assert sim.request_log[-1] == ("POST", f"{prefix}/mj/submit/imagine")
    assert sim.mode_log[-1] == mode
    clock.advance(JOB)
    task = (await client.get(f"{prefix}/mj/task/{task_id}/fetch")).json()
    assert task["mode"] == mode
    expected = "cat --v 7" + (f" --{mode.lower()}" if mode else "")
    assert task["properties"]["finalPrompt"] == expected
    child = await press(client, task, "U1")
    assert (await fetch(client, child["result"]))["mode"] == mode
    for endpoint in ENDPOINTS.values():
        if endpoint.name in sim.profile.lacks:
            continue  # another upstream's route (trueai's retexture): PLUS answers 404
        path = prefix + endpoint.path.replace("{id}", task_id)
        response = await client.request(endpoint.method, path, json={} if endpoint.method == "POST" else None)
        assert response.status_code not in (404, 405), path


@pytest.mark.anyio
async def test_the_mode_comes_from_modes_or_the_prompt_without_a_prefix(client: httpx2.AsyncClient) -> None:
    by_modes = await submit(client, "/mj/submit/imagine", {"prompt": "cat", "modes": ["RELAX"]})
    by_prompt = await submit(client, "/mj/submit/imagine", {"prompt": "cat --turbo"})
    assert (await fetch(client, by_modes))["mode"] == "RELAX"
    assert (await fetch(client, by_prompt))["mode"] == "TURBO"


@pytest.mark.anyio
async def test_unknown_routes_prefixes_and_methods_are_refused(client: httpx2.AsyncClient) -> None:
    assert (await client.post("/warp/mj/submit/imagine", json={"prompt": "x"})).status_code == 404
    assert (await client.post("/mj/submit/nothing", json={})).status_code == 404
    assert (await client.get("/elsewhere")).status_code == 404
    assert (await client.get("/fast/health")).status_code == 404
    wrong = await client.get("/mj/submit/imagine")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "Method Not Allowed")
    assert (await client.get("/health")).json() == {"status": "ok"}


# ---------------------------------------------------------------------------------------------
# Faults


@pytest.mark.anyio
async def test_a_status_fault_hits_the_next_matching_request_only(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/submit/imagine", status=502, times=1))
    assert (await client.get("/mj/task/list")).status_code == 200
    failed = await client.post("/mj/submit/imagine", json={"prompt": "cat"})
    assert (failed.status_code, failed.content) == (502, b"")
    assert len(sim.tasks) == 0
    assert sim.pending_faults == []
    assert (await client.post("/mj/submit/imagine", json={"prompt": "cat"})).status_code == 200


@pytest.mark.anyio
async def test_a_rate_limit_fault_carries_its_headers_and_body(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/fetch", status=429, body="slow down", headers={"Retry-After": "2"}, times=2, method="get"))
    for _ in range(2):
        response = await client.get("/mj/task/1/fetch")
        assert (response.status_code, response.text, response.headers["retry-after"]) == (429, "slow down", "2")
    assert (await client.get("/mj/task/1/fetch")).status_code == 204
    sim.inject(Fault(path="/fetch", method="POST"))
    assert (await client.get("/mj/task/1/fetch")).status_code == 204


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        (Fault(kind="malformed_json"), 200, "application/json"),
        (Fault(kind="empty_body"), 200, "application/json"),
        (Fault(kind="html_error_page"), 502, "text/html"),
        (Fault(kind="html_error_page", status=504, body="<html>gateway</html>"), 504, "text/html"),
        (Fault(status=500), 500, None),
        (Fault(kind="html_error_page", status=599), 599, "text/html"),
    ],
)
async def test_body_faults_produce_unusable_replies(
    client: httpx2.AsyncClient, sim: Simulator, fault: Fault, status: int, content_type: str | None
) -> None:
    sim.inject(fault)
    response = await client.post("/mj/submit/imagine", json={"prompt": "cat"})
    assert response.status_code == status
    assert response.headers.get("content-type", "").split(";")[0] == (content_type or "")
    if fault.kind == "malformed_json":
        with pytest.raises(ValueError, match=r"."):
            response.json()
    if fault.kind == "html_error_page":
        assert re.search(r"<title>(502 Bad Gateway|599 Error)</title>|gateway", response.text)


@pytest.mark.anyio
async def test_a_fault_after_processing_loses_the_reply_but_keeps_the_job(
    client: httpx2.AsyncClient, sim: Simulator
) -> None:
    sim.inject(Fault(path="/submit/imagine", status=504, process_request=True))
    response = await client.post("/mj/submit/imagine", json={"prompt": "cat"})
    assert response.status_code == 504
    assert len(sim.tasks) == 1


@pytest.mark.anyio
async def test_a_permanent_fault_lasts_until_cleared(client: httpx2.AsyncClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/mj/task/list", status=503, times=None))
    for _ in range(3):
        assert (await client.get("/mj/task/list")).status_code == 503
    sim.clear_faults()
    assert (await client.get("/mj/task/list")).status_code == 200


@pytest.mark.anyio
async def test_the_request_log_records_every_request(client: httpx2.AsyncClient, sim: Simulator) -> None:
    await client.get("/health")
    await client.post("/mj-fast/mj/submit/imagine", json={"prompt": "cat"})
    await client.get("/nowhere")
    assert sim.request_log == [("GET", "/health"), ("POST", "/mj-fast/mj/submit/imagine"), ("GET", "/nowhere")]
    assert sim.mode_log == [None, "FAST", None]


# ---------------------------------------------------------------------------------------------
# Images


@pytest.mark.anyio
async def test_images_are_real_pngs_with_a_smaller_webp_preview(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a wide valley --ar 16:9"})
    clock.advance(3)
    running = await fetch(client, task_id)
    preview = await image_of(client, running["imageUrl"])
    assert (preview.format, preview.size) == ("WEBP", (256, 144))
    clock.advance(JOB)
    done = await fetch(client, task_id)
    final = await image_of(client, done["imageUrl"])
    assert (final.format, final.size) == ("PNG", (1024, 576))
    assert (done["imageWidth"], done["imageHeight"]) == (1024, 576)
    again = await client.get(done["imageUrl"])
    assert again.content == (await client.get(done["imageUrl"])).content
    quadrant = await image_of(client, f"/sim/images/{task_id}/4.png")
    assert quadrant.size == (512, 288)
    assert len(final.convert("RGB").getcolors(1 << 20) or []) > 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ratio", "size"), [("1:4", (256, 1024)), ("9:1", (1024, 256)), ("0:1", (1024, 1024)), ("2:3", (682, 1024))]
)
async def test_aspect_ratios_are_respected_within_limits(
    client: httpx2.AsyncClient, clock: ManualClock, ratio: str, size: tuple[int, int]
) -> None:
    task = await imagine_done(client, clock, f"tower --ar {ratio}")
    assert (await image_of(client, task["imageUrl"])).size == size


@pytest.mark.anyio
async def test_the_image_cache_stays_bounded(
    client: httpx2.AsyncClient, clock: ManualClock, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "IMAGE_CACHE_SIZE", 2)
    task = await imagine_done(client, clock)
    for n in range(1, 5):
        assert (await client.get(f"/sim/images/{task['id']}/{n}.png")).status_code == 200
    assert len(sim.media.images) == 2


@pytest.mark.anyio
async def test_unknown_images_are_not_found(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    for path in ("/sim/images/nope.png", "/sim/images/nope/preview.webp", "/sim/images/x/9.png", "/sim/other"):
        assert (await client.get(path)).status_code == 404
    assert (await client.get("/mj/image/nope")).status_code == 404
    shorten = await finished(client, clock, await submit(client, "/mj/submit/shorten", {"prompt": "cat"}))
    assert (await client.get(f"/mj/image/{shorten['id']}")).status_code == 404


@pytest.mark.anyio
async def test_the_new_api_image_proxy_redirects_to_external_first_frames(
    client: httpx2.AsyncClient, clock: ManualClock
) -> None:
    body = {"prompt": "bees", "image": "https://cdn.example.test/frame.png"}
    task = await finished(client, clock, await submit(client, "/mj/submit/video", body))
    assert task["imageUrl"] == "https://cdn.example.test/frame.png"
    response = await client.get(f"/mj/image/{task['id']}")
    assert (response.status_code, response.headers["location"]) == (302, "https://cdn.example.test/frame.png")


@pytest.mark.anyio
async def test_animate_uses_the_upscaled_picture_as_first_frame(client: httpx2.AsyncClient, clock: ManualClock) -> None:
    upscale = await upscale_done(client, clock)
    video = await press_done(client, clock, upscale, "Animate (Low motion)")
    assert video["imageUrl"] == upscale["imageUrl"]


# ---------------------------------------------------------------------------------------------
# Standalone server


def test_run_simulator_serves_a_new_simulator_with_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append((app, kwargs))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    run_simulator("127.0.0.1", 8099, job_seconds=2.0, api_key="k")
    [(app, kwargs)] = calls
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 8099)
    owner = app.simulator
    assert isinstance(owner, Simulator)
    assert (owner.job_seconds, owner.api_key) == (2.0, "k")


@pytest.mark.anyio
async def test_the_standalone_app_sends_callbacks_between_startup_and_shutdown() -> None:
    clock = FakeClock()
    sim = Simulator(clock=clock)
    bodies: list[bytes] = []
    finished = anyio.Event()

    async def hook(scope: Any, receive: Any, send: Any) -> None:
        bodies.append((await receive())["body"])
        if b"SUCCESS" in bodies[-1]:
            finished.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    to_app, from_test = anyio.create_memory_object_stream[dict[str, Any]](4)
    to_test, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    original = httpx2.AsyncClient

    def hooked_client(**kwargs: Any) -> httpx2.AsyncClient:
        return original(transport=httpx2.ASGITransport(app=hook), **kwargs)

    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim.test") as http:
        reply = await http.post("/mj/submit/imagine", json={"prompt": "x", "notifyHook": "http://hook.test/cb"})
    assert reply.json()["code"] == 1
    with anyio.fail_after(10), pytest.MonkeyPatch.context() as patch, to_app, from_test, to_test, from_app:
        patch.setattr(httpx2, "AsyncClient", hooked_client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sim.standalone_app(), {"type": "lifespan"}, from_test.receive, to_test.send)
            await to_app.send({"type": "lifespan.startup"})
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
            await finished.wait()
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
    statuses = [json.loads(body)["status"] for body in bodies]
    assert statuses[0] == "SUBMITTED" and statuses[-1] == "SUCCESS"


# ---------------------------------------------------------------------------------------------
# Authentication dialects (Quirks.auth)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("dialect", "headers", "accepted"),
    [
        ("nz", {"mj-api-secret": NA_KEY}, True),
        ("nz", {"Authorization": NA_KEY}, False),
        ("nz", {"Authorization": f"Bearer {NA_KEY}"}, False),
        ("ta", {"Authorization": NA_KEY}, True),
        ("ta", {"mj-api-secret": NA_KEY}, True),
        ("ta", {"Authorization": f"Bearer {NA_KEY}"}, False),
        ("ta", {"Authorization": "wrong", "mj-api-secret": NA_KEY}, False),  # Authorization wins
        ("ta", {"Authorization": "", "mj-api-secret": NA_KEY}, False),  # even when empty
        ("ta", {"Authorization": NA_KEY, "mj-api-secret": "wrong"}, True),
        ("new-api", {"Authorization": f"Bearer {NA_KEY}"}, True),
        ("new-api", {"Authorization": f"bearer {NA_KEY}"}, True),
        ("new-api", {"Authorization": f"BEARER {NA_KEY}"}, False),
        ("new-api", {"Authorization": NA_KEY}, True),
        ("new-api", {"Authorization": NA_KEY.removeprefix("sk-")}, True),
        ("new-api", {"Authorization": f"Bearer {NA_KEY}-7"}, True),  # "-7" picks a channel
        ("new-api", {"mj-api-secret": NA_KEY}, True),
        ("new-api", {"Authorization": "midjourney-proxy", "mj-api-secret": f"Bearer {NA_KEY}"}, True),
        ("new-api", {"Authorization": "Bearer sk-other", "mj-api-secret": NA_KEY}, False),
        ("new-api", {}, False),
    ],
)
async def test_each_auth_dialect_reads_the_key_from_its_own_headers(
    clock: ManualClock, dialect: Any, headers: dict[str, str], accepted: bool
) -> None:
    sim = Simulator(clock=clock, api_key=NA_KEY, quirks=Quirks(auth=dialect))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim", headers=headers) as client:
        response = await client.post("/mj/submit/imagine", json={"prompt": "cat"})
    assert (response.status_code == 200) is accepted, response.text
    assert len(sim.tasks) == int(accepted)


@pytest.mark.anyio
async def test_each_auth_dialect_fails_in_its_own_form(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, api_key=NA_KEY)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        sim.quirks.auth = "nz"
        response = await client.get("/mj/task/1/fetch", headers={"Authorization": NA_KEY})
        assert (response.status_code, response.content) == (401, b"")
        sim.quirks.auth = "ta"
        response = await client.get("/mj/task/1/fetch")
        assert (response.status_code, response.text) == (401, "Authorization header missing.")
        assert response.headers["content-type"].startswith("text/plain")
        sim.quirks.auth = "new-api"
        response = await client.get("/mj/task/1/fetch", headers={"Authorization": "Bearer sk-wrong"})
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("new_api_error", "")
        assert re.fullmatch(r"无效的令牌 \(request id: \d{14}[0-9a-f]{8}\)", error["message"])
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/mj/image/1")).status_code == 404  # new-api's image proxy: no auth


@pytest.mark.anyio
async def test_without_a_key_every_dialect_lets_everybody_in(clock: ManualClock) -> None:
    for dialect in ("nz", "ta", "new-api"):
        sim = Simulator(clock=clock, quirks=Quirks(auth=dialect))  # type: ignore[arg-type]
        async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
            assert (await client.post("/mj/submit/imagine", json={"prompt": "cat"})).status_code == 200


# ---------------------------------------------------------------------------------------------
# The layers' seams: one clock, one route table


@pytest.mark.anyio
async def test_a_manual_clock_sleeps_by_moving_on_and_never_goes_back() -> None:
    clock = ManualClock()
    start = clock.now()
    with anyio.fail_after(1):
        await clock.sleep(30)
        await clock.sleep(-5)  # a late deadline: no time passes
    assert clock.now() - start == 30


def test_by_default_the_simulator_runs_on_unix_time() -> None:
    sim = Simulator()
    assert isinstance(sim.clock, WallClock)
    assert abs(sim.clock.now() - time.time()) < 5


def test_the_upstream_routes_every_endpoint_and_the_ta_aliases() -> None:
    routes = Simulator().upstream.routes.routes
    assert {(r.endpoint.method, r.path) for r in routes} == {(e.method, e.path) for e in ENDPOINTS.values()} | {
        ("POST", "/mj/submit/edit"),
        ("POST", "/mj/task/list-by-ids"),
    }
