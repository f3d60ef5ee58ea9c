"""Where MCP task records live: a small store interface, and the in-memory store behind it.

An MCP task (a task-augmented `tools/call`, see tasks.py) leaves a record: its status, its times,
and in the end the call's result. Records belong to an owner (the MCP session, or later the
tenant) and a store only ever answers for the owner that asks, so a client that learns or guesses
another client's task id still reads "not found". `TaskStore` is the whole interface, so a store
shared by several instances (`mj_mcp.redistasks.RedisTaskStore`, with MJ_REDIS_URL) replaces
`MemoryTaskStore` without touching the rest.

A finished record is final: `update` never replaces a terminal record, so a cancel and the job's
own end racing each other (on one instance or on two) leave whichever came first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from mj_mcp.clock import Clock

__all__ = [
    "DEFAULT_CAP",
    "TERMINAL",
    "MemoryTaskStore",
    "Page",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "TaskStoreFull",
    "cursor_seq",
    "now_utc",
]

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL: frozenset[TaskStatus] = frozenset({"completed", "failed", "cancelled"})
DEFAULT_CAP: Final = 1000
"""How many records a store keeps (of one process, or shared by all instances on Redis)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord:
    """One MCP task. `result` is the wire form of the CallToolResult; `error` a JSON-RPC error."""

    task_id: str
    owner: str
    tool: str
    status: TaskStatus
    status_message: str
    created_at: datetime
    last_updated_at: datetime
    ttl_ms: int
    poll_interval_ms: int
    expires_at: float
    """On the store's clock (monotonic seconds): the record is forgotten from then on."""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    seq: int = 0
    """Creation order, set by the store: what list cursors count on."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def moved(self, status: TaskStatus, message: str, **outcome: Any) -> TaskRecord:
        """This record in a new status, stamped now."""
        return replace(self, status=status, status_message=message, last_updated_at=now_utc(), **outcome)


@dataclass(frozen=True, slots=True)
class Page:
    records: Sequence[TaskRecord]
    next_cursor: str | None


class TaskStoreFull(Exception):
    """Every slot holds a task still working: no room for another."""


class TaskStore(Protocol):
    """Task records by owner and id. Implementations expire records at their `expires_at`."""

    async def create(self, record: TaskRecord) -> TaskRecord:
        """Store a new record (its `seq` set); raises TaskStoreFull when there is no room."""
        ...

    async def update(self, record: TaskRecord) -> bool:
        """Replace a stored record that is still working; False when it is finished or expired (it stays so)."""
        ...

    async def get(self, owner: str, task_id: str) -> TaskRecord | None: ...

    async def page(self, owner: str, cursor: str | None, limit: int) -> Page:
        """The owner's records after `cursor`, oldest first; raises ValueError on a cursor it never gave."""
        ...

    async def settled(self, task_id: str, seconds: float) -> None:
        """Return when `task_id` may have finished on another instance, after `seconds` at the latest."""
        ...

    async def cancel_elsewhere(self, task_id: str) -> None:
        """Ask the instance that runs `task_id` to stop it (its record already says cancelled)."""
        ...


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class MemoryTaskStore:
    """Records in this process's memory, at most `cap` of them.

    At the cap the oldest finished record makes room; when every record is still working, a new
    task is refused rather than forgetting one a client still polls.
    """

    clock: Clock
    cap: int = DEFAULT_CAP
    _records: dict[str, TaskRecord] = field(default_factory=dict[str, TaskRecord])
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def create(self, record: TaskRecord) -> TaskRecord:
        self._expire()
        if len(self._records) >= self.cap:
            oldest_done = next((r for r in self._records.values() if r.terminal), None)
            if oldest_done is None:
                raise TaskStoreFull(f"{self.cap} MCP tasks are still working; wait for one to finish.")
            del self._records[oldest_done.task_id]
        stored = replace(record, seq=next(self._seq))
        self._records[stored.task_id] = stored
        return stored

    async def update(self, record: TaskRecord) -> bool:
        self._expire()
        stored = self._records.get(record.task_id)
        if stored is None or stored.terminal:
            return False
        self._records[record.task_id] = record
        return True

    async def get(self, owner: str, task_id: str) -> TaskRecord | None:
        self._expire()
        record = self._records.get(task_id)
        return record if record is not None and record.owner == owner else None

    async def page(self, owner: str, cursor: str | None, limit: int) -> Page:
        self._expire()
        after = cursor_seq(cursor)
        mine = [r for r in self._records.values() if r.owner == owner and r.seq > after]
        shown = mine[:limit]
        return Page(shown, str(shown[-1].seq) if len(mine) > limit else None)

    async def settled(self, task_id: str, seconds: float) -> None:
        # One process: every working task runs here, and McpTasks waits for it directly.
        await self.clock.sleep(seconds)

    async def cancel_elsewhere(self, task_id: str) -> None:
        """There is no elsewhere: McpTasks stopped the job itself."""

    def _expire(self) -> None:
        now = self.clock.now()
        for task_id in [t for t, r in self._records.items() if r.expires_at <= now]:
            del self._records[task_id]


def cursor_seq(cursor: str | None) -> int:
    """The creation number a list cursor stands for (0: from the start)."""
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise ValueError(f"Unknown cursor {cursor!r}.")
    return int(cursor)
