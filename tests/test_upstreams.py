"""Upstream profiles: the data each one carries, and what the client sends because of it.

The client runs against `httpx2.MockTransport`, which records each request: the URL (speed-mode
prefix), the headers (auth) and the JSON body (mode in the prompt, account selection, REROLL's
index) are what each upstream program reads (docs/upstream-api.md §8).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import InputError, SubmitOutcomeUnknownError, UpstreamRejectedError
from mj_mcp.models import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    ImagineRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
)
from mj_mcp.upstreams import PROFILES, UPSTREAM_NAMES, AccountSelection, as_change, change_button, recognise

pytestmark = pytest.mark.anyio

BASE = "http://upstream.test"
KEY = "sk-profile-test-key-123"
ACCEPTED = {"code": 1, "description": "ok", "result": "1700000000000001", "properties": {}}


class Recorder:
    """A fake upstream that answers every request with one reply and keeps what it was sent."""

    def __init__(self, status: int = 200, reply: Any = ACCEPTED) -> None:
        self.requests: list[httpx2.Request] = []
        self._status, self._reply = status, reply

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(self._status, json=self._reply)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)

    @property
    def path(self) -> str:
        return self.requests[-1].url.path


def client(upstream: str, recorder: Recorder, **options: Any) -> MjClient:
    return MjClient(BASE, KEY, profile=PROFILES[upstream], transport=httpx2.MockTransport(recorder), **options)


# -- the profiles ------------------------------------------------------------------------------


def test_there_are_four_profiles_with_the_documented_defaults() -> None:
    assert set(PROFILES) == set(UPSTREAM_NAMES) == {"plus", "new-api", "trueai", "novicezk"}
    shown = {p.name: (p.auth_header, p.mode_prefix, p.account_filter, p.code_21) for p in PROFILES.values()}
    assert shown == {
        "plus": ("bearer", "/{mode}", "top_level", "task_exists"),
        "new-api": ("bearer", "prompt", "top_level", "task_exists"),
        "trueai": ("mj-api-secret", "/mj-{mode}", "nested", "modal"),
        "novicezk": ("mj-api-secret", "prompt", "none", "task_exists"),
    }
    assert {p.name: p.max_body_bytes for p in PROFILES.values()} == {
        "plus": None,
        "new-api": 32_000_000,
        "trueai": 30_000_000,
        "novicezk": None,
    }
    assert all(p.fingerprint for p in PROFILES.values())


@pytest.mark.parametrize(
    ("upstream", "missing"),
    [
        ("plus", {"retexture"}),
        ("trueai", {"show", "query_tasks", "task_queue"}),
        ("new-api", {"show", "recent_tasks", "task_queue", "cancel_task", "query_tasks", "retexture"}),
        (
            "novicezk",
            {
                "action",
                "modal",
                "shorten",
                "video",
                "edit",
                "swap_face",
                "upload_images",
                "show",
                "image_seed",
                "cancel_task",
                "query_tasks",
                "retexture",
            },
        ),
    ],
)
def test_each_profile_offers_what_its_upstream_routes_or_does_another_way(upstream: str, missing: set[str]) -> None:
    profile = PROFILES[upstream]
    assert {name for name, endpoint in ENDPOINTS.items() if not profile.offers(endpoint)} == missing
    assert all(profile.offers(name) == profile.offers(ENDPOINTS[name]) for name in ENDPOINTS)


def test_operations_done_another_way_are_data() -> None:
    new_api, trueai, plus = PROFILES["new-api"], PROFILES["trueai"], PROFILES["plus"]
    assert new_api.alternative_for("simple_change") == ENDPOINTS["change"]
    assert new_api.offers("simple_change") and not new_api.routes("simple_change")
    assert new_api.alternative_for("change") is None and new_api.routes("change")
    assert trueai.alternative_for(ENDPOINTS["change"]) == ENDPOINTS["action"]
    assert trueai.alternative_for("simple_change") == ENDPOINTS["action"]
    assert all(plus.alternative_for(name) is None and plus.routes(name) for name in ENDPOINTS if plus.offers(name))
    assert PROFILES["novicezk"].alternative_for("action") is None


@pytest.mark.parametrize(
    ("content", "action", "index", "button"),
    [("17 U2", "UPSCALE", 2, "U2"), ("17 v4", "VARIATION", 4, "V4"), ("17 R", "REROLL", None, "🔄")],
)
def test_simple_change_as_change_and_as_a_button(content: str, action: str, index: int | None, button: str) -> None:
    change = as_change(SimpleChangeRequest(content=content, state="s"))
    assert (change.task_id, change.action, change.index, change.state) == ("17", action, index, "s")
    assert change_button(change) == button


@pytest.mark.parametrize("content", ["17", "17 U5", "17 X1", "17 R1", "17 U", "17 U2 V1"])
def test_a_simple_change_content_that_is_not_one_is_refused(content: str) -> None:
    with pytest.raises(ValueError, match="content must look like"):
        as_change(SimpleChangeRequest(content=content))


@pytest.mark.parametrize(
    ("status", "data", "web_page", "upstream"),
    [
        (403, {"error": {"message": "x", "type": "new_api_error"}}, False, "new-api"),
        (200, None, True, "new-api"),
        (200, {"success": False, "code": -1, "message": "x"}, False, "trueai"),
        (404, {"timestamp": "t", "status": 404, "error": "Not Found", "path": "/mj/x"}, False, "novicezk"),
        (400, {"timestamp": "t", "status": 400, "error": "Bad Request", "path": "/mj/x"}, False, None),
        (200, {"code": 4, "description": "x"}, False, None),
        (400, {"error": {"message": "x"}}, False, None),
    ],
)
def test_fingerprints(status: int, data: Any, web_page: bool, upstream: str | None) -> None:
    assert recognise(status, data, web_page=web_page) == upstream


# -- what the client sends -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "path", "prompt", "header"),
    [
        ("plus", "/fast/mj/submit/imagine", "a cat", "authorization"),
        ("trueai", "/mj-fast/mj/submit/imagine", "a cat", "mj-api-secret"),
        ("new-api", "/mj/submit/imagine", "a cat --fast", "authorization"),
        ("novicezk", "/mj/submit/imagine", "a cat --fast", "mj-api-secret"),
    ],
)
async def test_each_profile_delivers_the_mode_and_the_key_its_own_way(
    upstream: str, path: str, prompt: str, header: str
) -> None:
    recorder = Recorder()
    async with client(upstream, recorder, mode="fast") as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat"))
    assert (recorder.path, recorder.body["prompt"]) == (path, prompt)
    assert KEY in recorder.requests[-1].headers[header]


async def test_a_mode_in_the_prompt_is_never_doubled_and_the_call_s_mode_wins_over_the_default() -> None:
    recorder = Recorder()
    async with client("new-api", recorder, mode="relax") as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat --RELAX --ar 2:3"))
        assert recorder.body["prompt"] == "a cat --RELAX --ar 2:3"
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat"), mode="turbo")
        assert recorder.body["prompt"] == "a cat --turbo"
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat --fastest"))
        assert recorder.body["prompt"] == "a cat --fastest --relax"


async def test_a_job_without_a_prompt_gets_no_mode_where_the_mode_travels_in_the_prompt() -> None:
    recorder = Recorder()
    async with client("new-api", recorder, mode="fast") as mj:
        await mj.submit(ENDPOINTS["action"], ActionRequest(task_id="17", custom_id="MJ::JOB::upsample::1::x"))
    assert recorder.path == "/mj/submit/action"
    assert "prompt" not in recorder.body


async def test_an_explicit_mode_prefix_overrides_the_profile() -> None:
    recorder = Recorder()
    async with client("new-api", recorder, mode="fast", mode_prefix="/mj-{mode}", auth_header="mj-api-secret") as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat"))
    assert (recorder.path, recorder.body["prompt"]) == ("/mj-fast/mj/submit/imagine", "a cat")
    assert recorder.requests[-1].headers["mj-api-secret"] == KEY


CHOSEN = AccountSelection.model_validate({"instanceId": "123", "modes": ["FAST"], "remix": False})


async def test_trueai_reads_account_selection_only_nested() -> None:
    recorder = Recorder()
    async with client("trueai", recorder, account_filter=CHOSEN) as mj:
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat", instance_id="999"))
        # The request's own choice wins over MJ_ACCOUNT_FILTER; nothing stays at the top level.
        assert recorder.body["accountFilter"] == {"instanceId": "999", "modes": ["FAST"], "remix": False}
        assert not {"instanceId", "modes", "remix"} & recorder.body.keys()
        await mj.submit(ENDPOINTS["action"], ActionRequest(task_id="17", custom_id="MJ::JOB::upsample::1::x"))
        assert recorder.body["accountFilter"] == {"instanceId": "123", "modes": ["FAST"], "remix": False}


async def test_plus_and_new_api_read_account_selection_at_the_top_level() -> None:
    for upstream in ("plus", "new-api"):
        recorder = Recorder()
        async with client(upstream, recorder, account_filter=CHOSEN) as mj:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat", remix=True))
            assert (recorder.body["instanceId"], recorder.body["modes"], recorder.body["remix"]) == (
                "123",
                ["FAST"],
                True,
            )
            assert "accountFilter" not in recorder.body
            await mj.submit(ENDPOINTS["upload_images"], _upload())
            assert "instanceId" not in recorder.body  # an upload starts no task on an account
            # swap_face's own model nests it everywhere.
            await mj.submit(ENDPOINTS["swap_face"], SwapFaceRequest(source_base64="aGk=", target_base64="aG8="))
            assert recorder.body["accountFilter"] == {"instanceId": "123", "modes": ["FAST"], "remix": False}


def _upload() -> Any:
    from mj_mcp.models import UploadRequest

    return UploadRequest(base64_array=["aGk="])


async def test_plus_without_an_account_filter_sends_the_body_as_before() -> None:
    recorder = Recorder()
    async with client("plus", recorder) as mj:
        await mj.submit(ENDPOINTS["change"], ChangeRequest(task_id="17", action="REROLL"))
        assert recorder.body == {"taskId": "17", "action": "REROLL"}
        await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat"))
        assert recorder.body == {"prompt": "a cat"}


@pytest.mark.parametrize("upstream", ["new-api", "novicezk"])
async def test_reroll_carries_index_1_where_new_api_requires_one(upstream: str) -> None:
    recorder = Recorder()
    async with client(upstream, recorder) as mj:
        await mj.submit(ENDPOINTS["change"], ChangeRequest(task_id="17", action="REROLL"))
        assert recorder.body == {"taskId": "17", "action": "REROLL", "index": 1}
        await mj.submit(ENDPOINTS["change"], ChangeRequest(task_id="17", action="UPSCALE", index=3))
        assert recorder.body["index"] == 3


@pytest.mark.parametrize(("upstream", "limit"), [("trueai", "30 MB"), ("new-api", "32 MB")])
async def test_a_body_over_the_profile_s_limit_is_refused_before_sending(upstream: str, limit: str) -> None:
    recorder = Recorder()
    images = ["A" * 12_000_000] * 3  # ~36 MB of base64 in the JSON
    async with client(upstream, recorder) as mj:
        with pytest.raises(InputError) as info:
            await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=images))
        # Just under the limit goes out.
        await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=images[:2]))
    assert len(recorder.requests) == 1
    assert "36.0 MB" in info.value.message and limit in info.value.message
    assert "Nothing was sent" in info.value.message
    assert "fewer or smaller images" in info.value.hint


async def test_plus_has_no_body_limit() -> None:
    recorder = Recorder()
    async with client("plus", recorder) as mj:
        await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=["A" * 12_000_000] * 3))
    assert len(recorder.requests) == 1


# -- what the client reads ------------------------------------------------------------------------

NO_CHANNEL = {"error": {"message": "当前分组 default 下对于模型 mj_ 无可用渠道", "type": "new_api_error"}}


async def test_new_api_s_no_channel_503_is_a_refusal_nothing_started() -> None:
    """Audit A1/B3: was SubmitOutcomeUnknownError ("the job may have been created")."""
    async with client("new-api", Recorder(503, NO_CHANNEL)) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(ENDPOINTS["video"], _video())
    assert not isinstance(info.value, SubmitOutcomeUnknownError)
    assert info.value.http_status == 503
    assert "Nothing was started" in info.value.message
    assert "no channel for this model" in info.value.message and "无可用渠道" in info.value.message
    assert "MJ_UPSTREAM" not in info.value.message


async def test_the_same_refusal_on_another_profile_names_new_api() -> None:
    async with client("plus", Recorder(503, NO_CHANNEL)) as mj:
        with pytest.raises(UpstreamRejectedError) as info:
            await mj.submit(ENDPOINTS["video"], _video())
    assert "set MJ_UPSTREAM=new-api" in info.value.message


async def test_any_other_5xx_on_a_submit_stays_an_unknown_outcome() -> None:
    for reply in ({"error": {"message": "boom", "type": "new_api_error"}}, {"code": 9}, "oops"):
        async with client("new-api", Recorder(502 if isinstance(reply, dict) else 503, reply)) as mj:
            with pytest.raises(SubmitOutcomeUnknownError) as info:
                await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
        # new-api has no /mj/task/list: the hint must not send the model to recent_tasks.
        assert "recent_tasks" not in info.value.hint and "dashboard" in info.value.hint
    async with client("plus", Recorder(502, {"code": 9})) as mj:
        with pytest.raises(SubmitOutcomeUnknownError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert "recent_tasks" in info.value.hint


def test_new_api_cannot_press_the_buttons_its_gateway_refuses() -> None:
    new_api, plus = PROFILES["new-api"], PROFILES["plus"]
    for custom_id in ("MJ::Job::PicReader::1", "MJ::Job::PromptAnalyzer::2", "MJ::JOB::animate_high::1::x"):
        assert not new_api.presses(custom_id)
        assert plus.presses(custom_id)
    assert new_api.presses("MJ::JOB::upsample::1::x")


def _video() -> Any:
    from mj_mcp.models import VideoRequest

    return VideoRequest(prompt="waves", image="https://example.com/a.png")


async def test_code_21_with_an_existing_task_returns_that_task_where_21_means_exists() -> None:
    exists = {"code": 21, "description": "任务已存在", "result": "42", "properties": {"status": "SUCCESS"}}
    async with client("novicezk", Recorder(200, exists)) as mj:
        result = await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))
    assert (result.code, result.task_id) == (1, "42")
    assert "already exists" in result.description
    async with client("trueai", Recorder(200, exists)) as mj:
        assert (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="x"))).code == 21
