"""Live task resources: clients subscribe to `mj://tasks/{taskId}` and hear when it changes.

Both protocol eras are served. Legacy clients send `resources/subscribe` / `unsubscribe`; each
change is sent to their session as `notifications/resources/updated`. 2026-era clients open a
`subscriptions/listen` stream naming the URIs; changes are published on the server's
subscription bus, and the SDK's listen handler delivers them on the matching streams.

Either way a subscribed task is followed through the shared `TaskWatcher`, as one more waiter:
it costs no extra upstream reads beyond the shared poll (or callback), and following stops when
the task finishes, when the last subscriber leaves, or when the task turns out not to exist.

With MJ_CLIENT_KEYS everything here is per tenant (a "lane", `Lanes`): a follow is of a task of
one tenant, read through that tenant's watcher with that tenant's key (so a guessed id of
another tenant's task is simply not found, and following ends), and each tenant's listen
streams hang on a subscription bus of its own, so that one tenant never hears of another's task.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import anyio
from anyio.abc import TaskGroup
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from mj_mcp.errors import AuthenticationError, InputError, TaskNotFoundError, UpstreamError
from mj_mcp.models import Status, Task
from mj_mcp.waiting import TaskWatcher

__all__ = ["MAX_FOLLOWED", "Lanes", "LiveTasks", "task_id_of"]

logger = logging.getLogger(__name__)

MAX_FOLLOWED: Final = 1000
"""Most tasks followed at once for subscribers; more subscriptions are accepted but not followed."""
FOLLOW_WINDOW: Final = 3600.0
"""One wait's length while following; a task still running after it is simply waited on again."""
_TASK_URI: Final = re.compile(r"^mj://tasks/(?P<id>[^/?#]+)(?P<image>/image)?$")
_NOT_IDS: Final = frozenset({"recent", "page"})
_TASK_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
"""What an upstream task id looks like (numeric in practice); anything else is refused at the edge."""


def task_id_of(uri: str) -> str | None:
    """The task id of a subscribable task URI (the task or its image), else None.

    Raises `MCPError` (invalid params) for a task URI whose id no upstream could have issued,
    before it reaches the watcher that every client shares.
    """
    match = _TASK_URI.match(uri)
    if match is None or match["id"] in _NOT_IDS:
        return None
    if _TASK_ID.match(match["id"]) is None:
        raise MCPError(
            INVALID_PARAMS,
            f"{uri[:100]}: not a task id (1-64 letters, digits, '.', '_', ':' or '-'). Use the id a job returned.",
            {"uri": uri[:200]},
        )
    return match["id"]


class Lanes(Protocol):
    """The tenants' lanes, as subscriptions need them ("" is the only lane without MJ_CLIENT_KEYS)."""

    def current(self) -> str:
        """The calling request's lane; raises `MCPError` when the request has none."""
        ...

    def watcher(self, lane: str) -> TaskWatcher:
        """That lane's watcher (the lane is opened if need be)."""
        ...


class _OneLane:
    """Before the server runs: the single lane, no watcher yet."""

    def current(self) -> str:
        return ""

    def watcher(self, lane: str) -> TaskWatcher:
        raise MCPError(INVALID_PARAMS, "The server is not running yet.")


class _OneWatcher:
    """The single lane of a server with one key."""

    def __init__(self, watcher: TaskWatcher) -> None:
        self._watcher = watcher

    def current(self) -> str:
        return ""

    def watcher(self, lane: str) -> TaskWatcher:
        return self._watcher


@dataclass(eq=False)
class _Channel:
    """A lane's listen streams: its own bus, so that its updates reach no other lane's streams."""

    bus: SubscriptionBus
    handler: ListenHandler
    streams: int = 0


@dataclass(eq=False)
class _Follow:
    lane: str
    task_id: str
    sessions: dict[ServerSession, set[str]] = field(default_factory=lambda: dict[ServerSession, set[str]]())
    """Legacy subscribers and the URIs of this task each subscribed to."""
    listened: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    """URI -> number of open listen streams that named it."""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def empty(self) -> bool:
        return not self.sessions and not any(self.listened.values())


class LiveTasks:
    """Follows the tasks that clients subscribed to, and tells them when those change."""

    def __init__(self, bus: SubscriptionBus, *, max_followed: int = MAX_FOLLOWED) -> None:
        self._channels: dict[str, _Channel] = {"": _Channel(bus, ListenHandler(bus), streams=1)}
        """Lane -> its listen streams; the server's own bus serves the single lane, and is kept."""
        self._max = max_followed
        self._follows: dict[tuple[str, str], _Follow] = {}
        self._lanes: Lanes = _OneLane()
        self._tasks: TaskGroup | None = None
        self._retry_delay: float = 2.0
        """Seconds between looks at a task that cannot move on its own (MODAL) or could not be read."""

    def start(self, lanes: Lanes | TaskWatcher, tasks: TaskGroup, *, retry_delay: float) -> None:
        """Begin following subscribed tasks through the watcher (of each lane), in `tasks` (the
        server's task group)."""
        self._lanes = _OneWatcher(lanes) if isinstance(lanes, TaskWatcher) else lanes
        self._tasks, self._retry_delay = tasks, retry_delay
        for follow in self._follows.values():
            self._begin(follow)

    def stop(self) -> None:
        self._lanes, self._tasks = _OneLane(), None
        for follow in self._follows.values():
            follow.scope.cancel()

    @property
    def followed(self) -> list[str]:
        return [task_id for _lane, task_id in self._follows]

    def follows_in(self, lane: str) -> bool:
        """Whether anything of `lane` is followed or listened to (a lane in use is not let go)."""
        return any(key[0] == lane for key in self._follows) or (lane != "" and lane in self._channels)

    # -- request handlers ------------------------------------------------------------------

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        """`resources/subscribe` (legacy era)."""
        task_id = task_id_of(params.uri)
        if task_id is not None:
            follow = self._follow(self._lanes.current(), task_id)
            if follow is not None:
                follow.sessions.setdefault(ctx.session, set()).add(params.uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        """`resources/unsubscribe` (legacy era)."""
        task_id = task_id_of(params.uri)
        follow = self._follows.get((self._lanes.current(), task_id)) if task_id is not None else None
        if follow is not None:
            uris = follow.sessions.get(ctx.session)
            if uris is not None:
                uris.discard(params.uri)
                if not uris:
                    del follow.sessions[ctx.session]
            self._maybe_drop(follow)
        return EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """`subscriptions/listen` (2026 era): follow the named tasks while the stream is open."""
        lane = self._lanes.current()
        named: list[tuple[_Follow, str]] = []
        for uri in dict.fromkeys(params.notifications.resource_subscriptions or ()):
            task_id = task_id_of(uri)
            follow = self._follow(lane, task_id) if task_id is not None else None
            if follow is not None:
                follow.listened[uri] = follow.listened.get(uri, 0) + 1
                named.append((follow, uri))
        channel = self._channels.get(lane)
        if channel is None:
            bus = InMemorySubscriptionBus()
            channel = self._channels[lane] = _Channel(bus, ListenHandler(bus))
        channel.streams += 1
        try:
            return await channel.handler(ctx, params)
        finally:
            channel.streams -= 1
            if channel.streams <= 0:
                del self._channels[lane]
            for follow, uri in named:
                follow.listened[uri] -= 1
                if follow.listened[uri] <= 0:
                    del follow.listened[uri]
                self._maybe_drop(follow)

    # -- following -------------------------------------------------------------------------

    def _follow(self, lane: str, task_id: str) -> _Follow | None:
        follow = self._follows.get((lane, task_id))
        if follow is not None:
            return follow
        if len(self._follows) >= self._max:
            logger.warning("Not following task %s: %d tasks are followed already.", task_id, self._max)
            return None
        follow = self._follows[lane, task_id] = _Follow(lane, task_id)
        self._begin(follow)
        return follow

    def _begin(self, follow: _Follow) -> None:
        if self._tasks is not None:
            self._tasks.start_soon(self._run, follow)

    def _maybe_drop(self, follow: _Follow) -> None:
        if follow.empty and self._follows.get((follow.lane, follow.task_id)) is follow:
            del self._follows[follow.lane, follow.task_id]
            follow.scope.cancel()

    async def _run(self, follow: _Follow) -> None:
        try:
            watcher = self._lanes.watcher(follow.lane)
        except MCPError:
            return  # the lane could not be opened (the server is full): nothing to follow with
        seen: list[tuple[str | None, str | None, str | None]] = []

        async def changed(task: Task) -> None:
            key = (task.status, task.progress, task.image_url)
            if not seen:
                seen.append(key)  # the state the subscriber is assumed to have read
                return
            if key != seen[-1]:
                seen.append(key)
                await self._announce(follow)

        with follow.scope:
            try:
                while True:
                    try:
                        outcome = await watcher.wait(follow.task_id, timeout=FOLLOW_WINDOW, on_update=changed)
                    except (TaskNotFoundError, AuthenticationError, InputError):
                        return  # nothing more will ever change for this subscriber to hear
                    except UpstreamError as exc:
                        logger.info("Following task %s: %s; trying again.", follow.task_id, exc)
                        await watcher.clock.sleep(self._retry_delay)
                        continue
                    if outcome.task.finished:
                        return
                    if outcome.task.status == Status.MODAL:
                        # A MODAL task moves only after a `modal` call; look again now and then.
                        await watcher.clock.sleep(self._retry_delay)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:  # one subscription's trouble must not reach the task group all share
                logger.exception("Stopped following task %s", follow.task_id)
            finally:
                if self._follows.get((follow.lane, follow.task_id)) is follow:
                    del self._follows[follow.lane, follow.task_id]

    async def _announce(self, follow: _Follow) -> None:
        channel = self._channels.get(follow.lane)
        if channel is not None:
            for uri in sorted(follow.listened):
                await channel.bus.publish(ResourceUpdated(uri=uri))
        for session, wanted in list(follow.sessions.items()):
            try:
                for uri in sorted(wanted):
                    await session.send_resource_updated(uri)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:  # the client went away: forget its subscriptions, serve the others
                logger.debug("Dropped the subscriptions of a closed session to task %s", follow.task_id)
                follow.sessions.pop(session, None)
        self._maybe_drop(follow)
