"""A submit's JSON body: the very bytes `json=` would send, with Content-Length, sent piece by piece."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.jsonbody import BODY_PIECE_BYTES, JsonBody
from mj_mcp.models import BlendRequest
from tests.helpers import SIM_URL

pytestmark = pytest.mark.anyio

# About 1.4 MB of base64: longer than one piece, like every image a blend sends.
LONG = "data:image/png;base64," + base64.b64encode(bytes(range(256)) * 4000).decode()
ACCEPTED = {"code": 1, "description": "提交成功", "result": "1750000000000001"}


def json_equals(value: Any) -> bytes:
    """What httpx2 sends for `json=value`."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


async def pieces_of(body: JsonBody) -> list[bytes]:
    return [piece async for piece in body]


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"prompt": 'a fox, «quoted» "text"\n', "n": 1, "ratio": 1.5, "ok": True, "none": None},
        {"base64Array": [LONG, LONG], "dimensions": "SQUARE"},
        {"nested": {"deep": [LONG, {"key": LONG}]}, "after": 1},
        ("a tuple", LONG),
        LONG,
        {"text": "é" * 70_000},
        {"quotes": '"' * 70_000},
        {"newline": LONG + "\n"},
        {"backslash": "\\" + LONG},
        {1: "a key that is not text", "two": LONG},
    ],
    ids=[
        "empty-object",
        "empty-list",
        "small",
        "blend",
        "nested",
        "tuple",
        "bare-string",
        "non-ascii",
        "quotes",
        "control-character",
        "backslash",
        "number-key",
    ],
)
async def test_a_json_body_sends_the_bytes_of_json_equals_in_pieces_of_at_most_a_mebibyte(value: Any) -> None:
    body = JsonBody(value)
    expected = json_equals(value)
    first = await pieces_of(body)
    assert b"".join(first) == expected
    assert body.length == len(expected)
    assert all(len(piece) <= BODY_PIECE_BYTES for piece in first)
    assert await pieces_of(body) == first  # every attempt of a submit sends it again, whole
    assert body.sha256() == hashlib.sha256(expected).hexdigest()  # the job service's repeat key


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow  # hypothesis: hundreds of examples, a second or more of CPU
@given(json_values)
def test_any_small_json_value_is_encoded_like_json_equals(value: Any) -> None:
    body = JsonBody(value)
    assert b"".join(anyio.run(pieces_of, body)) == json_equals(value)
    assert body.length == len(json_equals(value))


async def test_a_blend_of_large_images_goes_out_streamed_with_its_length_and_json_type() -> None:
    seen: list[tuple[httpx2.Headers, list[bytes]]] = []

    class Upstream(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            assert isinstance(request.stream, httpx2.AsyncByteStream)
            seen.append((request.headers, [piece async for piece in request.stream]))
            return httpx2.Response(200, json=ACCEPTED)

    async with MjClient(SIM_URL, "key", transport=Upstream()) as mj:
        result = await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=[LONG, LONG]))
    assert result.task_id == ACCEPTED["result"]
    [(headers, pieces)] = seen
    expected = json_equals({"base64Array": [LONG, LONG]})
    assert b"".join(pieces) == expected
    assert len(pieces) > 2
    assert headers["content-length"] == str(len(expected))
    assert headers["content-type"] == "application/json"
    assert "transfer-encoding" not in headers
    assert headers["authorization"] == "Bearer key"


async def test_a_submit_whose_connection_failed_is_sent_again_whole() -> None:
    bodies: list[bytes] = []

    class RefusesOnce(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if not bodies:
                bodies.append(b"")
                raise httpx2.ConnectError("connection refused", request=request)
            bodies.append(await request.aread())
            return httpx2.Response(200, json=ACCEPTED)

    async def no_wait(_seconds: float) -> None:
        return None

    async with MjClient(SIM_URL, transport=RefusesOnce(), sleep=no_wait) as mj:
        await mj.submit(ENDPOINTS["blend"], BlendRequest(base64_array=[LONG, LONG]))
    assert bodies == [b"", json_equals({"base64Array": [LONG, LONG]})]
