"""The real console entry point over stdio, Streamable HTTP and SSE, plus the HTTP guards in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextResourceContents

from mj_mcp.config import Settings, load_settings
from mj_mcp.errors import SettingsError
from mj_mcp.server import create_server
from mj_mcp.transports import build_http_app, check_bind
from tests.helpers import child_env, serving

pytestmark = pytest.mark.anyio


async def imagine_with_progress(client: Client) -> tuple[Any, list[float]]:
    seen: list[float] = []

    async def record(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await client.call_tool("imagine", {"prompt": "a harbour at night"}, progress_callback=record)
    return result, seen


# -- stdio -----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_console_script_serves_stdio_with_progress_and_resources(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mj_mcp", "--simulator"], env=child_env(tmp_path)
    )
    with (tmp_path / "stderr.log").open("w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:  # type: ignore[arg-type]
            assert len((await client.list_tools()).tools) == 20
            result, seen = await imagine_with_progress(client)
            assert not result.is_error
            assert seen and seen[-1] == 100
            task_id = result.structured_content["id"]
            contents = (await client.read_resource(f"mj://tasks/{task_id}")).contents
            assert isinstance(contents[0], TextResourceContents)
            assert json.loads(contents[0].text)["status"] == "SUCCESS"
    assert list((tmp_path / "out").glob("imagine-*.png"))


@pytest.mark.slow
def test_stdout_carries_only_json_rpc_and_eof_ends_the_server(tmp_path: Path) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "imagine", "arguments": {}}},
    ]  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "mj_mcp", "--simulator", "--log-level", "DEBUG"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path),
    ) as proc:  # closes its pipes
        assert proc.stdin is not None and proc.stdout is not None
        lines: list[dict[str, Any]] = []
        for message in requests:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                lines.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()  # EOF: the server must end cleanly
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == ""
        stderr = proc.stderr.read() if proc.stderr else ""
    assert [m.get("id") for m in lines] == [1, 2, 3]
    assert all(m["jsonrpc"] == "2.0" for m in lines)
    error = lines[2]["result"]
    assert error["isError"] is True and "prompt" in error["content"][0]["text"]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_starting_without_a_key_exits_2_naming_the_variables(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    done = subprocess.run(
        [sys.executable, "-m", "mj_mcp"], capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "MJ_BASE_URL" in done.stderr and "--simulator" in done.stderr and "mj-mcp demo" in done.stderr


# -- HTTP over a real socket ---------------------------------------------------------------------


ERAS = ("auto", "legacy")
"""Both protocol eras, each in its own session on one server: a server costs more to start than a session."""


@pytest.fixture
def http_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    transport, *extra = request.param
    # Port 0: the server takes a port the kernel chose and names it in its startup line (no race).
    args = ["--simulator", "--transport", transport, "--port", "0", "--log-level", "INFO", *extra]
    with serving(args, child_env(tmp_path, MJ_MCP_TOKEN="s3cret"), tmp_path / "server.log") as base:
        yield base


async def in_each_era(session: Callable[[str], Awaitable[tuple[Any, list[float]]]]) -> None:
    """Run `session(era)` for both eras at once, and check each imagine finished with full progress."""
    outcomes: dict[str, tuple[Any, list[float]]] = {}

    async def one(era: str) -> None:
        outcomes[era] = await session(era)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for era in ERAS:
                tg.start_soon(one, era)
    for era, (result, seen) in outcomes.items():
        assert not result.is_error, era
        assert seen and seen[-1] == 100, era
    assert set(outcomes) == set(ERAS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "http_server",
    [("streamable-http",), ("streamable-http", "--stateless")],
    indirect=True,
    ids=["stateful", "stateless"],
)
async def test_streamable_http_serves_tools_with_progress_behind_the_token(http_server: str) -> None:
    async with httpx2.AsyncClient() as anonymous:
        denied = await anonymous.post(f"{http_server}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert denied.status_code == 401

    async def session(era: str) -> tuple[Any, list[float]]:
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=30) as http:
            transport = streamable_http_client(f"{http_server}/mcp", http_client=http)
            async with Client(transport, mode=era) as client:  # type: ignore[arg-type]
                return await imagine_with_progress(client)

    await in_each_era(session)


@pytest.mark.slow
@pytest.mark.parametrize("http_server", [("sse",)], indirect=True, ids=["sse"])
async def test_sse_serves_tools_with_progress_behind_the_token(http_server: str) -> None:
    async def session(era: str) -> tuple[Any, list[float]]:
        transport = sse_client(f"{http_server}/sse", headers={"Authorization": "Bearer s3cret"})
        async with Client(transport, mode=era) as client:  # type: ignore[arg-type]
            return await imagine_with_progress(client)

    await in_each_era(session)


# -- HTTP guards, in process ---------------------------------------------------------------------


@pytest.fixture
def http_settings(tmp_path: Path) -> Settings:
    return load_settings(
        simulator=True, transport="streamable-http", mcp_token="tok", output_dir="off", allowed_hosts="mj.example.com"
    )


@pytest.fixture
async def asgi(http_settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    server = create_server(http_settings)
    app = build_http_app(server, http_settings)
    async with server.session_manager.run():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "tok", "Bearer tok2", "Basic dG9rOg=="])
async def test_every_mcp_request_without_the_token_is_401(asgi: httpx2.AsyncClient, authorization: str | None) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await asgi.post("/mcp", json=INIT, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_right_token_is_let_in_and_health_needs_none(asgi: httpx2.AsyncClient) -> None:
    ok = await asgi.post("/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer tok"})
    assert ok.status_code == 200
    health = await asgi.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


@pytest.mark.parametrize(("host", "status"), [("evil.example", 421), ("mj.example.com", 200), ("localhost:8000", 200)])
async def test_a_foreign_host_header_is_rejected(asgi: httpx2.AsyncClient, host: str, status: int) -> None:
    headers = {**MCP_HEADERS, "Authorization": "Bearer tok", "Host": host}
    response = await asgi.post("/mcp", json=INIT, headers=headers)
    assert response.status_code == status


@pytest.mark.parametrize(("host", "token", "refused"), [
    ("0.0.0.0", None, True), ("192.168.1.5", None, True), ("0.0.0.0", "t", False),
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
])  # fmt: skip
def test_binding_beyond_loopback_needs_a_token(host: str, token: str | None, refused: bool) -> None:
    settings = load_settings(simulator=True, host=host, mcp_token=token)
    if refused:
        with pytest.raises(SettingsError, match="MJ_MCP_TOKEN"):
            check_bind(settings)
    else:
        check_bind(settings)


@pytest.mark.slow
def test_the_demo_runs_imagine_and_u1_and_says_where_the_images_are(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mj_mcp", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(tmp_path),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "imagine" in done.stdout and "U1" in done.stdout
    saved = sorted((tmp_path / "out").glob("*.png"))
    assert any(p.name.startswith("upscale-") for p in saved)
    assert str(tmp_path / "out") in done.stdout
    assert "100.0%" in done.stdout


def test_server_json_validates_and_lists_every_setting() -> None:
    import jsonschema

    root = Path(__file__).resolve().parents[1]
    # A copy of the MCP registry's schema (shared/schemas), so that a clone alone can check it.
    schema_path = Path(__file__).resolve().parent / "fixtures" / "server.schema.json"
    document = json.loads((root / "server.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, json.loads(schema_path.read_text(encoding="utf-8")))
    from mj_mcp import __version__
    from mj_mcp.config import ENV_NAMES

    (package,) = document["packages"]
    assert package["version"] == document["version"] == __version__
    assert package["transport"] == {"type": "stdio"}
    names = {e["name"]: e for e in package["environmentVariables"]}
    assert set(names) == set(ENV_NAMES.values())
    assert names["MJ_API_KEY"]["isSecret"] is True
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"mcp-name: {document['name']}" in readme
