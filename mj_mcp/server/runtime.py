"""What the tools and resources share while the server runs, and how it is opened and closed.

`Runtime.open(settings, ...)` opens what the server runs on: it makes the client (the real upstream or
the in-process simulator), the shared `TaskWatcher` and its poll loop, the image loader and saver,
the audit log, the callback listener when one is wanted, and the job service on top of them; and
it closes what it opened, in reverse. `Holder` opens one per process and lets every session reach it.

With MJ_CLIENT_KEYS the process opens `RuntimeLanes` instead (mj_mcp.server.tenants.Tenants): one
Runtime per tenant, made on first use, and `Holder.get()` answers with the calling tenant's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp.server.mcpserver.exceptions import ResourceError

from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.callbacks import serve as serve_callbacks
from mj_mcp.client import MjClient
from mj_mcp.clock import Clock, SystemClock
from mj_mcp.config import HEARTBEAT_SECONDS, Settings
from mj_mcp.jobs import Jobs
from mj_mcp.loading import ImageLoader
from mj_mcp.saving import ImageSaver
from mj_mcp.server.live import LiveTasks
from mj_mcp.upstreams import Upstream
from mj_mcp.waiting import TaskWatcher

if TYPE_CHECKING:
    from mj_mcp.redisstate import RedisHub
    from mj_mcp.server.tasks import StoreOpener

__all__ = [
    "CallbackWiring",
    "Holder",
    "Opened",
    "Runtime",
    "RuntimeLanes",
    "client_from_settings",
    "open_hub",
    "task_store_opener",
]


@dataclass(frozen=True, slots=True)
class CallbackWiring:
    """Where upstream callbacks arrive: a receiver, and whether this server must listen for it
    itself (stdio) or someone else serves it (the HTTP app mounts it)."""

    receiver: CallbackReceiver
    serve_own: bool

    @classmethod
    def choose(cls, settings: Settings, injected: CallbackReceiver | None) -> CallbackWiring | None:
        if injected is not None:
            return cls(injected, serve_own=False)
        if settings.public_url is not None and settings.transport == "stdio":
            return cls(CallbackReceiver(settings.public_url, redact=settings.key_forms()), serve_own=True)
        return None


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the tools share while the server runs (made by `open`)."""

    settings: Settings
    client: MjClient
    watcher: TaskWatcher
    jobs: Jobs

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
        callbacks: CallbackWiring | None = None,
    ) -> AsyncGenerator[Runtime]:
        """Open everything the server needs; injected parts are used as they are and not closed."""
        async with AsyncExitStack() as stack:
            mj = client or await stack.enter_async_context(client_from_settings(settings))
            loader = image_loader or await stack.enter_async_context(
                ImageLoader(settings.readable_dirs, settings.max_image_bytes)
            )
            hub = await stack.enter_async_context(open_hub(settings))
            tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tasks.cancel_scope.cancel)
            watcher = TaskWatcher(
                mj,
                interval=settings.poll_interval,
                heartbeat=HEARTBEAT_SECONDS,
                clock=clock,
                sharing=hub.polls("") if hub is not None else None,
            )
            tasks.start_soon(watcher.run)
            live.start(watcher, tasks, retry_delay=settings.poll_interval)
            stack.callback(live.stop)
            receiver = await _listen_for_callbacks(callbacks, settings, watcher, tasks)
            if receiver is not None:
                stack.callback(receiver.attach, None)
            if hub is not None:
                hub.serve_callbacks(receiver)
                hub.attach("", watcher, receiver)
            out = settings.output_dir
            jobs = Jobs(
                mj,
                watcher,
                loader,
                saver=ImageSaver(out) if out is not None else None,
                audit=AuditLog(out) if out is not None else None,
                max_jobs=settings.max_jobs,
                wait_timeout=settings.wait_timeout,
                callbacks=receiver,
                registry=hub.registry("") if hub is not None else None,
                counter=hub.counter("") if hub is not None else None,
            )
            yield cls(settings=settings, client=mj, watcher=watcher, jobs=jobs)


@asynccontextmanager
async def open_hub(settings: Settings) -> AsyncGenerator[RedisHub | None]:
    """With MJ_REDIS_URL, what this instance shares with the others (None without it)."""
    if settings.redis_url is None:
        yield None
        return
    from mj_mcp.redisstate import RedisHub  # only then: it needs the optional redis package

    async with RedisHub.open(settings) as hub:
        yield hub


def task_store_opener(settings: Settings, clock: Clock | None) -> StoreOpener | None:
    """With MJ_REDIS_URL, the MCP task records' store that all instances share (None: in memory)."""
    if settings.redis_url is None:
        return None
    from mj_mcp.redistasks import RedisTaskStore  # only then: it needs the optional redis package

    return RedisTaskStore.opener(settings, clock or SystemClock())


class RuntimeLanes(ABC):
    """Many Runtimes, one per tenant (MJ_CLIENT_KEYS); the caller's is found per request."""

    @abstractmethod
    def current_runtime(self) -> Runtime:
        """The calling tenant's Runtime (opened on first use); `GuardrailError` when there is none."""


Opened: TypeAlias = Runtime | RuntimeLanes
"""What a server process opens: one Runtime, or the tenants' lanes."""


async def _listen_for_callbacks(
    wiring: CallbackWiring | None, settings: Settings, watcher: TaskWatcher, tasks: TaskGroup
) -> CallbackReceiver | None:
    """The receiver, attached to the watcher, once callbacks can reach it (else None)."""
    if wiring is None:
        return None
    if wiring.serve_own and not await tasks.start(serve_callbacks, wiring.receiver, settings.host, settings.port):
        return None
    wiring.receiver.attach(watcher)
    return wiring.receiver


class Holder:
    """Lets tools and resources reach the running Runtime, and decides who opens it.

    Static resources get no Context (tools and template resources do), and one way in for all of
    them keeps them alike. One Runtime serves the whole process: whoever serves the server over
    HTTP opens it once (`for_process`), and every session's lifespan (`for_session`) attaches to
    it. The SDK runs that lifespan once per SSE connection, so opening there would give each
    connection its own client, watcher and simulator. Without a process-wide Runtime (stdio, an
    in-memory client) a session's lifespan opens one itself, for as long as the session lasts.
    """

    def __init__(self, open_runtime: Callable[[], AbstractAsyncContextManager[Opened]]) -> None:
        self._open = open_runtime
        self.runtime: Opened | None = None
        self._process_wide = False

    def get(self) -> Runtime:
        """The Runtime of this call: the process's, or with MJ_CLIENT_KEYS the calling tenant's."""
        opened = self.runtime
        if opened is None:
            raise ResourceError("The server is not running yet.")
        return opened.current_runtime() if isinstance(opened, RuntimeLanes) else opened

    def for_process(self) -> AbstractAsyncContextManager[Opened]:
        """Open the one Runtime that every session of this process shares."""
        if self.runtime is not None:
            raise RuntimeError("A Runtime is already open for this server.")
        return self._holding(process_wide=True)

    @asynccontextmanager
    async def for_session(self) -> AsyncGenerator[Opened]:
        """A session's lifespan: the process-wide Runtime when one is open, else one of its own."""
        if self._process_wide and self.runtime is not None:
            yield self.runtime  # not ours to close
            return
        async with self._holding(process_wide=False) as runtime:
            yield runtime

    @asynccontextmanager
    async def _holding(self, *, process_wide: bool) -> AsyncGenerator[Opened]:
        async with self._open() as runtime:
            self.runtime, self._process_wide = runtime, process_wide
            try:
                yield runtime
            finally:
                self.runtime, self._process_wide = None, False


class _LazySimulator(httpx2.AsyncBaseTransport):
    """The in-process simulator, made at its first request: `tools/list` does not wait for it."""

    def __init__(self, job_seconds: float, upstream: Upstream, *, per_key: bool) -> None:
        self._job_seconds = job_seconds
        self._upstream: Upstream = upstream
        self._per_key = per_key
        self._transport: httpx2.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._transport is None:
            from mj_mcp.simulator import Simulator

            simulator = Simulator(job_seconds=self._job_seconds, upstream=self._upstream, per_key=self._per_key)
            self._transport = simulator.transport()
        return await self._transport.handle_async_request(request)


def client_from_settings(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    api_key: str | None = None,
    connections: httpx2.AsyncClient | None = None,
) -> MjClient:
    """The upstream client the settings describe (`transport` replaces the network, for tests).

    `api_key` is a tenant's key (MJ_CLIENT_KEYS), sent instead of MJ_API_KEY, on the `connections`
    of the process's client. The simulator then keeps each key's tasks apart, as upstreams do.
    """
    if settings.simulator:
        return MjClient(
            "http://simulator.mj-mcp.invalid",
            api_key,
            profile=settings.profile,
            transport=_LazySimulator(settings.sim_job_seconds, settings.upstream, per_key=settings.client_keys),
            timeout=settings.http_timeout,
            connections=connections,
        )
    assert settings.base_url is not None
    return MjClient(
        settings.base_url,
        api_key or (settings.api_key.get_secret_value() if settings.api_key else None),
        transport=transport,
        connections=connections,
        profile=settings.profile,
        auth_header=settings.auth_header,
        mode=settings.mode,
        mode_prefix=settings.mode_prefix,
        account_filter=settings.account_filter,
        timeout=settings.http_timeout,
    )
