"""Shared fixtures: a simulated upstream on a shared fake clock, the real client, the real server.

Plain helpers (no fixtures) are in tests/helpers.py. The project's modules (and `mcp`) are
imported inside the fixtures: xdist's controller process loads this file too, under coverage,
and never runs a test; importing them here cost it seconds before any worker started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    from mj_mcp.client import MjClient
    from mj_mcp.config import Settings
    from mj_mcp.server import Runtime
    from mj_mcp.simulator import Quirks, Simulator
    from tests.helpers import FakeClock

# pytest caches the assertion-rewritten code of the test modules, and of the packages of pytest
# plugins (all of hypothesis), only where bytecode may be written. Under PYTHONDONTWRITEBYTECODE,
# which this machine sets, every process rewrote them all again: seconds of CPU per xdist worker.
# So this comes before hypothesis is first imported (in `pytest_configure`). The caches land in
# __pycache__ folders (git-ignored) and are still checked against each source file.
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings

    # The same examples on every run: a failure reproduces, and a run's time does not depend on luck.
    # HYPOTHESIS_PROFILE=explore draws new examples (and keeps found failures in .hypothesis/).
    hypothesis_settings.register_profile(
        "ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    hypothesis_settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _output_schemas_compiled_once_per_process() -> Iterator[None]:
    """The MCP client compiles a tool's outputSchema (checking it against the JSON Schema metaschema)
    once per session; the suite opens about 1,500 sessions on the same twenty schemas, and those
    compiles were a sixth of its CPU. Here each distinct schema is compiled once per worker and
    shared: a compiled validator is immutable, and every result is still checked against it."""
    from mcp.client.session import ClientSession

    original = ClientSession._output_schema_validator  # pyright: ignore[reportPrivateUsage]
    compiled: dict[str, Any] = {}

    def shared(self: ClientSession, name: str, output_schema: dict[str, Any]) -> Any:
        key = json.dumps(output_schema, sort_keys=True)
        if key not in compiled:
            compiled[key] = original(self, name, output_schema)
        return compiled[key]

    with pytest.MonkeyPatch.context() as patch:
        # raising=True (the default): a renamed SDK method fails every test here, loudly.
        patch.setattr(ClientSession, "_output_schema_validator", shared)
        yield


@pytest.fixture(autouse=True)
def _subprocesses_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process (each costs a second or more of start-up) is marked `slow`, so
    the README's quick command leaves it out and `pytest -m slow` runs it: this keeps that true."""
    if request.node.get_closest_marker("slow") is not None:
        return
    test = request.node.nodeid

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{test} starts a subprocess: mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _clear_mj_environment(patch: pytest.MonkeyPatch) -> None:
    # The developer's own MJ_* variables must not leak into tests.
    for name in list(os.environ):
        if name.startswith("MJ_"):
            patch.delenv(name)


@pytest.fixture(autouse=True)
def _no_mj_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_mj_environment(monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    from tests.helpers import FakeClock

    return FakeClock()


@pytest.fixture
def quirks() -> Quirks:
    from mj_mcp.simulator import Quirks

    return Quirks()


@pytest.fixture
def sim(clock: FakeClock, quirks: Quirks) -> Simulator:
    from mj_mcp.simulator import Simulator

    # A 3 s job (the simulator's default is 8 s) still passes through every status, with fewer
    # polls of the fake clock in between; a test about long jobs sets `sim.job_seconds` itself.
    return Simulator(clock=clock, quirks=quirks, seed=7, job_seconds=3.0)


@pytest.fixture
async def mj(sim: Simulator, clock: FakeClock) -> AsyncIterator[MjClient]:
    from mj_mcp.client import MjClient
    from tests.helpers import SIM_URL

    async with MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as client:
        yield client


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The tests' settings, read once per worker: `load_settings` reads the environment field by
    field (pydantic-settings), about 10 ms under coverage, and most tests need settings."""
    from mj_mcp.config import load_settings

    with pytest.MonkeyPatch.context() as patch:
        _clear_mj_environment(patch)
        return load_settings(simulator=True, output_dir="off", poll_interval=2.0, wait_timeout=600.0)


@pytest.fixture
def settings(tmp_path: Path, base_settings: Settings) -> Settings:
    (tmp_path / "in").mkdir()
    # Absolute paths are what the folder settings' validators make of them, so a copy is exact.
    return base_settings.model_copy(update={"output_dir": tmp_path / "out", "allowed_dirs": [tmp_path / "in"]})


ServerFactory = Callable[..., "MCPServer[Runtime]"]


@pytest.fixture
def make_server(settings: Settings, mj: MjClient, clock: FakeClock) -> ServerFactory:
    from mj_mcp.server import create_server

    def make(**overrides: Any) -> MCPServer[Runtime]:
        s = settings.model_copy(update=overrides) if overrides else settings
        return create_server(s, mj, clock=clock)

    return make


# Each in-memory session test runs on both protocol eras: "auto" negotiates the 2026 era, "legacy"
# speaks 2025-11-25, as most clients still do. The tools behave the same on both, so the quick tier
# runs each test once, on the 2026 wire, and the slow tier replays it on the 2025 wire (the tests of
# what differs between the eras, such as subscriptions and MCP Tasks, run both in the quick tier).
@pytest.fixture(params=["auto", pytest.param("legacy", marks=pytest.mark.slow)])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(make_server: ServerFactory, mode: str) -> AsyncIterator[Client]:
    from mcp import Client

    async with Client(make_server(), mode=mode) as c:  # type: ignore[arg-type]
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Slow tests (subprocesses, real sockets, load) first on every worker: each starts on its share
    # at once and fills the rest of its time with the many quick ones, instead of one worker ending
    # the run alone on a long test drawn last. xdist's worksteal hands each worker one contiguous
    # slice of this list (and steals from a slice's end), so each slice starts with its share.
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    quick = [item for item in items if item.get_closest_marker("slow") is None]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = [item for part in _slices(slow, quick, workers) for item in part]


def _slices(slow: list[pytest.Item], quick: list[pytest.Item], workers: int) -> list[list[pytest.Item]]:
    """`workers` slices of the sizes worksteal cuts, each its round-robin share of `slow` then quick ones."""
    slices: list[list[pytest.Item]] = []
    left = len(slow) + len(quick)
    for k in range(workers):
        size = left // (workers - k)
        left -= size
        share = slow[k::workers]
        take = max(0, size - len(share))
        slices.append(share + quick[:take])
        del quick[:take]
    slices[-1] += quick  # nothing left unless slow tests outnumber a slice
    return slices
