"""The real client and MCP server against the upstream dialects: auth headers, and new-api in front.

The simulator plays each dialect (`Quirks.auth`, `Quirks.new_api`); see docs/upstream-api.md §1.1,
§3, §4.1 and §5 for what the real servers do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from PIL import Image

from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import AuthenticationError
from mj_mcp.models import ImagineRequest
from mj_mcp.server import create_server
from mj_mcp.simulator import FAIL_REASON, Quirks, Simulator
from tests.helpers import SIM_URL, FakeClock, callback_session, lists, text

pytestmark = pytest.mark.anyio

KEY = "sk-Dialect0123456789abcdefXYZ"
"""A key every dialect can hold: new-api's are "sk-" + letters and digits."""

STYLES = ["bearer", "mj-api-secret", "authorization"]
ACCEPTED: dict[str, set[str]] = {
    # NZ reads only mj-api-secret.
    "nz": {"mj-api-secret"},
    # TA takes the raw Authorization value (a "Bearer " prefix is part of it), else mj-api-secret.
    "ta": {"mj-api-secret", "authorization"},
    # new-api strips "Bearer " and "sk-", and falls back to mj-api-secret.
    "new-api": {"bearer", "mj-api-secret", "authorization"},
}


# -- the client against each auth dialect -------------------------------------------------------


@pytest.mark.parametrize("dialect", sorted(ACCEPTED))
@pytest.mark.parametrize("style", STYLES)
async def test_each_auth_header_style_works_exactly_where_the_dialect_reads_it(
    dialect: Any, style: Any, clock: FakeClock
) -> None:
    sim = Simulator(clock=clock, api_key=KEY, quirks=Quirks(auth=dialect), seed=7)
    async with MjClient(SIM_URL, KEY, auth_header=style, transport=sim.transport(), sleep=clock.sleep) as mj:
        if style in ACCEPTED[dialect]:
            task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a fox"))).task_id
            assert task_id is not None
            assert (await mj.fetch(task_id)).id == task_id
            return
        for call in (mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a fox")), mj.fetch("1")):
            with pytest.raises(AuthenticationError) as info:
                await call
            error = info.value
            assert error.http_status == 401
            for shown in (str(error), error.message, error.hint):
                assert KEY not in shown
                assert KEY.removeprefix("sk-") not in shown
    assert sim.tasks == {}


@pytest.mark.parametrize("dialect", sorted(ACCEPTED))
@pytest.mark.parametrize("style", STYLES)
async def test_a_wrong_key_is_refused_by_every_dialect_without_showing_it(
    dialect: Any, style: Any, clock: FakeClock
) -> None:
    sim = Simulator(clock=clock, api_key="sk-TheRightOne42", quirks=Quirks(auth=dialect), seed=7)
    async with MjClient(SIM_URL, KEY, auth_header=style, transport=sim.transport(), sleep=clock.sleep) as mj:
        with pytest.raises(AuthenticationError) as info:
            await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a fox"))
    assert KEY not in f"{info.value} {info.value.hint}"
    assert "MJ_AUTH_HEADER" in info.value.hint


# -- the MCP server through new-api ----------------------------------------------------------------


@pytest.fixture
def na_quirks() -> Quirks:
    return Quirks(new_api=True, auth="new-api")


@pytest.fixture
def na_sim(clock: FakeClock, na_quirks: Quirks) -> Simulator:
    return Simulator(clock=clock, api_key=KEY, quirks=na_quirks, seed=7)


@pytest.fixture
async def na_mj(na_sim: Simulator, clock: FakeClock) -> AsyncIterator[MjClient]:
    async with MjClient(SIM_URL, KEY, transport=na_sim.transport(), sleep=clock.sleep) as client:
        yield client


@pytest.fixture
async def na_client(settings: Settings, na_mj: MjClient, clock: FakeClock) -> AsyncIterator[Client]:
    async with Client(create_server(settings, na_mj, clock=clock), mode="legacy") as client:  # type: ignore[arg-type]
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool(tool, args)


async def finished(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call(client, tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS", text(result)
    return result.structured_content


@pytest.mark.parametrize(
    "na_quirks",
    [
        Quirks(new_api=True, auth="new-api", remix=True),
        Quirks(new_api=True, auth="new-api", remix=True, new_api_poll=15),
    ],
    ids=["current-copy", "copy-read-every-15s"],
)
async def test_a_remix_press_that_new_api_answers_with_code_1_still_comes_back_as_modal(
    na_client: Client, na_sim: Simulator
) -> None:
    grid = await finished(na_client, "imagine", {"prompt": "a red fox"})
    pressed = await call(na_client, "action", {"taskId": grid["id"], "customId": "V2"})
    assert not pressed.is_error, text(pressed)
    assert pressed.structured_content is not None
    task = pressed.structured_content
    assert task["status"] == "MODAL"
    assert na_sim.tasks[task["id"]].queued_at is None  # waiting upstream for its remix prompt
    assert f'call modal with taskId="{task["id"]}"' in text(pressed)
    done = await finished(na_client, "modal", {"taskId": task["id"], "prompt": "a blue fox"})
    assert done["id"] == task["id"]


async def test_custom_zoom_through_new_api_keeps_code_21_and_modal_finishes_it(na_client: Client) -> None:
    grid = await finished(na_client, "imagine", {"prompt": "a red fox"})
    upscale = await finished(na_client, "action", {"taskId": grid["id"], "customId": "U1"})
    pressed = await call(na_client, "action", {"taskId": upscale["id"], "customId": "Custom Zoom"})
    assert not pressed.is_error, text(pressed)
    assert pressed.structured_content is not None
    assert pressed.structured_content["status"] == "MODAL"
    assert "--zoom" in text(pressed)
    await finished(na_client, "modal", {"taskId": pressed.structured_content["id"], "prompt": "a fox --zoom 1.5"})


@pytest.mark.parametrize("na_quirks", [Quirks(new_api=True, auth="new-api", queue_position=3)])
async def test_a_queued_submit_that_new_api_answers_with_code_1_still_finishes(
    na_client: Client, na_sim: Simulator
) -> None:
    done = await finished(na_client, "imagine", {"prompt": "a red fox"})
    assert na_sim.tasks[done["id"]].queue_delay > 0  # it really waited in the queue


async def test_a_failing_prompt_through_new_api_is_an_error_with_its_reason(na_client: Client) -> None:
    result = await call(na_client, "imagine", {"prompt": "simulate-failure of a fox"})
    assert result.is_error
    assert FAIL_REASON in text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "FAILURE"


async def test_a_button_new_api_cannot_map_is_a_clear_error_and_starts_nothing(
    na_client: Client, na_sim: Simulator, settings: Settings
) -> None:
    assert settings.allowed_dirs
    png = settings.allowed_dirs[0] / "fox.png"
    Image.new("RGB", (32, 32), "orange").save(png)
    described = await finished(na_client, "describe", {"base64": str(png)})
    before = len(na_sim.tasks)
    result = await call(na_client, "action", {"taskId": described["id"], "customId": "1️⃣"})
    assert result.is_error
    body = text(result)
    assert "unknown_action:MJ::Job::PicReader::1" in body
    assert "rejected action" in body
    assert len(na_sim.tasks) == before


async def test_a_reroll_by_change_without_index_gets_new_apis_own_400_as_a_clear_error(
    na_client: Client, na_sim: Simulator
) -> None:
    grid = await finished(na_client, "imagine", {"prompt": "a red fox"})
    before = len(na_sim.tasks)
    result = await call(na_client, "change", {"taskId": grid["id"], "action": "REROLL"})
    assert result.is_error
    assert "index_is_required" in text(result)
    assert len(na_sim.tasks) == before


async def test_a_wait_through_new_api_that_strips_the_hook_finishes_by_polling(
    settings: Settings, clock: FakeClock
) -> None:
    sim = Simulator(clock=clock, quirks=Quirks(new_api=True), seed=7)
    async with (
        MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as mj,
        callback_session(settings, mj, sim, clock) as (client, receiver),
    ):
        started = clock.now()
        with anyio.fail_after(20):
            result = await client.call_tool("imagine", {"prompt": "a fox"})
        waited = clock.now() - started
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    assert sim.tasks[result.structured_content["id"]].notify_hook is None  # stripped by new-api
    assert receiver.accepted == 0
    assert lists(sim) >= 3  # polled at the normal pace, not the callback safety net's
    assert waited < sim.job_seconds + 2 * settings.poll_interval + 1


@pytest.mark.parametrize("tool", ["recent_tasks", "task_queue", "query_tasks", "cancel_task"])
async def test_a_call_new_api_does_not_relay_is_reported_as_not_offered(
    na_client: Client, na_sim: Simulator, tool: str
) -> None:
    grid = await finished(na_client, "imagine", {"prompt": "a red fox"})
    if tool == "cancel_task":  # a running task: one that has ended is not sent a cancel (nothing to cancel)
        running = await call(na_client, "imagine", {"prompt": "a fox to cancel", "wait": False})
        assert running.structured_content is not None
        grid = running.structured_content
    result = await call(na_client, tool, {"taskId": grid["id"]} if tool == "cancel_task" else {})
    assert result.is_error
    body = text(result)
    assert "does not offer" in body, body
    assert "web page" in body, body
