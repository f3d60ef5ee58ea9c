"""Serving the MCP server over HTTP: Streamable HTTP (`/mcp`) or SSE, plus `/health`.

Guards, outermost first: bounds on requests in flight, in all and per client address (503 and
429; `httplimits.RequestLimits`); a request-body cap on every route (`max_request_bytes`: 413 for a
declared or streamed body beyond it); a bearer-token check (when `MJ_MCP_TOKEN` is set) on every
route but `/health`, compared in constant time; with MJ_CLIENT_KEYS, the client's upstream key
(`tenancy.TenantMiddleware`: 401 without one; the request is then served as that tenant); then
the SDK's DNS-rebinding protection, which only lets through the Host/Origin values of loopback
and `MJ_ALLOWED_HOSTS`. Binding a non-loopback address without a token is refused before anything
listens, unless MJ_CLIENT_KEYS makes every client spend its own key. Under all of them,
uvicorn runs `httplimits`' protocol: request heads and bodies have read deadlines, and the open
connections are capped below the file-descriptor limit.

The app's lifespan opens the server's one Runtime (`SharedRuntime`), which every session then
shares, SSE connections included.

`/health` answers 503 once the app's lifespan has ended (the MCP session manager and the server's
background tasks died, or the server is shutting down), so a load balancer replaces the instance
instead of sending clients to a server whose every call fails.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mj_mcp import __version__
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.config import Settings
from mj_mcp.errors import SettingsError
from mj_mcp.httplimits import RequestLimits, guarded_protocol
from mj_mcp.server import MjServer
from mj_mcp.tenancy import TenantHasher, TenantMiddleware

__all__ = [
    "BodySizeLimitMiddleware",
    "SharedRuntime",
    "build_http_app",
    "check_bind",
    "http_callbacks",
    "max_request_bytes",
    "serve_http",
]

OPEN_PATHS: Final = frozenset({"/health"})
MAX_INLINE_IMAGES: Final = 5
"""The most images one job takes inline: blend's base64Array (upload_images' longer lists are
better sent in batches, or as file paths and URLs, which cost no request bytes)."""
REQUEST_OVERHEAD_BYTES: Final = 1024 * 1024
"""Room around the images: the JSON-RPC envelope, data-URI prefixes and the other arguments."""


def max_request_bytes(settings: Settings) -> int:
    """The largest HTTP request body accepted: the largest legitimate tool call, a blend of
    `MAX_INLINE_IMAGES` images of `MJ_MAX_IMAGE_BYTES` each as base64 (4/3 of the bytes), plus
    `REQUEST_OVERHEAD_BYTES` (about 68 MiB with the 10 MiB default)."""
    return MAX_INLINE_IMAGES * math.ceil(settings.max_image_bytes * 4 / 3) + REQUEST_OVERHEAD_BYTES


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine: `localhost`, or a loopback IP (`[::1]` too)."""
    if host.strip("[]") in {"localhost", "::1"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to listen on a non-loopback address without a token (or client keys: then each
    client's own upstream key is what it spends, and the token is optional)."""
    if not is_loopback(settings.host) and settings.mcp_token is None and not settings.client_keys:
        raise SettingsError(
            f"Refusing to listen on {settings.host} without a token: anyone who can reach it could spend your "
            "credits. Set MJ_MCP_TOKEN (clients then send 'Authorization: Bearer <token>'), or bind 127.0.0.1."
        )


class BearerTokenMiddleware:
    """401 for every request without the right `Authorization: Bearer <token>` (but /health)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self._expected):
            body = json.dumps({"error": "unauthorized", "message": "Send Authorization: Bearer <MJ_MCP_TOKEN>."})
            response = Response(
                body,
                status_code=401,
                media_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="mj-mcp"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised into the app when the body it is reading grows past the cap."""


class BodySizeLimitMiddleware:
    """413 with a short JSON error for a request body larger than `max_bytes`.

    This is the outer of three body-size layers. The SDK's own `max_request_body_size` caps
    `/mcp` (and the SSE message route) at the same size, but only for the routes it serves;
    this middleware covers every route of the app, `/health` and custom routes included; and
    the callback route reads its bodies with a much smaller cap of its own
    (`callbacks.MAX_CALLBACK_BYTES`). It guards a stream rather than reading one: the app reads
    the body itself, and this only counts what passes.

    A declared `Content-Length` beyond the cap is answered before the app runs. A body without
    one (chunked) is counted as the app reads it: the read that crosses the cap raises inside
    the app, whatever the app answers is dropped, and the 413 is sent instead. Nothing is
    buffered here. An app that had already started its reply cannot be answered 413 any more:
    the error is left to end the request, and the server drops the connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length" and value.strip().isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the app's reaction to the cut-off body; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large or started:
                raise  # the app's own error, or too late for a 413
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(
            {
                "error": "request_too_large",
                "message": f"The request body is larger than {self.max_bytes} bytes. Pass large images as "
                "file paths or URLs, or fewer per call (the limit follows MJ_MAX_IMAGE_BYTES).",
            }
        )
        response = Response(body, status_code=413, media_type="application/json", headers={"Connection": "close"})
        await response(scope, receive, send)


def _security(settings: Settings) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    for host in settings.allowed_hosts:
        if host.startswith(("http://", "https://")):
            origins.append(host)
            continue
        hosts.extend([host, f"{host}:*"])
        origins.extend([f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"])
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class Liveness:
    """Whether the app still serves: False once its lifespan has ended, for whatever reason."""

    def __init__(self) -> None:
        self.ended = False


class LifespanWatch:
    """Marks `liveness` ended when the app's lifespan returns or raises.

    The lifespan holds the server's Runtime with its background tasks (`SharedRuntime`), and with
    Streamable HTTP the MCP session manager too; if one of them dies, the lifespan ends with it while
    uvicorn keeps answering, and every MCP request then fails ("Task group is not initialized").
    An app served without a lifespan (an in-process test client) counts as serving.
    """

    def __init__(self, app: ASGIApp, liveness: Liveness) -> None:
        self.app = app
        self.liveness = liveness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.liveness.ended = True


class SharedRuntime:
    """Opens the server's one Runtime around the app's lifespan, for every session to share.

    The SDK runs the server's own lifespan once per SSE connection (and once for Streamable HTTP,
    inside the app's lifespan); opened here instead, one client, watcher, callback receiver and
    simulator serve every session, and a task started in one is found from any other. It opens
    before the inner lifespan starts (the sessions attach to it) and closes after that ends,
    before uvicorn hears that shutdown is complete: the upstream client and audit log close in full.
    """

    def __init__(self, app: ASGIApp, server: MjServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def send_after_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                held.append(message)
                return
            await send(message)

        async with self.server.shared_runtime():
            await self.app(scope, receive, send_after_closing)
        for message in held:
            await send(message)


class CallbackRoute:
    """Sends the upstream's callbacks (under /mj-callback/) to the receiver, everything else on.

    It sits outside the token check: the upstream cannot send our token, and the receiver's
    unguessable path is the credential there.
    """

    def __init__(self, app: ASGIApp, receiver: CallbackReceiver) -> None:
        self.app = app
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.receiver.owns(scope.get("path", "")):
            await self.receiver(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_http_app(server: MCPServer[Any], settings: Settings, *, callbacks: CallbackReceiver | None = None) -> ASGIApp:
    """The ASGI app for `settings.transport` (streamable-http or sse), with its guards."""
    liveness = Liveness()

    @server.custom_route("/health", methods=["GET"])
    async def health(_request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        if liveness.ended:
            return JSONResponse({"status": "unavailable", "name": "mj-mcp", "version": __version__}, status_code=503)
        return JSONResponse({"status": "ok", "name": "mj-mcp", "version": __version__})

    security = _security(settings)
    if settings.transport == "sse":
        app: ASGIApp = server.sse_app(
            transport_security=security, host=settings.host, max_request_body_size=max_request_bytes(settings)
        )
    else:
        app = server.streamable_http_app(
            stateless_http=settings.stateless,
            transport_security=security,
            host=settings.host,
            max_request_body_size=max_request_bytes(settings),  # the SDK's default 4 MiB refuses a blend
        )
    if isinstance(server, MjServer):  # another MCPServer (a test's) keeps its own lifespan
        app = SharedRuntime(app, server)
    app = LifespanWatch(app, liveness)
    if settings.client_keys:
        guarded = settings.mcp_token is not None
        app = TenantMiddleware(app, TenantHasher(_tenant_secret(settings)), guarded=guarded, open_paths=OPEN_PATHS)
    if settings.mcp_token is not None:
        app = BearerTokenMiddleware(app, settings.mcp_token.get_secret_value())
    if callbacks is not None:
        app = CallbackRoute(app, callbacks)
    return RequestLimits(BodySizeLimitMiddleware(app, max_request_bytes(settings)))


def http_callbacks(settings: Settings) -> CallbackReceiver | None:
    """The callback receiver an HTTP server mounts (None without MJ_PUBLIC_URL).

    With MJ_REDIS_URL it is shared: its paths come from the instances' shared secret, and a
    callback it takes is published to whichever instance waits on the task (mj_mcp.sharedcallbacks).
    Raises `SettingsError` when that Redis cannot be reached.
    """
    if settings.public_url is None:
        return None
    if settings.redis_url is None:
        return CallbackReceiver(settings.public_url, redact=settings.key_forms())
    from mj_mcp.redisstate import start
    from mj_mcp.sharedcallbacks import SharedCallbacks

    shared = start(settings)
    return SharedCallbacks(settings.public_url, key=shared.key_for("callbacks"), redact=settings.key_forms())


def _tenant_secret(settings: Settings) -> bytes | None:
    """The secret of tenant ids: drawn per process, or with MJ_REDIS_URL the one all instances
    share (a tenant must have one id on every instance: its lanes, counts and callbacks)."""
    if settings.redis_url is None:
        return None
    from mj_mcp.redisstate import start

    return start(settings).key_for("tenants")


def serve_http(server: MCPServer[Any], settings: Settings, *, callbacks: CallbackReceiver | None = None) -> None:
    """Listen until interrupted."""
    import uvicorn

    check_bind(settings)
    if settings.redis_url is not None:
        from mj_mcp.redisstate import start

        start(settings)  # an unreachable Redis stops the start here, before anything listens
    app = build_http_app(server, settings, callbacks=callbacks)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        http=guarded_protocol(),
        lifespan="on",  # a Runtime that fails to open stops the server ("auto" would serve without it)
    )
