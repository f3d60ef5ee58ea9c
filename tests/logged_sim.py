"""`mj-mcp simulate`, with a log of what it was asked and when it called back (run as a script).

The standalone simulator (`Simulator.standalone_app()`, as `mj-mcp simulate` serves it), plus:
every task read (`/mj/task/...`: its wall-clock time, path and the task ids it named, the body of
list-by-condition included) and every callback it sent (time, task id, status, progress), served
as JSON at `GET /_log`. The hosting tests and benchmark run it as a process of its own, the
upstream of several server instances, and count from this log which tasks each tick read.

    python tests/logged_sim.py --port 0 --job-seconds 2 [--per-key]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import httpx2
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from mj_mcp.simulator import Simulator
from mj_mcp.simulator.standalone import CALLBACK_TICK, StandaloneApp

_FETCH_SUFFIX = "/fetch"


class LoggedApp(StandaloneApp):
    """The standalone simulator, logging reads and callbacks with their wall-clock times."""

    def __init__(self, simulator: Simulator) -> None:
        super().__init__(simulator)
        self.reads: list[tuple[float, str, list[str]]] = []
        self.callbacks: list[tuple[float, str, str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/_log":
            await JSONResponse({"reads": self.reads, "callbacks": self.callbacks})(scope, receive, send)
            return
        if scope["type"] == "http" and path.startswith("/mj/task/"):
            receive = await self._log_read(path, receive)
        await super().__call__(scope, receive, send)

    async def _log_read(self, path: str, receive: Receive) -> Receive:
        at = time.time()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        ids: list[str] = []
        if path.endswith(_FETCH_SUFFIX):
            ids = [path.removeprefix("/mj/task/").removesuffix(_FETCH_SUFFIX)]
        elif body:
            try:
                ids = [str(i) for i in json.loads(body).get("ids") or ()]
            except (ValueError, AttributeError):
                ids = []
        self.reads.append((at, path, ids))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def run_callbacks(self, *, tick: float = CALLBACK_TICK) -> None:
        async with httpx2.AsyncClient(timeout=10.0) as client:

            async def post(url: str, body: bytes) -> object:
                task: dict[str, Any] = json.loads(body)
                self.callbacks.append(
                    (time.time(), str(task.get("id")), str(task.get("status")), str(task.get("progress")))
                )
                return await client.post(url, content=body, headers={"Content-Type": "application/json"})

            while True:
                await self.simulator.send_callbacks(post)
                await self.simulator.clock.sleep(tick)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--per-key", action="store_true")
    args = parser.parse_args()
    app = LoggedApp(Simulator(job_seconds=args.job_seconds, per_key=args.per_key))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
