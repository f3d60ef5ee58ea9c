"""Shared fixtures: a simulated upstream on a shared fake clock, the real client, the real server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from mj_mcp.client import MjClient
from mj_mcp.config import Settings, load_settings
from mj_mcp.server import App, create_server
from mj_mcp.simulator import Quirks, Simulator

SIM_URL = "http://sim.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_mj_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own MJ_* variables must not leak into tests.
    for name in list(os.environ):
        if name.startswith("MJ_"):
            monkeypatch.delenv(name)


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def quirks() -> Quirks:
    return Quirks()


@pytest.fixture
def sim(clock: FakeClock, quirks: Quirks) -> Simulator:
    return Simulator(clock=clock, quirks=quirks, seed=7)


@pytest.fixture
async def mj(sim: Simulator, clock: FakeClock) -> AsyncIterator[MjClient]:
    async with MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as client:
        yield client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "in").mkdir()
    return load_settings(
        simulator=True,
        output_dir=str(tmp_path / "out"),
        allowed_dirs=[tmp_path / "in"],
        poll_interval=2.0,
        wait_timeout=600.0,
    )


ServerFactory = Callable[..., MCPServer[App]]


@pytest.fixture
def make_server(settings: Settings, mj: MjClient, clock: FakeClock) -> ServerFactory:
    def make(**overrides: Any) -> MCPServer[App]:
        s = settings.model_copy(update=overrides) if overrides else settings
        return create_server(s, mj, clock=clock)

    return make


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(make_server: ServerFactory, mode: str) -> AsyncIterator[Client]:
    async with Client(make_server(), mode=mode) as c:  # type: ignore[arg-type]
        yield c
