"""A hostile upstream for the fault suite: a midjourney-proxy that misbehaves on purpose.

It plays just enough of the API (imagine, fetch, list-by-condition, the result image) to carry a
job from submit to a finished task, and each route can be switched to one misbehaviour at a time:
a garbled gzip body, a body that drips one byte a second, a redirect loop, JSON nested deeper than
any parser should follow, the key echoed in every field, a huge body, a giant image, a long
Retry-After. It runs on a real socket (`serve_hostile`), so that timing and memory are those of
a real network peer, not of an in-process transport that buffers whole replies.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

Misbehaviour = Literal[
    "none",
    "gzip_garbage",
    "drip",
    "redirect_loop",
    "deep_json",
    "echo_key",
    "huge",
    "giant_image",
    "retry_after",
    "html",
]
RouteName = Literal["submit", "fetch", "list", "image"]

TASK_ID = "1700000000000001"


def _png(side: int, colour: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, "PNG")
    return out.getvalue()


@dataclass
class HostileUpstream:
    """The upstream's state: which route misbehaves how, and what it has seen."""

    key: str = "sk-hostile-SECRET-0123456789"
    behaviour: dict[RouteName, Misbehaviour] = field(default_factory=dict[RouteName, Misbehaviour])
    drip_seconds: float = 1.0
    huge_bytes: int = 500 * 1024 * 1024
    giant_side: int = 7071
    submits: int = 0
    base_url: str = ""
    _giant: bytes | None = None

    def task(self, task_id: str = TASK_ID) -> dict[str, Any]:
        image = f"{self.base_url}/img/{task_id}.png"
        data: dict[str, Any] = {
            "id": task_id,
            "action": "IMAGINE",
            "status": "SUCCESS",
            "progress": "100%",
            "prompt": "a lighthouse",
            "promptEn": "a lighthouse",
            "description": "/imagine a lighthouse",
            "submitTime": 1,
            "startTime": 2,
            "finishTime": 3,
            "imageUrl": image,
            "failReason": "",
            "buttons": [
                {"customId": f"MJ::JOB::upsample::{i}::abc", "label": f"U{i}", "emoji": "", "style": 2, "type": 2}
                for i in range(1, 5)
            ],
            "properties": {},
        }
        if self.behaviour.get("fetch") == "echo_key" or self.behaviour.get("list") == "echo_key":
            data.update(
                prompt=f"a lighthouse {self.key}",
                description=f"/imagine {self.key}",
                failReason=f"account {self.key} refused",
                properties={"bannedWord": self.key, "finalPrompt": self.key, "notifyHook": self.key},
            )
            data["buttons"][0]["label"] = f"U1 {self.key}"
        return data

    # -- what each misbehaviour sends ---------------------------------------------------------

    def misbehave(self, route: RouteName, normal: Response, request: Request) -> Response:
        kind = self.behaviour.get(route, "none")
        if kind == "gzip_garbage":
            return Response(
                b"\x00not gzip at all\xff" * 8, headers={"content-encoding": "gzip"}, media_type="application/json"
            )
        if kind == "drip":
            return StreamingResponse(self._drip(bytes(normal.body)), media_type=normal.media_type)
        if kind == "redirect_loop":
            return RedirectResponse(str(request.url), status_code=302)
        if kind == "deep_json":
            return Response(
                b"[" * 900 + b"]" * 900 if route != "fetch" else self._deep_object(), media_type="application/json"
            )
        if kind == "huge":
            return StreamingResponse(self._huge(), media_type="application/json")
        if kind == "retry_after":
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"retry-after": "25"})
        if kind == "html":
            return Response(b"<!doctype html><title>dashboard</title>", media_type="text/html")
        return normal

    async def _drip(self, body: bytes) -> AsyncIterator[bytes]:
        for byte in body:
            yield bytes([byte])
            await anyio.sleep(self.drip_seconds)

    async def _huge(self) -> AsyncIterator[bytes]:
        piece = b'{"pad":"' + b"x" * (1024 * 1024 - 10)
        sent = 0
        while sent < self.huge_bytes:
            yield piece
            sent += len(piece)
            piece = b"x" * (1024 * 1024)

    @staticmethod
    def _deep_object() -> bytes:
        return (
            b'{"id":"' + TASK_ID.encode() + b'","status":"SUCCESS","properties":' + b'{"a":' * 900 + b"1" + b"}" * 901
        )

    def giant_png(self) -> bytes:
        if self._giant is None:
            self._giant = _png(self.giant_side)
        return self._giant

    # -- routes -------------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        await request.body()
        self.submits += 1
        reply = {"code": 1, "description": "Submitted", "result": TASK_ID, "properties": {}}
        if self.behaviour.get("submit") == "echo_key":
            reply["description"] = f"ok for {self.key}"
        return self.misbehave("submit", JSONResponse(reply), request)

    async def fetch(self, request: Request) -> Response:
        task_id = request.path_params["id"]
        return self.misbehave("fetch", JSONResponse(self.task(task_id)), request)

    async def list_tasks(self, request: Request) -> Response:
        body: Any = json.loads(await request.body() or b"{}")
        ids = body.get("ids", []) if isinstance(body, dict) else []
        return self.misbehave("list", JSONResponse([self.task(str(i)) for i in ids]), request)

    async def image(self, request: Request) -> Response:
        kind = self.behaviour.get("image", "none")
        if kind == "giant_image":
            return Response(self.giant_png(), media_type="image/png")
        return self.misbehave("image", Response(_png(64), media_type="image/png"), request)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/mj/submit/imagine", self.submit, methods=["POST"]),
                Route("/mj/task/{id}/fetch", self.fetch, methods=["GET"]),
                Route("/mj/task/list-by-condition", self.list_tasks, methods=["POST"]),
                Route("/img/{name}", self.image, methods=["GET"]),
            ]
        )


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@asynccontextmanager
async def serve_hostile(upstream: HostileUpstream) -> AsyncIterator[HostileUpstream]:
    """Serve `upstream` on a loopback port chosen by the kernel (no port race) while inside."""
    sock = _bound_socket()
    port = sock.getsockname()[1]
    upstream.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(upstream.app(), log_level="error", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        # The socket listens already: connections made before uvicorn accepts wait in the backlog.
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            yield upstream
        finally:
            server.should_exit = True
            server.force_exit = True
            tg.cancel_scope.cancel()
    sock.close()


def every_string(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (for checking that no key leaked anywhere)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():  # pyright: ignore[reportUnknownVariableType]
            yield str(k)  # pyright: ignore[reportUnknownArgumentType]
            yield from every_string(v)
    elif isinstance(value, list):
        for v in value:  # pyright: ignore[reportUnknownVariableType]
            yield from every_string(v)
