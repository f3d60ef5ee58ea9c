"""The simulator served over HTTP (`mj-mcp simulate`): its app runs the callback sender.

In-process, tests call `Simulator.send_callbacks` themselves; a standalone server has nobody to
do that, so its lifespan POSTs due callbacks every `CALLBACK_TICK` seconds on the simulator's
clock while it runs.
"""

from __future__ import annotations

from typing import Final, Unpack

import anyio
import httpx2
from starlette.types import Receive, Scope, Send

from mj_mcp.simulator.app import Simulator, SimulatorOptions

__all__ = ["CALLBACK_TICK", "StandaloneApp", "run_simulator"]


CALLBACK_TICK: Final = 0.01
"""How often the standalone simulator looks for due callbacks: a change is called back within this."""


class StandaloneApp:
    """The simulator's ASGI app for an HTTP server: its lifespan runs the callback sender."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    @classmethod
    def create(cls, **sim_options: Unpack[SimulatorOptions]) -> StandaloneApp:
        """A new Simulator, ready to serve; `upstream=NAME` (one of `PROFILES`) picks the
        software it plays."""
        return cls(Simulator(**sim_options))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.simulator.app(scope, receive, send)
            return
        async with anyio.create_task_group() as tg:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    tg.start_soon(self.run_callbacks)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    tg.cancel_scope.cancel()
                    return

    async def run_callbacks(self, *, tick: float = CALLBACK_TICK) -> None:
        """POST due callbacks every `tick` seconds, over HTTP, until cancelled."""
        async with httpx2.AsyncClient(timeout=10.0) as client:

            async def post(url: str, body: bytes) -> object:
                return await client.post(url, content=body, headers={"Content-Type": "application/json"})

            while True:
                await self.simulator.send_callbacks(post)
                await self.simulator.clock.sleep(tick)


def run_simulator(host: str = "127.0.0.1", port: int = 8080, **sim_options: Unpack[SimulatorOptions]) -> None:
    """Serve a new Simulator over HTTP with uvicorn until interrupted (blocking); `upstream=NAME`
    (one of `PROFILES`) picks the software it plays."""
    import uvicorn

    uvicorn.run(StandaloneApp.create(**sim_options), host=host, port=port, log_level="info")
