"""Many instances as one (MJ_REDIS_URL): what they share, kept in Redis.

Instances behind a load balancer share, per lane (a tenant with MJ_CLIENT_KEYS, else the one
lane "_"):

- upstream callbacks: whichever instance the upstream reaches publishes the body on the lane's
  channel (`mj-mcp:lane:<lane>`), and every instance that serves that lane hands it to its own
  watcher (mj_mcp.sharedcallbacks);
- polling: a watched task is polled by the instance holding its lease (`mj-mcp:poll:<lane>:<id>`,
  `SET NX PX`, renewed on each of its polls), which publishes what it read on the same channel;
  the others wait on those snapshots. A lease lapses `lease_seconds` after its holder's last poll
  (its holder died, or stopped watching), and the next instance to poll takes it over;
- the retried-job registry (`mj-mcp:join:<lane>:<digest>` -> task id, expiring after JOIN_WINDOW);
- the MJ_MAX_JOBS count (`mj-mcp:jobs:<lane>`, checked and counted in one script).

No key or message holds an upstream key: lanes are tenant ids (a keyed hash), and the secret of
that hash is shared through Redis (`mj-mcp:secret`, written once with `SET NX` by the first
instance to start; see `start`). Whoever can read Redis can thus tell tenants apart and forge
callbacks: Redis must be as private as the instances' own memory.

The `redis` package is imported only here, and only when MJ_REDIS_URL is set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskStatus
from pydantic import ValidationError

from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.config import Settings
from mj_mcp.errors import GuardrailError, SettingsError
from mj_mcp.jobs import JOIN_WINDOW
from mj_mcp.models import Task
from mj_mcp.sharedcallbacks import SharedCallbacks
from mj_mcp.waiting import TaskWatcher

__all__ = ["KEY_PREFIX", "RedisHub", "SharedStart", "redis_where", "start"]

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "mj-mcp:"
SECRET_KEY: Final = KEY_PREFIX + "secret"
CHANNEL: Final = KEY_PREFIX + "lane:"
ONE_LANE: Final = "_"
"""The lane of a server without MJ_CLIENT_KEYS (tenant ids are hex, so never this)."""
CALLBACK: Final = b"c"
SNAPSHOT: Final = b"s"
CONNECT_SECONDS: Final = 5.0
"""How long the start waits for Redis before it gives up with a message."""
RECONNECT_SECONDS: Final = 1.0

_TAKE_JOB: Final = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""
_CLAIM: Final = """
local mine = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    mine[#mine + 1] = i
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    mine[#mine + 1] = i
  end
end
return mine
"""
_FORGET: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redis_where(url: str) -> str:
    """Where a Redis URL points, without its password (for messages)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


@dataclass(frozen=True, slots=True)
class SharedStart:
    """What every instance must agree on before it serves: the shared secret."""

    url: str
    secret: bytes

    def key_for(self, purpose: str) -> bytes:
        """A secret of its own for each use (tenant ids, callback paths), derived from the shared one."""
        return hmac.digest(self.secret, purpose.encode(), hashlib.sha256)


_STARTED: dict[str, SharedStart] = {}


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise SettingsError(
            "MJ_REDIS_URL is set, but the redis package is not installed: pip install 'mj-mcp[hosting]'"
        ) from None
    return redis


class Listener(Protocol):
    """Something that reads its Redis channel until cancelled (`task_status` says: subscribed)."""

    async def listen(self, *, task_status: TaskStatus[None] = ...) -> None: ...


L = TypeVar("L", bound=Listener)


@asynccontextmanager
async def listening(url: str, make: Callable[[Any], L]) -> AsyncGenerator[L]:
    """A Redis client for `url` and `make(client)` reading its channel while open (subscribed before
    this yields). The client is closed even when the block is cancelled."""
    client = _redis_module().asyncio.Redis.from_url(url)
    try:
        listener = make(client)
        async with anyio.create_task_group() as reader:
            await reader.start(listener.listen)
            try:
                yield listener
            finally:
                reader.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await client.aclose()


async def follow_channel(
    client: Any,
    channel: str,
    deliver: Callable[[bytes | str, bytes], None],
    *,
    pattern: bool,
    task_status: TaskStatus[None],
) -> None:
    """Hand each message on `channel` (a glob when `pattern`) to `deliver(channel, data)` until
    cancelled. A Redis error before the first subscription is raised (the caller is still
    starting); one after it is logged and the subscription made again after RECONNECT_SECONDS."""
    redis = _redis_module()
    kind = "pmessage" if pattern else "message"
    started = False
    while True:
        try:
            async with client.pubsub() as pubsub:
                await (pubsub.psubscribe(channel) if pattern else pubsub.subscribe(channel))
                if not started:
                    started = True
                    task_status.started()
                while True:
                    message: dict[str, Any] | None = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=None
                    )
                    if message is not None and message.get("type") == kind:
                        deliver(message["channel"], message["data"])
        except redis.RedisError as exc:
            if not started:
                raise
            logger.warning("Lost the Redis channel %s (%s); reconnecting.", channel, type(exc).__name__)
            await anyio.sleep(RECONNECT_SECONDS)


def start(settings: Settings) -> SharedStart:
    """Reach Redis and read the shared secret (writing it first if this is the first instance).

    Runs once per process, before anything listens; a Redis that cannot be reached is a
    `SettingsError` (the CLI prints it and exits 2), not a server that half works.
    """
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    known = _STARTED.get(url)
    if known is not None:
        return known
    redis = _redis_module()
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=CONNECT_SECONDS)
    try:
        client.set(SECRET_KEY, secrets.token_hex(32), nx=True)
        secret = cast(bytes, client.get(SECRET_KEY))
    except redis.RedisError as exc:
        raise SettingsError(
            f"MJ_REDIS_URL: cannot use Redis at {redis_where(url)} ({type(exc).__name__}: {exc}). "
            "Start Redis, or fix MJ_REDIS_URL (redis://host:6379/0)."
        ) from None
    finally:
        client.close()
    shared = _STARTED[url] = SharedStart(url, secret)
    return shared


@dataclass(eq=False)
class _Lane:
    watcher: TaskWatcher
    receiver: CallbackReceiver | None


class RedisHub:
    """One per process: the async Redis client, the lanes this instance serves, the channel reader."""

    def __init__(self, client: Any, *, lease_seconds: float) -> None:
        self._client: Any = client
        """A `redis.asyncio.Redis` (typed Any: the package is optional, and its stubs partly unknown)."""
        self.instance = secrets.token_hex(8)
        self._lease_ms = str(round(lease_seconds * 1000))
        self._lanes: dict[str, _Lane] = {}
        self._take_job = client.register_script(_TAKE_JOB)
        self._claim = client.register_script(_CLAIM)
        self._forget = client.register_script(_FORGET)
        self.delivered = 0
        """Messages from the channels handed to a lane of this instance."""

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncGenerator[RedisHub]:
        """Connect, and read the lanes' channels while open (subscribed before this yields)."""
        assert settings.redis_url is not None
        lease = 2 * settings.poll_interval + 1.0
        async with listening(settings.redis_url.get_secret_value(), lambda c: cls(c, lease_seconds=lease)) as hub:
            yield hub

    # -- lanes ---------------------------------------------------------------------------------

    def attach(self, lane: str, watcher: TaskWatcher, receiver: CallbackReceiver | None) -> None:
        """Serve `lane` here: its callbacks and snapshots reach `watcher` (through `receiver`)."""
        self._lanes[lane or ONE_LANE] = _Lane(watcher, receiver)

    def serve_callbacks(self, receiver: CallbackReceiver | None) -> None:
        """Have a shared receiver publish the callbacks it takes on the lanes' channels."""
        if isinstance(receiver, SharedCallbacks):
            hub = self

            async def publish(lane: str, body: bytes) -> None:
                await hub.publish(lane, CALLBACK, body)

            receiver.connect(publish)

    def detach(self, lane: str) -> None:
        self._lanes.pop(lane or ONE_LANE, None)

    def counter(self, lane: str) -> RedisCounter:
        return RedisCounter(self, f"{KEY_PREFIX}jobs:{lane or ONE_LANE}")

    def registry(self, lane: str) -> RedisRegistry:
        return RedisRegistry(self, f"{KEY_PREFIX}join:{lane or ONE_LANE}:")

    def polls(self, lane: str) -> RedisPolls:
        return RedisPolls(self, lane or ONE_LANE)

    # -- the channels --------------------------------------------------------------------------

    async def publish(self, lane: str, kind: bytes, body: bytes) -> None:
        await self._client.publish(CHANNEL + (lane or ONE_LANE), kind + body)

    async def publish_many(self, lane: str, kind: bytes, bodies: list[bytes]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for body in bodies:
                pipe.publish(CHANNEL + (lane or ONE_LANE), kind + body)
            await pipe.execute()

    async def listen(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read every lane's channel until cancelled, reconnecting when Redis goes away."""
        await follow_channel(self._client, CHANNEL + "*", self.deliver, pattern=True, task_status=task_status)

    def deliver(self, channel: bytes | str, data: bytes) -> None:
        """Hand one channel message to the lane it names, if this instance serves that lane."""
        name = channel.decode() if isinstance(channel, bytes) else channel
        lane = self._lanes.get(name.removeprefix(CHANNEL))
        if lane is None:
            return
        kind, body = data[:1], data[1:]
        if kind == CALLBACK and lane.receiver is not None:
            lane.receiver.take(body)  # parsed as on the instance the upstream reached, the key masked
        elif kind == SNAPSHOT:
            try:
                task = Task.model_validate_json(body)
            except ValidationError:
                logger.warning("Ignored an unreadable task snapshot on the Redis channel")
                return
            lane.watcher.take_shared(task)
        else:
            return
        self.delivered += 1

    # -- used by the shared parts --------------------------------------------------------------

    @property
    def client(self) -> Any:
        return self._client

    async def take_job(self, key: str, limit: int) -> bool:
        return bool(await self._take_job(keys=[key], args=[limit]))

    async def claim(self, keys: list[str]) -> list[int]:
        """The (1-based) positions of `keys` whose lease this instance holds now."""
        return [int(i) for i in cast(list[Any], await self._claim(keys=keys, args=[self.instance, self._lease_ms]))]

    async def forget(self, key: str, value: str) -> None:
        await self._forget(keys=[key], args=[value])


class RedisCounter:
    """`JobCounter` on Redis: MJ_MAX_JOBS across every instance (per tenant with client keys)."""

    def __init__(self, hub: RedisHub, key: str) -> None:
        self._hub = hub
        self._key = key

    async def take(self, limit: int) -> bool:
        try:
            return await self._hub.take_job(self._key, limit)
        except Exception as exc:
            # Failing closed: the count guards spending, and an unreadable one must not let jobs through.
            logger.warning("Could not count a job in Redis (%s)", type(exc).__name__)
            raise GuardrailError(
                "The job was not sent: MJ_MAX_JOBS is counted in Redis, which this server cannot reach now.",
                hint="Try again in a minute; if it persists, the server's operator must check Redis.",
            ) from None


class RedisRegistry:
    """`JobRegistry` on Redis: a repeated call joins the job wherever it was started."""

    def __init__(self, hub: RedisHub, prefix: str) -> None:
        self._hub = hub
        self._prefix = prefix

    async def joinable(self, key: str) -> str | None:
        try:
            found = await self._hub.client.get(self._prefix + key)
        except Exception as exc:  # without the registry a repeat is a new job, as without Redis
            logger.warning("Could not read the retried-job registry (%s)", type(exc).__name__)
            return None
        return found.decode() if isinstance(found, bytes) else None

    async def started(self, key: str, task_id: str) -> None:
        try:
            await self._hub.client.set(self._prefix + key, task_id, px=round(JOIN_WINDOW * 1000))
        except Exception as exc:
            logger.warning("Could not record task %s in the retried-job registry (%s)", task_id, type(exc).__name__)

    async def answered(self, key: str, task_id: str) -> None:
        try:
            await self._hub.forget(self._prefix + key, task_id)
        except Exception as exc:
            logger.warning("Could not update the retried-job registry (%s)", type(exc).__name__)


class RedisPolls:
    """`PollSharing` on Redis: one poller per task (a lease), its reads published to the lane."""

    def __init__(self, hub: RedisHub, lane: str) -> None:
        self._hub = hub
        self._lane = lane
        self._prefix = f"{KEY_PREFIX}poll:{lane}:"

    async def claim(self, ids: list[str]) -> list[str]:
        try:
            mine = await self._hub.claim([self._prefix + task_id for task_id in ids])
        except Exception as exc:
            # Polling twice costs reads; not polling at all would strand the waits.
            logger.warning("Could not share the polling through Redis (%s); polling every task.", type(exc).__name__)
            return ids
        return [ids[i - 1] for i in mine]

    async def publish(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        try:
            await self._hub.publish_many(self._lane, SNAPSHOT, [task.model_dump_json().encode() for task in tasks])
        except Exception as exc:
            logger.warning("Could not publish polled tasks to Redis (%s)", type(exc).__name__)
