"""MjClient against hostile upstreams (issue 12): every failure is an error of errors.py, on time, keyless.

Rows of the issue this file covers on the client side: 1 (every httpx2 error class, garbled gzip,
deep JSON), 2 (task ids checked before a request), 3 (a submit that may have arrived is never
"try again"), 4 (whole-request and per-call deadlines, Retry-After capped by the deadline), 5 (the
key echoed by the upstream never reaches a model or a message) and 6 (a huge reply is refused
without being read). The timing tests run against tests/hostile.py on a real loopback socket:
real time is their point, so they sleep for real, each at most ~1 s (the marker list in
pyproject.toml has no `slow`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import pytest

from mj_mcp import replies
from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import (
    InputError,
    MjError,
    ProtocolError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from mj_mcp.models import ImagineRequest
from tests.helpers import SIM_URL, FakeClock
from tests.hostile import TASK_ID, HostileUpstream, Misbehaviour, RouteName, serve_hostile

pytestmark = pytest.mark.anyio

KEY = HostileUpstream().key
ODD_KEY = "sk+odd/KEY=0123456789abcdef"
"""A key whose URL-encoded and JSON-escaped spellings differ from the key itself."""


async def no_wait(seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


def hostile(route: RouteName, kind: Misbehaviour, **fields: Any) -> HostileUpstream:
    upstream = HostileUpstream(**fields)
    upstream.behaviour[route] = kind
    return upstream


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return 0


# -- row 1: garbled replies, redirect loops, deep JSON --------------------------------------------


async def test_a_garbled_gzip_reply_to_a_read_is_a_protocol_error_after_its_retries() -> None:
    async with (
        serve_hostile(hostile("fetch", "gzip_garbage")) as up,
        serve_hostile(hostile("list", "gzip_garbage")) as lu,
    ):
        async with MjClient(up.base_url, KEY, sleep=no_wait) as mj:
            with pytest.raises(ProtocolError, match="could not be decoded"):
                await mj.fetch(TASK_ID)
        async with MjClient(lu.base_url, KEY, sleep=no_wait) as mj:
            with pytest.raises(ProtocolError, match="could not be decoded"):
                await mj.list_by_condition([TASK_ID])


async def test_a_garbled_gzip_reply_to_a_submit_says_the_job_may_exist_and_is_not_resent() -> None:
    async with serve_hostile(hostile("submit", "gzip_garbage")) as up, MjClient(up.base_url, KEY, sleep=no_wait) as mj:
        with pytest.raises(SubmitOutcomeUnknownError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "may have been created" in str(info.value)
    assert up.submits == 1


@pytest.mark.parametrize(("kind", "words"), [("gzip_garbage", "could not be decoded"), ("redirect_loop", "redirect")])
async def test_a_result_image_that_is_garbled_or_redirects_in_a_loop_is_a_clear_rejection(
    kind: Misbehaviour, words: str
) -> None:
    async with serve_hostile(hostile("image", kind)) as up, MjClient(up.base_url, KEY, sleep=no_wait) as mj:
        with pytest.raises(UpstreamRejectedError, match=words) as info:
            await mj.download(f"{up.base_url}/img/{TASK_ID}.png")
    assert info.value.hint


async def test_a_task_nested_900_deep_is_read_with_its_depth_cut() -> None:
    async with serve_hostile(hostile("fetch", "deep_json")) as up, MjClient(up.base_url, KEY, sleep=no_wait) as mj:
        task = await mj.fetch(TASK_ID)
    assert task.id == TASK_ID
    assert task.status == "SUCCESS"
    assert depth(task.properties) <= replies.MAX_JSON_DEPTH
    json.dumps(task.model_dump(mode="json"))  # and it serialises without a RecursionError


async def test_a_list_nested_900_deep_is_a_protocol_error() -> None:
    async with serve_hostile(hostile("list", "deep_json")) as up, MjClient(up.base_url, KEY, sleep=no_wait) as mj:
        with pytest.raises(ProtocolError):
            await mj.list_by_condition([TASK_ID])


class Breaks(httpx2.AsyncByteStream):
    """A body that fails with `error` after its first bytes (the way decoding errors arrive)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"id":'
        raise self.error


def request_errors() -> list[tuple[str, Callable[[httpx2.Request], BaseException]]]:
    return [
        ("DecodingError", lambda r: httpx2.DecodingError("bad gzip", request=r)),
        ("TooManyRedirects", lambda r: httpx2.TooManyRedirects("loop", request=r)),
        ("InvalidURL", lambda r: httpx2.InvalidURL("bad url")),
        ("UnsupportedProtocol", lambda r: httpx2.UnsupportedProtocol("ftp", request=r)),
        ("RemoteProtocolError", lambda r: httpx2.RemoteProtocolError("bad http", request=r)),
        ("LocalProtocolError", lambda r: httpx2.LocalProtocolError("bad header", request=r)),
        ("StreamClosed", lambda r: httpx2.StreamClosed()),
        ("ReadTimeout", lambda r: httpx2.ReadTimeout("slow", request=r)),
        ("ProxyError", lambda r: httpx2.ProxyError("proxy", request=r)),
        ("UnicodeDecodeError", lambda r: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")),
        ("ValueError", lambda r: ValueError("odd body")),
        ("RecursionError", lambda r: RecursionError("deep")),
        ("OSError", lambda r: OSError("reset")),
    ]


def failing(make: Callable[[httpx2.Request], BaseException], *, in_body: bool) -> httpx2.MockTransport:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        if in_body:
            return httpx2.Response(200, stream=Breaks(make(request)))
        raise make(request)

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize("in_body", [False, True])
@pytest.mark.parametrize(("name", "make"), request_errors())
async def test_every_request_error_becomes_an_error_of_errors_py(
    name: str, make: Callable[[httpx2.Request], BaseException], in_body: bool
) -> None:
    async with MjClient(SIM_URL, KEY, transport=failing(make, in_body=in_body), sleep=no_wait) as mj:
        with pytest.raises(MjError) as read:
            await mj.fetch("1")
        with pytest.raises(MjError) as listed:
            await mj.list_by_condition(["1"])
        with pytest.raises(MjError) as submitted:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
        with pytest.raises((UpstreamRejectedError, UpstreamUnavailableError)) as downloaded:
            await mj.download(f"{SIM_URL}/img/1.png")
    for info in (read, listed, submitted, downloaded):
        assert type(info.value).__module__ == "mj_mcp.errors"
        assert KEY not in str(info.value)
    # A submit is "may have been created" unless the request can be known not to have left.
    never_sent = name in {"InvalidURL", "UnsupportedProtocol"} and not in_body
    assert isinstance(submitted.value, SubmitOutcomeUnknownError) is not never_sent


# -- row 4: deadlines ----------------------------------------------------------------------------


@pytest.mark.slow  # waits out real timeouts on loopback sockets
async def test_a_dripping_read_ends_at_the_http_timeout_not_per_read() -> None:
    upstream = hostile("fetch", "drip", drip_seconds=0.02)  # ~800 bytes: ~16 s whole, 0.02 s per read
    async with serve_hostile(upstream) as up, MjClient(up.base_url, KEY, timeout=0.8, read_attempts=1) as mj:
        started = time.monotonic()
        with anyio.fail_after(3), pytest.raises(UpstreamTimeoutError, match=r"within 0\.8 s"):
            await mj.fetch(TASK_ID)
    assert time.monotonic() - started < 2.5


@pytest.mark.slow  # waits out real timeouts on loopback sockets
async def test_a_dripping_submit_ends_at_the_http_timeout_and_may_exist() -> None:
    upstream = hostile("submit", "drip", drip_seconds=0.02)
    async with serve_hostile(upstream) as up, MjClient(up.base_url, KEY, timeout=0.8) as mj:
        with anyio.fail_after(3), pytest.raises(SubmitOutcomeUnknownError, match=r"within 0\.8 s"):
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert up.submits == 1


@pytest.mark.slow  # waits out real timeouts on loopback sockets
async def test_the_callers_deadline_caps_a_read_and_a_download_with_all_their_retries() -> None:
    fetch = hostile("fetch", "drip", drip_seconds=0.02)
    image = hostile("image", "drip", drip_seconds=0.02)
    async with serve_hostile(fetch) as fu, serve_hostile(image) as iu, MjClient(fu.base_url, KEY, timeout=30) as mj:
        started = time.monotonic()
        with anyio.fail_after(3), pytest.raises(UpstreamTimeoutError):
            await mj.fetch(TASK_ID, deadline=time.monotonic() + 0.6)
        assert time.monotonic() - started < 2
        started = time.monotonic()
        with anyio.fail_after(3), pytest.raises(UpstreamTimeoutError):
            await mj.download(f"{iu.base_url}/img/{TASK_ID}.png", deadline=time.monotonic() + 0.6)
        assert time.monotonic() - started < 2


@pytest.mark.slow  # waits out real timeouts on loopback sockets
async def test_a_download_has_one_overall_deadline() -> None:
    image = hostile("image", "drip", drip_seconds=0.02)
    async with serve_hostile(image) as iu, MjClient(iu.base_url, KEY, download_timeout=0.6) as mj:
        started = time.monotonic()
        with anyio.fail_after(3), pytest.raises(UpstreamTimeoutError):
            await mj.download(f"{iu.base_url}/img/{TASK_ID}.png")
    assert time.monotonic() - started < 2


async def test_a_retry_after_past_the_callers_deadline_is_reported_at_once(clock: FakeClock) -> None:
    calls: list[str] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        return httpx2.Response(429, headers={"Retry-After": "25"})

    async with MjClient(SIM_URL, KEY, transport=httpx2.MockTransport(handler), clock=clock) as mj:
        with pytest.raises(RateLimitedError) as info:
            await mj.fetch("1", deadline=clock.now() + 8)
        assert info.value.retry_after == 25
        with pytest.raises(UpstreamUnavailableError):
            await mj.download(f"{SIM_URL}/img/1.png", deadline=clock.now() + 8)
        # Without a deadline the same wait is slept through (it is under MAX_RETRY_AFTER).
        with pytest.raises(RateLimitedError):
            await mj.fetch("1")
    assert clock.slept == [25.0, 25.0]
    assert len(calls) == 5


async def test_a_backoff_past_the_deadline_raises_the_last_error_instead_of_sleeping(clock: FakeClock) -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(503)

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), clock=clock, jitter=lambda: 1.0) as mj:
        with pytest.raises(UpstreamUnavailableError) as info:
            await mj.recent(deadline=clock.now() + 0.9)  # the first backoff is 0.5 s, the second 1 s
    assert info.value.http_status == 503
    assert clock.slept == [0.5]


async def test_a_deadline_already_past_sends_nothing(clock: FakeClock) -> None:
    calls: list[str] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        return httpx2.Response(200, json={"id": "1"})

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), clock=clock) as mj:
        with pytest.raises(UpstreamTimeoutError):
            await mj.fetch("1", deadline=clock.now())
        with pytest.raises(UpstreamTimeoutError):
            await mj.list_by_condition(["1"], deadline=clock.now() - 1)
    assert calls == []


# -- row 5: the key never leaves -------------------------------------------------------------------


async def test_a_key_echoed_in_every_task_field_never_reaches_a_model() -> None:
    fetch, listing, submit = hostile("fetch", "echo_key"), hostile("list", "echo_key"), hostile("submit", "echo_key")
    async with serve_hostile(fetch) as fu, serve_hostile(listing) as lu, serve_hostile(submit) as su:
        async with MjClient(fu.base_url, KEY) as mj:
            task = await mj.fetch(TASK_ID)
        async with MjClient(lu.base_url, KEY) as mj:
            tasks = await mj.list_by_condition([TASK_ID, KEY[:20]])
        async with MjClient(su.base_url, KEY) as mj:
            result = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert task.fail_reason == "account *** refused"
    assert task.buttons[0].label == "U1 ***"
    for model in (task, *tasks, result):
        assert KEY not in model.model_dump_json()
        assert KEY not in repr(model)


@pytest.mark.parametrize(
    "spelled",
    [ODD_KEY, quote(ODD_KEY, safe=""), ODD_KEY.replace("/", "\\/").replace("+", "\\u002b")],
)
async def test_a_key_in_any_spelling_is_scrubbed_from_tasks_envelopes_and_errors(spelled: str) -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("/fetch"):
            body = '{"id":"1","status":"FAILURE","failReason":"key %s","properties":{"%s":"%s"}}'
            return httpx2.Response(200, text=body % (spelled, spelled, spelled))
        if path.endswith("/image-seed"):
            return httpx2.Response(200, text='{"code":4,"description":"no seed for ' + spelled + '"}')
        return httpx2.Response(200, text='{"code":4,"description":"refused ' + spelled + '"}')

    async with MjClient(SIM_URL, ODD_KEY, transport=httpx2.MockTransport(handler), sleep=no_wait) as mj:
        task = await mj.fetch("1")
        with pytest.raises(UpstreamRejectedError) as seed:
            await mj.image_seed("1")
        with pytest.raises(UpstreamRejectedError) as submit:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    for text in (task.model_dump_json(), str(seed.value), str(submit.value)):
        assert ODD_KEY not in text
        assert quote(ODD_KEY, safe="") not in text
        assert "***" in text


# -- row 2: task ids are checked before a request --------------------------------------------------


@pytest.mark.parametrize("bad", ["x" * 65, "", "   ", "a/b", "../1", "a\x00b", "1\n", "a\x7fb"])
async def test_a_task_id_that_cannot_exist_is_an_input_error_and_sends_nothing(bad: str) -> None:
    calls: list[str] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        return httpx2.Response(200, json=[])

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=no_wait) as mj:
        for call in (mj.fetch, mj.image_seed, mj.cancel):
            with pytest.raises(InputError, match="taskId"):
                await call(bad)
        assert await mj.list_by_condition([bad]) == []
    assert calls == []


async def test_list_by_condition_leaves_out_invalid_ids_and_asks_for_the_rest() -> None:
    asked: list[Any] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        ids = json.loads(request.content)["ids"]
        asked.append(ids)
        return httpx2.Response(200, json=[{"id": i, "status": "SUCCESS"} for i in ids])

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=no_wait) as mj:
        tasks = await mj.list_by_condition(["1", "x" * 65, " ", "2", "a/b"])
        many = await mj.list_by_condition([str(i) for i in range(1200)])
    assert [t.id for t in tasks] == ["1", "2"]
    assert asked[0] == ["1", "2"]
    assert len(many) == 1200  # more ids than one request may carry are asked in chunks
    assert [len(ids) for ids in asked[1:]] == [500, 500, 200]


# -- row 6: a huge reply is refused without being read ---------------------------------------------


class Counted(httpx2.AsyncByteStream):
    """500 MB in 1 MiB pieces, counting what was actually taken."""

    def __init__(self) -> None:
        self.served = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        piece = b"x" * (1024 * 1024)
        while self.served < 500 * 1024 * 1024:
            self.served += len(piece)
            yield piece


@pytest.mark.parametrize("declared", [True, False])
async def test_a_500_mb_reply_or_download_is_refused_without_reading_it(declared: bool) -> None:
    bodies: list[Counted] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        body = Counted()
        bodies.append(body)
        headers = {"content-length": str(500 * 1024 * 1024)} if declared else {}
        return httpx2.Response(200, headers=headers, stream=body)

    async with MjClient(SIM_URL, transport=httpx2.MockTransport(handler), sleep=no_wait) as mj:
        with pytest.raises(ProtocolError, match="too large"):
            await mj.fetch("1")
        with pytest.raises(UpstreamRejectedError, match="larger than"):
            await mj.download(f"{SIM_URL}/img/1.png", max_bytes=4 * 1024 * 1024)
    fetched, downloaded = bodies
    if declared:
        assert (fetched.served, downloaded.served) == (0, 0)
    else:
        assert fetched.served <= replies.MAX_REPLY_BYTES + 1024 * 1024
        assert downloaded.served <= 5 * 1024 * 1024
