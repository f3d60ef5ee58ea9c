"""The benchmark of issue 5: waiting at scale, notification latency, cold start, overhead, memory.

Run from the repository root:

    .venv/bin/python benchmarks/bench.py            # full run (about 1.5 minutes on 2 cores)
    .venv/bin/python benchmarks/bench.py --quick    # smaller run (under 1 minute)

Everything runs on this machine over loopback: the upstream is the project's simulator served by
uvicorn in a child process (so its image rendering runs on another core), the MCP server is the
real `create_server(...)` with the real `MjClient`. The script prints one markdown table and
writes it, with the machine and the date, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
MINIMAL_SERVER = Path(__file__).resolve().parent / "minimal_server.py"
PYTHON = sys.executable

JOB_SECONDS = 3.0
RUNNING_JOB_SECONDS = 600.0
"""Row 4's simulator: its task must still be running at the last call, so that get_task never
downloads an image (a 3 s job could finish during the calls on a slow machine)."""
POLL_INTERVAL = 1.0
STAGGER = 4.0
# The simulator's timeline (mj_mcp/simulator/core.py `_PHASES`): fraction of job_seconds at which
# each (status, percent) begins.
PHASE_AT: dict[tuple[str, int], float] = {
    ("SUBMITTED", 0): 0.125,
    ("IN_PROGRESS", 15): 0.25,
    ("IN_PROGRESS", 38): 0.4375,
    ("IN_PROGRESS", 62): 0.625,
    ("IN_PROGRESS", 85): 0.8125,
    ("SUCCESS", 100): 1.0,
}
STATUS_WORD = re.compile(r"^(NOT_START|SUBMITTED|IN_PROGRESS|SUCCESS|FAILURE|MODAL)")


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env.update(extra)
    return env


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def serve_simulator(port: int, job_seconds: float, callback_log: str | None = None) -> None:
    """Child process: the simulator over HTTP on loopback, without access logs.

    It is the standalone app, as `mj-mcp simulate` serves it: its lifespan runs the sender that
    POSTs each task's changes to its notifyHook every `CALLBACK_TICK`. With `callback_log`, each
    callback it sends is timed (see `timed_simulator`) and the times are written there once
    uvicorn has stopped (on SIGTERM).
    """
    import signal

    import uvicorn

    from mj_mcp.simulator import Simulator

    timed = timed_simulator(job_seconds) if callback_log is not None else None
    sim = timed or Simulator(job_seconds=job_seconds)
    if timed is not None:
        # uvicorn re-raises the SIGTERM that stopped it once it has shut down; with this handler
        # in place of the default one, that does not end the process before the log is written.
        signal.signal(signal.SIGTERM, ignore_signal)
    uvicorn.run(
        sim.standalone_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    if timed is not None and callback_log is not None:
        timed.write_log(callback_log)


def ignore_signal(signum: int, frame: object) -> None:
    del signum, frame


def timed_simulator(job_seconds: float) -> Any:
    """The simulator, recording for every callback when its tick began and when its POST began and
    ended (the receiver's reply included), and when it drew each image (in a worker thread)."""
    from mj_mcp.simulator import Simulator

    class Timed(Simulator):
        def __init__(self) -> None:
            super().__init__(job_seconds=job_seconds)
            self.posts: list[tuple[float, float, float, bytes]] = []
            self.renders: list[tuple[float, float]] = []
            draw = self.media._picture  # pyright: ignore[reportPrivateUsage]
            renders = self.renders

            async def timed_picture(task_id: str, variant: str) -> Any:
                start = time.time()
                try:
                    return await draw(task_id, variant)
                finally:
                    renders.append((start, time.time()))

            self.media._picture = timed_picture  # pyright: ignore[reportPrivateUsage]

        async def send_callbacks(self, post: Callable[[str, bytes], Awaitable[object]]) -> int:
            tick = time.time()

            async def timed(url: str, body: bytes) -> object:
                start = time.time()
                try:
                    return await post(url, body)
                finally:
                    self.posts.append((tick, start, time.time(), body))

            return await super().send_callbacks(timed)

        def write_log(self, path: str) -> None:
            posts: list[dict[str, Any]] = []
            for tick_at, start, end, body in self.posts:
                task = json.loads(body)
                key = notice_key(task.get("status"), task.get("progress"))
                posts.append({"id": task["id"], "key": key, "tick": tick_at, "start": start, "end": end})
            Path(path).write_text(json.dumps({"posts": posts, "renders": self.renders}))

    return Timed()


def notice_key(status: str | None, progress: str | float | None) -> str:
    """ "STATUS:percent" of a task or a progress notification, e.g. "IN_PROGRESS:38"."""
    percent = int(float(str(progress).rstrip("%"))) if progress not in (None, "") else 0
    return f"{status or ''}:{percent}"


@contextmanager
def simulator_process(job_seconds: float, callback_log: Path | None = None) -> Generator[str]:
    """A standalone loopback simulator in a child process; yields its base URL.

    With `callback_log`, the child writes the times of the callbacks it sent there when it stops.
    """
    import httpx2

    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, __file__, "_sim", str(port), str(job_seconds), *([str(callback_log)] if callback_log else [])],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass(frozen=True)
class Request:
    """One request the server sent upstream, as the counting transport saw it."""

    method: str
    path: str
    at: float
    """When it was sent (wall clock)."""
    ids: tuple[str, ...] = ()
    """The task ids a list-by-condition asked for."""


def counting_transport() -> tuple[Any, list[Request]]:
    """An httpx2 transport over real sockets that records every request."""
    import httpx2

    log: list[Request] = []

    class Counting(httpx2.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            ids: tuple[str, ...] = ()
            if "list-by-condition" in request.url.path:
                asked: list[Any] = json.loads(request.content or b"{}").get("ids") or []
                ids = tuple(str(i) for i in asked)
            log.append(Request(request.method, request.url.path, time.time(), ids))
            return await super().handle_async_request(request)

    return Counting(), log


def classify(path: str) -> str:
    if "/submit/" in path:
        return "submit"
    if path.startswith("/sim/") or "/mj/image/" in path:
        return "download"
    return "read"


# -- 1 + 2: requests per finished task, and notification latency ------------------------------


@dataclass
class Notice:
    """The first progress notification of one status/percent of one task, as the client got it."""

    task_id: str
    key: str
    """"STATUS:percent", as `notice_key` makes it."""
    scheduled: float
    """When the simulator's schedule made the change (from the task's submitTime)."""
    received: float
    """When the notification reached the client's progress callback (wall clock)."""

    @property
    def latency(self) -> float:
        return self.received - self.scheduled


@dataclass
class WaitRun:
    n: int
    finished: int
    reads: int
    submits: int
    downloads: int
    polls: int
    wall: float
    polled_ids: int = 0
    """Task ids asked for over all list-by-condition requests (what per-task polling would fetch)."""
    polled_after_callback: int = 0
    """Of those, the ids asked for after the task's first callback had arrived."""
    notices: list[Notice] = field(default_factory=lambda: list[Notice]())
    callbacks: dict[str, float] = field(default_factory=lambda: dict[str, float]())
    """By callback: (task id + " " + key) → when the server's listener got that callback."""
    accepted: int = 0
    """By callback: the callbacks the receiver handed to the watcher."""

    @property
    def latencies(self) -> list[float]:
        return [notice.latency for notice in self.notices]


@asynccontextmanager
async def in_memory_server(
    base: str, transport: Any, callbacks: Any = None, **settings: Any
) -> AsyncGenerator[tuple[Any, Any]]:
    """The real server on the real MjClient (pointed at `base`), through the in-memory mcp.Client."""
    from mcp import Client

    from mj_mcp.client import MjClient
    from mj_mcp.config import load_settings
    from mj_mcp.server import create_server

    options: dict[str, Any] = {"base_url": base, "api_key": "x", "output_dir": "off"}
    options.update(settings)
    config = load_settings(**options)
    async with MjClient(base, "x", transport=transport, timeout=config.http_timeout) as mj:
        server = create_server(config, mj, callbacks=callbacks)
        async with Client(server) as client:
            yield client, server


def stamped_receiver(public_url: str) -> Any:
    """The server's CallbackReceiver, noting in `arrivals` when each callback reached it (by task
    id + " " + key, the first of each)."""
    from mj_mcp.callbacks import CallbackReceiver

    class Stamped(CallbackReceiver):
        def __init__(self) -> None:
            super().__init__(public_url)
            self.public_url = public_url
            self.arrivals: dict[str, float] = {}

        def take(self, body: bytes) -> tuple[int, dict[str, Any]]:
            at = time.time()
            answer = super().take(body)
            task = json.loads(body)
            self.arrivals.setdefault(f"{task.get('id')} {notice_key(task.get('status'), task.get('progress'))}", at)
            return answer

    return Stamped()


@asynccontextmanager
async def callback_listener() -> AsyncGenerator[Any]:
    """A receiver served on a loopback port by `mj_mcp.callbacks.serve`, the listener the server
    opens for itself on stdio; yields the receiver (its hook_url leads to that port)."""
    import anyio

    from mj_mcp.callbacks import serve

    port = free_port()
    receiver = stamped_receiver(f"http://127.0.0.1:{port}")
    async with anyio.create_task_group() as tg:
        if not await tg.start(serve, receiver, "127.0.0.1", port):
            raise RuntimeError("the callback listener could not bind a loopback port")
        try:
            yield receiver
        finally:
            tg.cancel_scope.cancel()


async def waiting_run(base: str, n: int, stagger: float = 0.0, *, callbacks: bool = False) -> WaitRun:
    """N concurrent imagine calls; with `stagger`, each starts after a random delay up to that many
    seconds, so that status changes fall at random points between the watcher's ticks. With
    `callbacks`, the server has a public URL (its callback listener on loopback), so every submit
    carries a notifyHook and the simulator calls each change back."""
    import random
    from contextlib import AsyncExitStack

    import anyio

    delays = random.Random(n).uniform  # seeded: the same start times every run

    transport, log = counting_transport()
    notices: list[Notice] = []
    finished = 0
    async with AsyncExitStack() as stack:
        receiver: Any = None
        options: dict[str, Any] = {"poll_interval": POLL_INTERVAL}
        if callbacks:
            receiver = await stack.enter_async_context(callback_listener())
            options["public_url"] = receiver.public_url
        client, _server = await stack.enter_async_context(in_memory_server(base, transport, receiver, **options))

        async def one(i: int) -> None:
            nonlocal finished
            if stagger:
                await anyio.sleep(delays(0, stagger))
            seen: list[tuple[float, float, str]] = []

            async def record(progress: float, total: float | None, message: str | None) -> None:
                seen.append((time.time(), progress, message or ""))

            result = await client.call_tool("imagine", {"prompt": f"bench {n} {i}"}, progress_callback=record)
            content: dict[str, Any] = result.structured_content or {}
            if result.is_error or content.get("status") != "SUCCESS":
                return
            finished += 1
            submit = float(content["submitTime"]) / 1000
            reported: set[tuple[str, int]] = set()
            for at, progress, message in seen:
                word = STATUS_WORD.match(message)
                key = (word.group(1) if word else "", int(progress))
                if key in reported or key not in PHASE_AT:
                    continue  # NOT_START (no status change yet) and heartbeats
                reported.add(key)
                notices.append(Notice(str(content["id"]), notice_key(*key), submit + PHASE_AT[key] * JOB_SECONDS, at))

        start = time.monotonic()
        with anyio.fail_after(50):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)
        wall = time.monotonic() - start
    kinds = [classify(request.path) for request in log]
    arrivals: dict[str, float] = receiver.arrivals if receiver is not None else {}
    first_callback: dict[str, float] = {}
    for name, at in arrivals.items():
        task_id = name.split(" ")[0]
        first_callback[task_id] = min(at, first_callback.get(task_id, at))
    return WaitRun(
        n=n,
        finished=finished,
        reads=kinds.count("read"),
        submits=kinds.count("submit"),
        downloads=kinds.count("download"),
        polls=sum(1 for request in log if "list-by-condition" in request.path),
        wall=wall,
        polled_ids=sum(len(request.ids) for request in log),
        polled_after_callback=sum(
            1 for request in log for i in request.ids if i in first_callback and first_callback[i] < request.at
        ),
        notices=notices,
        callbacks=arrivals,
        accepted=receiver.accepted if receiver is not None else 0,
    )


# -- 3: cold start ---------------------------------------------------------------------------

HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


@dataclass
class Start:
    seconds: float
    """From Popen to the tools/list answer."""
    cpu: float
    """CPU seconds the child had used by then (user + system): what a busy machine inflates least."""
    stderr: str


def time_to_tools_list(args: list[str], env: dict[str, str]) -> Start:
    """Time from Popen to the tools/list answer over stdio, the child's CPU time by then, its stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    elapsed = cpu = float("nan")
    for message in HANDSHAKE:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        if json.loads(line).get("id") == 2:
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid)
            break
    _, stderr = proc.communicate(timeout=30)  # closes stdin: EOF ends the server
    return Start(elapsed, cpu, stderr)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the ")" that ends the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


REAL_MODE_ENV: Final = {"MJ_BASE_URL": "https://mj-proxy.example.com", "MJ_API_KEY": "sk-bench-not-a-key"}
"""Row 3b: the mode users run. Nothing is sent before tools/list, so the host need not exist."""


@dataclass
class ColdStart:
    simulator: list[Start]
    real: list[Start]
    minimal: list[Start]
    """Each run of the minimal server sits between one simulator and one real-mode run of mj-mcp."""
    detail: str


def cold_start(runs: int) -> ColdStart:
    env = child_env(MJ_OUTPUT_DIR="off")
    # An installed package comes with its .pyc files (pip compiles them); with this variable set
    # the warm-up could not write them, and every run would also time compiling mj_mcp.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    real_env = {**env, **REAL_MODE_ENV}
    ours = [PYTHON, "-m", "mj_mcp", "--simulator"]
    # The console script, as users start it (`mj-mcp` from the same environment as PYTHON).
    console = [str(Path(PYTHON).parent / "mj-mcp")]
    minimal = [PYTHON, str(MINIMAL_SERVER)]
    time_to_tools_list(ours, env)  # warm the file cache and .pyc files
    time_to_tools_list(console, real_env)
    time_to_tools_list(minimal, env)
    result = ColdStart([], [], [], "")
    for _ in range(runs):  # interleaved, so drift affects all alike
        result.simulator.append(time_to_tools_list(ours, env))
        result.minimal.append(time_to_tools_list(minimal, env))
        result.real.append(time_to_tools_list(console, real_env))
    result.detail = f"{heavy_imports(ours, minimal, env)}; start-up phases of mj-mcp: {startup_phases(env)}"
    return result


def heavy_imports(ours: list[str], minimal: list[str], env: dict[str, str]) -> str:
    """Top-level packages mj-mcp imports before tools/list that the minimal server does not, by cost."""

    def modules(args: list[str]) -> dict[str, int]:
        """Every module imported before tools/list, with its own (self) import time in µs."""
        stderr = time_to_tools_list([args[0], "-X", "importtime", *args[1:]], env).stderr
        found: dict[str, int] = {}
        for line in stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
            if match:
                found[match.group(2)] = int(match.group(1))
        return found

    base = modules(minimal)
    costs: dict[str, int] = {}
    for name, us in modules(ours).items():
        if name not in base:
            top = name.split(".")[0]
            costs[top] = costs.get(top, 0) + us
    ranked = sorted(((us, name) for name, us in costs.items()), reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in ranked[:10] if us >= 3000)


STARTUP_PHASES = """
import anyio, json, time
t0 = time.perf_counter()
import mcp.server.mcpserver
from mcp import Client
t1 = time.perf_counter()
from mj_mcp.cli import main
from mj_mcp.config import load_settings
from mj_mcp.server import create_server
t2 = time.perf_counter()
server = create_server(load_settings(simulator=True, output_dir="off"))
t3 = time.perf_counter()
# Again, as the tests (a server per session) and MJ_CLIENT_KEYS hosting do: what one more costs.
settings = load_settings(simulator=True, output_dir="off")
t3_settings = time.perf_counter()
for _ in range(20):
    create_server(settings)
t3_again = time.perf_counter()

async def session():
    async with Client(server) as client:
        t4 = time.perf_counter()
        await client.list_tools()
        return t4, time.perf_counter()

t4, t5 = anyio.run(session)
print(json.dumps({"mcp import": t1 - t0, "mj_mcp imports": t2 - t1, "create_server": t3 - t2,
                  "create_server again (each of 20)": (t3_again - t3_settings) / 20,
                  "lifespan (simulator, clients) + initialize": t4 - t3_again, "tools/list": t5 - t4}))
"""


def startup_phases(env: dict[str, str]) -> str:
    """Where mj-mcp's start-up time goes, measured in one child (the same order as a real start)."""
    done = subprocess.run(
        [PYTHON, "-c", STARTUP_PHASES], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    if done.returncode != 0:
        return "(phase breakdown failed)"
    phases: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in phases.items())


# -- 4: tool-call overhead -------------------------------------------------------------------


Calls = tuple[list[float], list[float], list[float], list[float], list[float]]


async def overhead(base: str, calls: int, errlog: TextIO) -> Calls:
    """Direct fetches; get_task and echo over stdio; get_task in memory, and mj-mcp's own share of it."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from mj_mcp.client import MjClient
    from mj_mcp.endpoints import ENDPOINTS
    from mj_mcp.models import ImagineRequest

    async with MjClient(base, "x") as mj:
        task_id = (await mj.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="overhead"))).task_id
        assert task_id is not None
        direct: list[float] = []
        for _ in range(calls):
            start = time.perf_counter()
            await mj.fetch(task_id)
            direct.append(time.perf_counter() - start)
    env = child_env(MJ_BASE_URL=base, MJ_API_KEY="x", MJ_OUTPUT_DIR="off")
    params = StdioServerParameters(command=PYTHON, args=["-m", "mj_mcp"], env=env)
    through: list[float] = []
    async with Client(stdio_client(params, errlog=errlog)) as client:
        for _ in range(10):  # warm-up
            await client.call_tool("get_task", {"taskId": task_id})
        for _ in range(calls):
            start = time.perf_counter()
            result = await client.call_tool("get_task", {"taskId": task_id})
            through.append(time.perf_counter() - start)
            assert not result.is_error
    # The floor: a trivial tool of the minimal MCPServer, called the same way.
    floor: list[float] = []
    minimal = StdioServerParameters(command=PYTHON, args=[str(MINIMAL_SERVER)], env=child_env())
    async with Client(stdio_client(minimal, errlog=errlog)) as client:
        for _ in range(10):
            await client.call_tool("echo", {"text": task_id})
        for _ in range(calls):
            start = time.perf_counter()
            await client.call_tool("echo", {"text": task_id})
            floor.append(time.perf_counter() - start)
    # mj-mcp's own work per call, without pipes or a second server process: get_task through the
    # in-memory client, minus a direct fetch and minus the minimal server's echo (also in memory),
    # called in turn so that the machine's drift cancels.
    in_memory: list[float] = []
    own: list[float] = []
    async with MjClient(base, "x") as mj, in_memory_server(base, None) as (client, _server):
        # Imported after create_server has set up logging (WARNING): a first MCPServer would set
        # INFO, and every request would then be logged.
        sys.path.insert(0, str(MINIMAL_SERVER.parent))
        from minimal_server import server as minimal_server

        async with Client(minimal_server) as echo_client:
            for i in range(10 + calls):
                start = time.perf_counter()
                await client.call_tool("get_task", {"taskId": task_id})
                got = time.perf_counter()
                await mj.fetch(task_id)
                fetched = time.perf_counter()
                await echo_client.call_tool("echo", {"text": task_id})
                echoed = time.perf_counter()
                if i >= 10:  # warm-up
                    in_memory.append(got - start)
                    own.append((got - start) - (fetched - got) - (echoed - fetched))
    return direct, through, floor, in_memory, own


# -- 5: peak RSS while blending ----------------------------------------------------------------

BLEND_BYTES = 8 * 1024 * 1024


def noisy_png(path: Path, seed: int) -> None:
    """A PNG of about 8 MB: random pixels do not compress."""
    import random

    from PIL import Image

    side = int((BLEND_BYTES / 3) ** 0.5)
    data = random.Random(seed).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), data).save(path, "PNG", compress_level=1)


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def blend_child(base: str, folder: str, paths: list[str]) -> None:
    """Child process: start the server, blend the five files, print RSS numbers as JSON."""
    async with in_memory_server(base, None, allowed_dirs=folder) as (client, _server):
        await client.list_tools()
        before = vm_rss_mb()
        result = await client.call_tool("blend", {"base64Array": paths})
        content: dict[str, Any] = result.structured_content or {}
        status = content.get("status")
    print(json.dumps({"before": before, "peak": vm_hwm_mb(), "status": status, "error": result.is_error}))


def blend_rss(base: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mj-bench-") as folder:
        for i in range(5):
            noisy_png(Path(folder) / f"noise-{i}.png", i)
        sizes = [p.stat().st_size for p in Path(folder).glob("*.png")]
        done = subprocess.run(
            [PYTHON, __file__, "_blend", base, folder],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
            check=False,
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"blend child failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(lines[-1])
    answer["file_mb"] = statistics.mean(sizes) / 1e6
    return answer


# -- the table ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ms2(seconds: float) -> str:
    return f"{seconds * 1000:+.2f} ms"


def mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def callback_notes(run: WaitRun, sent: dict[str, Any]) -> list[str]:
    """Where the milliseconds of the callback row go, from the records of the simulator (when each
    callback's tick and POST began), the receiver (when it had the body) and the client."""
    if not run.notices:
        return []
    posts = {f"{p['id']} {p['key']}": p for p in sent.get("posts", [])}
    first = min(notice.scheduled for notice in run.notices)
    last = max(notice.received for notice in run.notices)
    renders: list[tuple[float, float]] = [(a, b) for a, b in sent.get("renders", []) if b > first and a < last]
    stages: dict[str, list[float]] = {name: [] for name in ("tick", "queue", "http", "server")}
    by_poll = 0
    clear: list[float] = []
    """Latencies of the notifications during whose sending the simulator rendered no image."""
    slow: list[tuple[str, bool]] = []
    """For each notification over 50 ms: its longest stage, and whether a render overlapped it."""
    for notice in run.notices:
        name = f"{notice.task_id} {notice.key}"
        post, arrived = posts.get(name), run.callbacks.get(name)
        if post is None or arrived is None or arrived > notice.received:
            by_poll += 1  # a poll brought the change before its callback did
            continue
        parts = {
            "tick": post["tick"] - notice.scheduled,
            "queue": post["start"] - post["tick"],
            "http": arrived - post["start"],
            "server": notice.received - arrived,
        }
        for stage, seconds in parts.items():
            stages[stage].append(seconds)
        rendering = any(a < post["start"] and b > notice.scheduled for a, b in renders)
        if not rendering:
            clear.append(notice.latency)
        if notice.latency > 0.05:
            slow.append((max(parts, key=lambda stage: parts[stage]), rendering))
    labels = {
        "tick": "scheduled change → the simulator's next callback tick",
        "queue": "tick → its POST starts (due scan, earlier POSTs of the same tick)",
        "http": "POST → the server's receiver has the body (loopback HTTP, uvicorn)",
        "server": "receiver → the client's progress callback (validation, watcher push, waiter wake-up, "
        "progress notification)",
    }
    split = "; ".join(
        f"{label} {ms(pct(stages[stage], 0.5))} / {ms(pct(stages[stage], 0.95))}" for stage, label in labels.items()
    )
    durations = [b - a for a, b in renders]
    notes = [
        f"Row 2 by callback, p50 / p95 of each stage over the {len(stages['tick'])} notifications that a callback "
        f"brought ({by_poll} came by a poll first): {split}."
    ]
    text = (
        f"The simulator draws each picture the server downloads in a worker thread, beside its callback sender "
        f"(they share the cores): {len(durations)} drawings of {ms(pct(durations, 0.5))} p50 (max "
        f"{ms(max(durations, default=float('nan')))}). The {len(clear)} notifications sent while it drew nothing: "
        f"p50 {ms(pct(clear, 0.5))}, p95 {ms(pct(clear, 0.95))}."
    )
    if slow:
        text += (
            f" Over 50 ms: {len(slow)} notifications, {sum(1 for _, r in slow if r)} of them while it drew; "
            "longest stage "
            + ", ".join(f"{stage} {n}" for stage in stages if (n := sum(1 for s, _ in slow if s == stage)))
            + "."
        )
    notes.append(text)
    return notes


def cold_start_rows(cold: ColdStart) -> list[tuple[str, str, str, str]]:
    """Row 3: mj-mcp's start against the minimal server's, in simulator mode and in the mode users run."""
    rows: list[tuple[str, str, str, str]] = []
    base = [run.seconds for run in cold.minimal]
    base_cpu = [run.cpu for run in cold.minimal]
    for label, runs in (
        ("3. process start → `tools/list` over stdio, ratio to a minimal MCPServer", cold.simulator),
        ("3. … `mj-mcp` with an https `MJ_BASE_URL` and a key (the mode users run)", cold.real),
    ):
        seconds = [run.seconds for run in runs]
        # Each pair ran back to back, so the machine's drift cancels in its ratio.
        ratio = statistics.median(x / y for x, y in zip(seconds, base, strict=True))
        cpu = statistics.median(run.cpu / y for run, y in zip(runs, base_cpu, strict=True))
        rows.append(
            (
                label,
                f"{ratio:.2f} (median of {len(runs)} back-to-back pairs; median times "
                f"{ms(statistics.median(seconds))} vs {ms(statistics.median(base))}; fastest runs "
                f"{min(seconds) / min(base):.2f}; CPU time to the answer {cpu:.2f} of the minimal server's)",
                "≤ 1.15",
                mark(ratio <= 1.15),
            )
        )
    return rows


def build_table(
    runs: list[WaitRun],
    latency: WaitRun,
    pushed: WaitRun,
    sent: dict[str, Any],
    cold: ColdStart,
    calls: Calls,
    rss: dict[str, Any],
) -> tuple[str, list[str]]:
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    for run in runs:
        per = run.reads / max(1, run.finished)
        ok = run.n < 10 or per <= 1.0
        rows.append(
            (
                f"1. upstream reads per finished task, N = {run.n}",
                f"{per:.3f} ({run.reads} reads, {run.polls} list-by-condition, {run.finished}/{run.n} finished; "
                f"{run.submits} submits, {run.downloads} downloads; {run.wall:.1f} s)",
                "≤ 1 for N ≥ 10, flat" if run.n >= 10 else "(reference)",
                mark(ok) if run.n >= 10 else "—",
            )
        )
    lat = latency.latencies
    p50, p95 = pct(lat, 0.5), pct(lat, 0.95)
    aligned = [x for run in runs for x in run.latencies]
    notes.append(
        f"Row 2 with the tasks of row 1 (all started together, so every change falls at the same point "
        f"between two ticks): p50 {ms(pct(aligned, 0.5))}, p95 {ms(pct(aligned, 0.95))} over {len(aligned)} "
        "notifications; the staggered run in the table is the fair sample."
    )
    rows.append(
        (
            "2. status change → progress notification, by polling (p50 / p95)",
            f"{ms(p50)} / {ms(p95)} (max {ms(max(lat, default=float('nan')))}; {len(lat)} notifications of "
            f"{latency.finished} tasks started at random within {STAGGER:g} s; interval {POLL_INTERVAL:g} s)",
            f"p95 ≤ interval + 50 ms = {ms(POLL_INTERVAL + 0.05)}",
            mark(p95 <= POLL_INTERVAL + 0.05),
        )
    )
    lat = pushed.latencies
    p50, p95 = pct(lat, 0.5), pct(lat, 0.95)
    rows.append(
        (
            "2. … by callback (p50 / p95)",
            f"{ms(p50)} / {ms(p95)} (max {ms(max(lat, default=float('nan')))}; {len(lat)} notifications of "
            f"{pushed.finished} tasks, the same starts; {pushed.accepted} callbacks taken; upstream polls: "
            f"{pushed.polls} list-by-condition asking for {pushed.polled_ids} task ids, "
            f"{pushed.polled_after_callback} of them after the task's first callback, vs {latency.polls} asking "
            f"for {latency.polled_ids} by polling)",
            "p95 ≤ 50 ms",
            mark(p95 <= 0.05),
        )
    )
    notes.extend(callback_notes(pushed, sent))
    rows.extend(cold_start_rows(cold))
    if cold.detail:
        notes.append(f"Imported at start by `mj-mcp --simulator` but not by the minimal server: {cold.detail}.")
    direct, through, floor, in_memory, own = calls
    d50, d99, t50, t99 = pct(direct, 0.5), pct(direct, 0.99), pct(through, 0.5), pct(through, 0.99)
    rows.append(
        (
            "4. `get_task` overhead, MCP over stdio vs `MjClient.fetch` (p50 / p99)",
            f"{ms2(t50 - d50)} / {ms2(t99 - d99)} (MCP {ms(t50)} / {ms(t99)}; direct {ms(d50)} / {ms(d99)}; "
            f"{len(through)} calls)",
            "p50 overhead ≤ 2 ms",
            mark(t50 - d50 <= 0.002),
        )
    )
    share = t50 - d50 - pct(floor, 0.5)
    notes.append(
        f"Row 4 floor: a trivial `echo` tool of the minimal MCPServer over stdio takes {ms(pct(floor, 0.5))} p50 / "
        f"{ms(pct(floor, 0.99))} p99 per call from the same client; get_task's overhead minus that floor is "
        f"{ms2(share)} at p50" + (" (within the run-to-run noise)." if abs(share) < 0.5e-3 else ".")
    )
    notes.append(
        f"Row 4 without stdio: get_task through the in-memory client takes {ms(pct(in_memory, 0.5))} p50; minus a "
        f"direct fetch and the minimal server's `echo` (in memory too), called in turn, mj-mcp's own work "
        f"(argument validation, rendering the result) is {ms2(pct(own, 0.5))} per call at p50."
    )
    ok = rss["peak"] <= 300 and rss["status"] == "SUCCESS"
    rows.append(
        (
            "5. peak RSS while blending five 8 MB images",
            f"{rss['peak']:.0f} MB (before the call {rss['before']:.0f} MB; files {rss['file_mb']:.1f} MB each; "
            f"result {rss['status']})",
            "≤ 300 MB",
            mark(ok),
        )
    )
    lines = ["| measure | result | target | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines), notes


# -- main ------------------------------------------------------------------------------------


def section(name: str) -> Callable[[], None]:
    start = time.monotonic()
    print(f"… {name}", file=sys.stderr, flush=True)

    def done() -> None:
        print(f"  {name}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)

    return done


def main() -> int:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller run: N up to 50, fewer repetitions")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--cold-only", action="store_true", help="row 3 (cold start) alone; prints, never writes")
    args = parser.parse_args()
    if args.cold_only:
        cold = cold_start(3 if args.quick else 9)
        print("\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in cold_start_rows(cold)))
        print(f"\n{cold.detail}")
        return 0
    sizes = [1, 10, 50] if args.quick else [1, 10, 50, 200]
    cold_runs = 3 if args.quick else 9
    call_count = 100 if args.quick else 300
    latency_tasks = 20 if args.quick else 60

    scratch = Path(tempfile.mkdtemp(prefix="mj-bench-"))
    sent_log = scratch / "callbacks.json"
    with simulator_process(JOB_SECONDS, callback_log=sent_log) as base:
        done = section("1+2 waiting at scale")
        runs = [anyio.run(waiting_run, base, n) for n in sizes]
        done()
        done = section("2 notification latency (staggered starts)")
        latency = anyio.run(waiting_run, base, latency_tasks, STAGGER)
        done()
        done = section("2 notification latency by callback (staggered starts)")
        pushed = anyio.run(functools.partial(waiting_run, base, latency_tasks, STAGGER, callbacks=True))
        done()
        done = section("4 tool-call overhead")
        with simulator_process(RUNNING_JOB_SECONDS) as running, open(os.devnull, "w") as errlog:
            calls = anyio.run(overhead, running, call_count, errlog)
        done()
        done = section("5 blend RSS")
        rss = blend_rss(base)
        done()
    sent: dict[str, Any] = json.loads(sent_log.read_text()) if sent_log.exists() else {}
    shutil.rmtree(scratch, ignore_errors=True)
    done = section("3 cold start")
    cold = cold_start(cold_runs)
    done()

    table, notes = build_table(runs, latency, pushed, sent, cold, calls, rss)
    print(table)
    for note in notes:
        print(f"\n{note}")
    if not args.no_write:
        write_doc(table, notes, quick=args.quick)
        print(f"\nwritten to {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


KEPT_SECTIONS = ("hosting",)
"""Sections of docs/benchmarks.md that another script writes (benchmarks/hosting.py --write): a run
of this one keeps what the doc has between their markers, not the template's older copy."""


def keep_sections(old: str, new: str) -> str:
    """`new` (the filled template) with each kept section as `old` (the doc so far) has it."""
    for name in KEPT_SECTIONS:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in old or end not in old:
            continue
        kept = old[old.index(start) : old.index(end) + len(end)]
        if start in new and end in new:
            new = new[: new.index(start)] + kept + new[new.index(end) + len(end) :]
        else:
            new = new.rstrip("\n") + "\n" + kept + "\n"
    return new


def write_doc(table: str, notes: list[str], *, quick: bool) -> None:
    template = (Path(__file__).resolve().parent / "benchmarks_template.md").read_text()
    machine = (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()} "
        f"({platform.python_implementation()})"
    )
    text = template.format(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine,
        command=".venv/bin/python benchmarks/bench.py" + (" --quick" if quick else ""),
        table=table,
        notes="\n".join(f"- {n}" for n in notes) or "- (none)",
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(keep_sections(DOC.read_text() if DOC.exists() else "", text))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "_sim":
        serve_simulator(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] if len(sys.argv) >= 5 else None)
    elif len(sys.argv) >= 2 and sys.argv[1] == "_blend":
        import anyio

        images = sorted(str(p) for p in Path(sys.argv[3]).glob("*.png"))
        anyio.run(blend_child, sys.argv[2], sys.argv[3], images)
    else:
        raise SystemExit(main())
