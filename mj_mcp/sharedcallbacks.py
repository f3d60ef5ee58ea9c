"""The callback route of instances that share Redis (MJ_REDIS_URL).

The upstream POSTs a task's callback to the balancer, which hands it to any instance; the wait on
that task may be held by another. So an instance that takes a callback does not hand it to its
own watcher: it checks the path and the body, publishes the body on the lane's Redis channel,
and every instance serving that lane (the one taking it included) hands it to its watcher
(`RedisHub.deliver`).

So that any instance can check a path, paths are derived from the secret all instances share:
the one-key server's is `/mj-callback/<hmac(shared, "root")>`, and a tenant's
`/mj-callback/<tenant id>.<hmac(shared, tenant id)>`, so that an instance that never served the
tenant still knows the path is real (and the tenant it belongs to) without asking Redis. As on
one process, a path is only ever compared in constant time, and anything but a well-formed Task
POSTed to a real path is refused before it reaches Redis.

Any instance may hold the wait on a task another one submitted, so a shared lane accepts a
callback for any task its watcher is waiting on (`expects` is always true; the watcher ignores
tasks it does not watch): the path secret, per tenant, is still the credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.responses import JSONResponse

from mj_mcp import replies
from mj_mcp.callbacks import CALLBACK_PREFIX, CallbackReceiver, read_callback_body
from mj_mcp.errors import ProtocolError
from mj_mcp.models import Task

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["Publish", "SharedCallbacks"]

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
"""Publish a callback body on a lane's channel ("" is the one-key server's lane)."""

_TENANT_PATH: Final = re.compile(r"^(?P<tenant>[0-9a-f]{32})\.(?P<mac>[A-Za-z0-9_-]{43})$")


def _mac(key: bytes, text: str) -> str:
    return base64.urlsafe_b64encode(hmac.digest(key, text.encode(), hashlib.sha256)).decode().rstrip("=")


class _SharedLane(CallbackReceiver):
    """A tenant's receiver on a shared server: takes callbacks for whatever its watcher waits on."""

    def expects(self, task_id: str) -> bool:
        return True


class SharedCallbacks(CallbackReceiver):
    """The callback receiver of an instance among several (see the module docstring)."""

    def __init__(self, public_url: str, *, key: bytes, redact: tuple[str, ...] = ()) -> None:
        super().__init__(public_url, secret=_mac(key, "root"), redact=redact)
        self._key = key
        self._tenants: dict[str, _SharedLane] = {}
        self._publish: Publish | None = None

    def connect(self, publish: Publish | None) -> None:
        """Publish taken callbacks with `publish` (None while the server is not running)."""
        self._publish = publish

    def expects(self, task_id: str) -> bool:
        return True

    def lane(self, name: str, *, redact: tuple[str, ...] = ()) -> CallbackReceiver:
        child = _SharedLane(self._public_url, secret=f"{name}.{_mac(self._key, name)}", redact=redact)
        return self._tenants.setdefault(name, child)

    def drop_lane(self, child: CallbackReceiver) -> None:
        for name, held in list(self._tenants.items()):
            if held is child:
                del self._tenants[name]
        child.attach(None)

    def receiver_of(self, lane: str) -> CallbackReceiver | None:
        """The receiver serving `lane` on this instance ("" is this receiver's own), if any."""
        return self if not lane else self._tenants.get(lane)

    def lane_of(self, path: str) -> str | None:
        """The lane a callback path belongs to ("" for the one-key server's), None for no real path."""
        rest = path.removeprefix(CALLBACK_PREFIX)
        if secrets.compare_digest(path.encode(), self.path.encode()):
            return ""
        found = _TENANT_PATH.match(rest)
        if found is None:
            return None
        tenant = found["tenant"]
        return tenant if secrets.compare_digest(found["mac"].encode(), _mac(self._key, tenant).encode()) else None

    # -- the route -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            status, body, headers = await self._respond_shared(scope, receive)
        except Exception:
            logger.exception("Failed to pass on an upstream callback")
            status, body, headers = 500, {"error": "internal error"}, None
        await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

    async def _respond_shared(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], dict[str, str] | None]:
        lane = self.lane_of(scope.get("path", ""))
        if lane is None:
            return 404, {"error": "not found"}, None
        if scope.get("method") != "POST":
            return 405, {"error": "method not allowed"}, {"allow": "POST"}
        body = await read_callback_body(scope, receive)
        if body is None:
            self.refused += 1
            return 413, {"error": "body too large"}, None
        try:
            # Checked as one process checks it; the instances serving the lane parse it again,
            # each with the tenant's key to mask (only they hold it).
            if not replies.parse(replies.Reply(200, body), Task, "a task").id:
                raise ValueError("no id")
        except (ValueError, ProtocolError):
            self.refused += 1
            return 400, {"error": "expected one JSON Task"}, None
        if self._publish is None:
            return 503, {"error": "not running"}, None
        await self._publish(lane, body)
        self.accepted += 1
        return 200, {"ok": True, "taken": True}, None
