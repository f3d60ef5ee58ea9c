"""Waiting for tasks: one poll loop per process, shared by every waiting tool call.

Each waiter registers a task id with the `TaskWatcher`. The watcher's single loop asks the
upstream about *all* watched ids in one `POST /mj/task/list-by-condition` per tick (chunked),
falls back to per-task fetches when the upstream lacks that route (found out once and
remembered), and wakes every waiter after each tick. A waiter reports progress when its task
changed, and a heartbeat when it has been quiet for `heartbeat` seconds, so clients that reset
their timeout on progress never time out.

Callbacks (`push`) take the same path as polled snapshots. Once a callback has reached a task,
that task is polled only every `SAFETY_NET_INTERVAL`, as a safety net for lost callbacks. Until
then it is polled at the normal pace: many resellers strip `notifyHook`, so callbacks are never
assumed to work before one has arrived.

Snapshots only move forward: an update whose status/progress order is lower than what is
already known (a stale read, a late callback) is ignored.

With MJ_REDIS_URL (`sharing`), instances share the polling: each tick polls only the tasks whose
lease this instance holds, publishes what it read, and takes what the others read (`take_shared`).

Time comes from an injected `Clock`, so tests run whole lifecycles without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

import anyio
import anyio.lowlevel

from mj_mcp.clock import Clock, SystemClock
from mj_mcp.errors import (
    ProtocolError,
    RateLimitedError,
    TaskNotFoundError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.models import Status, Task, task_order
from mj_mcp.sharing import PollSharing

__all__ = ["OnUpdate", "TaskSource", "TaskWatcher", "WaitOutcome"]

logger = logging.getLogger(__name__)

BATCH_SIZE: Final = 100
FETCH_CONCURRENCY: Final = 8
QUICK_INTERVAL: Final = 1.0
"""Poll interval while some task was registered in the last `QUICK_WINDOW` seconds."""
QUICK_WINDOW: Final = 15.0
MIN_POLL_GAP: Final = 0.25
"""Newly watched ids wait at most this long for the shared tick instead of forcing their own."""
MISSES_BEFORE_GONE: Final = 3
"""A task missing from this many consecutive polls is reported as gone."""
SAFETY_NET_INTERVAL: Final = 30.0
"""A task that has received a callback is polled at most this often (callbacks carry the rest)."""
LAST_READ_GRACE: Final = 1.0
"""Seconds a timed-out wait that never saw its task may spend on one last direct read."""
GARBLED_BEFORE_FATAL: Final = 3
"""Unreadable replies in a row before a wait gives up: one garbled read is a gateway hiccup,
a steady stream of them means the upstream speaks something we do not understand."""


OnUpdate = Callable[[Task], Awaitable[None]]


class TaskSource(Protocol):
    """The two reads the watcher needs from the upstream (`MjClient` provides them)."""

    async def fetch(self, task_id: str) -> Task: ...

    async def list_by_condition(self, ids: list[str]) -> list[Task]: ...


@dataclass(frozen=True, slots=True)
class WaitOutcome:
    """How a wait ended: the latest snapshot, and whether the timeout ended it."""

    task: Task
    timed_out: bool


@dataclass(eq=False)
class _Waiter:
    deadline: float
    event: anyio.Event = field(default_factory=anyio.Event)


@dataclass(eq=False)
class _Watch:
    task_id: str
    added_at: float
    latest: Task | None = None
    error: UpstreamError | None = None
    misses: int = 0
    garbled: int = 0
    pushed_at: float | None = None
    """When a callback last reached this task (None: never, so it is polled at the normal pace)."""
    polled_at: float = float("-inf")
    waiters: set[_Waiter] = field(default_factory=lambda: set[_Waiter]())


@dataclass(eq=False)
class _Reporter:
    """Calls `on_update` when the task changed, or when it has been quiet for `heartbeat` seconds."""

    on_update: OnUpdate | None
    heartbeat: float
    last: float
    reported: tuple[str | None, str | None] | None = None

    async def if_changed(self, task: Task, now: float) -> None:
        key = (task.status, task.progress)
        if key == self.reported and now - self.last < self.heartbeat:
            return
        self.reported, self.last = key, now
        if self.on_update is not None:
            await self.on_update(task)


class TaskWatcher:
    """Watches many tasks with one poll loop. Start `run()` in a task group."""

    def __init__(
        self,
        source: TaskSource,
        *,
        interval: float,
        heartbeat: float,
        clock: Clock | None = None,
        batch_size: int = BATCH_SIZE,
        sharing: PollSharing | None = None,
    ) -> None:
        self._source = source
        self._sharing = sharing
        """With MJ_REDIS_URL: each task is polled by one instance, whose reads the others take."""
        self.interval = interval
        self.heartbeat = heartbeat
        self.clock: Clock = clock or SystemClock()
        self._batch_size = batch_size
        self._watches: dict[str, _Watch] = {}
        self._wakeup = anyio.Event()
        self._next_poll = 0.0
        self._last_poll = float("-inf")
        self.list_supported: bool | None = None
        """None until the upstream's answer to list-by-condition is known."""
        self.polls = 0

    # -- waiting -------------------------------------------------------------------------

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float,
        on_update: OnUpdate | None = None,
        initial: Task | None = None,
        modal_grace: float = 0.0,
    ) -> WaitOutcome:
        """Wait until the task finishes or `timeout` seconds pass; report changes as they come.

        `on_update` is called for every new snapshot, and again after `heartbeat` quiet seconds.
        MODAL ends the wait, but only `modal_grace` seconds after it began: right after a `modal`
        call, a lagging copy of the task may still show MODAL.
        Raises the upstream error that makes further waiting pointless (task gone, key refused).
        """
        now = self.clock.now()
        watch = self._watch(task_id, now)
        if initial is not None:
            self.offer(initial)
        waiter = _Waiter(deadline=now + timeout)
        modal_final_at = now + modal_grace
        report = _Reporter(on_update, self.heartbeat, last=now)
        watch.waiters.add(waiter)
        self._wakeup.set()
        try:
            while True:
                task = watch.latest
                if task is not None:
                    await report.if_changed(task, self.clock.now())
                    if self._finished(task, modal_final_at=modal_final_at):
                        return WaitOutcome(task, timed_out=False)
                if watch.error is not None and _fatal(watch.error):
                    raise watch.error
                left = waiter.deadline - self.clock.now()
                if left <= 0:
                    return await self._timed_out(watch)
                # The deadline wakes the waiter itself: a poll stuck on a slow upstream must not
                # hold it past its timeout.
                with anyio.move_on_after(left):
                    await waiter.event.wait()
                waiter.event = anyio.Event()
        finally:
            watch.waiters.discard(waiter)
            if not watch.waiters:
                self._watches.pop(task_id, None)

    def _watch(self, task_id: str, now: float) -> _Watch:
        watch = self._watches.get(task_id)
        if watch is None:
            watch = self._watches[task_id] = _Watch(task_id=task_id, added_at=now)
            # A new id is polled promptly rather than at the next regular tick, but many ids
            # arriving together still share one request.
            self._next_poll = min(self._next_poll, max(now, self._last_poll + MIN_POLL_GAP))
        return watch

    def _finished(self, task: Task, *, modal_final_at: float) -> bool:
        # MODAL never moves on its own: it waits for a `modal` call.
        return task.finished or (task.status == Status.MODAL and self.clock.now() >= modal_final_at)

    async def _timed_out(self, watch: _Watch) -> WaitOutcome:
        task = watch.latest
        if task is None:
            # Never saw it at all: one direct read, briefly, says what it is now.
            with anyio.move_on_after(LAST_READ_GRACE):
                fetched = await self._source.fetch(watch.task_id)
                self.offer(fetched)
                task = watch.latest or fetched
            if task is None:
                raise watch.error or UpstreamUnavailableError(
                    f"The upstream did not answer about task {watch.task_id} in time."
                )
        return WaitOutcome(task, timed_out=not task.finished)

    def offer(self, task: Task) -> bool:
        """Take a snapshot from a poll or a callback; True if it moved the task forward."""
        watch = self._watches.get(task.id)
        if watch is None:
            return False
        watch.misses = 0
        watch.garbled = 0
        watch.error = None
        current = watch.latest
        if current is not None:
            if task_order(task) < task_order(current):
                return False  # stale: progress going down, or SUCCESS followed by IN_PROGRESS
            if current.finished:
                return False
            if (task.status, task.progress, task.image_url) == (
                current.status,
                current.progress,
                current.image_url,
            ):
                return False
        watch.latest = task
        return True

    def push(self, task: Task) -> bool:
        """Take a snapshot from an upstream callback: wake its waiters now, and stop polling it.

        True if the task is watched here (whether or not the snapshot moved it forward).
        """
        watch = self._watches.get(task.id)
        if watch is None:
            return False
        watch.pushed_at = self.clock.now()
        if self.offer(task):
            for waiter in watch.waiters:
                waiter.event.set()
        return True

    def take_shared(self, task: Task) -> bool:
        """Take a snapshot another instance read (MJ_REDIS_URL): as if this watcher had polled it."""
        watch = self._watches.get(task.id)
        if watch is None or not self.offer(task):
            return False
        for waiter in watch.waiters:
            waiter.event.set()
        return True

    @property
    def watched(self) -> list[str]:
        return list(self._watches)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """The poll loop. Runs until cancelled."""
        while True:
            if not self._watches:
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
                continue
            now = self.clock.now()
            if now >= self._next_poll:
                await self._poll_surviving()
                # max(): a 429 during the poll may already have pushed the next poll further out.
                self._next_poll = max(self._next_poll, self.clock.now() + self._current_interval())
            self._wake_waiters()
            delay = self._next_delay()
            if delay > 0:
                await self._sleep_or_wakeup(delay)
            else:
                # Let the woken waiters run (and leave) before the next round.
                await anyio.lowlevel.checkpoint()

    async def _poll_surviving(self) -> None:
        """One poll whose failures, whatever they are, reach the waiters and never this loop:
        every wait and subscription of the server hangs on it."""
        try:
            await self.poll_once()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            logger.warning("A poll of the upstream failed unexpectedly (%s); the waits go on.", type(exc).__name__)
            self._fail_all(list(self._watches), _unreadable(exc))

    async def poll_once(self) -> None:
        """One tick: read every watched task (one request per chunk), update the watches."""
        now = self.clock.now()
        ids = [
            task_id
            for task_id, watch in self._watches.items()
            if watch.pushed_at is None or now - max(watch.pushed_at, watch.polled_at) >= SAFETY_NET_INTERVAL
        ]
        for task_id in ids:
            self._watches[task_id].polled_at = now
        if self._sharing is not None and ids:
            ids = await self._sharing.claim(ids)
        if not ids:
            return
        await self._read(ids)
        if self._sharing is not None:
            # Every read, moved or not: a wait that began on another instance hears of its task
            # within a tick (and can send its heartbeat), without reading it itself.
            read = (self._watches[i].latest for i in ids if i in self._watches)
            await self._sharing.publish([task for task in read if task is not None])

    async def _read(self, ids: list[str]) -> None:
        self.polls += 1
        self._last_poll = self.clock.now()
        seen: set[str] = set()
        if self.list_supported is not False:
            try:
                for chunk in _chunks(ids, self._batch_size):
                    for task in await self._source.list_by_condition(chunk):
                        seen.add(task.id)
                        self.offer(task)
                self.list_supported = True
            except UpstreamRejectedError as exc:
                if exc.http_status in (404, 405) and self.list_supported is None:
                    logger.info("The upstream has no list-by-condition; polling each task instead.")
                    self.list_supported = False
                else:
                    self._fail_all(ids, exc)
                    return
            except UpstreamError as exc:
                self._fail_all(ids, exc)
                return
        missing = [i for i in ids if i not in seen]
        if missing:
            await self._fetch_each(missing)

    async def _fetch_each(self, ids: list[str]) -> None:
        limiter = anyio.CapacityLimiter(FETCH_CONCURRENCY)

        async def one(task_id: str) -> None:
            async with limiter:
                try:
                    task = await self._source.fetch(task_id)
                except TaskNotFoundError as exc:
                    watch = self._watches.get(task_id)
                    if watch is not None:
                        watch.misses += 1
                        if watch.misses >= MISSES_BEFORE_GONE:
                            watch.error = exc
                except UpstreamError as exc:
                    self._fail_all([task_id], exc)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:  # one unreadable task must not end the others' reads
                    self._fail_all([task_id], _unreadable(exc))
                else:
                    self.offer(task)

        async with anyio.create_task_group() as tg:
            for task_id in ids:
                tg.start_soon(one, task_id)

    def _fail_all(self, ids: Iterable[str], error: UpstreamError) -> None:
        for task_id in ids:
            watch = self._watches.get(task_id)
            if watch is None:
                continue
            if isinstance(error, ProtocolError):
                watch.garbled += 1
                if watch.garbled < GARBLED_BEFORE_FATAL:
                    continue
            watch.error = error
        if isinstance(error, RateLimitedError):
            # Slow the whole poller, not just one waiter.
            self._next_poll = self.clock.now() + max(self.interval, error.retry_after or 0.0)

    def _current_interval(self) -> float:
        now = self.clock.now()
        if any(now - w.added_at < QUICK_WINDOW for w in self._watches.values()):
            return min(self.interval, QUICK_INTERVAL)
        return self.interval

    def _wake_waiters(self) -> None:
        for watch in self._watches.values():
            for waiter in watch.waiters:
                waiter.event.set()

    def _next_delay(self) -> float:
        now = self.clock.now()
        candidates = [self._next_poll, now + self.heartbeat]
        # Passed deadlines are the waiters' to act on; they must not make this loop spin.
        candidates.extend(w.deadline for watch in self._watches.values() for w in watch.waiters if w.deadline > now)
        return max(0.0, min(candidates) - now)

    async def _sleep_or_wakeup(self, delay: float) -> None:
        async with anyio.create_task_group() as tg:

            async def sleeper() -> None:
                await self.clock.sleep(delay)
                tg.cancel_scope.cancel()

            async def waker() -> None:
                await self._wakeup.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(sleeper)
            tg.start_soon(waker)
        if self._wakeup.is_set():
            self._wakeup = anyio.Event()


def _unreadable(exc: Exception) -> UpstreamError:
    """An unexpected failure of a read, as the upstream error the waiters understand."""
    if isinstance(exc, UpstreamError):
        return exc
    return ProtocolError(f"The upstream's reply could not be read ({type(exc).__name__}).")


def _fatal(error: UpstreamError) -> bool:
    """Errors that waiting longer cannot cure (transient ones just keep the waiter waiting)."""
    return not isinstance(error, UpstreamUnavailableError | RateLimitedError)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
