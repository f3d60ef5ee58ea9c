"""Three instances behind haproxy, sharing a real Redis, act as one (MJ_REDIS_URL).

Each test starts redis-server, the logged simulator, three `mj-mcp --transport streamable-http`
processes (stateless, client keys) and haproxy in front of them (tests/cluster.py), and checks one
promise of "Hosting" in the contract: a callback reaches its waiter whichever instance the balancer
hands it to; each watched task is polled by one instance per tick however many wait on it;
MJ_MAX_JOBS holds across the instances (per tenant); killing one instance loses no other's call.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.cluster import cluster
from tests.helpers import text

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = "sk-hosted-tenant-0123456789"
OTHER_KEY = "sk-hosted-other-9876543210"
LIST_PATH = "/mj/task/list-by-condition"


@asynccontextmanager
async def connect(base: str, key: str = KEY) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def submit(base: str, prompt: str, key: str = KEY) -> str:
    async with connect(base, key) as client:
        return str(structured(await client.call_tool("imagine", {"prompt": prompt, "wait": False}))["id"])


async def submit_many(base: str, prompts: list[str]) -> list[str]:
    ids: dict[int, str] = {}

    async def one(index: int) -> None:
        ids[index] = await submit(base, prompts[index])

    async with anyio.create_task_group() as tg:
        for index in range(len(prompts)):
            tg.start_soon(one, index)
    return [ids[index] for index in range(len(prompts))]


class Heard:
    """Progress notifications of one waiting call: (wall time, percent)."""

    def __init__(self) -> None:
        self.progress: list[tuple[float, float]] = []
        self.done_at = 0.0

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((time.time(), progress))


async def wait_on(base: str, task_id: str, heard: Heard, key: str = KEY) -> dict[str, Any]:
    async with connect(base, key) as client:
        result = await client.call_tool(
            "get_task", {"taskId": task_id, "wait": True, "timeout": 60}, progress_callback=heard
        )
    heard.done_at = time.time()
    return structured(result)


async def test_every_callback_reaches_its_waiters_whichever_instance_takes_it(tmp_path: Path) -> None:
    # A watch that a callback reached is not polled again for 30 s (the safety net); one that no
    # callback reached is polled every 0.5 s, by whichever instance takes over its lease (2 s). So
    # once a callback came after all three waits had begun, the task is read no more (the job runs
    # 10 s) only if that callback reached all three instances, whichever one haproxy gave it to.
    with cluster(tmp_path, job_seconds=10.0) as hosts:
        ids = await submit_many(hosts.balancer, [f"a fox {n}" for n in range(4)])
        heard: dict[tuple[str, int], Heard] = {(t, i): Heard() for t in ids for i in range(3)}
        results: list[dict[str, Any]] = []

        async def wait(index: int, task_id: str) -> None:
            results.append(await wait_on(hosts.instances[index], task_id, heard[task_id, index]))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for task_id, index in heard:
                    tg.start_soon(wait, index, task_id)
        log = hosts.sim_log()
    assert [r["status"] for r in results] == ["SUCCESS"] * 12
    for task_id in ids:
        begun = max(heard[task_id, index].progress[0][0] for index in range(3))
        pushed = min(at for at, named, status, _ in log["callbacks"] if named == task_id and at > begun)
        finished = max(at for at, named, _, _ in log["callbacks"] if named == task_id)
        assert finished - pushed > 3.0  # room for the polls that a lost callback would bring
        read = [at for at, path, named in log["reads"] if path == LIST_PATH and task_id in named]
        # 1 s for a poll already under way when the callback came.
        assert not [at - pushed for at in read if at > pushed + 1.0], task_id


async def test_each_watched_task_is_polled_by_one_instance_per_tick(tmp_path: Path) -> None:
    with cluster(tmp_path, job_seconds=6.0, env={"MJ_PUBLIC_URL": ""}) as hosts:
        ids = await submit_many(hosts.balancer, [f"a hare {n}" for n in range(4)])
        results: list[dict[str, Any]] = []

        async def wait(base: str, task_id: str) -> None:
            results.append(await wait_on(base, task_id, Heard()))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for task_id in ids:
                    for base in hosts.instances:
                        tg.start_soon(wait, base, task_id)
        log = hosts.sim_log()
    assert [r["status"] for r in results] == ["SUCCESS"] * 12
    polled: dict[str, list[float]] = defaultdict(list)
    for at, path, named in log["reads"]:
        if path == LIST_PATH:
            for task_id in named:
                polled[task_id].append(at)
    for task_id in ids:
        times = sorted(polled[task_id])
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # One poller: a tick every 0.5 s (a newly watched id may come 0.25 s after the last
        # tick). Three pollers would read it three times a tick, often within milliseconds.
        assert times and min(gaps, default=1.0) >= 0.15, (task_id, gaps)
        assert len(times) <= (times[-1] - times[0]) / 0.25 + 2, (task_id, len(times))


async def test_max_jobs_holds_across_instances_per_tenant(tmp_path: Path) -> None:
    with cluster(tmp_path, env={"MJ_MAX_JOBS": "2"}) as hosts:
        outcomes: list[bool] = []
        for n in range(5):
            async with connect(hosts.instances[n % 3]) as client:
                result = await client.call_tool("imagine", {"prompt": f"a cat {n}", "wait": False})
            outcomes.append(not result.is_error)
            if result.is_error:
                assert "MJ_MAX_JOBS" in text(result)
        other = await submit(hosts.instances[2], "another tenant's cat", key=OTHER_KEY)
    assert outcomes == [True, True, False, False, False]
    assert other


async def test_killing_one_instance_loses_no_other_instances_call(tmp_path: Path) -> None:
    with cluster(tmp_path, job_seconds=6.0) as hosts:
        ids = await submit_many(hosts.balancer, [f"an owl {n}" for n in range(3)])
        ears = [Heard() for _ in ids]
        results: dict[int, dict[str, Any] | BaseException] = {}

        async def wait(index: int) -> None:
            try:
                results[index] = await wait_on(hosts.instances[index], ids[index], ears[index])
            except Exception as exc:  # the killed instance's call
                results[index] = exc

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for index in range(3):
                    tg.start_soon(wait, index)
                while not all(ear.progress for ear in ears):  # noqa: ASYNC110 - another process moves them
                    await anyio.sleep(0.05)
                hosts.kill(0)
            assert isinstance(results[0], BaseException)
            # Its client goes on through the balancer, which no longer sends anyone to instance 0.
            again = await wait_on(hosts.balancer, ids[0], Heard())
    assert [results[1]["status"], results[2]["status"]] == ["SUCCESS", "SUCCESS"]  # type: ignore[index]
    assert again["status"] == "SUCCESS"
