"""What every framework check shares: the mj-mcp processes it talks to, and the checks' bookkeeping.

Each framework script runs in that framework's own virtual environment (they pin `mcp` versions of
their own), so this module uses the standard library only. The server itself runs from the
project's environment as a subprocess: `MJ_MCP_COMMAND` names its `mj-mcp` (default: `mj-mcp` on
PATH).

- `stdio_server()`: the command, arguments and environment that start `mj-mcp --simulator` on stdio.
- `http_server(transport)`: `mj-mcp --simulator` on Streamable HTTP or SSE, on a free port; yields its URL.
- `simulator()` + `server_env(upstream_url)`: the simulator as its own HTTP server (`mj-mcp simulate`),
  so a check can count what the upstream received (`submits`).
- `Checks`: runs named async checks, prints `ok`/`not ok` lines and a closing `N passed, N failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

JOB_SECONDS = "1"
"""A simulated job takes this long: quick checks, yet long enough for progress to be reported."""

TOOLS = 20
"""How many tools the server lists for the `plus` profile (every upstream operation)."""

PROMPT = "a paper boat on a pond"
FAILING_PROMPT = "a paper boat simulate-failure"
"""The simulator fails a job whose prompt has this marker (its `Quirks.failing_marker`)."""
UNKNOWN_TASK = "1000000000000000"
"""A task id the simulator does not know."""
TOKEN = "framework-check-token"
"""The bearer token the HTTP servers demand (`MJ_MCP_TOKEN`), as a real deployment would."""


def command() -> str:
    found = os.environ.get("MJ_MCP_COMMAND") or shutil.which("mj-mcp")
    if not found:
        raise SystemExit("set MJ_MCP_COMMAND to the project's mj-mcp (e.g. $PWD/.venv/bin/mj-mcp)")
    return found


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without its MJ_* settings, plus a fast simulator and no saving."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env.update(MJ_SIM_JOB_SECONDS=JOB_SECONDS, MJ_POLL_INTERVAL="0.2", MJ_OUTPUT_DIR="off")
    env.update(extra)
    return env


def stdio_server(**extra: str) -> tuple[str, list[str], dict[str, str]]:
    """command, args, env for `mj-mcp --simulator` on stdio."""
    return command(), ["--simulator"], base_env(**extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process ended with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within 30 s")


@contextlib.contextmanager
def _running(args: list[str], env: dict[str, str], probe: str, *, quiet: bool = False) -> Iterator[None]:
    stderr = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen([command(), *args], env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    try:
        _wait_until_up(probe, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def http_server(transport: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`mj-mcp` on `transport` (streamable-http or sse), guarded by `TOKEN`; yields its root URL.

    `env` defaults to `base_env()`; without an `MJ_BASE_URL` in it the server plays the simulator."""
    env = base_env() if env is None else env
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--transport", transport, "--port", str(port)]
    if "MJ_BASE_URL" not in env:
        args.insert(0, "--simulator")
    with _running(args, {**env, "MJ_MCP_TOKEN": TOKEN}, f"{url}/health"):
        yield url


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def simulator(job_seconds: float) -> Iterator[str]:
    """`mj-mcp simulate`: the upstream as an HTTP server of its own; yields its root URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["simulate", "--port", str(port), "--job-seconds", str(job_seconds)]
    # Quiet: its access log (a line per poll) would bury the checks' own output.
    with _running(args, base_env(), f"{url}/mj/task/list", quiet=True):
        yield url


def server_env(upstream_url: str, **extra: str) -> dict[str, str]:
    """The environment for an mj-mcp that talks to the simulator at `upstream_url` as a real upstream."""
    return base_env(MJ_BASE_URL=upstream_url, MJ_API_KEY="sk-framework-check", **extra)


def submits(upstream_url: str, action: str = "IMAGINE") -> int:
    """How many `action` jobs the simulator at `upstream_url` was sent (its own task list)."""
    return sum(1 for task in get_json(f"{upstream_url}/mj/task/list") if task.get("action") == action)


# -- what the checks assert about every framework ------------------------------------------------


def task_id_in(text: str) -> str:
    """The task id from a result's text: the `mj://tasks/{id}` it names, or its first line
    (`IMAGINE task {id}: SUCCESS`), for frameworks that keep only the first content item."""
    found = re.search(r"mj://tasks/(\w+)", text) or re.search(r"\btask (\w+):", text)
    if found is None:
        raise AssertionError(f"no task id in {text[:300]!r}")
    return found.group(1)


# -- running the checks -------------------------------------------------------------------------


class Checks:
    """Named async checks run one after another; a failure is reported and the rest still run."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.passed = 0
        self.failed = 0

    async def run(self, name: str, check: Callable[[], Awaitable[None]], timeout: float = 120) -> None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(check(), timeout)
        except Exception:
            self.failed += 1
            print(f"not ok - {self.framework}: {name}\n{traceback.format_exc()}", flush=True)
        else:
            self.passed += 1
            print(f"ok - {self.framework}: {name} ({time.monotonic() - started:.1f} s)", flush=True)

    def finish(self) -> None:
        print(f"{self.framework}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)
