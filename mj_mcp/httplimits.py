"""What one slow or greedy HTTP client can hold: read timeouts, a connection cap, request bounds.

Two layers, used by both HTTP listeners (the MCP app in `transports.py` and the stdio callback
listener in `callbacks.py`):

- `guarded_protocol()`: uvicorn's h11 protocol with read deadlines and a connection cap. uvicorn
  itself waits forever for a request head (its keep-alive timer only runs between requests), so
  a client that sends half a request line and stalls keeps its socket, and 1,000 such clients
  exhaust the file descriptors. Here a request head must be complete within `HEADER_TIMEOUT` of
  its first byte (or of the connection opening), and a request body may not stall for more than
  `BODY_IDLE_TIMEOUT` between two reads (a total body deadline would cut off a slow but honest
  upload of a 68 MiB blend); past either, the connection is closed. At most `connection_cap()`
  connections are open: a new connection over the cap evicts the oldest connection that is
  still sending its head or idling between requests, so slow-header clients lose their slots to
  newcomers (a health probe sends its head at once and is never the oldest), while a connection
  whose request is being served, such as a long-lived MCP stream, is never evicted. Only when
  every slot serves a request is the newcomer closed.
- `RequestLimits` (ASGI): at most `MAX_REQUESTS` requests in flight (503 past it) and at most
  `MAX_REQUESTS_PER_CLIENT` per client address (429 past it). `/health` counts for neither, so a
  load balancer's probe is answered however busy the server is.

Why these numbers: an MCP session holds one request per tool call in flight (a waiting call
keeps its POST open up to `MJ_WAIT_TIMEOUT`) plus one or two streams (the Streamable HTTP GET
stream, or SSE's GET). An agent runs a few calls at once; 256 per address leaves room for 200
concurrent calls in one session (tested in test_http_load.py), and every local client shares
the one loopback address. 512 in all keeps two such clients busy. The connection cap follows the
process's file-descriptor limit (three quarters of it, at most 1,024), leaving a quarter for the
upstream connections, image files and the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, ClassVar, Final, cast

import h11
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = [
    "BODY_IDLE_TIMEOUT",
    "HEADER_TIMEOUT",
    "MAX_REQUESTS",
    "MAX_REQUESTS_PER_CLIENT",
    "GuardedH11Protocol",
    "RequestLimits",
    "connection_cap",
    "guarded_protocol",
]

logger = logging.getLogger(__name__)

HEADER_TIMEOUT: Final = 10.0
"""Seconds for a whole request head; a real client sends it in one packet."""
BODY_IDLE_TIMEOUT: Final = 30.0
"""Seconds a request body may stall between two reads (like nginx's client_body_timeout)."""
MAX_CONNECTIONS: Final = 1024
"""The connection cap when the file-descriptor limit allows more."""
MIN_CONNECTIONS: Final = 32
MAX_REQUESTS: Final = 512
MAX_REQUESTS_PER_CLIENT: Final = 256
EXEMPT_PATHS: Final = frozenset({"/health"})


def connection_cap() -> int:
    """Three quarters of the soft file-descriptor limit, between `MIN_CONNECTIONS` and `MAX_CONNECTIONS`."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return MAX_CONNECTIONS
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft * 3 // 4))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a head deadline, a body idle timeout and a connection cap."""

    header_timeout: ClassVar[float] = HEADER_TIMEOUT
    body_idle_timeout: ClassVar[float] = BODY_IDLE_TIMEOUT
    max_connections: ClassVar[int] = MAX_CONNECTIONS

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = False
        self._opened = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._reading_head = True
        self._arm(self.header_timeout)
        self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Arm the deadline that fits where the client is in its request."""
        state = self.conn.their_state
        if state is h11.IDLE:
            # A head has begun; its deadline runs from its first byte and is not pushed back
            # by later bytes (a slowloris client sends one byte at a time).
            if not self._reading_head:
                self._reading_head = True
                self._arm(self.header_timeout)
            return
        self._reading_head = False
        if state is h11.SEND_BODY:
            self._arm(self.body_idle_timeout)  # restarted by every read
        else:
            self._disarm()  # the request is in; answering it is the app's business

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.flow.read_paused:
            # The app, not the client, is behind on the body: give it the time again.
            self._arm(self.body_idle_timeout)
            return
        logger.debug("Closed a connection from %s that stalled while sending its request", self.client)
        self.transport.close()

    def _evictable(self) -> bool:
        """Still sending a head, or idle between requests (a keep-alive connection)."""
        return not self.transport.is_closing() and self.conn.their_state is h11.IDLE

    def _make_room(self) -> None:
        if len(self.connections) <= self.max_connections:
            return
        peers = cast("set[object]", self.connections)  # uvicorn types it loosely
        idle = [c for c in peers if isinstance(c, GuardedH11Protocol) and c is not self and c._evictable()]
        victim = min(idle, key=lambda c: c._opened, default=self)
        logger.debug("Over %s connections: closed one from %s", self.max_connections, victim.client)
        victim.transport.close()


def guarded_protocol(
    *,
    header_timeout: float = HEADER_TIMEOUT,
    body_idle_timeout: float = BODY_IDLE_TIMEOUT,
    max_connections: int | None = None,
) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class with these limits, for `uvicorn.Config(http=...)`.

    `max_connections` defaults to `connection_cap()`, read now (the limit of the process that serves).
    """
    cap = connection_cap() if max_connections is None else max_connections

    class Guarded(GuardedH11Protocol):
        pass

    Guarded.header_timeout = header_timeout
    Guarded.body_idle_timeout = body_idle_timeout
    Guarded.max_connections = cap
    return Guarded


class RequestLimits:
    """503 past `total` requests in flight, 429 past `per_client` from one address; `/health` exempt."""

    def __init__(self, app: ASGIApp, *, total: int = MAX_REQUESTS, per_client: int = MAX_REQUESTS_PER_CLIENT) -> None:
        self.app = app
        self.total = total
        self.per_client = per_client
        self._open: Counter[str] = Counter()
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else ""
        if self._in_flight >= self.total:
            await _refuse(503, "busy", "The server is at its limit of requests in flight; retry shortly.")(
                scope, receive, send
            )
            return
        if self._open[address] >= self.per_client:
            message = f"At most {self.per_client} requests from one client at a time; wait for some to finish."
            await _refuse(429, "too_many_requests", message)(scope, receive, send)
            return
        self._in_flight += 1
        self._open[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._in_flight -= 1
            self._open[address] -= 1
            if not self._open[address]:
                del self._open[address]


def _refuse(status: int, error: str, message: str) -> Response:
    body = json.dumps({"error": error, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers={"Retry-After": "1"})
