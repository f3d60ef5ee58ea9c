"""Each finding of the upstream audit of issue 13 (sections A, B and D), end to end: the real
server (MjClient inside the MCP server, in-process) against the simulator playing the upstream
the finding is about, which answers exactly as that software does (status, body shape, code and
Chinese message as the audit quotes them). Each A/B test failed on fa52361's behaviour.

| Audit item | Test |
|---|---|
| A1 simple_change through new-api | test_a1_simple_change_through_new_api_is_sent_as_change |
| A2 REROLL without index | test_a2_reroll_through_new_api_carries_an_index |
| A3 speed mode through new-api | test_a3_b1_a_speed_mode_through_new_api_reaches_midjourney_in_the_prompt |
| A4 routes an upstream lacks | test_a4_a_tool_the_upstream_lacks_is_not_listed_and_the_404_says_so |
| A5 bodies over the limit | test_a5_a_body_over_the_upstream_s_limit_is_refused_before_sending |
| A6 trueai without uploads | test_a6_trueai_without_uploads_describes_a_url_by_link |
| A7 the auth header | test_a7_each_profile_sends_the_key_in_the_header_its_software_reads |
| B1 /mj-{mode} dropped by new-api | test_a3_b1_a_speed_mode_through_new_api_reaches_midjourney_in_the_prompt |
| B2 account selection nested on trueai | test_b2_trueai_gets_account_selection_inside_account_filter |
| B3 new-api's definite refusals | test_b3_new_api_s_no_channel_503_is_reported_as_nothing_started |
| B4 novicezk's Spring 404 | test_b4_novicezk_s_spring_404_gives_the_missing_route_hint |
| B5 401/403 reasons | test_b5_the_reason_of_a_401_or_403_is_shown |
| B6 code 21 | test_b6_code_21_task_exists_returns_the_existing_task |
| B7 hints naming buttons new-api refuses | test_b7_hints_never_name_a_button_new_api_cannot_press |
| B8 trueai per-user limits | test_b8_a_trueai_per_user_limit_says_try_later |
| B9 the callback secret | test_b9_the_notify_hook_never_reaches_the_model |
| B10 trueai video tasks | test_b10_a_trueai_video_whose_image_url_is_its_video_is_not_called_a_start_image |
| D1 routes TA lacks | tests/test_simulator_profiles.py::test_each_upstream_routes_exactly_its_own_endpoints_and_answers_the_rest_with_its_404 |
| D2 Spring's 404 | tests/test_simulator_profiles.py::test_novicezk_speaks_spring_and_its_tasks_have_no_buttons |
| D3 mode prefixes | tests/test_simulator_profiles.py::test_a_mode_prefix_the_upstream_does_not_route_is_its_404 |
| D4 new-api and simple-change | tests/test_simulator_profiles.py::test_new_api_fails_simple_change_in_its_distributor_with_503_no_channel |
| D5 new-api's distributor errors | tests/test_simulator_newapi.py::test_new_api_distributor_refuses_what_it_cannot_map_or_serve_before_its_controller |
| D6 trueai's banned prompts | tests/test_simulator_profiles.py::test_trueai_accepts_a_banned_prompt_and_fails_the_job_later |
| D7 auth per dialect | tests/test_simulator_profiles.py::test_each_profile_reads_the_key_where_its_software_does |
"""  # noqa: E501 (the table's rows name whole tests)

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from mj_mcp.config import load_settings
from mj_mcp.server import create_server
from mj_mcp.server.runtime import client_from_settings
from mj_mcp.simulator import ChannelName, ProfileName, Simulator
from tests.helpers import FakeClock, data_uri, png_bytes, text

pytestmark = pytest.mark.anyio

KEY = "sk-AuditKey0123456789abcdef"
AUDIT = Path(__file__).resolve().parents[1] / ".." / "shared" / "docs" / "upstream-audit.md"


class Session:
    """The MCP server for one MJ_UPSTREAM, the simulator playing an upstream behind it."""

    def __init__(self, sim: Simulator, client: Client) -> None:
        self.sim = sim
        self.client = client

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(30):
            return await self.client.call_tool(tool, args)

    async def ok(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, args)
        assert not result.is_error, text(result)
        return result.structured_content or {}

    async def refused(self, tool: str, args: dict[str, Any]) -> str:
        result = await self.call(tool, args)
        assert result.is_error, text(result)
        return text(result)

    def sent(self, route: str) -> int:
        """How many requests reached a path ending in `route`."""
        return sum(1 for _, path in self.sim.request_log if path.endswith(route))

    async def listed(self) -> set[str]:
        return {tool.name for tool in (await self.client.list_tools()).tools}


@asynccontextmanager
async def session(
    upstream: ProfileName,
    *,
    plays: ProfileName | None = None,
    channel: ChannelName | None = None,
    quirks: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Session]:
    """A server set to `MJ_UPSTREAM=upstream` in front of the simulator playing `plays` (the same
    by default), with `quirks` set on the simulator's preset dialect."""
    clock = FakeClock()
    sim = Simulator(upstream=plays or upstream, channel=channel, api_key=KEY, clock=clock, seed=7)
    for name, value in (quirks or {}).items():
        setattr(sim.quirks, name, value)
    config = load_settings(
        base_url="http://upstream.test", api_key=KEY, upstream=upstream, output_dir="off", **settings
    )
    mj = client_from_settings(config, transport=sim.transport())
    async with mj, Client(create_server(config, mj, clock=clock)) as client:  # type: ignore[arg-type]
        yield Session(sim, client)


# -- A. Breaks a real call ----------------------------------------------------------------------


async def test_a1_simple_change_through_new_api_is_sent_as_change() -> None:
    async with session("new-api") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        upscaled = await s.ok("simple_change", {"content": f"{grid['id']} U2"})
        assert upscaled["status"] == "SUCCESS"
        assert (s.sent("/submit/simple-change"), s.sent("/submit/change")) == (0, 1)
    # What fa52361 sent: new-api's distributor answers 503 "no channel", read as "outcome unknown".
    async with session("plus", plays="new-api") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        said = await s.refused("simple_change", {"content": f"{grid['id']} U2"})
    assert "无可用渠道" in said
    assert "may have been created" not in said
    assert "MJ_UPSTREAM=new-api" in said


async def test_a2_reroll_through_new_api_carries_an_index() -> None:
    async with session("new-api") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        rerolled = await s.ok("change", {"taskId": grid["id"], "action": "REROLL"})
        assert rerolled["status"] == "SUCCESS"
        assert rerolled["id"] != grid["id"]
    # Without an index (fa52361's body), new-api's own check refuses it.
    async with session("plus", plays="new-api") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        said = await s.refused("change", {"taskId": grid["id"], "action": "REROLL"})
    assert "index_is_required" in said


@pytest.mark.parametrize("channel", ["plus", "trueai", "novicezk"])
async def test_a3_b1_a_speed_mode_through_new_api_reaches_midjourney_in_the_prompt(channel: ChannelName) -> None:
    async with session("new-api", channel=channel) as s:
        task = await s.ok("imagine", {"prompt": "a lighthouse", "mode": "relax"})
        assert s.sim.tasks[task["id"]].effective_mode == "RELAX"
    # fa52361's default `/{mode}` prefix: a trueai channel answers 404, and the hint must not send
    # users to `/mj-{mode}`, which new-api strips (B1: the mode silently lost).
    async with session("new-api", channel="trueai", mode_prefix="/{mode}") as s:
        said = await s.refused("imagine", {"prompt": "a lighthouse", "mode": "relax"})
        assert "/mj-{mode}" not in said
        assert "prompt" in said
    async with session("new-api", channel="trueai", mode_prefix="/mj-{mode}") as s:
        dropped = await s.ok("imagine", {"prompt": "a lighthouse", "mode": "relax"})
        assert s.sim.tasks[dropped["id"]].effective_mode == "FAST"  # what B1 is about


@pytest.mark.parametrize(
    ("upstream", "tool", "args"),
    [
        ("trueai", "task_queue", {}),
        ("new-api", "recent_tasks", {}),
        ("novicezk", "shorten", {"prompt": "a long winding prompt about a lighthouse on a cliff"}),
    ],
)
async def test_a4_a_tool_the_upstream_lacks_is_not_listed_and_the_404_says_so(
    upstream: ProfileName, tool: str, args: dict[str, Any]
) -> None:
    async with session(upstream) as s:
        assert tool not in await s.listed()
    async with session("plus", plays=upstream, auth_header="mj-api-secret") as s:
        said = await s.refused(tool, args)
    assert f"MJ_UPSTREAM={upstream}" in said or "not" in said.lower(), said


@pytest.mark.slow  # two bodies of over 30 MB each
@pytest.mark.parametrize(("upstream", "limit_mb"), [("trueai", 30), ("new-api", 32)])
async def test_a5_a_body_over_the_upstream_s_limit_is_refused_before_sending(
    upstream: ProfileName, limit_mb: int, tmp_path: Path
) -> None:
    big = "data:image/png;base64," + base64.b64encode(png_bytes() + bytes(7 * 1024 * 1024)).decode()
    async with session(upstream) as s:
        said = await s.refused("blend", {"base64Array": [big, big, big, big]})
        assert s.sent("/submit/blend") == 0
    assert f"{limit_mb}" in said
    # Sent anyway (fa52361), the upstream answers 413.
    async with session("plus", plays=upstream, auth_header="mj-api-secret") as s:
        said = await s.refused("blend", {"base64Array": [big, big, big, big]})
        assert s.sent("/submit/blend") == 1
    assert "413" in said or "request body too large" in said


async def test_a6_trueai_without_uploads_describes_a_url_by_link() -> None:
    async with session("trueai", quirks={"uploads_forbidden": True}) as s:
        described = await s.ok("describe", {"base64": "https://cdn.example.com/a-lighthouse.png"})
        assert described["status"] == "SUCCESS"
        said = await s.refused("describe", {"base64": data_uri()})
    assert "禁止上传" in said


@pytest.mark.parametrize("upstream", ["trueai", "novicezk"])
async def test_a7_each_profile_sends_the_key_in_the_header_its_software_reads(upstream: ProfileName) -> None:
    async with session(upstream) as s:
        await s.ok("imagine", {"prompt": "a lighthouse"})
    async with session("plus", plays=upstream) as s:  # fa52361's `Authorization: Bearer KEY`
        said = await s.refused("imagine", {"prompt": "a lighthouse"})
    assert "MJ_AUTH_HEADER" in said


# -- B. Wrong result shown to the user ------------------------------------------------------------


async def test_b2_trueai_gets_account_selection_inside_account_filter() -> None:
    selection = {"instanceId": "1118138338562560102", "remix": False}
    async with session("trueai", account_filter=selection) as s:  # MJ_ACCOUNT_FILTER, the lean way
        task = await s.ok("imagine", {"prompt": "a lighthouse"})
        assert s.sim.tasks[task["id"]].selection == selection
    async with session("trueai", tool_fields="full") as s:  # or per call, with every DTO field listed
        task = await s.ok("imagine", {"prompt": "a lighthouse", **selection})
        assert s.sim.tasks[task["id"]].selection == selection
    async with session("plus", plays="trueai", auth_header="mj-api-secret", tool_fields="full") as s:
        task = await s.ok("imagine", {"prompt": "a lighthouse", **selection})
        assert s.sim.tasks[task["id"]].selection == {}  # top level: silently dropped


async def test_b3_new_api_s_no_channel_503_is_reported_as_nothing_started() -> None:
    async with session("new-api", quirks={"na_no_channel": frozenset({"mj_video"})}) as s:
        said = await s.refused("video", {"prompt": "waves rolling", "image": data_uri(), "motion": "low"})
    assert "无可用渠道" in said
    assert "may have been created" not in said
    assert "recent_tasks" not in said


async def test_b4_novicezk_s_spring_404_gives_the_missing_route_hint() -> None:
    async with session("plus", plays="novicezk", auth_header="mj-api-secret") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        pressed = await s.refused("action", {"taskId": grid["id"], "customId": "U1"})
        seed = await s.refused("image_seed", {"taskId": grid["id"]})
    for said in (pressed, seed):
        assert "request body was not accepted" not in said
    assert "use change" in pressed
    assert "MJ_UPSTREAM=novicezk" in seed


@pytest.mark.parametrize(
    ("upstream", "quirks", "tool", "reason"),
    [
        ("new-api", {"na_forbidden_models": frozenset({"mj_imagine"})}, "imagine", "mj_imagine"),
        ("trueai", {"account_refusal": "disabled"}, "imagine", "账号已禁用"),
        ("trueai", {"account_refusal": "unavailable"}, "imagine", "账号不可用"),
    ],
)
async def test_b5_the_reason_of_a_401_or_403_is_shown(
    upstream: ProfileName, quirks: dict[str, Any], tool: str, reason: str
) -> None:
    async with session(upstream, quirks=quirks) as s:
        said = await s.refused(tool, {"prompt": "a lighthouse"})
    assert reason in said


@pytest.mark.parametrize("upstream", ["plus", "new-api"])
async def test_b6_code_21_task_exists_returns_the_existing_task(upstream: ProfileName) -> None:
    async with session(upstream, quirks={"repeat_exists": True}) as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        first = await s.ok("change", {"taskId": grid["id"], "action": "UPSCALE", "index": 1})
        again = await s.call("change", {"taskId": grid["id"], "action": "UPSCALE", "index": 1})
    assert not again.is_error, text(again)
    assert (again.structured_content or {})["id"] == first["id"]
    assert "modal" not in text(again).lower()


async def test_b7_hints_never_name_a_button_new_api_cannot_press() -> None:
    async with session("new-api") as s:
        described = await s.call("describe", {"base64": data_uri()})
        shortened = await s.call("shorten", {"prompt": "a very long prompt about a lighthouse at dusk on a cliff"})
    for result in (described, shortened):
        assert not result.is_error, text(result)
        assert not re.search(r"PicReader|PromptAnalyzer|press", text(result))


async def test_b8_a_trueai_per_user_limit_says_try_later() -> None:
    async with session("trueai", quirks={"max_concurrent": 1}) as s:
        await s.ok("imagine", {"prompt": "a lighthouse", "wait": False})
        said = await s.refused("imagine", {"prompt": "a fox"})
    assert "并发数已达上限" in said
    assert "try again when one has finished" in said
    assert "change the arguments" not in said


@pytest.mark.parametrize("upstream", ["trueai", "novicezk"])
async def test_b9_the_notify_hook_never_reaches_the_model(upstream: ProfileName) -> None:
    hook = "https://mj-mcp.example/mj-callback/s3cr3t-path"
    async with session(upstream) as s:
        task = await s.ok("imagine", {"prompt": "a lighthouse", "wait": False})
        s.sim.tasks[task["id"]].notify_hook = hook  # as if the server had asked for callbacks
        shown = await s.call("get_task", {"taskId": task["id"]})
        listed = await s.call("list_tasks", {"ids": [task["id"]]})
    for result in (shown, listed):
        assert "s3cr3t-path" not in text(result) + repr(result.structured_content)


async def test_b10_a_trueai_video_whose_image_url_is_its_video_is_not_called_a_start_image() -> None:
    async with session("trueai", quirks={"official_cdn": True}) as s:
        video = await s.call("video", {"prompt": "waves rolling", "image": data_uri(), "motion": "low"})
    said = text(video)
    assert not video.is_error, said
    task = video.structured_content or {}
    assert str(task["imageUrl"]).endswith(".mp4")  # EnableFillOfficialCdn: imageUrl is the video itself
    assert "Start image" not in said
    assert f"Videos: {task['imageUrl']}" in said


# -- new-api's channel behind it (item 3 of the brief: change/simple-change by channel type) ------


async def test_new_api_relays_change_to_its_channel_and_on_a_trueai_channel_s_404_presses_the_button() -> None:
    async with session("new-api", channel="trueai") as s:
        grid = await s.ok("imagine", {"prompt": "a lighthouse"})
        pressed = await s.ok("change", {"taskId": grid["id"], "action": "UPSCALE", "index": 2})
        # The channel's 404 started nothing; the server then pressed U2, once.
        assert s.sent("/submit/change") == 1
        assert s.sent("/submit/action") == 1
    assert pressed["status"] == "SUCCESS"
    assert pressed["action"] == "UPSCALE"


# -- the table ---------------------------------------------------------------------------------


def _table() -> dict[str, str]:
    rows = re.findall(r"^\| ([ABD]\d+) [^|]*\| ([^|]+) \|$", __doc__ or "", re.MULTILINE)
    return {item: test.strip() for item, test in rows}


def test_every_audit_item_maps_to_a_test_that_exists() -> None:
    table = _table()
    expected = {f"A{n}" for n in range(1, 8)} | {f"B{n}" for n in range(1, 11)} | {f"D{n}" for n in range(1, 8)}
    assert set(table) == expected
    if AUDIT.exists():  # the audit itself, where the shared docs are checked out beside the repo
        named = set(re.findall(r"\*\*([ABD]\d+)\.", AUDIT.read_text()))
        assert named <= set(table), named - set(table)
    tests = Path(__file__).parent
    for item, test in table.items():
        if test.startswith("open:"):
            continue
        module, _, name = test.rpartition("::")
        source = (tests.parent / module).read_text() if module else Path(__file__).read_text()
        assert re.search(rf"def {re.escape(name)}\(", source), f"{item}: {test} not found"
