"""Serving the MCP server over HTTP: Streamable HTTP (`/mcp`) or SSE, plus `/health`.

Guards, outermost first: a bearer-token check (when `MJ_MCP_TOKEN` is set) on every route but
`/health`, compared in constant time; then the SDK's DNS-rebinding protection, which only lets
through the Host/Origin values of loopback and `MJ_ALLOWED_HOSTS`. Binding a non-loopback
address without a token is refused before anything listens.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mj_mcp import __version__
from mj_mcp.config import Settings
from mj_mcp.errors import SettingsError

__all__ = ["build_http_app", "check_bind", "serve_http"]

OPEN_PATHS: Final = frozenset({"/health"})
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    if host.strip("[]") in {"localhost", "::1"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to listen on a non-loopback address without a token."""
    if not is_loopback(settings.host) and settings.mcp_token is None:
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


def build_http_app(server: MCPServer[Any], settings: Settings) -> ASGIApp:
    """The ASGI app for `settings.transport` (streamable-http or sse), with its guards."""

    @server.custom_route("/health", methods=["GET"])
    async def health(_request: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        return JSONResponse({"status": "ok", "name": "mj-mcp", "version": __version__})

    security = _security(settings)
    if settings.transport == "sse":
        app: ASGIApp = server.sse_app(transport_security=security, host=settings.host)
    else:
        app = server.streamable_http_app(
            stateless_http=settings.stateless,
            transport_security=security,
            host=settings.host,
        )
    if settings.mcp_token is not None:
        app = BearerTokenMiddleware(app, settings.mcp_token.get_secret_value())
    return app


def serve_http(server: MCPServer[Any], settings: Settings) -> None:
    """Listen until interrupted."""
    import uvicorn

    check_bind(settings)
    app = build_http_app(server, settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
    )
