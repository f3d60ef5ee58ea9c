"""The simulator plays each upstream profile as strictly as the real software (issue 13 item 5,
the upstream audit of issue 13 D and E): route sets and their 404s, auth, speed-mode delivery and the
effective mode each task records, error shapes, and a whole imagine per profile.

Raw HTTP against the simulator's ASGI app, with a `ManualClock`: no sleeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.simulator import (
    DEFAULT_MODE,
    PROFILES,
    ChannelName,
    ManualClock,
    ProfileName,
    Quirks,
    Simulator,
    StandaloneApp,
)
from mj_mcp.simulator.core import BANNED_REASON
from mj_mcp.simulator.profiles import PROFILE_BY_NAME
from tests.sim_http import JOB, NA_KEY, fetch, finished, imagine_done, png_uri, post, submit

HEADERS: dict[str, dict[str, str]] = {
    "plus": {"Authorization": f"Bearer {NA_KEY}"},
    "new-api": {"Authorization": f"Bearer {NA_KEY}"},
    "trueai": {"Authorization": NA_KEY},
    "novicezk": {"mj-api-secret": NA_KEY},
}
"""The header each profile's real software reads the key from."""
NZ_TASK_FIELDS = {
    "id",
    "action",
    "status",
    "prompt",
    "promptEn",
    "description",
    "state",
    "submitTime",
    "startTime",
    "finishTime",
    "imageUrl",
    "progress",
    "failReason",
    "properties",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@asynccontextmanager
async def serving(
    profile: ProfileName,
    clock: ManualClock,
    *,
    headers: dict[str, str] | None = None,
    channel: ChannelName | None = None,
    **quirks: Any,
) -> AsyncIterator[tuple[Simulator, httpx2.AsyncClient]]:
    """The profile's simulator with a key (and new-api's `channel` behind it), its preset quirks
    changed by `quirks`, and a client that sends the key the way that software reads it."""
    sim = Simulator(clock=clock, api_key=NA_KEY, seed=7, upstream=profile, channel=channel)
    for name, value in quirks.items():
        setattr(sim.quirks, name, value)
    sent = HEADERS[profile] if headers is None else headers
    async with httpx2.AsyncClient(transport=sim.transport(), base_url="http://sim", headers=sent) as client:
        yield sim, client


def test_the_profiles_are_named_and_an_unknown_one_is_refused() -> None:
    assert PROFILES == ("plus", "new-api", "trueai", "novicezk")
    assert Simulator().profile.name == "plus"
    with pytest.raises(ValueError, match="unknown upstream 'warp'"):
        Simulator(upstream="warp")  # type: ignore[arg-type]
    assert StandaloneApp.create(upstream="novicezk").simulator.profile.name == "novicezk"


def test_a_profile_presets_its_dialect_unless_quirks_are_given() -> None:
    assert Simulator(upstream="trueai").quirks.auth == "ta"
    assert Simulator(upstream="novicezk").quirks.unknown_fetch == "empty200"
    assert Simulator(upstream="new-api").quirks.new_api is True
    assert Simulator(upstream="novicezk", quirks=Quirks()).quirks.auth == "any"


# -- route sets -------------------------------------------------------------------------------


def _request(endpoint_path: str) -> str:
    return endpoint_path.replace("{id}", "1")


@pytest.mark.anyio
@pytest.mark.parametrize("profile", ["plus", "trueai", "novicezk"])
async def test_each_upstream_routes_exactly_its_own_endpoints_and_answers_the_rest_with_its_404(
    clock: ManualClock, profile: ProfileName
) -> None:
    lacks = PROFILE_BY_NAME[profile].lacks
    async with serving(profile, clock) as (_sim, client):
        for endpoint in ENDPOINTS.values():
            path = _request(endpoint.path)
            response = await client.request(endpoint.method, path, json={} if endpoint.method == "POST" else None)
            if endpoint.name not in lacks:
                # A route that is there may still answer 404 with a body (code 3: no such task).
                assert (response.status_code, response.content) != (404, b""), path
                assert response.status_code != 404 or "code" in response.json(), path
            elif profile == "novicezk":
                body = response.json()
                assert (response.status_code, body["status"], body["error"], body["path"]) == (
                    404,
                    404,
                    "Not Found",
                    path,
                )
                assert "timestamp" in body
            else:
                assert (response.status_code, response.content) == (404, b""), path


@pytest.mark.anyio
async def test_the_route_sets_are_the_audits() -> None:
    assert PROFILE_BY_NAME["plus"].lacks == {"retexture"}  # trueai's own route
    assert PROFILE_BY_NAME["trueai"].lacks == {"change", "simple_change", "show", "query_tasks", "task_queue"}
    nz_has = {e.name for e in ENDPOINTS.values()} - PROFILE_BY_NAME["novicezk"].lacks
    assert nz_has == {
        "imagine",
        "blend",
        "describe",
        "change",
        "simple_change",
        "get_task",
        "list_tasks",
        "recent_tasks",
        "task_queue",
    }


@pytest.mark.anyio
async def test_trueai_has_the_list_by_ids_alias_and_novicezk_does_not(clock: ManualClock) -> None:
    async with serving("trueai", clock) as (_sim, client):
        assert (await client.post("/mj/task/list-by-ids", json={"ids": []})).json() == []
    async with serving("novicezk", clock) as (_sim, client):
        response = await client.post("/mj/task/list-by-ids", json={"ids": []})
        assert (response.status_code, response.json()["path"]) == (404, "/mj/task/list-by-ids")


@pytest.mark.anyio
async def test_new_api_answers_unrelayed_routes_with_its_dashboard_and_relays_the_upstreams_404(
    clock: ManualClock,
) -> None:
    async with serving("new-api", clock) as (_sim, client):
        for method, path in (("GET", "/mj/task/queue"), ("GET", "/mj/task/list"), ("POST", "/mj/submit/show")):
            response = await client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
        grid = await imagine_done(client, clock)
        # new-api relays change to its channel (played as one that serves it).
        response = await client.post("/mj/submit/change", json={"taskId": grid["id"], "action": "UPSCALE", "index": 1})
        assert response.status_code == 200
        assert response.json()["code"] == 1


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "headers", "accepted"),
    [
        ("plus", {"Authorization": f"Bearer {NA_KEY}"}, True),
        ("plus", {"mj-api-secret": NA_KEY}, True),
        ("trueai", {"Authorization": NA_KEY}, True),
        ("trueai", {"mj-api-secret": NA_KEY}, True),
        ("trueai", {"Authorization": f"Bearer {NA_KEY}"}, False),
        ("novicezk", {"mj-api-secret": NA_KEY}, True),
        ("novicezk", {"Authorization": f"Bearer {NA_KEY}"}, False),
        ("novicezk", {"Authorization": NA_KEY}, False),
        ("new-api", {"Authorization": f"Bearer {NA_KEY}"}, True),
        ("new-api", {"Authorization": NA_KEY}, True),
        ("new-api", {"mj-api-secret": NA_KEY}, True),
        ("new-api", {"Authorization": "Bearer sk-wrong"}, False),
    ],
)
async def test_each_profile_reads_the_key_where_its_software_does(
    clock: ManualClock, profile: ProfileName, headers: dict[str, str], accepted: bool
) -> None:
    async with serving(profile, clock, headers=headers) as (sim, client):
        response = await client.post("/mj/submit/imagine", json={"prompt": "a cat"})
    if accepted:
        assert response.json()["code"] == 1
        return
    assert response.status_code == 401
    assert sim.tasks == {}
    if profile == "trueai":
        assert response.text == "Authorization header missing."
    elif profile == "novicezk":
        assert response.content == b""
    else:
        assert response.json()["error"]["type"] == "new_api_error"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reason", "status", "text"),
    [("disabled", 401, "账号已禁用"), ("unavailable", 403, "账号不可用"), ("no_permission", 401, "账号无权限")],
)
async def test_trueai_says_why_an_account_with_the_right_key_may_not_work(
    clock: ManualClock, reason: str, status: int, text: str
) -> None:
    async with serving("trueai", clock, account_refusal=reason) as (sim, client):
        response = await client.post("/mj/submit/imagine", json={"prompt": "a cat"})
    assert (response.status_code, response.text) == (status, text)
    assert sim.tasks == {}


# -- speed modes ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "prefix", "body", "mode", "effective"),
    [
        ("plus", "", {"prompt": "a cat"}, None, DEFAULT_MODE),
        ("plus", "/relax", {"prompt": "a cat"}, "RELAX", "RELAX"),
        ("plus", "/turbo", {"prompt": "a cat"}, "TURBO", "TURBO"),
        ("plus", "", {"prompt": "a cat", "modes": ["RELAX"]}, "RELAX", "RELAX"),
        ("trueai", "/mj-relax", {"prompt": "a cat"}, "RELAX", "RELAX"),
        ("trueai", "", {"prompt": "a cat --relax"}, "RELAX", "RELAX"),
        ("trueai", "", {"prompt": "a cat", "accountFilter": {"modes": ["TURBO"]}}, "TURBO", "TURBO"),
        ("trueai", "", {"prompt": "a cat", "modes": ["RELAX"]}, None, DEFAULT_MODE),
        ("novicezk", "", {"prompt": "a cat --relax"}, "RELAX", "RELAX"),
        ("new-api", "", {"prompt": "a cat --relax"}, "RELAX", "RELAX"),
        # new-api strips a "/mj-" prefix before forwarding: the mode is silently lost.
        ("new-api", "/mj-relax", {"prompt": "a cat"}, None, DEFAULT_MODE),
        # ... and it drops accountFilter, while trueai ignores the top level.
        ("new-api", "", {"prompt": "a cat", "accountFilter": {"modes": ["RELAX"]}}, None, DEFAULT_MODE),
    ],
)
async def test_each_profile_records_the_mode_a_job_really_runs_in(
    clock: ManualClock, profile: ProfileName, prefix: str, body: dict[str, Any], mode: str | None, effective: str
) -> None:
    async with serving(profile, clock) as (sim, client):
        task_id = await submit(client, f"{prefix}/mj/submit/imagine", body)
        task = sim.tasks[task_id]
        assert (task.mode, task.effective_mode) == (mode, effective)
        shown = await finished(client, clock, task_id)
    if profile in ("plus", "trueai"):
        # TA's Task shows the mode the job ran in; PLUS the one asked for.
        assert shown["mode"] == (effective if profile == "trueai" else mode)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "channel", "prefix"),
    [
        ("trueai", None, "/fast"),
        ("trueai", None, "/relax"),
        ("novicezk", None, "/fast"),
        ("novicezk", None, "/mj-fast"),
        ("new-api", "trueai", "/fast"),  # forwarded verbatim; a trueai channel has no such route
        ("new-api", "novicezk", "/fast"),  # ... nor has a novicezk one, which says so in Spring's JSON
    ],
)
async def test_a_mode_prefix_the_upstream_does_not_route_is_its_404(
    clock: ManualClock, profile: ProfileName, channel: ChannelName | None, prefix: str
) -> None:
    async with serving(profile, clock, channel=channel) as (sim, client):
        response = await client.post(f"{prefix}/mj/submit/imagine", json={"prompt": "a cat"})
    assert response.status_code == 404
    assert sim.tasks == {}
    if "novicezk" in (profile, channel):
        assert response.json()["path"] == f"{prefix}/mj/submit/imagine"
    else:
        assert response.content == b""


@pytest.mark.anyio
async def test_new_api_forwards_a_slash_mode_prefix_that_a_plus_channel_honours(clock: ManualClock) -> None:
    async with serving("new-api", clock, channel="plus") as (sim, client):
        task_id = await submit(client, "/relax/mj/submit/imagine", {"prompt": "a cat"})
    assert sim.tasks[task_id].effective_mode == "RELAX"


@pytest.mark.anyio
async def test_trueai_reads_account_selection_only_inside_account_filter(clock: ManualClock) -> None:
    async with serving("trueai", clock) as (sim, client):
        nested = await submit(
            client, "/mj/submit/imagine", {"prompt": "a", "accountFilter": {"instanceId": "42", "remix": False}}
        )
        top = await submit(client, "/mj/submit/imagine", {"prompt": "b", "instanceId": "42", "remix": True})
    assert sim.tasks[nested].selection == {"instanceId": "42", "remix": False}
    assert sim.tasks[top].selection == {}


# -- error shapes and code meanings -----------------------------------------------------------


@pytest.mark.anyio
async def test_new_api_fails_simple_change_in_its_distributor_with_503_no_channel(clock: ManualClock) -> None:
    async with serving("new-api", clock) as (sim, client):
        grid = await imagine_done(client, clock)
        response = await client.post("/mj/submit/simple-change", json={"content": f"{grid['id']} U1"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "new_api_error"
    assert error["message"].startswith("当前分组 default 下对于模型 mj_ 无可用渠道 (request id: ")
    assert len(sim.tasks) == 1


@pytest.mark.anyio
async def test_new_api_refuses_a_model_the_token_may_not_use_with_403(clock: ManualClock) -> None:
    async with serving("new-api", clock, na_forbidden_models=frozenset({"mj_video"})) as (sim, client):
        response = await client.post("/mj/submit/video", json={"prompt": "waves"})
        assert response.status_code == 403
        assert response.json()["error"]["message"].startswith("该令牌无权访问模型 mj_video (request id: ")
        assert sim.tasks == {}
        assert (await post(client, "/mj/submit/imagine", {"prompt": "a cat"}))["code"] == 1


@pytest.mark.anyio
async def test_new_api_can_lack_a_channel_for_a_model(clock: ManualClock) -> None:
    async with serving("new-api", clock, na_no_channel=frozenset({"mj_shorten"})) as (_sim, client):
        response = await client.post("/mj/submit/shorten", json={"prompt": "a cat"})
    assert response.status_code == 503
    assert "mj_shorten" in response.json()["error"]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(("profile", "limit"), [("trueai", 30 * 1024 * 1024), ("new-api", 32 * 1024 * 1024)])
async def test_a_body_over_the_limit_gets_413(clock: ManualClock, profile: ProfileName, limit: int) -> None:
    async with serving(profile, clock) as (sim, client):
        response = await client.post("/mj/submit/imagine", json={"prompt": "a" * limit})
    assert response.status_code == 413
    assert sim.tasks == {}
    if profile == "new-api":
        assert response.json()["error"]["type"] == "new_api_error"


@pytest.mark.anyio
async def test_trueai_accepts_a_banned_prompt_and_fails_the_job_later(clock: ManualClock) -> None:
    async with serving("trueai", clock) as (_sim, client):
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a bannedword cat"})
        clock.advance(JOB)
        task = await fetch(client, task_id)
    assert (task["status"], task["failReason"]) == ("FAILURE", BANNED_REASON)


@pytest.mark.anyio
@pytest.mark.parametrize("profile", ["plus", "novicezk"])
async def test_plus_and_novicezk_refuse_a_banned_prompt_with_code_24(clock: ManualClock, profile: ProfileName) -> None:
    async with serving(profile, clock) as (sim, client):
        reply = await post(client, "/mj/submit/imagine", {"prompt": "a bannedword cat"})
    assert (reply["code"], reply["properties"]["bannedWord"]) == (24, "bannedword")
    assert sim.tasks == {}


@pytest.mark.anyio
async def test_trueai_per_user_concurrency_limit(clock: ManualClock) -> None:
    async with serving("trueai", clock, max_concurrent=1) as (sim, client):
        await submit(client, "/mj/submit/imagine", {"prompt": "a cat"})
        reply = await post(client, "/mj/submit/imagine", {"prompt": "a dog"})
        assert (reply["code"], reply["description"]) == (4, "并发数已达上限")
        blend = await post(client, "/mj/submit/blend", {"base64Array": [png_uri(), png_uri((1, 2, 3))]})
        assert (blend["success"], blend["code"], blend["message"]) == (False, -1, "并发数已达上限")
        assert len(sim.tasks) == 1
        clock.advance(JOB)
        assert (await post(client, "/mj/submit/imagine", {"prompt": "a dog"}))["code"] == 1


@pytest.mark.anyio
async def test_trueai_describe_takes_a_link_and_can_forbid_uploads(clock: ManualClock) -> None:
    async with serving("trueai", clock, uploads_forbidden=True) as (_sim, client):
        refused = await post(client, "/mj/submit/describe", {"base64": png_uri()})
        assert (refused["code"], refused["description"]) == (4, "禁止上传")
        task_id = await submit(client, "/mj/submit/describe", {"link": "https://example.com/cat.png"})
        task = await finished(client, clock, task_id)
    assert task["imageUrl"] == "https://example.com/cat.png"
    assert task["prompt"].startswith("1️⃣")


@pytest.mark.anyio
async def test_trueai_answers_code_21_as_modal(clock: ManualClock) -> None:
    async with serving("trueai", clock, remix=True) as (_sim, client):
        grid = await imagine_done(client, clock)
        variation = next(b["customId"] for b in grid["buttons"] if b["label"] == "V1")
        reply = await post(client, "/mj/submit/action", {"taskId": grid["id"], "customId": variation})
        assert reply["code"] == 21
        assert (await fetch(client, reply["result"]))["status"] == "MODAL"


@pytest.mark.anyio
async def test_novicezk_speaks_spring_and_its_tasks_have_no_buttons(clock: ManualClock) -> None:
    hook = "http://receiver/mj-callback/secret"
    async with serving("novicezk", clock) as (sim, client):
        unreadable = await client.post("/mj/submit/imagine", content=b"{not json")
        assert (unreadable.status_code, unreadable.json()["error"]) == (400, "Bad Request")
        unknown = await client.get("/mj/task/404/fetch")
        assert (unknown.status_code, unknown.content) == (200, b"")
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a cat", "notifyHook": hook})
        clock.advance(JOB / 2)
        [(url, body)] = sim.due_callbacks()
        task = await finished(client, clock, task_id)
    assert set(task) == NZ_TASK_FIELDS
    assert task["properties"]["notifyHook"] == hook
    called_back = json.loads(body)
    assert url == hook
    assert set(called_back) == NZ_TASK_FIELDS
    assert called_back["properties"]["notifyHook"] == hook


@pytest.mark.anyio
async def test_trueai_returns_the_notify_hook_in_the_task(clock: ManualClock) -> None:
    hook = "http://receiver/mj-callback/secret"
    async with serving("trueai", clock) as (_sim, client):
        task_id = await submit(client, "/mj/submit/imagine", {"prompt": "a cat", "notifyHook": hook})
        task = await finished(client, clock, task_id)
    assert task["properties"]["notifyHook"] == hook
    assert task["buttons"]


# -- one whole job per profile ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("profile", "prefix", "prompt"),
    [
        ("plus", "/relax", "a cat"),
        ("trueai", "/mj-relax", "a cat"),
        ("novicezk", "", "a cat --relax"),
        ("new-api", "", "a cat --relax"),
    ],
)
async def test_an_imagine_runs_to_the_end_in_relax_mode_on_every_profile(
    clock: ManualClock, profile: ProfileName, prefix: str, prompt: str
) -> None:
    async with serving(profile, clock) as (sim, client):
        task_id = await submit(client, f"{prefix}/mj/submit/imagine", {"prompt": prompt})
        clock.advance(JOB / 2)
        running = await fetch(client, task_id)
        assert running["status"] == "IN_PROGRESS"
        task = await finished(client, clock, task_id)
        image = await client.get(task["imageUrl"])
    assert image.status_code == 200
    assert sim.tasks[task_id].effective_mode == "RELAX"
    assert task["progress"] == "100%"
