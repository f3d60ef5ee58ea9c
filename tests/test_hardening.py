"""Hardening: the audit log, hostile arguments, the key kept secret, upstream faults, a hostile stdio peer."""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr

from mj_mcp.audit import AUDIT_FILE
from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.models import ENDPOINTS
from mj_mcp.server import create_server
from mj_mcp.simulator import Fault, Simulator
from tests.conftest import SIM_URL, FakeClock
from tests.test_server import TOOL_NAMES, data_uri
from tests.test_transports import child_env

pytestmark = pytest.mark.anyio

KEY = "sk-SECRET-4f9c2a7e1b8d"


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@asynccontextmanager
async def keyed_client(
    settings: Settings,
    clock: FakeClock,
    *,
    upstream_key: str = KEY,
    era: str = "legacy",
    **overrides: Any,
) -> AsyncIterator[tuple[Client, Simulator]]:
    """The server with the key `KEY` everywhere (settings and client), on a simulator expecting `upstream_key`."""
    sim = Simulator(clock=clock, api_key=upstream_key, seed=7)
    s = settings.model_copy(update={"api_key": SecretStr(KEY), **overrides})
    async with (
        MjClient(SIM_URL, KEY, transport=sim.transport(), sleep=clock.sleep, mode=s.mode) as mj,
        Client(create_server(s, mj, clock=clock), mode=era) as client,  # type: ignore[arg-type]
    ):
        yield client, sim


async def call(client: Client, tool: str, args: dict[str, Any], **kwargs: Any) -> CallToolResult:
    with anyio.fail_after(30):
        return await client.call_tool(tool, args, **kwargs)


def audit_lines(settings: Settings) -> list[dict[str, Any]]:
    assert settings.output_dir is not None
    path = settings.output_dir / AUDIT_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the audit log -------------------------------------------------------------------------------


async def test_every_started_job_is_one_audit_line_without_image_data_or_the_key(
    settings: Settings, clock: FakeClock
) -> None:
    async with keyed_client(settings, clock, mode="fast") as (client, _sim):
        grid = await call(client, "imagine", {"prompt": "a fox", "base64Array": [data_uri()], "wait": False})
        assert not grid.is_error, text(grid)
        assert grid.structured_content is not None
        relaxed = await call(client, "shorten", {"prompt": "a long prompt", "mode": "relax", "wait": False})
        assert not relaxed.is_error, text(relaxed)
        upload = await call(client, "upload_images", {"base64Array": [data_uri("blue")]})
        assert not upload.is_error, text(upload)
        refused = await call(client, "imagine", {})  # invalid: nothing is started, nothing written
        assert refused.is_error
        reads = await call(client, "recent_tasks", {})
        assert not reads.is_error
    lines = audit_lines(settings)
    assert [line["tool"] for line in lines] == ["imagine", "shorten", "upload_images"]
    assert lines[0]["taskId"] == grid.structured_content["id"]
    assert lines[0]["prompt"] == "a fox"
    assert [line["mode"] for line in lines] == ["fast", "relax", "fast"]
    assert lines[2]["taskId"] is None and "prompt" not in lines[2]
    assert set(lines[0]) == {"time", "tool", "taskId", "prompt", "mode"}
    stamp = datetime.fromisoformat(lines[0]["time"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert settings.output_dir is not None
    raw = (settings.output_dir / AUDIT_FILE).read_text()
    assert KEY not in raw and "base64" not in raw and "iVBOR" not in raw
    assert stat.S_IMODE((settings.output_dir / AUDIT_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.output_dir.stat().st_mode) == 0o700


async def test_an_audit_log_that_cannot_be_written_warns_and_the_job_still_runs(
    settings: Settings, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should be")
    caplog.set_level(logging.WARNING, logger="mj_mcp")
    async with keyed_client(settings, clock, output_dir=blocked) as (client, sim):
        result = await call(client, "imagine", {"prompt": "a fox", "wait": False})
    assert not result.is_error, text(result)
    assert len(sim.tasks) == 1
    assert any("audit log" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert blocked.read_text() == "a file where the output folder should be"


async def test_with_saving_off_no_audit_log_is_written(settings: Settings, clock: FakeClock, tmp_path: Path) -> None:
    async with keyed_client(settings, clock, output_dir=None) as (client, _sim):
        assert not (await call(client, "imagine", {"prompt": "a fox", "wait": False})).is_error
    assert not list(tmp_path.rglob(AUDIT_FILE))


# -- hostile arguments (hypothesis) --------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
PLAUSIBLE = st.sampled_from(
    [
        "a cat",
        "U1",
        "🔄",
        "MJ::JOB::upsample::1::x",
        "1750000000000000",
        data_uri(),
        "data:image/png;base64,AAAA",
        "/etc/passwd",
        "../../etc/passwd",
        "http://127.0.0.1/x.png",
        "file:///etc/passwd",
        "bannedword",
        "simulate-failure",
        "",
        "x" * 9000,
    ]
)
CONTROLS = ["wait", "timeout", "mode"]
PROPERTIES = {
    name: [*ENDPOINTS[name].request.model_json_schema(by_alias=True).get("properties", {}), *CONTROLS]
    for name in TOOL_NAMES
}


def tool_arguments(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(PROPERTIES[tool]) | st.text(max_size=12)
    return st.dictionaries(keys, JSON_VALUES | PLAUSIBLE, max_size=6)


@pytest.mark.parametrize("tool", TOOL_NAMES)
@hypothesis_settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_arguments_always_give_a_result_never_a_traceback_or_the_key(
    settings: Settings, tool: str, data: st.DataObject
) -> None:
    # A server costs more to start than a call: each example sends a batch of argument dicts
    # (6 examples of 3-6 calls: about 25 random calls per tool), and hypothesis still shrinks it.
    batch = data.draw(st.lists(tool_arguments(tool), min_size=3, max_size=6), label="arguments")
    era = "auto" if TOOL_NAMES.index(tool) % 2 else "legacy"  # both protocol eras, at half the cost
    async with keyed_client(settings, FakeClock(), era=era, wait_timeout=5) as (client, _sim):
        for arguments in batch:
            result = await call(client, tool, arguments)
            assert isinstance(result, CallToolResult)
            everything = result.model_dump_json()
            assert "Traceback" not in everything
            assert KEY not in everything


# -- the key never leaks -------------------------------------------------------------------------


async def test_a_whole_session_never_shows_the_key_in_results_resources_or_logs(
    settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mj_mcp")
    caplog.set_level(logging.DEBUG, logger="mcp")
    seen: list[str] = []

    async def record_call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
        result = await call(client, tool, args)
        seen.append(result.model_dump_json())
        return result

    async def record_read(client: Client, uri: str) -> None:
        try:
            with anyio.fail_after(30):
                seen.append((await client.read_resource(uri)).model_dump_json())
        except MCPError as exc:
            seen.append(f"{exc} {exc.error.model_dump_json()}")

    async with keyed_client(settings, clock) as (client, sim):
        grid = await record_call(client, "imagine", {"prompt": "a lighthouse"})
        assert not grid.is_error and grid.structured_content is not None
        task_id = grid.structured_content["id"]
        upscale = await record_call(client, "action", {"taskId": task_id, "customId": "U1"})
        assert not upscale.is_error
        for tool, args in [
            ("get_task", {"taskId": task_id}),
            ("list_tasks", {"ids": [task_id, "missing"]}),
            ("query_tasks", {}),
            ("recent_tasks", {}),
            ("task_queue", {}),
            ("image_seed", {"taskId": task_id}),
            ("describe", {"base64": data_uri()}),
            ("shorten", {"prompt": "a very long prompt about a lighthouse"}),
            ("upload_images", {"base64Array": [data_uri()]}),
            ("cancel_task", {"taskId": task_id}),
        ]:
            await record_call(client, tool, args)
        failures = [
            ("imagine", {"prompt": "a bannedword here"}),
            ("imagine", {"prompt": "simulate-failure please"}),
            ("imagine", {}),
            ("imagine", {"prompt": 5, "timeout": -1, "unknown": True}),
            ("action", {"taskId": task_id, "customId": "U9"}),
            ("get_task", {"taskId": "no-such-task"}),
            ("describe", {"base64": "http://127.0.0.1/x.png"}),
            ("describe", {"base64": "/etc/passwd"}),
        ]
        for tool, args in failures:
            assert (await record_call(client, tool, args)).is_error, tool
        # A hostile or careless upstream that echoes the key back in its error replies.
        echo = json.dumps({"code": 4, "description": f"bad request from {KEY}", "result": None})
        sim.inject(
            Fault(path="/submit/imagine", status=401, body=f"Invalid token: {KEY}"),
            Fault(path="/submit/imagine", kind="malformed_json", body=echo),
            Fault(path="/task/list", status=400, body=f"token {KEY} is not allowed here"),
            Fault(path="/fetch", status=500, body=f"<h1>upstream error for {KEY}</h1>", times=None),
        )
        for tool, args in [
            ("imagine", {"prompt": "x"}),
            ("imagine", {"prompt": "x"}),
            ("recent_tasks", {}),
            ("get_task", {"taskId": task_id}),
        ]:
            assert (await record_call(client, tool, args)).is_error, tool
        await record_read(client, f"mj://tasks/{task_id}")
        sim.clear_faults()
        for uri in [
            f"mj://tasks/{task_id}",
            f"mj://tasks/{task_id}/image",
            "mj://tasks/recent",
            "mj://queue",
            "mj://tasks/page/0",
            "mj://tasks/no-such-task",
            "mj://tasks/page/x",
        ]:
            await record_read(client, uri)

    async with keyed_client(settings, clock, upstream_key="a-different-key") as (client, _sim):
        for tool, args in [("imagine", {"prompt": "x"}), ("recent_tasks", {}), ("get_task", {"taskId": "1"})]:
            refused = await record_call(client, tool, args)
            assert refused.is_error and "MJ_API_KEY" in text(refused)
        await record_read(client, "mj://tasks/recent")

    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert caplog.records  # the DEBUG logs were captured
    assert settings.output_dir is not None
    written = (settings.output_dir / AUDIT_FILE).read_text()
    assert len(seen) > 30
    for blob in [*seen, logs, written]:
        assert KEY not in blob


# -- upstream faults -----------------------------------------------------------------------------


async def test_a_submit_lost_at_a_gateway_is_an_error_pointing_to_recent_tasks_and_is_sent_once(
    settings: Settings, clock: FakeClock
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(Fault(path="/submit/imagine", status=502, process_request=True))
        result = await call(client, "imagine", {"prompt": "a fox"})
    assert result.is_error
    assert "recent_tasks" in text(result)
    assert sum(1 for _, path in sim.request_log if "/submit/imagine" in path) == 1
    assert len(sim.tasks) == 1  # the job exists upstream: that is why it must not be sent again


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path="/list-by-condition", status=500, times=3),
        Fault(path="/list-by-condition", status=503, times=3),
        Fault(path="/list-by-condition", kind="html_error_page", times=3),
        Fault(path="/list-by-condition", kind="malformed_json", times=2),
        Fault(path="/list-by-condition", kind="empty_body", times=3),
    ],
    ids=["500", "503", "html-page", "malformed-json", "empty-body"],
)
async def test_read_faults_during_a_wait_do_not_end_it(settings: Settings, clock: FakeClock, fault: Fault) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(fault)
        result = await call(client, "imagine", {"prompt": "a fox"})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    assert not sim.pending_faults  # the faults were really met during the wait


async def test_a_task_stuck_in_progress_returns_the_running_task_at_the_timeout(
    settings: Settings, clock: FakeClock
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        submitted = await call(client, "imagine", {"prompt": "a fox", "wait": False})
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["id"]
        sim.job_seconds = 1e9
        sim.tasks[task_id].queued_at = clock.now() - 0.3e9  # 30%: IN_PROGRESS for a long time
        started = clock.now()
        result = await call(client, "get_task", {"taskId": task_id, "wait": True, "timeout": 60})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "IN_PROGRESS"
    assert "get_task" in text(result)
    assert 60 <= clock.now() - started < 120


async def test_a_task_that_disappears_mid_wait_is_a_not_found_error(settings: Settings, clock: FakeClock) -> None:
    async with keyed_client(settings, clock) as (client, sim):

        async def vanish(progress: float, total: float | None, message: str | None) -> None:
            sim.tasks.clear()

        result = await call(client, "imagine", {"prompt": "a fox"}, progress_callback=vanish)
    assert result.is_error
    assert "not found" in text(result).lower()


# -- a hostile stdio peer ------------------------------------------------------------------------


def _hostile_lines(count: int) -> list[bytes]:
    rng = random.Random(6)
    huge = "x" * 100_000

    def message(i: int) -> Any:
        choice = rng.randrange(14)
        if choice == 0:
            return rng.choice(["not json", "{", "]", "null", "1", '"text"', "{}", "[]", "\x00\x01", "🔥" * 50])
        if choice == 1:
            return {"jsonrpc": "2.0", "id": {"nested": i}, "method": "tools/list"}
        if choice == 2:
            return {"jsonrpc": "1.0", "id": i, "method": "tools/list"}
        if choice == 3:
            return {"jsonrpc": "2.0", "id": i, "method": rng.choice([5, None, [], "nope/xyz", "tools/nope"])}
        if choice == 4:
            return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": rng.choice(["x", [], 5, None])}
        if choice == 5:
            name = rng.choice([*TOOL_NAMES, "nope", 5, None, ""])
            return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": "junk"}}
        if choice == 6:
            tool = rng.choice(TOOL_NAMES)
            junk = {"prompt": rng.choice([5, [], {}, huge]), "taskId": [], "wait": "maybe", "timeout": -5}
            return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": junk}}
        if choice == 7:
            return huge
        if choice == 8:
            return {"jsonrpc": "2.0", "id": i, "method": huge}
        if choice == 9:
            return [{"jsonrpc": "2.0", "id": i, "method": "tools/list"}, "junk"]
        if choice == 10:
            return {"jsonrpc": "2.0", "method": "notifications/whatever", "params": {"x": huge}}
        if choice == 11:
            return {
                "jsonrpc": "2.0",
                "id": i,
                "method": "resources/read",
                "params": {"uri": rng.choice([5, "x", huge])},
            }
        if choice == 12:
            return {"jsonrpc": "2.0", "id": i, "result": {"unexpected": True}}
        return {"jsonrpc": "2.0", "id": i, "method": "prompts/get", "params": {"name": "nope", "arguments": [1]}}

    lines: list[bytes] = []
    for i in range(count):
        item = message(i)
        if i % 97 == 0:
            lines.append(b"\xff\xfe invalid utf-8 \xc3\x28")
        elif isinstance(item, str):
            lines.append(item.encode())
        else:
            lines.append(json.dumps(item).encode())
    return lines[:count]


def test_the_stdio_server_survives_a_thousand_hostile_lines_and_ends_on_sigterm(tmp_path: Path) -> None:
    with (tmp_path / "stderr.log").open("wb") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mj_mcp", "--simulator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=child_env(tmp_path),
        )
    assert proc.stdin is not None and proc.stdout is not None
    replies: queue.Queue[bytes] = queue.Queue()
    stdout = proc.stdout

    answered: list[bytes] = []

    def drain() -> None:
        for line in stdout:
            answered.append(line)
            replies.put(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def send(message: Any) -> None:
        assert proc.stdin is not None
        proc.stdin.write((message if isinstance(message, bytes) else json.dumps(message).encode()) + b"\n")
        proc.stdin.flush()

    def reply_to(request_id: str) -> dict[str, Any]:
        while True:
            line = replies.get(timeout=60)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id") == request_id:
                return message  # type: ignore[return-value]

    try:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        assert "result" in reply_to("init")
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for line in _hostile_lines(1000):
            send(line)
        send({"jsonrpc": "2.0", "id": "last", "method": "tools/list"})
        assert len(reply_to("last")["result"]["tools"]) == 20
        assert len(answered) > 300  # the hostile requests with an id were each answered (with an error)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0  # cli.py ends stdio on SIGTERM with exit code 0
    stderr = (tmp_path / "stderr.log").read_text(errors="replace")
    assert "Traceback" not in stderr
    assert os.path.getsize(tmp_path / "stderr.log") < 1_000_000
