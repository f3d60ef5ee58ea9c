"""Hostile callback bodies (issue 12, row 9): every malformed body is a short JSON 400, never a
500, and the route keeps serving; the stdio callback listener runs under the HTTP limits."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx2
import pytest

import mj_mcp.httplimits
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.callbacks import serve as serve_callbacks
from mj_mcp.models import Task
from mj_mcp.replies import secret_forms
from tests.helpers import free_port

pytestmark = pytest.mark.anyio

PUBLIC = "http://mj-mcp.test"

MALFORMED = {
    "5000-deep-arrays": b"[" * 5000 + b"]" * 5000,
    "5000-deep-objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "deep-list-field": b'{"id": "1", "buttons": ' + b"[" * 900 + b"]" * 900 + b"}",
    "not-utf-8": b'{"id": "\xff\xfe"}',
    "huge-integer-id": b'{"id": ' + b"9" * 5000 + b"}",
    "truncated": b'{"id": "1", "status": "SUC',
    "empty": b"",
    "nul-bytes": b"\x00" * 100,
    "wrong-types": b'{"id": {"nested": true}, "progress": [1], "status": 7}',
    "nan": b"NaN",
}

ODD_BUT_WELL_FORMED = {
    "deep-inside-a-task": b'{"id": "1", "properties": ' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}",
    "utf-16": '{"id": "1"}'.encode("utf-16"),
    "lone-surrogate-id": b'{"id": "\\ud800"}',
}


@pytest.fixture
def receiver() -> CallbackReceiver:
    return CallbackReceiver(PUBLIC + "/")


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_body_is_a_short_json_400(receiver: CallbackReceiver, body: bytes) -> None:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=receiver), base_url=PUBLIC) as http:
        response = await http.post(receiver.path, content=body)
        assert response.status_code == 400
        assert response.json() == {"error": "expected one JSON Task"}
        assert (await http.post(receiver.path, json={"id": "x"})).status_code == 202  # still serving
    assert receiver.refused == 1


@pytest.mark.parametrize("body", ODD_BUT_WELL_FORMED.values(), ids=ODD_BUT_WELL_FORMED.keys())
async def test_an_odd_but_well_formed_task_not_of_ours_is_ignored(receiver: CallbackReceiver, body: bytes) -> None:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=receiver), base_url=PUBLIC) as http:
        response = await http.post(receiver.path, content=body)
    assert response.status_code == 202
    assert receiver.ignored == 1


class BrokenWatcher:
    def push(self, task: Task) -> bool:
        raise RuntimeError("a bug downstream")


async def test_a_failure_downstream_of_the_route_is_a_short_json_500_and_the_route_goes_on(
    receiver: CallbackReceiver,
) -> None:
    broken: Any = BrokenWatcher()
    receiver.attach(broken)
    receiver.expect("1")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=receiver), base_url=PUBLIC) as http:
        response = await http.post(receiver.path, json={"id": "1", "status": "SUCCESS"})
        assert response.status_code == 500 and response.json() == {"error": "internal error"}
        receiver.attach(None)
        assert (await http.post(receiver.path, json={"id": "1"})).status_code == 200


@pytest.mark.slow  # waits out real timeouts on loopback sockets
async def test_the_stdio_listener_refuses_deep_bodies_and_drops_stalled_heads(
    receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    guarded = mj_mcp.httplimits.guarded_protocol

    def short(**limits: Any) -> Any:
        return guarded(**{**limits, "header_timeout": 1.0})

    monkeypatch.setattr(mj_mcp.httplimits, "guarded_protocol", short)
    port = free_port()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            assert await tg.start(serve_callbacks, receiver, "127.0.0.1", port)
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                deep = await http.post(receiver.path, content=MALFORMED["5000-deep-arrays"])
                assert deep.status_code == 400
            stalled = await anyio.connect_tcp("127.0.0.1", port)
            await stalled.send(b"POST " + receiver.path.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError)):
                await stalled.receive()
            assert time.monotonic() - started < 3
            await stalled.aclose()
            tg.cancel_scope.cancel()


async def test_a_key_echoed_in_a_callback_is_masked_before_the_task_is_taken() -> None:
    key = "sk-callback-SECRET-0123456789"
    receiver = CallbackReceiver(PUBLIC + "/", redact=secret_forms(key))
    receiver.expect("1")
    pushed: list[Task] = []

    class Watcher:
        def push(self, task: Task) -> bool:
            pushed.append(task)
            return True

    receiver.attach(Watcher())  # type: ignore[arg-type]
    body = {"id": "1", "status": "FAILURE", "failReason": f"account {key} disabled", "prompt": key}
    status, _ = receiver.take(json.dumps(body).encode())
    assert status == 200
    (task,) = pushed
    assert key not in task.model_dump_json()
    assert "***" in (task.fail_reason or "")
