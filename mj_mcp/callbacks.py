"""The `notifyHook` route: upstream callbacks for the tasks this process submitted.

With `MJ_PUBLIC_URL` set, every submit carries `notifyHook = MJ_PUBLIC_URL + /mj-callback/<secret>`,
where the secret is drawn once per process. The upstream POSTs the whole Task JSON there on
each status or progress change (no auth header, no signature, no retries), so the secret path
is the only credential, and the body is treated as hostile:

- only `POST` to the exact secret path is served (anything else: 404, without saying why);
- bodies over `MAX_CALLBACK_BYTES` are refused with 413 before they are read in full;
- a body must be one JSON Task with an id; anything else (not JSON, not UTF-8, nested too deep
  to parse, the wrong shape) is 400 with a short JSON error, and an unexpected failure while
  taking one is a 500 of the same kind: no body can break the route;
- a Task this process did not submit is ignored (202): a callback can move a task we are
  already waiting for, never create one;
- duplicates and reordering are settled by the watcher (status order, then progress).

With MJ_CLIENT_KEYS each tenant has a receiver of its own (`lane`): its own path, derived from
this receiver's secret and the tenant id (HMAC), so that it cannot be guessed or forged from
another tenant's; its own submitted tasks; its own watcher. The route finds the lane by path, and
a callback on one tenant's path names only that tenant's tasks: another tenant's task id there is
ignored like any task the lane did not submit.

The route is served inside the HTTP app on the HTTP transports, and by a small listener of its
own (`serve`) on stdio, which runs under the same connection limits as the HTTP app
(`httplimits`: read deadlines, a connection cap, requests in flight bounded per address).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
from starlette.responses import JSONResponse

from mj_mcp import replies
from mj_mcp.errors import ProtocolError
from mj_mcp.models import Task
from mj_mcp.streams import declared_too_large, read_capped

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from mj_mcp.waiting import TaskWatcher

__all__ = ["CALLBACK_PREFIX", "MAX_CALLBACK_BYTES", "CallbackReceiver", "read_callback_body", "serve"]

logger = logging.getLogger(__name__)

CALLBACK_PREFIX: Final = "/mj-callback/"
MAX_CALLBACK_BYTES: Final = 256 * 1024
"""A Task with every field, buttons and long prompts is a few KB; nothing legitimate is near this."""
REMEMBERED_TASKS: Final = 10_000
"""How many submitted task ids are remembered for callbacks (oldest forgotten first)."""


class CallbackReceiver:
    """Receives upstream callbacks (an ASGI app) and hands them to the watcher."""

    def __init__(
        self,
        public_url: str,
        *,
        secret: str | None = None,
        remember: int = REMEMBERED_TASKS,
        redact: tuple[str, ...] = (),
    ) -> None:
        self.secret = secret or secrets.token_urlsafe(32)
        self._redact = redact
        """Spellings of the upstream key (`replies.secret_forms`): masked in every callback's strings,
        as in every reply, so that an upstream echoing the key cannot leak it through a callback."""
        self.path = CALLBACK_PREFIX + self.secret
        self._public_url = public_url.rstrip("/")
        self.hook_url = self._public_url + self.path
        self._remember = remember
        self._lanes: dict[str, CallbackReceiver] = {}
        """The tenants' receivers, by path."""
        self._submitted: OrderedDict[str, None] = OrderedDict()
        self._watcher: TaskWatcher | None = None
        self.accepted = 0
        """Callbacks for a task of ours that the watcher took."""
        self.ignored = 0
        """Well-formed callbacks for tasks this process did not submit."""
        self.refused = 0
        """Callbacks refused as malformed or oversized."""

    def attach(self, watcher: TaskWatcher | None) -> None:
        """Route callbacks to `watcher` (None while the server is not running)."""
        self._watcher = watcher

    def expect(self, task_id: str) -> None:
        """Remember a task this process submitted, so that its callbacks are taken."""
        self._submitted[task_id] = None
        self._submitted.move_to_end(task_id)
        while len(self._submitted) > self._remember:
            self._submitted.popitem(last=False)

    def expects(self, task_id: str) -> bool:
        return task_id in self._submitted

    def lane(self, name: str, *, redact: tuple[str, ...] = ()) -> CallbackReceiver:
        """The receiver of one tenant (made on first use): its own path, tasks and watcher; this
        receiver's route serves it. `redact` is that tenant's key, to mask in its callbacks."""
        secret = base64.urlsafe_b64encode(hmac.digest(self.secret.encode(), name.encode(), hashlib.sha256))
        child = CallbackReceiver(
            self._public_url, secret=secret.decode().rstrip("="), remember=self._remember, redact=redact
        )
        return self._lanes.setdefault(child.path, child)

    def drop_lane(self, child: CallbackReceiver) -> None:
        """Stop serving a tenant's receiver (the tenant was let go)."""
        if self._lanes.get(child.path) is child:
            del self._lanes[child.path]
        child.attach(None)

    def owns(self, path: str) -> bool:
        """True for paths this receiver answers (its own, and guesses at it, which get 404)."""
        return path.startswith(CALLBACK_PREFIX)

    # -- the route -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._respond(scope, receive)
        except Exception:
            # A bug of ours must not look like the upstream's fault, nor take the route down.
            logger.exception("Failed to take an upstream callback")
            response = _answer(500, {"error": "internal error"})
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive) -> JSONResponse:
        path: str = scope.get("path", "")
        # A lane is found by hashing the whole path (a dict), which tells a guesser nothing about
        # how much of a path was right; the receiver's own path is compared in constant time.
        taker = self._lanes.get(path)
        if taker is None and secrets.compare_digest(path.encode(), self.path.encode()):
            taker = self
        if taker is None:
            return _answer(404, {"error": "not found"})
        if scope.get("method") != "POST":
            return _answer(405, {"error": "method not allowed"}, allow="POST")
        body = await read_callback_body(scope, receive)
        if body is None:
            taker.refused += 1
            return _answer(413, {"error": "body too large"})
        status, answer = taker.take(body)
        return _answer(status, answer)

    def take(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Handle one callback body; the HTTP status and JSON answer for the upstream."""
        try:
            # Read as a reply is: nesting cut at a bounded depth, the key masked in every string.
            task = replies.parse(replies.Reply(200, body, redact=self._redact), Task, "a task")
            if not task.id:
                raise ValueError("no id")
        except (ValueError, ProtocolError):
            # Not JSON, not one Task object (a list, bad UTF-8, over-long integers), or no id.
            self.refused += 1
            return 400, {"error": "expected one JSON Task"}
        if not self.expects(task.id):
            self.ignored += 1
            logger.debug("Ignored a callback for task %s, which this server did not submit", task.id)
            return 202, {"ok": True, "taken": False}
        watcher = self._watcher
        taken = watcher is not None and watcher.push(task)
        if taken:
            self.accepted += 1
        return 200, {"ok": True, "taken": taken}


class _TooLarge(Exception):
    """The callback body is over `MAX_CALLBACK_BYTES`."""


async def read_callback_body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body, or None once it is known to exceed the cap (without reading it all)."""
    declared = next((value for name, value in scope.get("headers", []) if name.lower() == b"content-length"), None)
    if declared_too_large(declared, MAX_CALLBACK_BYTES):
        return None
    try:
        return await read_capped(_body_chunks(receive), MAX_CALLBACK_BYTES, _TooLarge)
    except _TooLarge:
        return None


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The pieces of an ASGI request body, up to the last one (or the client's disconnect)."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _answer(status: int, body: dict[str, Any], *, allow: str | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"allow": allow} if allow is not None else None)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve(
    receiver: CallbackReceiver,
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[bool] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve only the callback route on host:port until cancelled (for stdio, which has no HTTP app).

    Reports False through `task_status` (and returns) when the address cannot be bound: the
    server then runs on polling alone, which loses nothing but speed.
    """
    import uvicorn

    from mj_mcp.httplimits import RequestLimits, guarded_protocol

    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        logger.warning(
            "Callbacks are off: could not listen on %s:%s (%s). Set MJ_HOST/MJ_PORT to a free address that "
            "MJ_PUBLIC_URL leads to; until then tasks are polled.",
            host,
            port,
            exc.strerror or exc,
        )
        task_status.started(False)
        return
    # log_config=None: uvicorn's default config logs access lines to stdout, which on stdio is
    # the JSON-RPC channel. Its own loggers then go wherever ours go (stderr).
    config = uvicorn.Config(
        RequestLimits(receiver),
        http=guarded_protocol(),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
    )
    server = _quiet_server_class()(config)
    logger.info("Listening for upstream callbacks on %s:%s", host, sock.getsockname()[1])
    task_status.started(True)
    try:
        await server.serve(sockets=[sock])
    finally:
        server.should_exit = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await server.shutdown(sockets=[sock])
        sock.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for the callback route, with Nagle off.

    asyncio turns Nagle off only on sockets made with proto IPPROTO_TCP, and create_server's (so
    its accepted connections) have proto 0. uvicorn writes a reply's head and body separately;
    with Nagle on, the body waits for the head's ACK, which the upstream delays by ~40 ms, and an
    upstream that sends its callbacks one by one falls behind. Accepted connections inherit it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host.strip("[]"), port), family=family)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _quiet_server_class() -> type[Any]:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """A uvicorn server that leaves signal handling to the MCP server it runs inside."""

        def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # pyright: ignore[reportIncompatibleMethodOverride]
            return contextlib.nullcontext()

    return QuietServer
