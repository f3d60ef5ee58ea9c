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
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from pydantic import SecretStr

from mj_mcp.audit import AUDIT_FILE
from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.server import create_server
from mj_mcp.simulator import Fault, FaultKind, ManualClock, Simulator
from tests.helpers import SIM_URL, TOOL_NAMES, FakeClock, child_env, data_uri, serving, text

pytestmark = pytest.mark.anyio

KEY = "sk-SECRET-4f9c2a7e1b8d"


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
    # MJ_TOOL_FIELDS=full: a per-call mode on shorten (lean leaves it to MJ_MODE, as shorten renders nothing).
    async with keyed_client(settings, clock, mode="fast", tool_fields="full") as (client, _sim):
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


@pytest.mark.slow  # hypothesis over whole sessions: about a second of CPU per tool
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


@pytest.mark.parametrize(
    "hook",
    ["http://127.0.0.1:9/hook", "http://10.0.0.5/hook", "http://[::ffff:169.254.169.254]/x", "file:///etc/passwd"],
)
async def test_a_notify_hook_into_an_internal_network_is_refused_and_nothing_is_submitted(
    settings: Settings, hook: str
) -> None:
    """The upstream would POST every task to it: a prompt-injected agent must not aim it inside.

    (Only MJ_TOOL_FIELDS=full offers notifyHook; lean refuses it before this check.)"""
    async with keyed_client(settings, FakeClock(), tool_fields="full") as (client, sim):
        result = await call(client, "imagine", {"prompt": "a fox", "notifyHook": hook, "wait": False})
    assert result.is_error
    assert "notifyHook URL" in assert_clear(result)
    assert not sim.tasks


async def test_a_public_notify_hook_is_passed_on(settings: Settings) -> None:
    async with keyed_client(settings, FakeClock(), tool_fields="full") as (client, sim):
        result = await call(
            client, "imagine", {"prompt": "a fox", "notifyHook": "https://93.184.216.34/h", "wait": False}
        )
    assert not result.is_error
    assert [t.notify_hook for t in sim.tasks.values()] == ["https://93.184.216.34/h"]


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


class RawStdio:
    """A JSON-RPC peer on a child's stdin/stdout that keeps every byte the child wrote."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.written = bytearray()
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._next_id = 0
        stdout = proc.stdout

        def drain() -> None:
            for line in stdout:
                self.written.extend(line)
                self._lines.put(line)

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        while True:
            message = json.loads(self._lines.get(timeout=60))
            if message.get("id") == self._next_id:
                return message  # type: ignore[no-any-return]

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        params = {"name": tool, "arguments": arguments, "_meta": {"progressToken": f"p{self._next_id}"}}
        return self.request("tools/call", params)["result"]  # type: ignore[no-any-return]

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()


@pytest.mark.slow
def test_the_console_script_never_writes_the_key_to_stdout_or_its_debug_log(tmp_path: Path) -> None:
    sim_args = ["simulate", "--port", "0", "--job-seconds", "1", "--api-key", KEY]
    errlog = tmp_path / "server-stderr.log"
    with serving(sim_args, child_env(tmp_path), tmp_path / "simulator.log") as upstream:
        env = child_env(tmp_path, MJ_BASE_URL=upstream, MJ_API_KEY=KEY)
        with (
            errlog.open("wb") as err,
            subprocess.Popen(
                [sys.executable, "-m", "mj_mcp", "--log-level", "DEBUG"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            ) as server,  # closes its pipes
        ):
            peer: RawStdio | None = None
            try:
                peer = RawStdio(server)
                hello = {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                }
                assert "result" in peer.request("initialize", hello)
                peer.notify("notifications/initialized")
                grid = peer.call("imagine", {"prompt": "a lighthouse"})  # waits, with progress, saves the image
                assert not grid.get("isError"), grid
                task_id = grid["structuredContent"]["id"]
                assert not peer.call("action", {"taskId": task_id, "customId": "U1", "wait": False}).get("isError")
                for tool, args in [
                    ("get_task", {"taskId": task_id}),
                    ("list_tasks", {"ids": [task_id]}),
                    ("recent_tasks", {}),
                    ("task_queue", {}),
                    ("image_seed", {"taskId": task_id}),
                ]:
                    assert not peer.call(tool, args).get("isError"), tool
                for tool, args in [
                    ("imagine", {"prompt": "a bannedword here"}),
                    ("get_task", {"taskId": "no-such-task"}),
                    ("describe", {"base64": "/etc/passwd"}),
                    ("imagine", {}),
                ]:
                    assert peer.call(tool, args).get("isError"), tool
                for uri in [f"mj://tasks/{task_id}", f"mj://tasks/{task_id}/image", "mj://tasks/recent", "mj://queue"]:
                    assert "result" in peer.request("resources/read", {"uri": uri}), uri
                assert server.stdin is not None
                server.stdin.close()  # EOF ends the server
                assert server.wait(timeout=30) == 0
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
                if peer is not None:
                    peer.reader.join(timeout=10)  # it ends at the child's EOF, before its pipe is closed
    logged = errlog.read_bytes()
    assert b"DEBUG" in logged and b"/mj/submit/imagine" in logged  # the upstream calls were logged
    assert b"Traceback" not in logged
    assert len(peer.written) > 10_000  # results with images went out
    written_files = [p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == AUDIT_FILE for p in (tmp_path / "out").rglob("*"))
    for blob in [bytes(peer.written), logged, *written_files]:
        assert KEY.encode() not in blob


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


# The fault matrix: every upstream fault, on a submit, on a read (get_task) and during a wait.
# Each one ends in one clear tool result: no traceback, no key, a bounded number of requests.

TRANSIENT: dict[str, Fault] = {
    "500": Fault(status=500),
    "502": Fault(status=502),
    "503": Fault(status=503),
    "connection-reset": Fault(kind="connection_reset"),
    "read-timeout": Fault(kind="read_timeout"),
    "connection-refused": Fault(kind="connect_error"),
    "slow": Fault(kind="slow", delay=20),
    "html-error-page": Fault(kind="html_error_page"),
    "429-retry-after": Fault(status=429, headers={"Retry-After": "5"}),
}
"""Faults a retried read gets through."""
UNREADABLE: dict[str, Fault] = {
    "malformed-json": Fault(kind="malformed_json"),
    "empty-body": Fault(kind="empty_body"),
}
PLAIN_TEXT_401 = Fault(status=401, body="Authorization header missing.")
ALL_FAULTS = {**TRANSIENT, **UNREADABLE, "plain-text-401": PLAIN_TEXT_401}


def at(fault: Fault, path: str, *, times: int | None = 1, process_request: bool = False) -> Fault:
    """`fault` aimed at `path`, for `times` requests."""
    return replace(fault, path=path, times=times, process_request=process_request)


def assert_clear(result: CallToolResult) -> str:
    """The result is one the model can read: some text, no traceback, never the key."""
    everything = result.model_dump_json()
    assert "Traceback" not in everything and 'File "' not in everything
    assert KEY not in everything
    message = text(result)
    assert message.strip()
    return message


def requests_to(sim: Simulator, fragment: str) -> int:
    """Requests that reached the upstream (a refused connection never does)."""
    return sum(1 for _, path in sim.request_log if fragment in path)


SUBMIT_OUTCOMES: list[tuple[str, Fault, str | None]] = [
    ("500", at(TRANSIENT["500"], "/submit/imagine"), "recent_tasks"),
    ("502", at(TRANSIENT["502"], "/submit/imagine"), "recent_tasks"),
    ("503", at(TRANSIENT["503"], "/submit/imagine"), "recent_tasks"),
    ("502-after-the-job-was-made", at(TRANSIENT["502"], "/submit/imagine", process_request=True), "recent_tasks"),
    ("connection-reset", at(TRANSIENT["connection-reset"], "/submit/imagine"), "recent_tasks"),
    (
        "connection-reset-after-the-job-was-made",
        at(TRANSIENT["connection-reset"], "/submit/imagine", process_request=True),
        "recent_tasks",
    ),
    ("read-timeout", at(TRANSIENT["read-timeout"], "/submit/imagine", process_request=True), "recent_tasks"),
    ("html-error-page", at(TRANSIENT["html-error-page"], "/submit/imagine"), "recent_tasks"),
    ("429-retry-after", at(TRANSIENT["429-retry-after"], "/submit/imagine"), "Wait 5 seconds"),
    ("plain-text-401", at(PLAIN_TEXT_401, "/submit/imagine"), "MJ_API_KEY"),
    ("malformed-json", at(UNREADABLE["malformed-json"], "/submit/imagine"), ""),
    ("empty-body", at(UNREADABLE["empty-body"], "/submit/imagine"), ""),
    ("connection-refused", at(TRANSIENT["connection-refused"], "/submit/imagine"), None),
    ("slow", at(TRANSIENT["slow"], "/submit/imagine"), None),
]
"""(name, fault, text the error must contain; None: the submit succeeds)."""


@pytest.mark.parametrize(("fault", "expected"), [o[1:] for o in SUBMIT_OUTCOMES], ids=[o[0] for o in SUBMIT_OUTCOMES])
async def test_a_faulty_submit_ends_in_one_clear_result_and_is_never_sent_twice(
    settings: Settings, clock: FakeClock, fault: Fault, expected: str | None
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(fault)
        result = await call(client, "imagine", {"prompt": "a fox", "wait": False})
        recent = await call(client, "recent_tasks", {})  # the server still answers
    message = assert_clear(result)
    assert not sim.pending_faults  # the fault was met
    assert requests_to(sim, "/submit/imagine") == 1
    assert not recent.is_error
    if expected is None:
        assert not result.is_error, message
        assert len(sim.tasks) == 1
    else:
        assert result.is_error
        assert expected in message
        assert len(sim.tasks) == (1 if fault.process_request else 0)


READ_OUTCOMES: list[tuple[str, Fault, str | None]] = [
    *((name, at(fault, "/fetch"), None) for name, fault in TRANSIENT.items()),
    ("malformed-json", at(UNREADABLE["malformed-json"], "/fetch"), "not a task"),
    ("empty-body", at(UNREADABLE["empty-body"], "/fetch"), "not found"),  # how NZ says "no such task"
    ("plain-text-401", at(PLAIN_TEXT_401, "/fetch"), "MJ_API_KEY"),
    *((f"{name}-every-time", at(TRANSIENT[name], "/fetch", times=None), "try again") for name in TRANSIENT),
]


@pytest.mark.parametrize(("fault", "expected"), [o[1:] for o in READ_OUTCOMES], ids=[o[0] for o in READ_OUTCOMES])
async def test_a_faulty_read_is_retried_through_a_passing_fault_and_ends_clearly_otherwise(
    settings: Settings, clock: FakeClock, fault: Fault, expected: str | None
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        submitted = await call(client, "imagine", {"prompt": "a fox", "wait": False})
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["id"]
        sim.inject(fault)
        before = requests_to(sim, "/fetch")
        result = await call(client, "get_task", {"taskId": task_id})
        sim.clear_faults()
        after = await call(client, "get_task", {"taskId": task_id})
    message = assert_clear(result)
    reads = requests_to(sim, "/fetch") - before - 1
    assert not after.is_error  # nothing was left broken
    if fault.kind == "slow" and fault.times is None:
        assert not result.is_error, message  # slow is not broken
    elif expected is None:
        assert not result.is_error, message
        assert result.structured_content is not None and result.structured_content["id"] == task_id
        # One failed attempt and one retry (a refused connection never reaches the upstream).
        assert reads == {"connect_error": 1, "slow": 1}.get(fault.kind, 2)
    else:
        assert result.is_error
        assert expected.lower() in message.lower()
        assert reads <= 3  # READ_ATTEMPTS: a read that keeps failing is given up, not retried forever


WAIT_OUTCOMES: list[tuple[str, Fault, str | None]] = [
    *(
        # Two faulty reads in a row (one 20 s slow read already outlasts the job).
        (name, at(fault, "/mj/task/", times=1 if fault.kind == "slow" else 2), "SUCCESS")
        for name, fault in {**TRANSIENT, **UNREADABLE}.items()
    ),
    ("plain-text-401", at(PLAIN_TEXT_401, "/mj/task/"), None),
    *((f"{name}-every-time", at(fault, "/mj/task/", times=None), None) for name, fault in ALL_FAULTS.items()),
]
"""(name, fault on every status read, the status the wait ends with; None: whatever it is, clearly)."""


@pytest.mark.parametrize(("fault", "expected"), [o[1:] for o in WAIT_OUTCOMES], ids=[o[0] for o in WAIT_OUTCOMES])
async def test_read_faults_during_a_wait_end_it_clearly_and_within_its_timeout(
    settings: Settings, clock: FakeClock, fault: Fault, expected: str | None
) -> None:
    timeout = 60
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(fault)
        started = clock.now()
        result = await call(client, "imagine", {"prompt": "a fox", "timeout": timeout})
        elapsed = clock.now() - started
        all_met = not sim.pending_faults
        sim.clear_faults()
        recent = await call(client, "recent_tasks", {})
    message = assert_clear(result)
    assert not recent.is_error  # the server is fine once the upstream is
    assert requests_to(sim, "/submit/imagine") == 1
    # Retries and Retry-After may carry the last read past the deadline, but not far.
    assert elapsed <= timeout + 3 * 30
    assert len(sim.request_log) < 200  # the poller backs off; it does not hammer a failing upstream
    if expected is not None:
        assert not result.is_error, message
        assert result.structured_content is not None
        assert result.structured_content["status"] == expected
        assert all_met  # the faults were met, and waited out
    elif fault.kind == "slow" or (fault.kind == "empty_body" and fault.times is None):
        # Slow is still an answer; a task that keeps reading as empty has disappeared.
        assert result.is_error == (fault.kind == "empty_body"), message
    elif fault.status == 401:
        assert result.is_error
        assert "MJ_API_KEY" in message
        assert elapsed < timeout  # a refused key ends the wait at once


@pytest.mark.parametrize(
    "fault",
    [
        at(TRANSIENT["503"], "/mj/task/", times=None),
        at(TRANSIENT["connection-reset"], "/mj/task/", times=None),
        at(TRANSIENT["429-retry-after"], "/mj/task/", times=None),
        at(UNREADABLE["malformed-json"], "/mj/task/", times=None),
    ],
    ids=["503", "connection-reset", "429-retry-after", "malformed-json"],
)
async def test_a_job_whose_wait_fails_still_names_its_task_and_how_to_go_on(
    settings: Settings, clock: FakeClock, fault: Fault
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(fault)
        result = await call(client, "imagine", {"prompt": "a fox", "timeout": 60})
    (task_id,) = sim.tasks
    message = assert_clear(result)
    assert task_id in message
    assert "get_task" in message


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body"])
async def test_an_unreadable_reply_to_a_submit_says_the_job_may_exist(
    settings: Settings, clock: FakeClock, kind: FaultKind
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        sim.inject(Fault(path="/submit/imagine", kind=kind, process_request=True))
        result = await call(client, "imagine", {"prompt": "a fox", "wait": False})
    assert result.is_error
    assert len(sim.tasks) == 1  # it does exist
    assert "recent_tasks" in assert_clear(result)


async def test_a_slow_upstream_does_not_stretch_a_wait_far_past_its_timeout(
    settings: Settings, clock: FakeClock
) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        submitted = await call(client, "imagine", {"prompt": "a fox", "wait": False})
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["id"]
        sim.job_seconds = 1e9  # stuck IN_PROGRESS
        sim.tasks[task_id].queued_at = clock.now() - 0.3e9
        sim.inject(Fault(kind="slow", delay=25, path="/mj/task/", times=None))
        started = clock.now()
        result = await call(client, "get_task", {"taskId": task_id, "wait": True, "timeout": 60})
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "IN_PROGRESS"
    assert "get_task" in text(result)
    assert 60 <= clock.now() - started <= 60 + 2 * 25


async def test_stale_reads_never_move_progress_notifications_backwards(settings: Settings, clock: FakeClock) -> None:
    async with keyed_client(settings, clock) as (client, sim):
        submitted = await call(client, "imagine", {"prompt": "a fox", "wait": False})
        assert submitted.structured_content is not None
        task_id = submitted.structured_content["id"]

        def seen_at(seconds: float) -> str:
            """The task as the upstream shows it `seconds` after the submit (clock put back)."""
            now = clock.t
            clock.t = sim.tasks[task_id].submit_ms / 1000 + seconds
            view = json.dumps([sim.snapshot(task_id)])
            clock.t = now
            return view

        # A load-balanced upstream whose replicas lag: each status read answers from this script.
        script = [seen_at(s) for s in (2.5, 5.5, 4.0, 2.5, 9.0, 7.0)]  # 15%, 62%, 38%, 15%, SUCCESS, 85%
        assert [json.loads(v)[0]["progress"] for v in script] == ["15%", "62%", "38%", "15%", "100%", "85%"]
        sim.inject(*(Fault(path="/list-by-condition", status=200, body=view) for view in script))
        seen: list[tuple[float, str | None]] = []

        async def record(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        result = await call(client, "get_task", {"taskId": task_id, "wait": True}, progress_callback=record)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "SUCCESS"
    progress = [p for p, _ in seen]
    assert progress == sorted(progress), seen
    assert {15.0, 62.0, 100.0} <= set(progress)
    assert not any(p < 62 for p in progress[progress.index(62.0) :])
    assert seen[-1][1] == "SUCCESS"
    # The wait ended at the first SUCCESS: the stale 85% after it was never read at all.
    assert len(sim.pending_faults) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("connection_reset", httpx2.ReadError),
        ("read_timeout", httpx2.ReadTimeout),
        ("connect_error", httpx2.ConnectError),
    ],
)
async def test_network_faults_reach_an_in_process_client_as_the_errors_of_a_real_network(
    kind: FaultKind, error: type[httpx2.TransportError]
) -> None:
    sim = Simulator(clock=ManualClock())
    async with httpx2.AsyncClient(transport=sim.transport(), base_url=SIM_URL) as http:
        sim.inject(Fault(kind=kind, path="/mj/task/list"))
        with anyio.fail_after(10), pytest.raises(error):
            await http.get("/mj/task/list")
        assert (await http.get("/mj/task/list")).status_code == 200  # once only
    reached = 1 if kind == "connect_error" else 2  # a refused connection never reaches the upstream
    assert sim.request_log == [("GET", "/mj/task/list")] * reached


async def test_a_delayed_fault_holds_its_reply_on_a_manual_clock_without_waiting() -> None:
    clock = ManualClock()
    sim = Simulator(clock=clock)
    async with httpx2.AsyncClient(transport=sim.transport(), base_url=SIM_URL) as http:
        sim.inject(Fault(kind="slow", delay=30, path="/mj/task/list"), Fault(status=503, delay=5, path="/queue"))
        started = clock.now()
        with anyio.fail_after(10):
            slow = await http.get("/mj/task/list")
            late_error = await http.get("/mj/task/queue")
    assert slow.status_code == 200 and slow.json() == []
    assert late_error.status_code == 503
    assert clock.now() - started == 35


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


@pytest.mark.slow
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
        reader.join(timeout=10)  # it ends at the child's EOF
        proc.stdin.close()
        stdout.close()
    assert code == 0  # cli.py ends stdio on SIGTERM with exit code 0
    stderr = (tmp_path / "stderr.log").read_text(errors="replace")
    assert "Traceback" not in stderr
    assert os.path.getsize(tmp_path / "stderr.log") < 1_000_000
