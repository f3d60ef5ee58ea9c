"""new-api in front of the simulated upstream (`Quirks.new_api`): its routes, its own checks and
records, the replies it rewrites, and its copy of each task.

Everything runs in-process through `Simulator.transport()` with a `ManualClock`: no sleeps.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest

from mj_mcp.simulator import FAIL_REASON, INSTANCE_ID, ManualClock, Quirks, Simulator
from tests.sim_http import (
    JOB,
    NA_KEY,
    assert_code,
    button,
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

NA_TASK_FIELDS = {
    "id",
    "action",
    "customId",
    "botType",
    "prompt",
    "promptEn",
    "description",
    "state",
    "submitTime",
    "startTime",
    "finishTime",
    "imageUrl",
    "videoUrl",
    "videoUrls",
    "status",
    "progress",
    "failReason",
    "buttons",
    "maskBase64",
    "properties",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def new_api_sim(clock: ManualClock, **quirks: Any) -> Simulator:
    return Simulator(clock=clock, quirks=Quirks(new_api=True, **quirks), seed=7)


def assert_na_error(response: httpx2.Response, description: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 4, "description": f"{description} ", "type": "upstream_error"}


def assert_distributor_error(response: httpx2.Response, status: int, message: str) -> None:
    """new-api's Distribute middleware refused the request before its controller saw it."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "new_api_error"
    assert re.fullmatch(re.escape(message) + r" \(request id: \w+\)", error["message"]), error


@pytest.mark.anyio
async def test_new_api_rewrites_a_remix_code_21_to_1_but_leaves_the_task_in_modal(clock: ManualClock) -> None:
    sim = new_api_sim(clock, remix=True)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        grid = await imagine_done(client, clock)
        reply = await press(client, grid, "V1")
        assert reply["code"] == 1
        assert reply["description"] == "Waiting for window confirm"  # only the code is replaced
        assert reply["properties"]["remix"] is True
        modal = await fetch(client, reply["result"])
        assert (modal["status"], modal["action"], modal["description"]) == (
            "MODAL",
            "VARIATION",
            "Waiting for window confirm",
        )
        confirmed = await post(client, "/mj/submit/modal", {"taskId": reply["result"], "prompt": "a dog"})
        assert (confirmed["code"], confirmed["result"]) == (1, reply["result"])
        assert (await finished(client, clock, reply["result"]))["action"] == "VARIATION"


@pytest.mark.anyio
@pytest.mark.parametrize(("label", "action"), [("Custom Zoom", "CUSTOM_ZOOM"), ("Vary (Region)", "INPAINT")])
async def test_new_api_keeps_code_21_for_custom_zoom_and_vary_region(
    clock: ManualClock, label: str, action: str
) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        upscale = await upscale_done(client, clock)
        reply = await press(client, upscale, label)
        assert reply["code"] == 21
        modal = await fetch(client, reply["result"])
        assert (modal["status"], modal["action"]) == ("MODAL", action)


@pytest.mark.anyio
async def test_without_new_api_a_remix_account_answers_code_21(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(remix=True), seed=7)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        grid = await imagine_done(client, clock)
        reply = await press(client, grid, "🔄")
        assert (reply["code"], reply["properties"]) == (21, {"finalPrompt": "a cat", "remix": True})
        upscale = await press(client, grid, "U2")
        assert upscale["code"] == 1  # an upscale never asks for a remix prompt


@pytest.mark.anyio
async def test_new_api_rewrites_code_22_to_1_and_shows_the_queue_description(clock: ManualClock) -> None:
    sim = new_api_sim(clock, queue_position=2)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        reply = await post(client, "/mj/submit/imagine", {"prompt": "a cat"})
        assert (reply["code"], reply["description"]) == (1, "排队中，前面还有2个任务")
        assert reply["properties"]["numberOfQueues"] == 2
        task = await fetch(client, reply["result"])
        assert task["description"] == "排队中，前面还有2个任务"
        swap = await post(
            client, "/mj/insight-face/swap", {"sourceBase64": png_uri(), "targetBase64": png_uri((1, 2, 3))}
        )
        assert swap["code"] == 22  # relayed by RelaySwapFace, which rewrites nothing


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "body", "description"),
    [
        ("POST", "/mj/submit/imagine", {"prompt": ""}, "prompt_is_required"),
        ("POST", "/mj/submit/imagine", {}, "prompt_is_required"),
        ("POST", "/mj/submit/imagine", {"prompt": 5}, "bind_request_body_failed"),
        ("POST", "/mj/submit/imagine", "not json", "bind_request_body_failed"),
        ("POST", "/mj/submit/action", {"taskId": "1", "customId": "MJ::JOB::upsample::1::h"}, "task_not_found"),
        ("POST", "/mj/submit/modal", {"taskId": "1", "prompt": "x"}, "task_not_found"),
        ("POST", "/mj/submit/change", {"taskId": "1", "action": "REROLL"}, "index_is_required"),
        ("POST", "/mj/insight-face/swap", {"sourceBase64": "AAAA"}, "sour_base64_and_target_base64_is_required"),
        ("POST", "/mj/task/list-by-condition", "[1]", "do_request_failed"),
        ("GET", "/mj/task/1/fetch", None, "task_no_found"),
        ("GET", "/mj/task/1/image-seed", None, "task_no_found"),
    ],
)
async def test_new_api_answers_its_own_checks_with_http_400_upstream_errors(
    clock: ManualClock, method: str, path: str, body: Any, description: str
) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        if isinstance(body, str):
            response = await client.request(method, path, content=body)
        else:
            response = await client.request(method, path, json=body)
    assert_na_error(response, description)
    assert sim.tasks == {}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/mj/submit/action", {"taskId": "1", "customId": ""}, 400, "Invalid request, custom_id_is_required"),
        (
            "/mj/submit/action",
            {"taskId": "1", "customId": "MJ::JOB::upsample::x::h"},
            400,
            "Invalid request, index_parse_failed",
        ),
        (
            "/mj/submit/action",
            {"taskId": "1", "customId": "MJ::BOOKMARK::h"},
            400,
            "Invalid request, unknown_action:MJ::BOOKMARK::h",
        ),
        ("/mj/submit/simple-change", {"content": "1 U1"}, 503, "当前分组 default 下对于模型 mj_ 无可用渠道"),
        ("/mj/submit/change", {"taskId": "1", "index": 1}, 503, "当前分组 default 下对于模型 mj_ 无可用渠道"),
    ],
)
async def test_new_api_distributor_refuses_what_it_cannot_map_or_serve_before_its_controller(
    clock: ManualClock, path: str, body: Any, status: int, message: str
) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        response = await client.post(path, json=body)
    assert_distributor_error(response, status, message)
    assert sim.tasks == {}


@pytest.mark.anyio
async def test_new_api_refuses_buttons_it_cannot_map_and_parents_its_copy_does_not_show_finished(
    clock: ManualClock,
) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        described = await finished(client, clock, await submit(client, "/mj/submit/describe", {"base64": png_uri()}))
        for wanted in ("1️⃣", "🎉", "🔄"):
            response = await client.post(
                "/mj/submit/action", json={"taskId": described["id"], "customId": button(described, wanted)}
            )
            assert_distributor_error(response, 400, f"Invalid request, unknown_action:{button(described, wanted)}")
        upscale = await upscale_done(client, clock)
        for wanted in ("Animate (High motion)", "❤️"):
            response = await client.post(
                "/mj/submit/action", json={"taskId": upscale["id"], "customId": button(upscale, wanted)}
            )
            assert_distributor_error(response, 400, f"Invalid request, unknown_action:{button(upscale, wanted)}")
        running = await submit(client, "/mj/submit/imagine", {"prompt": "a dog"})
        clock.advance(JOB / 2)
        response = await client.post("/mj/submit/action", json={"taskId": running, "customId": button(described, "1️⃣")})
        assert_distributor_error(response, 400, "Invalid request, unknown_action:MJ::Job::PicReader::1")
        grid = sim.tasks[running]
        response = await client.post(
            "/mj/submit/action", json={"taskId": running, "customId": f"MJ::JOB::upsample::1::{grid.job_hash}"}
        )
        assert_na_error(response, "task_status_not_success")
        broken = await client.post("/mj/submit/action", json={"taskId": running, "customId": "nonsense"})
        assert broken.status_code == 500  # new-api indexes the split customId and panics


@pytest.mark.anyio
async def test_new_api_passes_the_upstreams_own_refusals_on_unchanged(clock: ManualClock) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        assert_code(await post(client, "/mj/submit/imagine", {"prompt": "   "}), 4, "prompt不能为空")
        assert_code(await post(client, "/mj/submit/imagine", {"prompt": "bannedword"}), 24, "可能包含敏感词")
        response = await client.post("/mj/submit/blend", json={"base64Array": [png_uri()] * 2, "dimensions": "WIDE"})
        assert response.status_code == 400
        assert response.json()["error"] == "Bad Request"  # the upstream's Spring error, relayed


@pytest.mark.anyio
async def test_new_api_strips_notify_hook_and_account_filter_before_forwarding(clock: ManualClock) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        stripped = await submit(
            client,
            "/mj/submit/imagine",
            {"prompt": "a cat", "notifyHook": "http://hook.test/cb", "accountFilter": {"modes": ["RELAX"]}},
        )
        # Go deletes the exact keys only; TA reads keys case-insensitively.
        kept = await submit(client, "/mj/submit/imagine", {"prompt": "a dog", "NotifyHook": "http://hook.test/cb"})
        assert (sim.tasks[stripped].notify_hook, sim.tasks[stripped].mode) == (None, None)
        assert sim.tasks[kept].notify_hook == "http://hook.test/cb"
        clock.advance(JOB)
        due = sim.due_callbacks()
    assert [url for url, _ in due] == ["http://hook.test/cb"]
    body = json.loads(due[0][1])
    assert body["id"] == kept
    assert body["properties"]["discordInstanceId"] == INSTANCE_ID  # the upstream's own Task JSON


@pytest.mark.anyio
async def test_new_api_shows_a_failed_or_cancelled_task_at_100_percent(clock: ManualClock) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        failing = await submit(client, "/mj/submit/imagine", {"prompt": "simulate-failure"})
        clock.advance(JOB)
        task = await fetch(client, failing)
    assert (task["status"], task["progress"], task["failReason"]) == ("FAILURE", "100%", FAIL_REASON)


@pytest.mark.anyio
async def test_new_api_fails_a_task_still_unfinished_an_hour_after_its_submit(clock: ManualClock) -> None:
    sim = new_api_sim(clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        upscale = await upscale_done(client, clock)
        modal = (await press(client, upscale, "Custom Zoom"))["result"]
        clock.advance(3600)
        assert (await fetch(client, modal))["status"] == "MODAL"
        clock.advance(1)
        task = await fetch(client, modal)
    assert (task["status"], task["progress"], task["failReason"]) == ("FAILURE", "100%", "上游任务超时（超过1小时）")
    assert sim.snapshot(modal)["status"] == "FAILURE"  # the same, as seen through new-api


@pytest.mark.anyio
async def test_new_api_poll_shows_the_upstream_as_it_was_at_its_last_read(clock: ManualClock) -> None:
    sim = new_api_sim(clock, new_api_poll=15)
    clock.advance(15 - clock.now() % 15 + 1)  # 1 s after one of new-api's reads
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a cat"})
        clock.advance(13)  # finished upstream, 1 s before new-api's next read
        unread = await fetch(client, task_id)
        assert (unread["status"], unread["progress"], unread["buttons"], unread["properties"]) == ("", "0%", None, None)
        upsample = f"MJ::JOB::upsample::1::{sim.tasks[task_id].job_hash}"
        response = await client.post("/mj/submit/action", json={"taskId": task_id, "customId": upsample})
        assert_na_error(response, "task_status_not_success")  # its copy is not finished yet
        clock.advance(1)
        read = await fetch(client, task_id)
        assert (read["status"], read["progress"]) == ("SUCCESS", "100%")
        assert read["imageUrl"] == f"http://sim/mj/image/{task_id}"
        clock.advance(14)
        assert await fetch(client, task_id) == read


@pytest.mark.anyio
async def test_new_api_poll_keeps_a_confirmed_modal_task_in_modal_until_the_next_read(clock: ManualClock) -> None:
    sim = new_api_sim(clock, new_api_poll=15)
    clock.advance(15 - clock.now() % 15 + 1)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        clock.advance(14)  # the next read comes before the job has started: NOT_START, as copied
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a cat"})
        clock.advance(0.5)
        assert (await fetch(client, task_id))["status"] == "NOT_START"
        clock.advance(30)
        upscale_id = (await press(client, await fetch(client, task_id), "U1"))["result"]
        clock.advance(30)
        upscale = await fetch(client, upscale_id)
        modal = (await press(client, upscale, "Custom Zoom"))["result"]
        clock.advance(15)
        assert (await fetch(client, modal))["status"] == "MODAL"
        await post(client, "/mj/submit/modal", {"taskId": modal, "prompt": "a cat --zoom 1.5"})
        assert (await fetch(client, modal))["status"] == "MODAL"  # a lagging copy
        clock.advance(15)
        assert (await fetch(client, modal))["status"] != "MODAL"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/mj/task/list"),
        ("GET", "/mj/task/queue"),
        ("POST", "/mj/task/query"),
        ("POST", "/mj/task/1/cancel"),
        ("POST", "/mj/submit/show"),
        ("POST", "/mj/submit/edit"),
        ("POST", "/mj/task/list-by-ids"),
        ("GET", "/mj/submit/imagine"),
        ("GET", "/mj/nowhere"),
    ],
)
async def test_new_api_answers_paths_it_does_not_route_with_its_dashboard_page(
    clock: ManualClock, method: str, path: str
) -> None:
    sim = Simulator(clock=clock, api_key=NA_KEY, quirks=Quirks(new_api=True, auth="new-api"))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        response = await client.request(method, path, json={})
    assert response.status_code == 200  # even without a key: no route, no auth
    assert response.headers["content-type"].startswith("text/html")
    assert b"<title>New API</title>" in response.content


@pytest.mark.anyio
async def test_new_api_tasks_have_exactly_its_fields_without_nulls(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(new_api=True))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "pig --v 6.1"})
        fresh = await fetch(client, task_id)
        assert set(fresh) == NA_TASK_FIELDS
        assert (fresh["status"], fresh["progress"]) == ("", "0%")
        assert (fresh["startTime"], fresh["finishTime"], fresh["imageUrl"]) == (0, 0, "")
        assert fresh["failReason"] == fresh["state"] == fresh["customId"] == fresh["maskBase64"] == ""
        assert fresh["description"] == "提交成功"
        # new-api's own record before its first read of the upstream: nil pointer and slice.
        assert fresh["properties"] is None
        assert fresh["buttons"] is None

        clock.advance(3)
        running = await fetch(client, task_id)
        assert running["imageUrl"].startswith(f"http://sim/mj/image/{task_id}?rand=")
        preview = await client.get(running["imageUrl"])
        assert preview.headers["content-type"] == "image/webp"

        clock.advance(JOB)
        done = await fetch(client, task_id)
        assert set(done) == NA_TASK_FIELDS
        assert {k for k, v in done.items() if v is None} == {"videoUrls"}  # a nil slice in Go
        assert done["imageUrl"] == f"http://sim/mj/image/{task_id}"
        assert done["properties"] == {"finalPrompt": "pig --v 6.1", "finalZhPrompt": ""}
        assert (await image_of(client, done["imageUrl"])).format == "PNG"

        reply = await press(client, done, "V2")
        variation = await fetch(client, reply["result"])
        assert variation["customId"] == ""  # declared in its DTO, never filled
        assert variation["action"] == "VARIATION"
        assert variation["prompt"] == "pig --v 6.1"  # new-api records the parent's prompt


@pytest.mark.anyio
async def test_new_api_tasks_show_its_action_names_and_video_urls(clock: ManualClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(new_api=True))
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim") as client:
        edit = await submit(client, "/mj/submit/edits", {"prompt": "white background", "image": png_uri()})
        assert (await finished(client, clock, edit))["action"] == "EDITS"
        video = await finished(client, clock, await submit(client, "/mj/submit/video", {"prompt": "bees"}))
        assert video["videoUrl"].endswith("/0.mp4")
        assert all(set(v) == {"url"} for v in video["videoUrls"])
        grid = await imagine_done(client, clock)
        upscale = await press_done(client, clock, grid, "U1")
        assert (await fetch(client, (await press(client, upscale, "Vary (Strong)"))["result"]))[
            "action"
        ] == "HIGH_VARIATION"
