"""Several server instances as one: a real redis-server, haproxy and `mj-mcp` processes on loopback.

`cluster(tmp_path, ...)` starts, each as a process of its own: `redis-server` (no persistence), the
logged simulator (tests/logged_sim.py, the upstream), N instances of `mj-mcp --transport
streamable-http` (stateless, client keys, MJ_REDIS_URL) and `haproxy` in front of them
(round-robin, health checks on /health). MJ_PUBLIC_URL is the balancer, so the simulator's
callbacks reach any instance. Used by tests/test_redis_hosting.py and benchmarks/hosting.py.

`require_services()` skips when redis-server or haproxy is not installed, and fails instead when
MJ_REQUIRE_SERVICES=1 (as .ci/run sets it, after installing them).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers import copy_lines, free_port

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 30.0
LISTENING = re.compile(r"Uvicorn running on https?://\S+:(\d+)")
SERVICES = ("redis-server", "haproxy")


def require_services(*names: str) -> None:
    missing = [name for name in names or SERVICES if shutil.which(name) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (apt-get install -y redis-server haproxy)"
    if os.environ.get("MJ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"MJ_REQUIRE_SERVICES=1, but {reason}")
    pytest.skip(reason)


@dataclass(eq=False)
class Proc:
    """A child process whose output goes to a log file."""

    popen: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str | None] = field(default_factory=lambda: queue.Queue[str | None]())

    def wait_for(self, pattern: re.Pattern[str], seconds: float = START_SECONDS) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.log.name}: not ready in {seconds} s:\n{self.text()[-2000:]}") from None
            if line is None:
                raise AssertionError(f"{self.log.name}: ended before it was ready:\n{self.text()[-2000:]}")
            if found := pattern.search(line):
                return found

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung child
                self.popen.kill()
                self.popen.wait(timeout=10)


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Proc]:
    popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    assert popen.stdout is not None
    out = log.open("w")
    proc = Proc(popen, log)
    copier = threading.Thread(target=copy_lines, args=(popen.stdout, out, proc.lines), daemon=True)
    copier.start()
    try:
        yield proc
    finally:
        proc.stop()
        copier.join(timeout=10)
        popen.stdout.close()
        out.close()


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence); yields its URL."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with process([*args, "--dir", str(tmp)], tmp / "redis.log") as proc:
        proc.wait_for(re.compile(r"Ready to accept connections"))
        yield f"redis://127.0.0.1:{port}/0"


def child_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env.update(MJ_OUTPUT_DIR="off", MJ_LOG_LEVEL="INFO", **extra)
    return env


@dataclass(eq=False)
class Cluster:
    redis_url: str
    sim_base: str
    balancer: str
    instances: list[str]
    procs: list[Proc]

    def kill(self, index: int) -> None:
        """End instance `index` at once (SIGKILL: nothing of it is left to clean up)."""
        self.procs[index].stop(signal.SIGKILL)

    def sim_log(self) -> dict[str, Any]:
        return httpx2.get(f"{self.sim_base}/_log", timeout=10).json()


HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    retries 3
    option redispatch
    # Without it haproxy may hold a small chunk up to 200 ms for more to send with it: each
    # progress notification of a waiting call is one such chunk.
    option http-no-delay
frontend mcp
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /health
    timeout check 2s  # a busy instance answers /health late, and is not dead for it
    default-server inter 300ms fall 2 rise 1
{servers}
"""


@contextmanager
def cluster(
    tmp: Path, *, instances: int = 3, job_seconds: float = 2.0, env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """Redis, the logged simulator, `instances` mj-mcp processes and haproxy (see the module docstring)."""
    require_services()
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp))
        sim = stack.enter_context(
            process(
                [sys.executable, "tests/logged_sim.py", "--port", "0", "--job-seconds", str(job_seconds), "--per-key"],
                tmp / "sim.log",
                child_env(tmp),
            )
        )
        sim_base = f"http://127.0.0.1:{sim.wait_for(LISTENING)[1]}"
        lb_port = free_port()
        balancer = f"http://127.0.0.1:{lb_port}"
        shared = {
            "MJ_TRANSPORT": "streamable-http",
            "MJ_PORT": "0",
            "MJ_BASE_URL": sim_base,
            "MJ_CLIENT_KEYS": "1",
            "MJ_STATELESS": "1",
            "MJ_REDIS_URL": redis_url,
            "MJ_PUBLIC_URL": balancer,
            "MJ_POLL_INTERVAL": "0.5",
            **(env or {}),
        }
        procs: list[Proc] = []
        ports: list[str] = []
        for index in range(instances):
            proc = stack.enter_context(
                process([sys.executable, "-m", "mj_mcp"], tmp / f"instance{index}.log", child_env(tmp, **shared))
            )
            procs.append(proc)
        for proc in procs:
            ports.append(proc.wait_for(LISTENING)[1])
        servers = "\n".join(f"    server i{i} 127.0.0.1:{port} check" for i, port in enumerate(ports))
        config = tmp / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=lb_port, servers=servers))
        stack.enter_context(process(["haproxy", "-db", "-f", str(config)], tmp / "haproxy.log"))
        _await_balancer(balancer, len(ports))
        yield Cluster(redis_url, sim_base, balancer, [f"http://127.0.0.1:{p}" for p in ports], procs)


def _await_balancer(base: str, instances: int) -> None:
    """Until the balancer answers /health from every instance (bounded)."""
    deadline = time.monotonic() + START_SECONDS
    answered = 0
    while answered < instances:
        try:
            answered += httpx2.get(f"{base}/health", timeout=2).status_code == 200
        except httpx2.HTTPError:
            answered = 0
        if time.monotonic() > deadline:
            raise AssertionError(f"the balancer at {base} did not answer in {START_SECONDS} s")
        time.sleep(0.05)
