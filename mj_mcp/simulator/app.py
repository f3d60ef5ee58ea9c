"""`Simulator`: the ASGI app in front of the layers, as a network sees it.

A request passes, in order: the faults (a broken network or gateway), the request log, the
speed-mode prefix, the files served without auth (`/health`, `/sim/...`, new-api's image proxy
`/mj/image/{id}`), and then whichever server the client talks to: new-api in front of the
upstream when `Quirks.new_api` is on, else the upstream itself, played as its profile says
(`Simulator(upstream="plus" | "new-api" | "trueai" | "novicezk")`, see `profiles`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypedDict

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mj_mcp.clock import Clock
from mj_mcp.simulator.auth import Auth
from mj_mcp.simulator.clocks import WallClock
from mj_mcp.simulator.core import SimTask, TaskStore
from mj_mcp.simulator.faults import Fault, Faults
from mj_mcp.simulator.media import Media
from mj_mcp.simulator.newapi import NewApiGateway
from mj_mcp.simulator.profiles import PROFILE_BY_NAME, ChannelName, Prefix, PrefixStyle, Profile, ProfileName, new_api
from mj_mcp.simulator.quirks import Quirks
from mj_mcp.simulator.upstream import Upstream
from mj_mcp.simulator.views import upstream_view
from mj_mcp.simulator.wire import Answer

if TYPE_CHECKING:
    from mj_mcp.simulator.standalone import StandaloneApp

__all__ = ["Simulator", "SimulatorOptions"]

_MAX_BODY: Final = 64 * 1024 * 1024
_MODE_PREFIX: Final = re.compile(r"^/(mj-)?(fast|relax|turbo)(?=/mj/)")
_NA_IMAGE: Final = re.compile(r"/mj/image/([^/]+)")
_logger = logging.getLogger(__name__)


class SimulatorOptions(TypedDict, total=False):
    """Keyword options of `Simulator` (also accepted by `run_simulator`)."""

    clock: Clock
    api_key: str | None
    job_seconds: float
    quirks: Quirks | None
    seed: int | None
    upstream: ProfileName
    channel: ChannelName | None
    per_key: bool


class Simulator:
    """The fake upstream. `sim.app` is the ASGI app; `sim.transport()` plugs it into httpx2.

    `upstream` names the software it plays (`PROFILES`; default "plus", the permissive dialect
    it always played); for "new-api", `channel` names the proxy behind it ("plus" unless given;
    "trueai" or "novicezk": that proxy's routes, 404s and replies, relayed). Without `quirks`,
    the profile's preset dialect is used; given `quirks` are used as they are (the profile's
    routes, prefixes, views and replies still apply).
    `clock` gives the tasks' times (Unix seconds) and holds delayed faults back; by default the
    wall clock. `job_seconds`, `api_key` and the fields of `quirks` may be changed between requests.
    `per_key=True` keeps each key's tasks apart, as real upstreams do (see `auth`): every request
    must present a key, and sees only the tasks its key submitted (`store.list_log` records the
    key and ids of every list-by-condition request).
    Each task records the speed mode it was given (`SimTask.mode`) and the one it runs in
    (`SimTask.effective_mode`: that, else the account default `DEFAULT_MODE`).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        api_key: str | None = None,
        job_seconds: float = 8.0,
        quirks: Quirks | None = None,
        seed: int | None = None,
        upstream: ProfileName = "plus",
        channel: ChannelName | None = None,
        per_key: bool = False,
    ) -> None:
        self.profile: Profile = _profile(upstream, channel)
        clock = clock if clock is not None else WallClock()
        quirks = quirks if quirks is not None else Quirks(**self.profile.preset)
        self.store = TaskStore(clock=clock, job_seconds=job_seconds, quirks=quirks, seed=seed, profile=self.profile)
        self.media = Media(self.store)
        self.faults = Faults()
        self._auth = Auth(api_key=api_key, quirks=quirks, clock=clock, per_key=per_key)
        self.upstream = Upstream(self.store, self.media, self._auth)
        self.gateway = NewApiGateway(self.upstream, self.store, self.media)
        self.request_log: list[tuple[str, str]] = []
        """(method, path as received) of every request, mode prefix included."""
        self.mode_log: list[str | None] = []
        """The speed mode of every request in `request_log` (FAST/RELAX/TURBO or None)."""
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])],
            max_body_size=_MAX_BODY,
        )

    # -- state shared by the layers ------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.store.clock

    @property
    def quirks(self) -> Quirks:
        return self.store.quirks

    @property
    def tasks(self) -> dict[str, SimTask]:
        return self.store.tasks

    @property
    def job_seconds(self) -> float:
        return self.store.job_seconds

    @job_seconds.setter
    def job_seconds(self, value: float) -> None:
        self.store.job_seconds = value

    @property
    def api_key(self) -> str | None:
        return self._auth.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._auth.api_key = value

    # -- public helpers -----------------------------------------------------------------------

    def transport(self) -> httpx2.ASGITransport:
        """An httpx2 transport that calls the app in-process."""
        return httpx2.ASGITransport(app=self.app)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each replaces the reply of the next `times` matching requests."""
        self.faults.inject(*faults)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return self.faults.pending

    def snapshot(self, task_id: str) -> dict[str, Any]:
        """The task as `fetch` would return it now (KeyError if unknown)."""
        task = self.store.tasks[task_id]
        if self.quirks.new_api:
            return self.gateway.view(task)
        return self.upstream.reads.view(task)

    # -- callbacks ----------------------------------------------------------------------------

    def due_callbacks(self) -> list[tuple[str, bytes]]:
        """(notifyHook, Task JSON body) for each task whose status or progress moved since its last one.

        As the real upstreams do: one callback per change, none while NOT_START or MODAL, and
        the body is the task as `fetch` shows it.
        """
        due: list[tuple[str, bytes]] = []
        for task in self.store.tasks.values():
            if not task.notify_hook:
                continue
            snap = self.store.snapshot(task)
            if snap.status in ("NOT_START", "MODAL"):
                continue
            key = f"{snap.status}:{snap.progress}"
            if key == task.notified:
                continue
            task.notified = key
            # Sent by the upstream itself, not through a gateway in front: its own Task JSON.
            body = upstream_view(task, snap, self.profile, official_cdn=self.store.quirks.official_cdn)
            due.append((task.notify_hook, json.dumps(body, ensure_ascii=False).encode()))
        return due

    async def send_callbacks(self, post: Callable[[str, bytes], Awaitable[object]]) -> int:
        """Send every due callback with `post(url, body)`; a failed one is dropped (no retries upstream either)."""
        sent = 0
        for url, body in self.due_callbacks():
            try:
                await post(url, body)
            except Exception as exc:  # the receiver's problem; real upstreams only log it
                _logger.info("Callback to %s failed: %s", url.split("/mj-callback/")[0], type(exc).__name__)
                continue
            sent += 1
        return sent

    def standalone_app(self) -> StandaloneApp:
        """`app`, plus sending callbacks in the background while an HTTP server runs it."""
        # Imported here: the standalone module builds on this one (`run_simulator` makes a Simulator).
        from mj_mcp.simulator.standalone import StandaloneApp

        return StandaloneApp(self)

    # -- the request path ---------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        fault = self.faults.take(method, path)
        if fault is not None:
            if fault.delay > 0:
                await self.clock.sleep(fault.delay)
            if fault.kind == "connect_error":
                raise httpx2.ConnectError("connection refused (simulated fault)")
        self.request_log.append((method, path))
        found = _MODE_PREFIX.match(path)
        prefix = _prefix(found.group(1), found.group(2), found.group(0)) if found else None
        self.mode_log.append(prefix.mode if prefix else None)
        inner = path[found.end() :] if found else path
        if fault is not None and fault.kind == "slow":
            fault = None  # the normal reply, only late
        if fault is not None and not fault.process_request:
            return fault.response()
        try:
            response = await self._route(request, inner, prefix)
        except Answer as answer:
            response = answer.response
        return fault.response() if fault is not None else response

    async def _route(self, request: Request, path: str, prefix: Prefix | None) -> Response:
        if prefix is None and request.method == "GET":
            if path == "/health":
                return JSONResponse({"status": "ok"})
            if path.startswith("/sim/"):
                return await self.media.serve(path)
            na_image = _NA_IMAGE.fullmatch(path)
            if na_image:
                return await self.gateway.serve_image(na_image.group(1), copied=self.quirks.new_api)
        if not path.startswith("/mj/"):
            return Response(status_code=404)
        owner = self._auth.presented(request.headers) if self._auth.per_key else None
        with self.store.serving(owner):
            if self.quirks.new_api:
                return await self.gateway.handle(request, path, prefix)
            return await self.upstream.handle(request, path, prefix)


def _profile(upstream: ProfileName, channel: ChannelName | None) -> Profile:
    if upstream not in PROFILE_BY_NAME:
        raise ValueError(f"unknown upstream {upstream!r}; one of {', '.join(PROFILE_BY_NAME)}")
    if channel is None:
        return PROFILE_BY_NAME[upstream]
    if PROFILE_BY_NAME[upstream].channel is None:
        raise ValueError(f"only new-api has a channel behind it, not {upstream!r}")
    return new_api(channel)


def _prefix(dash: str | None, word: str, text: str) -> Prefix:
    style: PrefixStyle = "/mj-{mode}" if dash else "/{mode}"
    return Prefix(style, word.upper(), text)
