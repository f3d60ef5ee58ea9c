"""Answers that never mislead (issue 15): honest cancel and get_task, upstream Chinese in English,
refused tool names answered with the tools that do it, and buttons by name.

Each test runs the real server on the simulator, and each failed on the code before the fix.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mj_mcp.config import load_settings
from mj_mcp.server import create_server
from mj_mcp.server.aliases import refused_tool
from mj_mcp.server.runtime import client_from_settings
from mj_mcp.simulator import Fault, Simulator
from mj_mcp.upstreams import PROFILES, UPSTREAM_NAMES
from tests.helpers import FakeClock, text

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool(tool, args)


async def finished(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await call(client, tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def grid_of(client: Client) -> dict[str, Any]:
    return await finished(client, "imagine", {"prompt": "a watercolor lighthouse"})


async def upscale_of(client: Client) -> dict[str, Any]:
    grid = await grid_of(client)
    return await finished(client, "action", {"taskId": grid["id"], "customId": "U2"})


def submits(sim: Simulator, since: int) -> list[str]:
    return [path for _, path in sim.request_log[since:] if "/submit/" in path or path.endswith("/cancel")]


# -- cancel_task -----------------------------------------------------------------------------------


async def test_cancel_of_an_unknown_task_is_not_found_and_sends_no_cancel(client: Client, sim: Simulator) -> None:
    before = len(sim.request_log)
    result = await call(client, "cancel_task", {"taskId": "1750000000009999"})
    assert result.is_error
    assert "not found" in text(result)
    assert "Cancel sent" not in text(result)
    assert submits(sim, before) == []


async def test_cancel_of_a_finished_task_says_there_was_nothing_to_cancel(client: Client, sim: Simulator) -> None:
    grid = await grid_of(client)
    before = len(sim.request_log)
    result = await call(client, "cancel_task", {"taskId": grid["id"]})
    assert result.is_error
    assert "nothing to cancel" in text(result)
    assert "SUCCESS" in text(result)
    assert submits(sim, before) == []


async def test_cancel_of_a_running_task_names_its_new_status(client: Client) -> None:
    running = await finished(client, "imagine", {"prompt": "a fox", "wait": False})
    result = await call(client, "cancel_task", {"taskId": running["id"]})
    assert not result.is_error, text(result)
    assert "Cancelled" in text(result)
    assert "FAILURE" in text(result)
    assert "the task was cancelled (取消任务)" in text(result)


async def test_a_cancel_refused_upstream_reads_in_english(client: Client, sim: Simulator) -> None:
    # trueai lets only admins cancel: HTTP 400, plain text.
    running = await finished(client, "imagine", {"prompt": "a fox", "wait": False})
    sim.inject(Fault(path="/cancel", status=400, body="演示模式，禁止操作"))
    result = await call(client, "cancel_task", {"taskId": running["id"]})
    assert result.is_error
    assert "this account may not do this (demo mode; admin only) (演示模式，禁止操作)" in text(result)


# -- get_task --------------------------------------------------------------------------------------


async def test_get_task_reads_a_cancelled_task_without_an_error(client: Client) -> None:
    running = await finished(client, "imagine", {"prompt": "a fox", "wait": False})
    await call(client, "cancel_task", {"taskId": running["id"]})
    result = await call(client, "get_task", {"taskId": running["id"]})
    assert not result.is_error, text(result)
    assert "the task was cancelled (取消任务)" in text(result)
    assert result.structured_content is not None
    assert result.structured_content["failReason"] == "the task was cancelled (取消任务)"


async def test_get_task_reads_a_failed_task_without_an_error(client: Client) -> None:
    failed = await call(client, "imagine", {"prompt": "please simulate-failure"})
    assert failed.is_error  # the job failed: the call that started it says so
    assert failed.structured_content is not None
    result = await call(client, "get_task", {"taskId": failed.structured_content["id"]})
    assert not result.is_error, text(result)
    assert "Invalid value for --ar" in text(result)
    assert "call get_task again" not in text(result)


# -- upstream Chinese ------------------------------------------------------------------------------


async def test_a_submit_refusal_in_chinese_reads_in_english(client: Client, sim: Simulator) -> None:
    refusal = {"code": 4, "description": "maskBase64不能为空", "result": None, "properties": {}}
    sim.inject(Fault(path="/submit/imagine", status=200, body=json.dumps(refusal)))
    result = await call(client, "imagine", {"prompt": "a fox"})
    assert result.is_error
    assert "maskBase64 must not be empty (maskBase64不能为空)" in text(result)


async def test_a_task_description_in_chinese_reads_in_english(client: Client, sim: Simulator) -> None:
    grid = await grid_of(client)
    shown = {**grid, "description": "任务已存在"}
    sim.inject(Fault(path=f"/{grid['id']}/fetch", status=200, body=json.dumps(shown)))
    result = await call(client, "get_task", {"taskId": grid["id"]})
    assert result.structured_content is not None
    assert result.structured_content["description"] == "the task already exists (任务已存在)"


# -- a refused tool name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("upscale", ["No tool `upscale`", "`action`", "`U1`–`U4`"]),
        ("vary", ["`action`", "`V1`–`V4`", "Vary (Strong)"]),
        ("zoom", ["`action`", "Zoom Out 2x"]),
        ("pan", ["`action`", "pan left"]),
        ("reroll", ["`action`", "🔄"]),
        ("status", ["`get_task`"]),
        ("mj_imagine", ["`imagine`"]),
        ("paint_a_picture", ["No tool `paint_a_picture`", "imagine", "get_task"]),
    ],
)
async def test_a_refused_tool_name_is_answered_with_the_tools_that_do_it(
    client: Client, name: str, needles: list[str]
) -> None:
    result = await call(client, name, {})
    assert result.is_error
    for needle in needles:
        assert needle in text(result)


# -- buttons by name -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pan left", "Pan Right", "pan_up", "pan down", "⬅️", "⬇"])
async def test_pans_are_pressed_by_plain_name(client: Client, name: str) -> None:
    upscale = await upscale_of(client)
    result = await finished(client, "action", {"taskId": upscale["id"], "customId": name})
    assert result["action"] == "PAN"


@pytest.mark.parametrize("name", ["reroll", "Re-roll", "u2", "v1", "🔄"])
async def test_grid_buttons_are_pressed_by_name(client: Client, name: str) -> None:
    grid = await grid_of(client)
    result = await finished(client, "action", {"taskId": grid["id"], "customId": name})
    assert result["status"] == "SUCCESS"


@pytest.mark.parametrize("name", ["Vary (Strong)", "zoom out 2x", "pan left", "⬅️", "Animate (High motion)"])
async def test_an_upscale_button_on_a_grid_says_to_press_u_first(client: Client, sim: Simulator, name: str) -> None:
    grid = await grid_of(client)
    before = len(sim.request_log)
    result = await call(client, "action", {"taskId": grid["id"], "customId": name})
    assert result.is_error
    body = text(result)
    assert "is on upscaled images" in body
    assert f"action taskId={grid['id']} customId=U2" in body
    assert "then" in body and "on the new task" in body
    assert submits(sim, before) == []


@pytest.mark.parametrize("name", ["U1", "v3"])
async def test_a_grid_button_on_an_upscale_points_to_the_grid(client: Client, sim: Simulator, name: str) -> None:
    upscale = await upscale_of(client)
    before = len(sim.request_log)
    result = await call(client, "action", {"taskId": upscale["id"], "customId": name})
    assert result.is_error
    body = text(result)
    assert "is on grid tasks" in body
    assert f"action taskId={upscale['parentId']} customId={name.upper()}" in body
    assert submits(sim, before) == []


def test_a_guessed_name_names_only_tools_the_server_offers() -> None:
    reads = frozenset({"get_task", "recent_tasks"})
    assert refused_tool("upscale", reads).startswith("No tool `upscale`. The tools of this server are: `get_task`")
    assert refused_tool("get_status", reads) == (
        "No tool `get_status`; use `get_task` with the taskId (wait=true waits for it to finish)."
    )
    assert refused_tool("upscaled_images", frozenset({"action"})).startswith("No tool `upscaled_images`; use `action`")
    assert refused_tool("Recent-Tasks", reads) == "No tool `Recent-Tasks`: the tool is called `recent_tasks`."


# -- cancel on each upstream that has it -------------------------------------------------------------

KEY = "sk-ProfileKey0123456789abcdef"


@pytest.fixture(params=[name for name in UPSTREAM_NAMES if PROFILES[name].offers("cancel_task")])
async def upstream(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Client, Simulator]]:
    # trueai answers a cancel with an empty 200 whatever the task (the simulator plays plus alike: its
    # reply is not verified, audit G); only a read before the cancel tells what there is to cancel.
    name = str(request.param)
    clock = FakeClock()
    sim = Simulator(upstream=name, api_key=KEY, clock=clock, seed=7)  # type: ignore[arg-type]
    settings = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream=name, output_dir=str(tmp_path / "out"),
        poll_interval=2.0, wait_timeout=600.0,
    )  # fmt: skip
    mj = client_from_settings(settings, transport=sim.transport())
    async with mj, Client(create_server(settings, mj, clock=clock)) as client:  # type: ignore[arg-type]
        yield client, sim


async def test_cancel_answers_honestly_on_every_upstream_that_has_it(upstream: tuple[Client, Simulator]) -> None:
    client, sim = upstream
    before = len(sim.request_log)
    unknown = await call(client, "cancel_task", {"taskId": "1750000000009999"})
    assert unknown.is_error and "not found" in text(unknown)
    grid = await grid_of(client)
    ended = await call(client, "cancel_task", {"taskId": grid["id"]})
    assert ended.is_error and "nothing to cancel" in text(ended) and "SUCCESS" in text(ended)
    assert not [p for _, p in sim.request_log[before:] if p.endswith("/cancel")]
    running = await finished(client, "imagine", {"prompt": "a fox", "wait": False})
    cancelled = await call(client, "cancel_task", {"taskId": running["id"]})
    assert not cancelled.is_error, text(cancelled)
    assert "Cancelled task" in text(cancelled) and "FAILURE" in text(cancelled)
