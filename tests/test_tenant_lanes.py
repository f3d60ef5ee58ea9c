"""The pieces of multi-tenancy in process: the lanes registry, the callback lanes, the per-key simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.lowlevel
import httpx2
import pytest
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError

from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.config import load_settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import GuardrailError
from mj_mcp.loading import ImageLoader
from mj_mcp.models import ImagineRequest
from mj_mcp.server.live import LiveTasks
from mj_mcp.server.tenants import IDLE_BEFORE_EVICTION, Tenants
from mj_mcp.simulator import Simulator
from mj_mcp.tenancy import TenantHasher, serving_tenant
from tests.helpers import PUBLIC, SIM_URL, FakeClock

pytestmark = pytest.mark.anyio

HASHER = TenantHasher()
A, B, C = (HASHER.tenant_of(k) for k in ("key-a", "key-b", "key-c"))


@pytest.fixture
async def tenants(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Tenants, CallbackReceiver, Simulator]]:
    sim = Simulator(clock=clock, per_key=True, seed=3)
    settings = load_settings(
        transport="streamable-http",
        base_url=SIM_URL,
        client_keys=True,
        output_dir=str(tmp_path / "out"),
        max_jobs=1,
        poll_interval=1.0,
    )
    receiver = CallbackReceiver(PUBLIC)
    async with (
        MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as root,
        ImageLoader([]) as loader,
        Tenants.open(
            settings,
            live=LiveTasks(InMemorySubscriptionBus()),
            client=root,
            clock=clock,
            image_loader=loader,
            callbacks=receiver,
            max_tenants=2,
        ) as lanes,
    ):
        yield lanes, receiver, sim


def runtime_of(lanes: Tenants, tenant: object) -> object:
    with serving_tenant(tenant):  # type: ignore[arg-type]
        return lanes.current_runtime()


async def test_each_tenant_gets_a_lane_of_its_own_and_keeps_it(
    tenants: tuple[Tenants, CallbackReceiver, Simulator],
) -> None:
    lanes, _, _ = tenants
    first = runtime_of(lanes, A)
    assert runtime_of(lanes, A) is first and runtime_of(lanes, B) is not first
    assert lanes.held == [A.id, B.id]


async def test_a_request_without_a_tenant_has_no_runtime(tenants: tuple[Tenants, CallbackReceiver, Simulator]) -> None:
    lanes, _, _ = tenants
    with pytest.raises(GuardrailError, match="carried none"):
        lanes.current_runtime()
    with pytest.raises(MCPError, match="carried none"):
        lanes.current()


async def test_beyond_the_cap_an_idle_lane_goes_and_a_busy_server_refuses(
    tenants: tuple[Tenants, CallbackReceiver, Simulator], clock: FakeClock
) -> None:
    lanes, _, _ = tenants
    runtime_of(lanes, A), runtime_of(lanes, B)
    with pytest.raises(GuardrailError, match="as many clients as it may"):
        runtime_of(lanes, C)  # both used just now
    clock.advance(IDLE_BEFORE_EVICTION)
    runtime_of(lanes, B)  # B is used again; A is the idle one
    runtime_of(lanes, C)
    assert lanes.held == [B.id, C.id]


async def test_a_let_go_tenant_keeps_its_job_count(
    tenants: tuple[Tenants, CallbackReceiver, Simulator], clock: FakeClock
) -> None:
    lanes, _, _ = tenants
    with serving_tenant(A):
        jobs = lanes.current_runtime().jobs
        await jobs.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="a cat"))
    runtime_of(lanes, B)
    clock.advance(IDLE_BEFORE_EVICTION)
    runtime_of(lanes, C)  # A goes
    assert A.id not in lanes.held and lanes.started(A.id) == 1
    clock.advance(IDLE_BEFORE_EVICTION)
    with serving_tenant(A), pytest.raises(GuardrailError, match="MJ_MAX_JOBS"):
        await lanes.current_runtime().jobs.submit(ENDPOINTS["imagine"], ImagineRequest(prompt="again"))


async def test_callback_lanes_have_their_own_paths_and_tasks(
    tenants: tuple[Tenants, CallbackReceiver, Simulator],
) -> None:
    _lanes, receiver, sim = tenants
    lane_a, lane_b = receiver.lane(A.id), receiver.lane(B.id)
    assert lane_a is receiver.lane(A.id) and len({lane_a.path, lane_b.path, receiver.path}) == 3
    assert A.id not in lane_a.path and B.id not in lane_b.path  # keyed, not the id itself
    lane_a.expect("42")
    body = json.dumps({"id": "42", "status": "SUCCESS"}).encode()
    assert lane_b.take(body) == (202, {"ok": True, "taken": False})
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=receiver), base_url=PUBLIC) as http:
        crossed = await http.post(lane_b.path, content=body)
        receiver.drop_lane(lane_b)
        gone = await http.post(lane_b.path, content=body)
    assert crossed.status_code == 202 and gone.status_code == 404
    assert sim.tasks == {}


async def test_the_audit_log_names_the_tenant(tmp_path: Path) -> None:
    await AuditLog(tmp_path, tenant=A.id).record("imagine", "1", prompt="p", mode=None)
    await AuditLog(tmp_path).record("imagine", "2", prompt="p", mode=None)
    first, second = (json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines())
    assert first["tenant"] == A.id and "tenant" not in second


async def test_the_per_key_simulator_keeps_each_keys_tasks_apart(clock: FakeClock) -> None:
    sim = Simulator(clock=clock, per_key=True)
    async with (
        httpx2.AsyncClient(transport=sim.transport(), base_url=SIM_URL, headers={"Authorization": "Bearer a"}) as a,
        httpx2.AsyncClient(transport=sim.transport(), base_url=SIM_URL, headers={"mj-api-secret": "b"}) as b,
        httpx2.AsyncClient(transport=sim.transport(), base_url=SIM_URL) as nobody,
    ):
        task_id = (await a.post("/mj/submit/imagine", json={"prompt": "a cat"})).json()["result"]
        assert (await a.get(f"/mj/task/{task_id}/fetch")).status_code == 200
        assert (await b.get(f"/mj/task/{task_id}/fetch")).status_code == 204
        assert (await b.post("/mj/task/list-by-condition", json={"ids": [task_id]})).json() == []
        assert (await b.get("/mj/task/list")).json() == []
        assert (await nobody.get("/mj/task/list")).status_code == 401
    assert sim.tasks[task_id].owner == "a"
    assert sim.store.list_log == [("b", [task_id])]


async def test_a_lanes_watcher_stops_when_it_is_let_go(
    tenants: tuple[Tenants, CallbackReceiver, Simulator], clock: FakeClock
) -> None:
    lanes, _, _ = tenants
    with serving_tenant(A):
        watcher = lanes.current_runtime().watcher
        assert lanes.watcher(lanes.current()) is watcher
    lanes.close()
    assert lanes.held == []
    with pytest.raises(MCPError, match="over"):
        lanes.watcher(A.id)
    await anyio.lowlevel.checkpoint()
