"""One Runtime per tenant (MJ_CLIENT_KEYS): each client's key gets a client, watcher and job service of its own.

`Tenants.open(settings, ...)` opens what all tenants share: the connection pool to the upstream
(one `MjClient` without a key, whose connections every tenant's client uses), the image loader,
the task group, the callback route. A tenant's own part (a "lane": a Runtime) is made the first
time a request of that tenant asks for it (`current_runtime`):

- an `MjClient` with the tenant's key, on the shared connections;
- a `TaskWatcher` of its own: its batched polls carry this key and this tenant's ids only;
- a callback receiver of its own (`CallbackReceiver.lane`: a path keyed to the tenant);
- a `Jobs` of its own: the repeated-job registry, the MJ_MAX_JOBS count, and an audit log whose
  lines name the tenant; saved images go to `<MJ_OUTPUT_DIR>/<tenant id>/`.

So no tenant reaches another's tasks through the server: every read, wait, button press, cancel
and subscription goes to the upstream with the caller's own key, which knows only its own tasks,
and nothing the server remembers is shared between lanes.

The lanes are bounded (`max_tenants`): a new tenant beyond the cap lets the least recently used
idle lane go (nothing waited on or followed, unused for `IDLE_BEFORE_EVICTION` seconds), and is
refused when none is idle. A let-go tenant's job count is kept (bounded too), so that eviction
never resets MJ_MAX_JOBS.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
from anyio.abc import TaskGroup
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_REQUEST

from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.clock import Clock, SystemClock
from mj_mcp.config import HEARTBEAT_SECONDS, Settings
from mj_mcp.errors import GuardrailError
from mj_mcp.jobs import JOIN_WINDOW, Jobs
from mj_mcp.loading import ImageLoader
from mj_mcp.replies import secret_forms
from mj_mcp.saving import ImageSaver
from mj_mcp.server.live import LiveTasks
from mj_mcp.server.runtime import Runtime, RuntimeLanes, client_from_settings, open_hub
from mj_mcp.tenancy import Tenant, current_tenant
from mj_mcp.waiting import TaskWatcher

if TYPE_CHECKING:
    from mj_mcp.redisstate import RedisHub

__all__ = ["IDLE_BEFORE_EVICTION", "MAX_TENANTS", "Tenants"]

logger = logging.getLogger(__name__)

MAX_TENANTS: Final = 1000
"""Most tenants with a lane at once (a client, a watcher and a job service each, a few KB)."""
IDLE_BEFORE_EVICTION: Final = JOIN_WINDOW
"""Seconds a lane must have been unused before it may be let go: as long as a repeated call may
still join its job, so that letting go never makes anyone pay twice."""
REMEMBERED_COUNTS: Final = 100_000
"""Job counts of let-go tenants kept for MJ_MAX_JOBS (oldest forgotten first; ~10 MB at most)."""


@dataclass(eq=False)
class _Lane:
    runtime: Runtime
    scope: anyio.CancelScope
    receiver: CallbackReceiver | None
    used_at: float


class Tenants(RuntimeLanes):
    """The tenants' Runtimes, made on first use and let go when idle (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        root: MjClient,
        loader: ImageLoader,
        tasks: TaskGroup,
        live: LiveTasks,
        receiver: CallbackReceiver | None,
        clock: Clock | None = None,
        max_tenants: int = MAX_TENANTS,
        hub: RedisHub | None = None,
    ) -> None:
        self._settings = settings
        self._hub = hub
        """With MJ_REDIS_URL: what the lanes share with the other instances."""
        self._root = root
        self._loader = loader
        self._tasks = tasks
        self._live = live
        self._receiver = receiver
        self._clock: Clock = clock or SystemClock()
        self._max = max_tenants
        self._lanes: OrderedDict[str, _Lane] = OrderedDict()
        self._counts: OrderedDict[str, int] = OrderedDict()
        """Jobs started by tenants whose lane was let go."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        live: LiveTasks,
        client: MjClient | None = None,
        clock: Clock | None = None,
        image_loader: ImageLoader | None = None,
        callbacks: CallbackReceiver | None = None,
        max_tenants: int = MAX_TENANTS,
    ) -> AsyncGenerator[Tenants]:
        """Open what the tenants share; injected parts are used as they are and not closed.

        An injected `client` lends its connections (and so its transport) to every tenant's client.
        """
        async with AsyncExitStack() as stack:
            root = client or await stack.enter_async_context(client_from_settings(settings))
            loader = image_loader or await stack.enter_async_context(
                ImageLoader(settings.readable_dirs, settings.max_image_bytes)
            )
            hub = await stack.enter_async_context(open_hub(settings))
            if hub is not None:
                hub.serve_callbacks(callbacks)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tasks.cancel_scope.cancel)
            tenants = cls(
                settings,
                root=root,
                loader=loader,
                tasks=tasks,
                live=live,
                receiver=callbacks,
                clock=clock,
                max_tenants=max_tenants,
                hub=hub,
            )
            live.start(tenants, tasks, retry_delay=settings.poll_interval)
            stack.callback(live.stop)
            stack.callback(tenants.close)
            yield tenants

    # -- RuntimeLanes and live.Lanes -----------------------------------------------------------

    def current_runtime(self) -> Runtime:
        return self._lane(_caller()).runtime

    def current(self) -> str:
        """The calling tenant's lane id (for subscriptions), its lane opened; `MCPError` without one."""
        try:
            tenant = _caller()
            self._lane(tenant)
        except GuardrailError as exc:
            raise MCPError(INVALID_REQUEST, str(exc)) from None
        return tenant.id

    def watcher(self, lane: str) -> TaskWatcher:
        found = self._lanes.get(lane)
        if found is None:
            raise MCPError(INVALID_REQUEST, "That client's session is over.")
        return found.runtime.watcher

    # -- the lanes -----------------------------------------------------------------------------

    @property
    def held(self) -> list[str]:
        """The ids of the tenants with a lane now, least recently used first."""
        return list(self._lanes)

    def started(self, tenant_id: str) -> int:
        """How many jobs the tenant has started (for MJ_MAX_JOBS)."""
        lane = self._lanes.get(tenant_id)
        return lane.runtime.jobs.started if lane is not None else self._counts.get(tenant_id, 0)

    def _lane(self, tenant: Tenant) -> _Lane:
        now = self._clock.now()
        lane = self._lanes.get(tenant.id)
        if lane is None:
            self._make_room(now)
            lane = self._lanes[tenant.id] = self._open_lane(tenant, now)
        lane.used_at = now
        self._lanes.move_to_end(tenant.id)
        return lane

    def _make_room(self, now: float) -> None:
        if len(self._lanes) < self._max:
            return
        for tenant_id, lane in self._lanes.items():
            if self._idle(tenant_id, lane, now):
                self._let_go(tenant_id)
                return
        logger.warning("Refused a new client: %d clients are busy, the most this server serves.", self._max)
        raise GuardrailError(
            f"This server is serving as many clients as it may ({self._max}), and all of them are busy.",
            hint="Try again in a few minutes.",
        )

    def _idle(self, tenant_id: str, lane: _Lane, now: float) -> bool:
        return (
            not lane.runtime.watcher.watched
            and not self._live.follows_in(tenant_id)
            and now - lane.used_at >= IDLE_BEFORE_EVICTION
        )

    def _open_lane(self, tenant: Tenant, now: float) -> _Lane:
        settings = self._settings
        client = client_from_settings(settings, api_key=tenant.key, connections=self._root.connections)
        hub = self._hub
        watcher = TaskWatcher(
            client,
            interval=settings.poll_interval,
            heartbeat=HEARTBEAT_SECONDS,
            clock=self._clock,
            sharing=hub.polls(tenant.id) if hub is not None else None,
        )
        scope = anyio.CancelScope()
        self._tasks.start_soon(_run_in, scope, watcher)
        receiver = None
        if self._receiver is not None:
            receiver = self._receiver.lane(tenant.id, redact=secret_forms(tenant.key))
            receiver.attach(watcher)
        out = settings.output_dir
        jobs = Jobs(
            client,
            watcher,
            self._loader,
            saver=ImageSaver(out / tenant.id) if out is not None else None,
            audit=AuditLog(out, tenant=tenant.id) if out is not None else None,
            max_jobs=settings.max_jobs,
            wait_timeout=settings.wait_timeout,
            callbacks=receiver,
            registry=hub.registry(tenant.id) if hub is not None else None,
            counter=hub.counter(tenant.id) if hub is not None else None,
        )
        if hub is not None:
            hub.attach(tenant.id, watcher, receiver)
        jobs.started = self._counts.pop(tenant.id, 0)
        logger.info("Opened the lane of tenant %s", tenant.id)
        return _Lane(Runtime(settings=settings, client=client, watcher=watcher, jobs=jobs), scope, receiver, now)

    def _let_go(self, tenant_id: str) -> None:
        lane = self._lanes.pop(tenant_id)
        lane.scope.cancel()
        if self._hub is not None:
            self._hub.detach(tenant_id)
        if self._receiver is not None and lane.receiver is not None:
            self._receiver.drop_lane(lane.receiver)
        if lane.runtime.jobs.started:
            self._counts[tenant_id] = lane.runtime.jobs.started
            while len(self._counts) > REMEMBERED_COUNTS:
                self._counts.popitem(last=False)
        logger.info("Let go of the idle lane of tenant %s", tenant_id)

    def close(self) -> None:
        """Stop every lane (the process is shutting down)."""
        for tenant_id in list(self._lanes):
            self._let_go(tenant_id)


def _caller() -> Tenant:
    tenant = current_tenant()
    if tenant is None:
        # The HTTP app binds a tenant to every request; a call without one has no key to spend.
        raise GuardrailError(
            "This server uses each client's own upstream key, and this request carried none.",
            hint="Connect with 'Authorization: Bearer <your upstream key>' (or 'X-Mj-Api-Key: <key>').",
        )
    return tenant


async def _run_in(scope: anyio.CancelScope, watcher: TaskWatcher) -> None:
    """A lane's poll loop, until its lane is let go (or the server stops)."""
    with scope:
        await watcher.run()
