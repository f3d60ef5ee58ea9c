"""MCP task records in Redis (MJ_REDIS_URL): any instance answers for a task any instance runs.

The job of a task runs on the instance that took the task-augmented `tools/call`; its record lives
in Redis, so `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel` work on every instance
behind the balancer. Keys (all under `mj-mcp:`):

- `task:<id>`: a hash (`status`, `owner`, `seq`, `record` = the record as JSON, with the final
  result once there is one), expiring at the task's TTL. Ids are 128 random bits, and a record is
  only ever given to its owner (tenant and session, see mj_mcp.server.tasks.owner_of);
- `tasks:owner:<digest of owner>`: the owner's task ids by creation number (`tasks/list` and its
  cursor), kept as long as its newest record; ids whose record expired are dropped as met;
- `tasks:all`: every task id by creation number, for the cap (`DEFAULT_CAP` records across all
  instances; at the cap the oldest finished record makes room, and with every record working a
  new task is refused), and `tasks:seq`, the creation counter.

Cross-instance messages go on the channel `mj-mcp:tasks`: `d<id>` when a record finished (it
wakes `tasks/result` waiting on other instances, which also read the record again every poll
interval, so a lost message only delays them) and `c<id>` when an instance other than the
runner cancelled a task (the runner stops the background call). The channel carries task ids
only; the records' contents stay in the keys.

The `redis` package is imported only when a store is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Final, cast

import anyio
from anyio.abc import TaskStatus as StartStatus

from mj_mcp.clock import Clock
from mj_mcp.config import Settings
from mj_mcp.redisstate import follow_channel, listening
from mj_mcp.taskstore import DEFAULT_CAP, TERMINAL, Page, TaskRecord, TaskStoreFull, cursor_seq

__all__ = ["CHANNEL", "RedisTaskStore"]

logger = logging.getLogger(__name__)

PREFIX: Final = "mj-mcp:"
RECORD: Final = PREFIX + "task:"
OWNER: Final = PREFIX + "tasks:owner:"
ALL: Final = PREFIX + "tasks:all"
SEQ: Final = PREFIX + "tasks:seq"
CHANNEL: Final = PREFIX + "tasks"
DONE: Final = b"d"
CANCEL: Final = b"c"
_TERMINAL_LUA: Final = "{" + ", ".join(f"['{s}'] = true" for s in sorted(TERMINAL)) + "}"

# Prunes expired ids from the index, applies the cap, then stores the record with its TTL.
# KEYS: all, owner index, seq. ARGV: record key prefix, id, owner, status, record JSON, ttl ms, cap.
_CREATE: Final = f"""
local terminal = {_TERMINAL_LUA}
local live, evictable = 0, nil
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if not status then
    redis.call('ZREM', KEYS[1], id)
  else
    live = live + 1
    if not evictable and terminal[status] then evictable = id end
  end
end
if live >= tonumber(ARGV[7]) then
  if not evictable then return 0 end
  redis.call('DEL', ARGV[1] .. evictable)
  redis.call('ZREM', KEYS[1], evictable)
end
local seq = redis.call('INCR', KEYS[3])
local key = ARGV[1] .. ARGV[2]
redis.call('HSET', key, 'status', ARGV[4], 'owner', ARGV[3], 'seq', seq, 'record', ARGV[5])
redis.call('PEXPIRE', key, ARGV[6])
redis.call('ZADD', KEYS[1], seq, ARGV[2])
redis.call('ZADD', KEYS[2], seq, ARGV[2])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
return seq
"""
# Replaces a record that is still working (HSET keeps its TTL). KEYS: the record. ARGV: status, JSON.
_UPDATE: Final = f"""
local terminal = {_TERMINAL_LUA}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal[status] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'record', ARGV[2])
return 1
"""

Stop = Callable[[str], None]


class RedisTaskStore:
    """`TaskStore` on Redis, shared by every instance; `open` it for as long as the server runs."""

    def __init__(self, client: Any, clock: Clock, on_cancel: Stop, *, cap: int = DEFAULT_CAP) -> None:
        self._client: Any = client
        """A `redis.asyncio.Redis` (typed Any: the package is optional)."""
        self._clock = clock
        self._on_cancel = on_cancel
        self.cap = cap
        self._create = client.register_script(_CREATE)
        self._update = client.register_script(_UPDATE)
        self._finished: dict[str, anyio.Event] = {}

    @classmethod
    def opener(cls, settings: Settings, clock: Clock) -> Callable[[Stop], AbstractAsyncContextManager[RedisTaskStore]]:
        """What McpTasks opens while the server runs (see mj_mcp.server.tasks.StoreOpener)."""
        assert settings.redis_url is not None
        url = settings.redis_url.get_secret_value()

        def open_store(on_cancel: Stop) -> AbstractAsyncContextManager[RedisTaskStore]:
            return cls.open(url, clock, on_cancel)

        return open_store

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, clock: Clock, on_cancel: Stop, *, cap: int = DEFAULT_CAP
    ) -> AsyncGenerator[RedisTaskStore]:
        """Connect, and read the tasks channel while open (subscribed before this yields)."""
        async with listening(url, lambda client: cls(client, clock, on_cancel, cap=cap)) as store:
            yield store

    # -- TaskStore -----------------------------------------------------------------------------

    async def create(self, record: TaskRecord) -> TaskRecord:
        keys = [ALL, _owner_key(record.owner), SEQ]
        args = [RECORD, record.task_id, record.owner, record.status, _dump(record), record.ttl_ms, self.cap]
        seq = int(await self._create(keys=keys, args=args))
        if not seq:
            raise TaskStoreFull(f"{self.cap} MCP tasks are still working; wait for one to finish.")
        return replace(record, seq=seq)

    async def update(self, record: TaskRecord) -> bool:
        replaced = bool(await self._update(keys=[RECORD + record.task_id], args=[record.status, _dump(record)]))
        if replaced and record.terminal:
            await self._client.publish(CHANNEL, DONE + record.task_id.encode())
        return replaced

    async def get(self, owner: str, task_id: str) -> TaskRecord | None:
        found = await self._read([task_id])
        record = found[0]
        return record if record is not None and record.owner == owner else None

    async def page(self, owner: str, cursor: str | None, limit: int) -> Page:
        after = cursor_seq(cursor)
        index = _owner_key(owner)
        ids = [i.decode() for i in await self._client.zrangebyscore(index, f"({after}", "+inf")]
        found = await self._read(ids)
        gone = [task_id for task_id, record in zip(ids, found, strict=True) if record is None]
        if gone:
            await self._client.zrem(index, *gone)
        mine = [r for r in found if r is not None and r.owner == owner]
        shown = mine[:limit]
        return Page(shown, str(shown[-1].seq) if len(mine) > limit else None)

    async def settled(self, task_id: str, seconds: float) -> None:
        finished = self._finished.setdefault(task_id, anyio.Event())
        async with anyio.create_task_group() as group:

            async def give_up() -> None:
                await self._clock.sleep(seconds)
                group.cancel_scope.cancel()

            group.start_soon(give_up)
            await finished.wait()
            group.cancel_scope.cancel()

    async def cancel_elsewhere(self, task_id: str) -> None:
        await self._client.publish(CHANNEL, CANCEL + task_id.encode())

    # -- the channel ---------------------------------------------------------------------------

    async def listen(self, *, task_status: StartStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read the tasks channel until cancelled, reconnecting when Redis goes away."""
        await follow_channel(
            self._client, CHANNEL, lambda _channel, data: self.deliver(data), pattern=False, task_status=task_status
        )

    def deliver(self, data: bytes) -> None:
        """Act on one channel message: wake the waits on a finished task, or stop a cancelled one."""
        kind, task_id = data[:1], data[1:].decode(errors="replace")
        if kind == DONE:
            finished = self._finished.pop(task_id, None)
            if finished is not None:
                finished.set()
        elif kind == CANCEL:
            self._on_cancel(task_id)

    # -- records -------------------------------------------------------------------------------

    async def _read(self, ids: list[str]) -> list[TaskRecord | None]:
        if not ids:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(RECORD + task_id, "seq", "record")
                pipe.pttl(RECORD + task_id)
            replies = cast(list[Any], await pipe.execute())
        now = self._clock.now()
        return [_load(replies[2 * i], replies[2 * i + 1], now) for i in range(len(ids))]


def _owner_key(owner: str) -> str:
    # Owners hold session ids and tenant ids; a digest keeps keys short and of one alphabet.
    return OWNER + hashlib.sha256(owner.encode()).hexdigest()[:32]


def _dump(record: TaskRecord) -> str:
    return json.dumps(
        {
            "task_id": record.task_id,
            "owner": record.owner,
            "tool": record.tool,
            "status": record.status,
            "status_message": record.status_message,
            "created_at": record.created_at.isoformat(),
            "last_updated_at": record.last_updated_at.isoformat(),
            "ttl_ms": record.ttl_ms,
            "poll_interval_ms": record.poll_interval_ms,
            "result": record.result,
            "error": record.error,
        },
        separators=(",", ":"),
    )


def _load(fields: list[bytes | None], pttl: int, now: float) -> TaskRecord | None:
    """A stored record, or None when it expired (between the two reads too: `pttl` < 0)."""
    seq, raw = fields
    if seq is None or raw is None or pttl < 0:
        return None
    data: dict[str, Any] = json.loads(raw)
    return TaskRecord(
        task_id=data["task_id"],
        owner=data["owner"],
        tool=data["tool"],
        status=data["status"],
        status_message=data["status_message"],
        created_at=datetime.fromisoformat(data["created_at"]),
        last_updated_at=datetime.fromisoformat(data["last_updated_at"]),
        ttl_ms=data["ttl_ms"],
        poll_interval_ms=data["poll_interval_ms"],
        expires_at=now + pttl / 1000,  # on this instance's clock, as the record's TTL says
        result=data["result"],
        error=data["error"],
        seq=int(seq),
    )
