"""The tool surface a model reads: MJ_TOOL_FIELDS (lean, full), its size, the instructions, and the
history controls (recent_tasks `limit`/`since`, task_queue `limit`, query_tasks newest first)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import ValidationError
from pydantic.json_schema import SkipJsonSchema

from mj_mcp.client import MjClient
from mj_mcp.config import Settings, load_settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import SettingsError
from mj_mcp.models import Task
from mj_mcp.server import create_server, server_instructions
from mj_mcp.server.schema import LEAN_HIDDEN, Surface, surface_bytes
from mj_mcp.server.tools import TOOLS, RecentControls, WaitControls, newest_since
from mj_mcp.simulator import Simulator
from mj_mcp.upstreams import PROFILES
from tests.conftest import ServerFactory
from tests.helpers import SIM_URL, FakeClock, text

pytestmark = pytest.mark.anyio

SURFACE_LIMIT = 10_000
"""The contract: what a model reads of the tools, for `plus` in lean mode."""


async def listing(make_server: ServerFactory, **overrides: Any) -> list[dict[str, Any]]:
    async with Client(make_server(**overrides)) as client:
        tools = (await client.list_tools()).tools
    return [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]


def submits(sim: Simulator) -> list[str]:
    return [path for method, path in sim.request_log if method == "POST" and "/submit/" in path]


# -- size ------------------------------------------------------------------------------------------


async def test_what_a_model_reads_of_the_plus_tools_in_lean_mode_is_at_most_10_000_bytes(
    make_server: ServerFactory,
) -> None:
    tools = await listing(make_server)
    plus = PROFILES["plus"]  # every operation it offers is a tool
    assert {t["name"] for t in tools} == {spec.name for spec in TOOLS if plus.offers(spec.endpoint)}
    assert surface_bytes(tools) <= SURFACE_LIMIT


@pytest.mark.parametrize("upstream", ["new-api", "trueai", "novicezk"])
async def test_every_profile_s_lean_surface_is_smaller_than_plus_s(make_server: ServerFactory, upstream: str) -> None:
    assert surface_bytes(await listing(make_server, upstream=upstream)) <= SURFACE_LIMIT


def test_surface_bytes_counts_name_title_description_and_input_schema_as_compact_utf8() -> None:
    tool = {"name": "a", "description": "🔄", "inputSchema": {}, "outputSchema": {"x": 1}, "annotations": {}}
    assert surface_bytes([tool]) == len('{"name":"a","description":"🔄","inputSchema":{}}'.encode())


async def test_titles_are_annotations_for_people_not_read_by_the_model(make_server: ServerFactory) -> None:
    for tool in await listing(make_server):
        assert "title" not in tool
        assert tool["annotations"]["title"]


# -- lean and full ---------------------------------------------------------------------------------


async def test_full_mode_lists_every_dto_field_of_every_tool(make_server: ServerFactory) -> None:
    for tool in await listing(make_server, tool_fields="full"):
        model = ENDPOINTS[tool["name"]].request
        offered = {
            f.alias or n
            for n, f in model.model_fields.items()
            if not any(isinstance(m, SkipJsonSchema) for m in f.metadata)
        }
        # Every field plus reads: another upstream's extras (trueai's video endImage ...) are not.
        assert offered - PROFILES["plus"].unread(model) <= set(tool["inputSchema"]["properties"]), tool["name"]


async def test_lean_mode_leaves_out_account_selection_and_callbacks_everywhere(make_server: ServerFactory) -> None:
    tools = {t["name"]: t["inputSchema"] for t in await listing(make_server)}
    for name, schema in tools.items():
        assert not LEAN_HIDDEN & set(schema["properties"]), name
    # What an agent needs stays: the enums, required fields, item counts and ranges.
    assert tools["imagine"]["required"] == ["prompt"]
    assert tools["imagine"]["properties"]["mode"]["enum"] == ["fast", "relax", "turbo"]
    assert tools["imagine"]["properties"]["wait"]["default"] is True
    assert tools["get_task"]["properties"]["wait"]["default"] is False
    assert tools["blend"]["properties"]["base64Array"]["minItems"] == 2
    assert tools["change"]["properties"]["index"]["maximum"] == 4
    assert tools["query_tasks"]["properties"]["sort"]["default"] == "submitTime,desc"
    assert "VIDEO" in tools["query_tasks"]["properties"]["action"]["enum"]
    # Checks validation makes anyway are left to it; full mode still shows them.
    assert "maxLength" not in tools["imagine"]["properties"]["prompt"]
    full = {t["name"]: t["inputSchema"] for t in await listing(make_server, tool_fields="full")}
    assert full["imagine"]["properties"]["prompt"]["maxLength"] == 8192
    assert "pattern" in full["query_tasks"]["properties"]["sort"]


async def test_timeout_states_the_configured_wait_timeout_as_its_default(make_server: ServerFactory) -> None:
    tools = {t["name"]: t["inputSchema"] for t in await listing(make_server, wait_timeout=90.0)}
    assert tools["imagine"]["properties"]["timeout"]["default"] == 90
    assert tools["get_task"]["properties"]["timeout"]["default"] == 90
    schema = Surface(wait_timeout=1.5).schema(ENDPOINTS["get_task"].request, WaitControls)
    assert schema["properties"]["timeout"]["default"] == 1.5


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"instanceId": "123"}, "MJ_ACCOUNT_FILTER"),
        ({"modes": ["FAST"], "remix": True}, "MJ_ACCOUNT_FILTER"),
        ({"notifyHook": "https://example.com/hook"}, "MJ_PUBLIC_URL"),
        ({"state": "mine"}, "MJ_PUBLIC_URL"),
    ],
)
async def test_a_hidden_field_is_refused_with_the_setting_that_replaces_it_and_nothing_is_sent(
    make_server: ServerFactory, sim: Simulator, arguments: dict[str, Any], named: str
) -> None:
    async with Client(make_server()) as client:
        result = await client.call_tool("imagine", {"prompt": "a fox", **arguments})
    assert result.is_error
    message = text(result)
    assert named in message
    assert "MJ_TOOL_FIELDS=full" in message
    assert all(name in message for name in arguments)
    assert submits(sim) == []


async def test_a_field_lean_leaves_out_of_one_tool_is_refused_there(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        query = await client.call_tool("query_tasks", {"failReason": "banned"})
        describe = await client.call_tool("describe", {"base64": "x", "mode": "fast"})
    assert query.is_error
    assert "failReason" in text(query)
    assert "MJ_TOOL_FIELDS=full" in text(query)
    assert describe.is_error
    assert "mode" in text(describe)


async def test_a_hidden_field_sent_as_null_means_not_given(make_server: ServerFactory, sim: Simulator) -> None:
    async with Client(make_server()) as client:
        result = await client.call_tool("imagine", {"prompt": "a fox", "instanceId": None, "wait": False})
    assert not result.is_error, text(result)
    assert submits(sim) == ["/mj/submit/imagine"]


async def test_full_mode_takes_the_account_fields_per_call(make_server: ServerFactory, sim: Simulator) -> None:
    async with Client(make_server(tool_fields="full")) as client:
        result = await client.call_tool("imagine", {"prompt": "a fox", "instanceId": "123", "wait": False})
    assert not result.is_error, text(result)
    assert submits(sim) == ["/mj/submit/imagine"]


def test_mj_tool_fields_reads_any_case_and_refuses_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_TOOL_FIELDS", "FULL")
    assert load_settings(simulator=True).tool_fields == "full"
    assert load_settings(simulator=True, tool_fields=None).tool_fields == "full"
    monkeypatch.delenv("MJ_TOOL_FIELDS")
    assert load_settings(simulator=True).tool_fields == "lean"
    with pytest.raises(SettingsError, match="MJ_TOOL_FIELDS"):
        load_settings(simulator=True, tool_fields="some")


# -- instructions ----------------------------------------------------------------------------------


async def test_the_instructions_name_the_folders_and_the_way_to_work(settings: Settings, tmp_path: Path) -> None:
    told = server_instructions(settings)
    assert str(tmp_path / "in") in told
    assert f"saved in {tmp_path / 'out'}" in told
    steps = [line for line in told.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert [s.split()[1] for s in steps] == ["imagine", "Look", "action"]
    assert "recent_tasks" in told
    assert "read-only" not in told
    async with Client(create_server(settings)) as client:
        assert client.instructions == told


def test_the_instructions_follow_the_settings_and_the_upstream(tmp_path: Path) -> None:
    bare = load_settings(simulator=True, output_dir="off", allowed_dirs="", upstream="novicezk", read_only=True)
    told = server_instructions(bare)
    assert "Saving is off." in told
    assert "MJ_ALLOWED_DIRS" in told
    assert "3. change" in told  # novicezk has no action route
    assert "modal" not in told
    assert "query_tasks" not in told
    assert "read-only" in told
    gateway = server_instructions(load_settings(simulator=True, upstream="new-api"))
    assert "History" not in gateway  # new-api lists no tasks


# -- history ---------------------------------------------------------------------------------------

UTC_PLUS_2 = timezone(timedelta(hours=2))


def test_since_today_is_midnight_of_the_injected_clock_s_day_in_its_zone() -> None:
    now = datetime(2025, 6, 15, 0, 30, tzinfo=UTC_PLUS_2)
    assert RecentControls(since="Today").start(now) == datetime(2025, 6, 15, tzinfo=UTC_PLUS_2)
    assert RecentControls(since="2025-06-14").start(now) == datetime(2025, 6, 14, tzinfo=UTC_PLUS_2)
    assert RecentControls(since="2025-06-14T08:00Z").start(now) == datetime(2025, 6, 14, 8, tzinfo=UTC)
    assert RecentControls().start(now) is None
    with pytest.raises(ValidationError, match="ISO date"):
        RecentControls(since="last week")


def test_newest_since_keeps_the_newest_from_the_start_and_cuts_at_the_limit() -> None:
    start = datetime(2025, 6, 15, tzinfo=UTC)
    ms = int(start.timestamp() * 1000)
    tasks = [
        Task.model_validate({"id": "old", "submitTime": ms - 1}),
        Task.model_validate({"id": "first", "submitTime": ms}),
        Task.model_validate({"id": "late", "submitTime": ms + 5000}),
        Task.model_validate({"id": "untimed"}),
    ]
    assert [t.id for t in newest_since(tasks, start, 10)] == ["late", "first", "untimed"]
    assert [t.id for t in newest_since(tasks, None, 2)] == ["late", "first"]


@pytest.fixture
async def real_time_client(settings: Settings) -> AsyncIterator[tuple[Client, FakeClock]]:
    """A server whose simulated jobs are submitted at the present wall-clock time (for 'today')."""
    clock = FakeClock(start=time.time())
    sim = Simulator(clock=clock, seed=7)
    async with (
        MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as mj,
        Client(create_server(settings, mj, clock=clock)) as client,
    ):
        yield client, clock


async def test_recent_tasks_since_today_lists_today_s_work_newest_first(
    real_time_client: tuple[Client, FakeClock],
) -> None:
    client, clock = real_time_client
    for prompt in ("a fox", "a cat", "a dog"):
        assert not (await client.call_tool("imagine", {"prompt": prompt, "wait": False})).is_error
        clock.advance(1)
    today = await client.call_tool("recent_tasks", {"since": "today"})
    assert not today.is_error, text(today)
    tasks = (today.structured_content or {})["tasks"]
    assert [t["prompt"] for t in tasks] == ["a dog", "a cat", "a fox"]
    two = await client.call_tool("recent_tasks", {"since": "today", "limit": 2})
    assert len((two.structured_content or {})["tasks"]) == 2
    future = (datetime.now().astimezone() + timedelta(days=1)).date().isoformat()
    later = await client.call_tool("recent_tasks", {"since": future})
    assert (later.structured_content or {})["tasks"] == []


async def test_query_tasks_is_newest_first_by_default_and_filters_video(client: Client) -> None:
    for prompt in ("first", "second"):
        assert not (await client.call_tool("imagine", {"prompt": prompt})).is_error
    page = await client.call_tool("query_tasks", {})
    assert [t["prompt"] for t in (page.structured_content or {})["content"]] == ["second", "first"]
    videos = await client.call_tool("query_tasks", {"action": "VIDEO"})
    assert not videos.is_error, text(videos)
    assert (videos.structured_content or {})["content"] == []
