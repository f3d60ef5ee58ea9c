"""Fault injection: a broken network or gateway in front of the upstream.

A fault replaces the reply of the next matching requests with an HTTP error, malformed JSON, an
empty body or a proxy's HTML error page, holds it back on the simulator's clock (a slow
upstream), or breaks the connection: refused, reset mid-reply, or timed out, raised inside the
app as the httpx2 errors a network would cause, which the in-process transport passes on to the
client (over real HTTP the connection is dropped). Faults act before auth and routing, as a
gateway in front of the upstream would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx2
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mj_mcp.simulator.wire import http_reason

__all__ = ["Fault", "FaultKind", "Faults"]

FaultKind = Literal[
    "status",
    "malformed_json",
    "empty_body",
    "html_error_page",
    "slow",
    "connect_error",
    "connection_reset",
    "read_timeout",
]


@dataclass(slots=True)
class Fault:
    """Replace the reply of the next `times` requests whose path contains `path`.

    `times=None` keeps the fault until `Simulator.clear_faults()`. With `process_request=True`
    the request is handled first (a job is created) and only its reply is lost, which is how a
    gateway timeout after a successful submit looks to a client. Faults act before auth and
    routing, as a gateway in front of the upstream would.

    Kinds: "status" (an HTTP error, `body` as plain text), "malformed_json", "empty_body",
    "html_error_page" (a proxy's error page), and the network faults an HTTP reply cannot carry:

    - "slow": the normal reply, only `delay` seconds late.
    - "connect_error": the connection is refused, nothing reaches the upstream (and nothing is
      logged in `request_log`); the client sees `httpx2.ConnectError`.
    - "connection_reset": the connection drops after the reply's head; the client sees
      `httpx2.ReadError`. Over real HTTP the peer closes the connection mid-reply.
    - "read_timeout": the reply never comes; the client sees `httpx2.ReadTimeout` at once (no
      real waiting). Over real HTTP the connection drops; use "slow" with a `delay` longer than
      the client's timeout for a genuine one.

    `delay` holds any fault's reply back that many seconds: the simulator's clock is asked to
    sleep, so a test's clock moves on at once and only the wall clock really waits. In-process
    network faults are exceptions raised inside the app, which `Simulator.transport()` passes on
    to the client as a real transport would.
    """

    path: str = ""
    status: int | None = None
    """HTTP status; default 500 for "status", 200 for the body faults, 502 for an HTML page."""
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: dict[str, str]())
    kind: FaultKind = "status"
    times: int | None = 1
    method: str | None = None
    process_request: bool = False
    delay: float = 0.0
    """Seconds the reply is held back (any kind), on the simulator's clock."""

    def matches(self, method: str, path: str) -> bool:
        return self.path in path and (self.method is None or self.method.upper() == method)

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.kind == "connection_reset":
            return _BrokenReply(httpx2.ReadError("connection reset by peer (simulated fault)"), self.status or 200)
        if self.kind == "read_timeout":
            return _BrokenReply(httpx2.ReadTimeout("timed out reading the reply (simulated fault)"), self.status or 200)
        if self.kind == "malformed_json":
            body = self.body if self.body is not None else '{"code":1,"description":"提交成功","result":"17'
            return Response(body, self.status or 200, headers, "application/json")
        if self.kind == "empty_body":
            return Response(b"", self.status or 200, headers, "application/json")
        if self.kind == "html_error_page":
            status = self.status or 502
            title = f"{status} {http_reason(status)}"
            page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )
            return Response(self.body if self.body is not None else page, status, headers, "text/html")
        media = "text/plain; charset=utf-8" if self.body else None
        return Response(self.body or b"", self.status or 500, headers, media)


class _BrokenReply(Response):
    """A reply whose head is sent and whose connection then breaks with `error`."""

    def __init__(self, error: httpx2.TransportError, status: int) -> None:
        super().__init__(status_code=status)
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A promised body that never comes: uvicorn then drops the connection, and the
        # in-process transport passes the error on.
        head = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": self.status_code, "headers": head})
        raise self.error


@dataclass(slots=True)
class _Armed:
    fault: Fault
    remaining: int | None


class Faults:
    """The faults waiting for their requests, in the order they were injected."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def inject(self, *faults: Fault) -> None:
        for fault in faults:
            self._armed.append(_Armed(fault, fault.times))

    def clear(self) -> None:
        self._armed.clear()

    @property
    def pending(self) -> list[Fault]:
        return [armed.fault for armed in self._armed]

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching the request, used up once."""
        for armed in self._armed:
            if armed.fault.matches(method, path):
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._armed.remove(armed)
                return armed.fault
        return None
