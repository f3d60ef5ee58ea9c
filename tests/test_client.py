"""MjClient against the simulator: every endpoint, every auth style and mode prefix, every error mapping."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from PIL import Image

from mj_mcp import replies
from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import (
    AuthenticationError,
    BannedPromptError,
    InputError,
    MjError,
    ProtocolError,
    QueueFullError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    TaskNotFoundError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.models import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    ModalRequest,
    ShortenRequest,
    ShowRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
    Task,
    UploadRequest,
    VideoRequest,
)
from mj_mcp.querymodels import QueryRequest
from mj_mcp.simulator import FAIL_REASON, Fault, Quirks, Simulator
from tests.helpers import SIM_URL, FakeClock

pytestmark = pytest.mark.anyio

KEY = "hk-TEST-KEY-1234567890-abcdef"


def png_data_uri(color: str = "red", size: tuple[int, int] = (64, 64)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def finish(mj: MjClient, clock: FakeClock, task_id: str) -> Task:
    clock.advance(60)
    task = await mj.fetch(task_id)
    assert task.status == "SUCCESS", task
    return task


async def imagine_done(mj: MjClient, clock: FakeClock, prompt: str = "a red fox") -> Task:
    result = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt=prompt))
    assert result.task_id is not None
    return await finish(mj, clock, result.task_id)


class Flaky(httpx2.AsyncBaseTransport):
    """Wraps a transport to break connections the way networks do (an ASGI app cannot)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, connect_failures: int = 0, lose_replies: int = 0):
        self.inner = inner
        self.connect_failures = connect_failures
        self.lose_replies = lose_replies

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.connect_failures > 0:
            self.connect_failures -= 1
            raise httpx2.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if self.lose_replies > 0:
            self.lose_replies -= 1
            raise httpx2.ReadError("connection reset by peer", request=request)
        return response


# -- every endpoint ------------------------------------------------------------------------------


async def test_imagine_then_fetch_walks_to_success_with_grid_buttons(mj: MjClient, clock: FakeClock) -> None:
    result = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a lighthouse"))
    assert result.code == 1
    task_id = result.task_id
    assert task_id is not None
    assert task_id.isdigit()
    first = await mj.fetch(task_id)
    assert first.status in {"NOT_START", "SUBMITTED"}
    done = await finish(mj, clock, task_id)
    assert [b.display for b in done.buttons] == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    assert done.image_url
    assert done.image_url.startswith(SIM_URL)
    data, mime = await mj.download(done.image_url)
    assert mime == "image/png"
    assert Image.open(io.BytesIO(data)).size[0] >= 512


async def test_action_upscales_and_the_upscale_has_single_image_buttons(mj: MjClient, clock: FakeClock) -> None:
    grid = await imagine_done(mj, clock)
    u2 = grid.button("U2")
    assert u2 is not None
    result = await mj.submit(ENDPOINTS["action"], ActionRequest(task_id=grid.id, custom_id=u2.custom_id))
    assert result.task_id
    assert result.task_id != grid.id
    upscale = await finish(mj, clock, result.task_id)
    assert upscale.action == "UPSCALE"
    labels = {b.display for b in upscale.buttons}
    assert {"Vary (Strong)", "Zoom Out 2x", "Custom Zoom"} <= labels


async def test_custom_zoom_returns_a_modal_task_that_modal_submits(mj: MjClient, clock: FakeClock) -> None:
    grid = await imagine_done(mj, clock)
    upscale_id = (
        await mj.submit(ENDPOINTS["action"], ActionRequest(task_id=grid.id, custom_id=grid.button("U1").custom_id))
    ).task_id  # type: ignore[union-attr]
    assert upscale_id
    upscale = await finish(mj, clock, upscale_id)
    zoom = upscale.button("Custom Zoom")
    assert zoom is not None
    modal = await mj.submit(ENDPOINTS["action"], ActionRequest(task_id=upscale.id, custom_id=zoom.custom_id))
    assert modal.code == 21
    assert modal.task_id
    assert (await mj.fetch(modal.task_id)).status == "MODAL"
    confirmed = await mj.submit(ENDPOINTS["modal"], ModalRequest(task_id=modal.task_id, prompt="a red fox --zoom 1.5"))
    assert confirmed.code == 1
    assert confirmed.task_id == modal.task_id
    assert (await finish(mj, clock, modal.task_id)).action == "ZOOM"


async def test_every_other_submit_endpoint_is_accepted(mj: MjClient, clock: FakeClock) -> None:
    grid = await imagine_done(mj, clock)
    img, other = png_data_uri("red"), png_data_uri("blue")
    submits = [
        await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=[img, other], dimensions="LANDSCAPE")),
        await mj.submit(ENDPOINTS["describe"], DescribeRequest(base64=img)),
        await mj.submit(
            ENDPOINTS["shorten"], ShortenRequest(prompt="a very long prompt about a cat in a hat on a mat")
        ),
        await mj.submit(ENDPOINTS["swap_face"], SwapFaceRequest(source_base64=img, target_base64=other)),
        await mj.submit(ENDPOINTS["video"], VideoRequest(prompt="waves", image=img, motion="high")),
        await mj.submit(ENDPOINTS["edit"], EditsRequest(prompt="white background", image=img)),
        await mj.submit(ENDPOINTS["show"], ShowRequest(job_id=str(grid.properties["messageHash"]))),
        await mj.submit(ENDPOINTS["change"], ChangeRequest(task_id=grid.id, action="UPSCALE", index=3)),
        await mj.submit(ENDPOINTS["simple_change"], SimpleChangeRequest(content=f"{grid.id} V2")),
    ]
    assert all(r.code == 1 and r.task_id for r in submits)
    urls = await mj.upload_images(UploadRequest(base64_array=[img]))
    assert len(urls) == 1
    assert urls[0].startswith(SIM_URL)


async def test_reads_list_query_recent_queue_seed_and_cancel(mj: MjClient, clock: FakeClock) -> None:
    done = await imagine_done(mj, clock, "first")
    running = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="second"))).task_id
    assert running
    listed = await mj.list_by_condition([done.id, running, "404404404"])
    assert {t.id for t in listed} == {done.id, running}
    assert await mj.list_by_condition([]) == []
    page = await mj.query(QueryRequest(page_size=1, sort="submitTime,desc"))
    assert page.total_elements == 2
    assert page.content[0].id == running
    assert not page.last
    recent = await mj.recent()
    assert [t.id for t in recent][:2] == [running, done.id]
    assert [t.id for t in await mj.queue()] == [running]
    assert (await mj.image_seed(done.id)).isdigit()
    await mj.cancel(running)
    cancelled = await mj.fetch(running)
    assert cancelled.status == "FAILURE"
    assert cancelled.fail_reason


async def test_cancel_returns_the_plus_envelope_when_the_upstream_sends_one(
    clock: FakeClock,
) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(cancel_empty_body=False))
    async with MjClient(SIM_URL, transport=sim.transport(), sleep=clock.sleep) as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
        assert task_id
        reply = await mj.cancel(task_id)
        assert reply is not None
        assert reply.code == 1


async def test_image_seed_of_an_unfinished_task_is_a_clear_error(mj: MjClient) -> None:
    task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
    assert task_id
    with pytest.raises(UpstreamRejectedError):
        await mj.image_seed(task_id)


# -- auth and mode prefixes ----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["bearer", "mj-api-secret", "authorization"])
async def test_each_auth_header_style_is_accepted(style: Any, clock: FakeClock) -> None:
    sim = Simulator(clock=clock, api_key=KEY)
    async with MjClient(SIM_URL, KEY, auth_header=style, transport=sim.transport()) as mj:
        assert (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).code == 1
        assert await mj.recent()


@pytest.mark.parametrize("plain_text", [False, True])
async def test_a_wrong_key_is_an_authentication_error_that_never_shows_the_key(
    plain_text: bool, clock: FakeClock
) -> None:
    sim = Simulator(clock=clock, api_key="the-right-key", quirks=Quirks(auth_plain_text=plain_text))
    async with MjClient(SIM_URL, KEY, transport=sim.transport()) as mj:
        for call in (mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x")), mj.fetch("1")):
            with pytest.raises(AuthenticationError) as info:
                await call
            assert KEY not in str(info.value)
            assert "MJ_API_KEY" in str(info.value)


async def test_no_key_header_is_sent_without_a_key(sim: Simulator) -> None:
    seen: list[httpx2.Headers] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers)
        return await sim.transport().handle_async_request(request)

    async with MjClient(SIM_URL, None, transport=httpx2.MockTransport(handler)) as mj:
        await mj.recent()
    assert "authorization" not in seen[0]
    assert "mj-api-secret" not in seen[0]


@pytest.mark.parametrize(
    ("prefix", "default_mode", "call_mode", "expected"),
    [
        ("/{mode}", "fast", None, "/fast/mj/submit/imagine"),
        ("/{mode}", "fast", "relax", "/relax/mj/submit/imagine"),
        ("/mj-{mode}", "", "turbo", "/mj-turbo/mj/submit/imagine"),
        ("/{mode}", "", None, "/mj/submit/imagine"),
    ],
)
async def test_the_mode_prefix_goes_on_submits_only(
    prefix: Any, default_mode: Any, call_mode: Any, expected: str, sim: Simulator
) -> None:
    async with MjClient(SIM_URL, mode=default_mode, mode_prefix=prefix, transport=sim.transport()) as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"), mode=call_mode)).task_id
        assert task_id
        await mj.fetch(task_id)
    assert sim.request_log[0] == ("POST", expected)
    assert sim.request_log[1] == ("GET", f"/mj/task/{task_id}/fetch")


async def test_a_task_id_cannot_escape_its_path_segment(sim: Simulator) -> None:
    sent: list[bytes] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.raw_path)
        return await sim.transport().handle_async_request(request)

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler)) as mj:
        with pytest.raises(InputError, match="taskId"):
            await mj.fetch("../submit/imagine")  # a "/" is refused before any request (issue 12)
        with pytest.raises(TaskNotFoundError):
            await mj.fetch("..?x=1#%2F")
    assert sent == [b"/mj/task/..%3Fx%3D1%23%252F/fetch"]


# -- return codes --------------------------------------------------------------------------------


async def test_code_22_is_accepted_and_keeps_the_queue_position(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(queue_position=3))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        result = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert result.code == 22
    assert result.queue_position == 3
    assert result.task_id


@pytest.mark.parametrize("code", ["9", "23"])
async def test_a_full_queue_is_a_queue_full_error(code: Any, clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(queue_full=code))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        with pytest.raises(QueueFullError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "Wait" in str(info.value)


async def test_a_banned_prompt_names_the_banned_word(mj: MjClient) -> None:
    with pytest.raises(BannedPromptError) as info:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a BannedWord here"))
    assert info.value.banned_word == "bannedword"
    assert "Rephrase" in str(info.value)


async def test_a_validation_code_4_is_a_rejection_with_an_english_gloss(mj: MjClient, clock: FakeClock) -> None:
    grid = await imagine_done(mj, clock)
    with pytest.raises(UpstreamRejectedError) as info:
        await mj.submit(ENDPOINTS["action"], ActionRequest(task_id=grid.id, custom_id="MJ::JOB::nonsense::1"))
    assert info.value.code == 4
    assert "unknown button" in str(info.value)


async def test_an_action_on_a_missing_parent_is_task_not_found(mj: MjClient) -> None:
    with pytest.raises(TaskNotFoundError) as info:
        await mj.submit(
            ENDPOINTS["action"], ActionRequest(task_id="1234567890123456", custom_id="MJ::JOB::upsample::1::x")
        )
    assert info.value.http_status == 404


async def test_code_3_on_a_new_job_means_no_account_is_available_not_a_missing_task(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(no_account=True))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert not isinstance(info.value, TaskNotFoundError)
    assert info.value.code == 3
    assert "no account available for imagine" in str(info.value)
    assert "Nothing was started" in str(info.value)


async def action_refused_with(clock: FakeClock, reply: Fault) -> UpstreamRejectedError:
    sim = Simulator(clock=clock)
    sim.inject(reply)
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(
                ENDPOINTS["action"], ActionRequest(task_id="1234567890123456", custom_id="MJ::JOB::upsample::1::x")
            )
    return info.value


async def test_code_3_about_an_account_on_an_action_is_not_a_missing_parent(clock: FakeClock) -> None:
    body = '{"code":3,"description":"账号不可用: 1234"}'
    error = await action_refused_with(clock, Fault(kind="status", status=200, body=body, path="/action"))
    assert not isinstance(error, TaskNotFoundError)
    assert "no account available for action" in str(error)


async def test_a_404_under_a_mode_prefix_says_the_upstream_does_not_take_that_prefix(clock: FakeClock) -> None:
    sim = Simulator(clock=clock)
    sim.inject(Fault(kind="status", status=404, body="", path="/fast/mj/submit/imagine"))
    async with MjClient(SIM_URL, transport=sim.transport(), mode="fast") as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "/fast/mj/submit/imagine" in info.value.message
    assert "MJ_MODE_PREFIX" in info.value.hint


async def test_an_upstream_without_the_buttons_api_points_to_change(clock: FakeClock) -> None:
    error = await action_refused_with(clock, Fault(kind="status", status=404, body="", path="/mj/submit/action"))
    assert "does not offer action" in error.message
    assert "change" in error.hint
    assert "simple_change" in error.hint


@pytest.mark.parametrize("dialect", ["204", "empty200", "400"])
async def test_an_unknown_task_is_not_found_in_every_dialect(dialect: Any, clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(unknown_fetch=dialect))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        with pytest.raises(TaskNotFoundError):
            await mj.fetch("1111111111111111")


async def test_result_ids_sent_as_numbers_become_strings(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(result_as_number=True))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
        assert isinstance(task_id, str)
        assert (await mj.fetch(task_id)).id == task_id


async def test_trimmed_new_api_tasks_parse(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(new_api=True))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).task_id
        assert task_id
        clock.advance(60)
        task = await mj.fetch(task_id)
    assert task.status == "SUCCESS"
    assert task.button("U1") is not None


async def test_a_failing_job_ends_in_failure_with_its_reason(mj: MjClient, clock: FakeClock) -> None:
    task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="simulate-failure please"))).task_id
    assert task_id
    clock.advance(60)
    task = await mj.fetch(task_id)
    assert task.status == "FAILURE"
    assert task.fail_reason == FAIL_REASON
    assert task.progress == ""


# -- faults: reads retry, submits never repeat ---------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path="/task/list", status=503),
        Fault(path="/task/list", kind="html_error_page", status=502),
        Fault(path="/task/list", status=500, times=2),
        Fault(path="/task/list", status=429, headers={"Retry-After": "2"}),
    ],
)
async def test_reads_are_retried_through_transient_failures(
    fault: Fault, mj: MjClient, sim: Simulator, clock: FakeClock
) -> None:
    sim.inject(fault)
    assert await mj.recent() == []
    assert len(sim.request_log) == (fault.times or 1) + 1
    if fault.status == 429:
        assert clock.slept == [2.0]


async def test_a_read_that_keeps_failing_is_upstream_unavailable(mj: MjClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/task/list", status=502, times=None))
    with pytest.raises(UpstreamUnavailableError):
        await mj.recent()
    assert len(sim.request_log) == 3


async def test_a_long_retry_after_is_reported_not_slept(mj: MjClient, sim: Simulator, clock: FakeClock) -> None:
    sim.inject(Fault(path="/task/list", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(RateLimitedError) as info:
        await mj.recent()
    assert info.value.retry_after == 3600
    assert clock.slept == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_submit_answered_with_5xx_is_sent_once_and_reported_as_unknown(
    status: int, mj: MjClient, sim: Simulator
) -> None:
    sim.inject(Fault(path="/submit/imagine", status=status, process_request=True))
    with pytest.raises(SubmitOutcomeUnknownError) as info:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "recent_tasks" in str(info.value)
    assert [p for _, p in sim.request_log] == ["/mj/submit/imagine"]
    assert len(sim.tasks) == 1  # the job exists: that is why it must not be re-sent


async def test_a_submit_whose_reply_is_lost_is_sent_once(sim: Simulator) -> None:
    async with MjClient(SIM_URL, transport=Flaky(sim.transport(), lose_replies=1)) as mj:
        with pytest.raises(SubmitOutcomeUnknownError):
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert len(sim.request_log) == 1


async def test_a_submit_that_could_not_connect_is_tried_again(sim: Simulator, clock: FakeClock) -> None:
    async with MjClient(SIM_URL, transport=Flaky(sim.transport(), connect_failures=1), sleep=clock.sleep) as mj:
        assert (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).code == 1
    assert len(sim.request_log) == 1


async def test_a_submit_that_never_connects_says_it_was_not_sent(sim: Simulator, clock: FakeClock) -> None:
    async with MjClient(SIM_URL, transport=Flaky(sim.transport(), connect_failures=9), sleep=clock.sleep) as mj:
        with pytest.raises(UpstreamUnavailableError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert not isinstance(info.value, SubmitOutcomeUnknownError)
    assert "was not sent" in str(info.value)
    assert sim.request_log == []


async def test_a_read_survives_a_reset_connection(sim: Simulator, clock: FakeClock) -> None:
    async with MjClient(SIM_URL, transport=Flaky(sim.transport(), lose_replies=1), sleep=clock.sleep) as mj:
        assert await mj.recent() == []


async def test_a_submit_answered_with_429_is_rate_limited(mj: MjClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/submit/imagine", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitedError) as info:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert info.value.retry_after == 7
    assert "7 seconds" in str(info.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(path="/submit/imagine", kind="malformed_json"), ProtocolError),
        (Fault(path="/submit/imagine", kind="empty_body"), ProtocolError),
        (Fault(path="/submit/imagine", status=200, body='{"code":"x"}'), ProtocolError),
        (
            # trueai's per-user limit: "try later", not "change the arguments" (audit B8).
            Fault(path="/submit/imagine", status=200, body='{"success":false,"code":-1,"message":"并发数已达上限"}'),
            RateLimitedError,
        ),
        (
            Fault(path="/submit/imagine", status=200, body='{"success":false,"code":-1,"message":"参数错误"}'),
            UpstreamRejectedError,
        ),
        (Fault(path="/submit/imagine", status=403, body="账号不可用"), AuthenticationError),
        (Fault(path="/submit/imagine", status=400, body="plain words"), UpstreamRejectedError),
        (
            Fault(
                path="/submit/imagine",
                status=400,
                body='{"description":"quota_not_enough ","type":"upstream_error","code":4}',
            ),
            UpstreamRejectedError,
        ),
        (
            Fault(path="/submit/imagine", status=401, body='{"error":{"message":"bad token","type":"new_api_error"}}'),
            AuthenticationError,
        ),
        (Fault(path="/submit/imagine", status=200, body='{"code":30,"description":"saturated"}'), RateLimitedError),
        (Fault(path="/submit/imagine", status=200, body='{"code":9,"description":"系统异常"}'), UpstreamRejectedError),
        (Fault(path="/submit/imagine", status=200, body='{"code":1,"description":"ok"}'), SubmitOutcomeUnknownError),
    ],
)
async def test_every_reply_dialect_maps_to_one_clear_error(
    fault: Fault, error: type[MjError], mj: MjClient, sim: Simulator
) -> None:
    sim.inject(fault)
    with pytest.raises(error) as info:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert type(info.value) is error
    assert info.value.hint


async def test_a_reply_that_echoes_the_key_is_scrubbed(sim: Simulator) -> None:
    sim.inject(Fault(path="/submit/imagine", status=400, body=f"bad key {KEY}"))
    async with MjClient(SIM_URL, KEY, transport=sim.transport()) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert KEY not in str(info.value)
    assert "***" in str(info.value)


async def test_a_route_the_upstream_lacks_is_a_clear_rejection(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(list_by_condition=False))
    async with MjClient(SIM_URL, transport=sim.transport()) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.list_by_condition(["1"])
    assert info.value.http_status == 404


async def test_malformed_task_json_on_fetch_is_a_protocol_error(mj: MjClient, sim: Simulator) -> None:
    sim.inject(Fault(path="/fetch", status=200, body="[1,2,3]"))
    with pytest.raises(ProtocolError):
        await mj.fetch("1")
    sim.inject(Fault(path="/task/list", status=200, body='{"not":"a list"}'))
    with pytest.raises(ProtocolError):
        await mj.recent()


async def test_downloads_send_no_key_and_report_missing_files(sim: Simulator, clock: FakeClock) -> None:
    seen: list[httpx2.Headers] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers)
        return await sim.transport().handle_async_request(request)

    async with MjClient(SIM_URL, KEY, transport=httpx2.MockTransport(handler), sleep=clock.sleep) as mj:
        with pytest.raises(UpstreamRejectedError):
            await mj.download(f"{SIM_URL}/sim/images/nope.png")
        with pytest.raises(UpstreamRejectedError):
            await mj.download(f"{SIM_URL}/sim/images/x.png", max_bytes=0)
    assert all("authorization" not in h for h in seen)


async def test_a_download_that_keeps_failing_is_unavailable(sim: Simulator, clock: FakeClock) -> None:
    sim.inject(Fault(path="/sim/images", status=503, times=None))
    async with MjClient(SIM_URL, transport=sim.transport(), sleep=clock.sleep) as mj:
        with pytest.raises(UpstreamUnavailableError):
            await mj.download(f"{SIM_URL}/sim/images/x.png")
    async with MjClient(SIM_URL, transport=Flaky(sim.transport(), connect_failures=9), sleep=clock.sleep) as mj:
        with pytest.raises(UpstreamUnavailableError):
            await mj.download(f"{SIM_URL}/sim/images/x.png")


async def test_a_download_waits_out_a_short_retry_after_and_reports_a_long_one(clock: FakeClock) -> None:
    asked: list[str] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        wait = request.url.params["wait"]
        if wait not in asked:  # the first request for each URL is turned away
            asked.append(wait)
            return httpx2.Response(429, headers={"Retry-After": wait})
        return httpx2.Response(200, content=b"png", headers={"Content-Type": "image/png; q=1"})

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=clock.sleep) as mj:
        assert await mj.download(f"{SIM_URL}/busy.png?wait=4") == (b"png", "image/png")
        assert clock.slept == [4.0]
        with pytest.raises(UpstreamUnavailableError) as info:
            await mj.download(f"{SIM_URL}/busy.png?wait=3600")
    assert info.value.http_status == 429
    assert clock.slept == [4.0]


async def test_a_cancel_is_sent_once(mj: MjClient, sim: Simulator, clock: FakeClock) -> None:
    sim.inject(Fault(path="/cancel", status=503, times=None))
    with pytest.raises(UpstreamUnavailableError):
        await mj.cancel("1")
    assert len(sim.request_log) == 1
    assert clock.slept == []


async def test_backoff_is_equal_jitter_doubling_to_its_cap(sim: Simulator, clock: FakeClock) -> None:
    sim.inject(Fault(path="/task/list", status=503, times=None))
    async with MjClient(
        SIM_URL, transport=sim.transport(), sleep=clock.sleep, jitter=lambda: 0.0, read_attempts=7
    ) as mj:
        with pytest.raises(UpstreamUnavailableError):
            await mj.recent()
    # Half of min(8, 0.5·2ⁿ) is fixed (jitter 0 gives exactly that half).
    assert clock.slept == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


CONSTRUCT_ONLY = """
import json, sys
import anyio
from mcp import Client
from mj_mcp import replies
from mj_mcp.client import MjClient
from mj_mcp.config import load_settings
from mj_mcp.server import create_server

async def main():
    mj = MjClient("https://mj.example.com", "key")
    await mj.aclose()
    constructed = "httpcore2" in sys.modules
    server = create_server(load_settings(base_url="https://mj.example.com", api_key="key", output_dir="off"))
    async with Client(server) as client:
        await client.list_tools()
    return [constructed, "httpcore2" in sys.modules]

found = anyio.run(main)
import httpx2
httpx2.AsyncClient()  # the probe itself: building a default client does load the stack
print(json.dumps([*found, "httpcore2" in sys.modules]))
"""


@pytest.mark.slow
def test_an_https_client_builds_no_connection_stack_before_its_first_request() -> None:
    # Building httpx2's default transport (TLS context, connection stack) cost ~10 % of a cold
    # start in the mode users run; a server must answer tools/list without it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    done = subprocess.run(
        [sys.executable, "-c", CONSTRUCT_ONLY], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, False, True]


async def test_a_reply_is_read_only_up_to_its_cap(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setattr(replies, "MAX_REPLY_BYTES", 1000)
    sent: list[int] = []

    class Endless(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                sent.append(100)
                yield b" " * 100

    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Endless())

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=clock.sleep) as mj:
        with pytest.raises(ProtocolError, match="too large"):
            await mj.recent()
        with pytest.raises(ProtocolError, match="too large") as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "may have been created" in info.value.hint
    assert sum(sent) <= 2 * 1100
