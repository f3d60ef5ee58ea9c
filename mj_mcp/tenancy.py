"""Who is calling, with MJ_CLIENT_KEYS: each HTTP client's upstream key, and its tenant.

A client sends its upstream key as `Authorization: Bearer <key>`, or as `X-Mj-Api-Key: <key>`
(the only way when MJ_MCP_TOKEN guards the endpoint, since Authorization then carries that
token). `TenantMiddleware` reads it from every HTTP request (a request without one is a 401 with
a JSON message, before the MCP app sees it) and binds its `Tenant` for as long as the request is
served. The SDK runs each MCP message in the context of the HTTP request that carried it (the
same path its own `get_access_token()` takes), so `current_tenant()` names the caller in every
handler: tools, resources (static ones too, which get no Context), subscriptions.

A tenant is known by `Tenant.id`, an HMAC-SHA256 of the key under a secret drawn once per process:
stable for one key while the process runs, useless for finding the key, and different in every
process. The id is what the server keeps, logs and writes in the audit log; the key itself stays
in the tenant's own upstream client and never appears in any output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "KEY_HEADER",
    "Tenant",
    "TenantHasher",
    "TenantMiddleware",
    "current_tenant",
    "key_from_headers",
    "serving_tenant",
]

KEY_HEADER: Final = "x-mj-api-key"
"""The header that carries a client's upstream key when Authorization carries MJ_MCP_TOKEN."""
MAX_KEY_CHARS: Final = 512
"""Longer than any upstream key; a longer value is refused rather than hashed and kept."""
_ID_HEX: Final = 32
"""128 bits of the HMAC: no two keys of this world collide, and log lines stay short."""

_CURRENT: ContextVar[Tenant | None] = ContextVar("mj_mcp_tenant", default=None)


@dataclass(frozen=True, slots=True)
class Tenant:
    """One client's upstream key and its keyed hash. `repr` and `str` show the id only."""

    id: str
    key: str = field(repr=False)

    def __str__(self) -> str:
        return self.id


class TenantHasher:
    """Turns keys into tenant ids with a secret of this process (HMAC-SHA256)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def tenant_of(self, key: str) -> Tenant:
        return Tenant(self.digest(key)[:_ID_HEX], key)

    def digest(self, text: str) -> str:
        """The keyed hash of any text (callback paths are derived the same way)."""
        return hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def current_tenant() -> Tenant | None:
    """The tenant whose request is being served (None outside a request, or without MJ_CLIENT_KEYS)."""
    return _CURRENT.get()


@contextmanager
def serving_tenant(tenant: Tenant | None) -> Generator[None]:
    """Bind `tenant` as the caller while the block runs."""
    token = _CURRENT.set(tenant)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def key_from_headers(headers: list[tuple[bytes, bytes]], *, guarded: bool) -> str | None:
    """The upstream key a request carries, or None (no key, a blank one, or one that cannot be a key).

    `X-Mj-Api-Key` always counts; `Authorization: Bearer <key>` only when no MJ_MCP_TOKEN guards
    the endpoint (`guarded`), since it then carries that token.
    """
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        found.setdefault(name.lower(), value)
    raw = found.get(KEY_HEADER.encode())
    if raw is None and not guarded:
        authorization = found.get(b"authorization", b"")
        if authorization[:7].lower() == b"bearer ":
            raw = authorization[7:]
    if raw is None:
        return None
    try:
        key = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        return None
    return key


class TenantMiddleware:
    """Binds each HTTP request's tenant; answers 401 to a request without an upstream key.

    `open_paths` (the health check) need no key. It sits inside the MJ_MCP_TOKEN check: a
    request is first let in, then told whose key it spends.
    """

    def __init__(self, app: ASGIApp, hasher: TenantHasher, *, guarded: bool, open_paths: frozenset[str]) -> None:
        self.app = app
        self._hasher = hasher
        self._guarded = guarded
        self._open = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._open:
            await self.app(scope, receive, send)
            return
        key = key_from_headers(scope.get("headers", []), guarded=self._guarded)
        if key is None:
            await self._refuse(scope, receive, send)
            return
        with serving_tenant(self._hasher.tenant_of(key)):
            await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = (
            "X-Mj-Api-Key: <your upstream key> (Authorization carries MJ_MCP_TOKEN here)"
            if self._guarded
            else "Authorization: Bearer <your upstream key> (or X-Mj-Api-Key: <key>)"
        )
        body = json.dumps(
            {
                "error": "upstream_key_required",
                "message": f"This server uses each client's own Midjourney-proxy key. Send {where}.",
            }
        )
        response = Response(
            body, status_code=401, media_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="mj-mcp"'}
        )
        await response(scope, receive, send)
