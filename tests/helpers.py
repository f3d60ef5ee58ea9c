"""Helpers shared by the test modules (fixtures live in conftest.py; test modules never import each other).

- the fake clock and result helpers every in-process test uses;
- sample images and the tool list;
- console-script subprocesses: their environment, free ports without the bind-close-reuse race, and
  readiness read from the server's own startup line (a signal, bounded by a timeout), not from sleeps;
- the in-process callback session (a server with MJ_PUBLIC_URL and an upstream that calls it back);
- `coverage_paused`, for load tests that repeat paths the functional tests cover.
"""

from __future__ import annotations

import base64
import io
import os
import queue
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.lowlevel
import coverage
import httpx2
from mcp import Client
from mcp.types import CallToolResult, TextContent
from PIL import Image

from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.config import Settings
from mj_mcp.server import create_server
from mj_mcp.simulator import Simulator
from mj_mcp.taskstore import TaskRecord, now_utc

SIM_URL = "http://sim.test"
PUBLIC = "http://mj-mcp.test"

TOOL_NAMES = [
    "imagine", "blend", "describe", "shorten", "action", "modal", "swap_face", "video", "edit",
    "upload_images", "show", "change", "simple_change", "get_task", "list_tasks", "query_tasks",
    "recent_tasks", "task_queue", "image_seed", "cancel_task",
]  # fmt: skip


class FakeClock:
    """Simulated time shared by the simulator (its clock) and the watcher (now/sleep).

    `sleep` moves time forward instead of waiting, then yields once: whole job lifecycles run
    in milliseconds, and every waiting decision still sees consistent time.
    """

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []
        self._moved: anyio.Event | None = None

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        self.t += seconds
        if self._moved is not None and seconds:
            self._moved.set()
            self._moved = None

    async def moved_from(self, t: float) -> None:
        """Return once the time is no longer `t` (for helpers that act when time moves)."""
        while self.t == t:
            if self._moved is None:
                self._moved = anyio.Event()
            await self._moved.wait()


def text(result: CallToolResult) -> str:
    """The text blocks of a tool result, one per line."""
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def png_bytes(color: str = "red", size: tuple[int, int] = (96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_uri(color: str = "red") -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(color)).decode()


@contextmanager
def coverage_paused() -> Iterator[None]:
    """Run a block without coverage's tracer (when the run measures coverage at all).

    For load tests only: they repeat, hundreds of times, code paths that the functional tests
    already cover, and on Python 3.11 the tracer doubles the CPU time of every repetition.
    """
    cov = coverage.Coverage.current()
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        cov.start()


# -- console-script subprocesses -------------------------------------------------------------------

FAST_SIM = {"MJ_SIM_JOB_SECONDS": "1", "MJ_POLL_INTERVAL": "0.2"}
START_TIMEOUT = 30.0
"""Seconds a console script may take to start listening (generous: the CPU may be shared)."""


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a console-script child: no MJ_* of the developer's, a fast simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env.update(FAST_SIM)
    env["MJ_OUTPUT_DIR"] = str(tmp_path / "out")
    env.update(extra)
    return env


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return 32768, 60999


_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port that is free now and that nothing else is likely to take before the test binds it.

    Only for a server whose URL must be known before it starts (MJ_PUBLIC_URL); otherwise let it
    bind port 0 and read the port back (`serving`). The classic bind(0)-close-reuse race loses to
    any process that is handed the same ephemeral port meanwhile, so the port comes from below the
    kernel's ephemeral range, from a slice of its own per xdist worker, never twice per process.
    """
    low, _high = _ephemeral_range()
    first = max(1024, low - 8000) + 800 * (_WORKER % 10)
    for port in random.sample(range(first, first + 800), 800):
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise AssertionError("no free port in this worker's slice")  # pragma: no cover


class ServerExited(AssertionError):
    """A console script ended before it listened; `log` holds what it wrote."""

    def __init__(self, log: str) -> None:
        super().__init__(f"the server ended before it listened:\n{log[-2000:]}")
        self.log = log

    @property
    def port_in_use(self) -> bool:
        return "address already in use" in self.log.lower()


LISTENING = re.compile(r"Uvicorn running on https?://\S+:(\d+)")


def copy_lines(source: IO[str], log: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in source:
        log.write(line)
        log.flush()
        lines.put(line)
    lines.put(None)


@contextmanager
def serving(args: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """`python -m mj_mcp *args`, an HTTP server; yields its base URL once uvicorn says it listens.

    Its stderr (and stdout) go to `log`. Give it `--port 0` where the port need not be known
    beforehand: the startup line names the port the kernel chose, so no other process can take it.
    Raises ServerExited if it ends first, and fails if it says nothing within START_TIMEOUT.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "mj_mcp", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    with log.open("w") as out:
        copier = threading.Thread(target=copy_lines, args=(proc.stdout, out, lines), daemon=True)
        copier.start()
        try:
            yield f"http://127.0.0.1:{_await_listening(lines, log)}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            copier.join(timeout=10)
            proc.stdout.close()


def _await_listening(lines: queue.Queue[str | None], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no startup line within {START_TIMEOUT} s:\n{log.read_text()[-2000:]}") from None
        if line is None:
            raise ServerExited(log.read_text())
        if found := LISTENING.search(line):
            return found[1]


@contextmanager
def serving_on_a_free_port(
    args_for: Callable[[int], tuple[list[str], dict[str, str]]], log: Path, attempts: int = 3
) -> Iterator[str]:
    """`serving` for a server that must know its port beforehand: retried on EADDRINUSE."""
    for attempt in range(attempts):
        args, env = args_for(free_port())
        stack = ExitStack()
        try:
            base = stack.enter_context(serving(args, env, log))
        except ServerExited as exc:
            if not exc.port_in_use or attempt == attempts - 1:
                raise
            continue
        with stack:  # only the start is retried, never the test's own block
            yield base
        return


# -- callbacks, in process -------------------------------------------------------------------------


def lists(sim: Simulator) -> int:
    """How many times the simulator was polled for task lists."""
    return sum(1 for _, path in sim.request_log if path.endswith("/list-by-condition"))


@asynccontextmanager
async def http_to(app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=PUBLIC) as http:
        yield http


def poster(http: httpx2.AsyncClient) -> Callable[[str, bytes], Awaitable[object]]:
    async def post(url: str, body: bytes) -> object:
        response = await http.post(url, content=body, headers={"Content-Type": "application/json"})
        response.raise_for_status()
        return response

    return post


@asynccontextmanager
async def callback_session(
    settings: Settings, mj: MjClient, sim: Simulator, clock: FakeClock
) -> AsyncIterator[tuple[Client, CallbackReceiver]]:
    """A server with MJ_PUBLIC_URL, and an upstream that calls it back over (in-process) HTTP."""
    receiver = CallbackReceiver(PUBLIC)
    server = create_server(settings.model_copy(update={"public_url": PUBLIC}), mj, clock=clock, callbacks=receiver)

    async def pump(post: Callable[[str, bytes], Awaitable[object]]) -> None:
        # Calls back as soon as (fake) time has moved, without moving it itself: the server's
        # own sleeps drive time, as real time would. A task changes only when time moves.
        while True:
            seen = clock.now()
            await sim.send_callbacks(post)
            await clock.moved_from(seen)

    async with (
        http_to(receiver) as http,
        Client(server, mode="legacy") as client,  # type: ignore[arg-type]
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(pump, poster(http))
        yield client, receiver
        tg.cancel_scope.cancel()


def task_record(
    task_id: str, owner: str = "a", *, status: Any = "working", ttl_ms: int = 1000, expires_at: float = 0.0
) -> TaskRecord:
    """An MCP task record of `imagine`, made now, for the task-store tests (memory and Redis)."""
    stamp = now_utc()
    return TaskRecord(
        task_id=task_id,
        owner=owner,
        tool="imagine",
        status=status,
        status_message="",
        created_at=stamp,
        last_updated_at=stamp,
        ttl_ms=ttl_ms,
        poll_interval_ms=1000,
        expires_at=expires_at,
    )
