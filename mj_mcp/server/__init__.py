"""The MCP adapter: every upstream operation a tool, built from its request model.

`create_server(settings, client=None)` returns an `MjServer` (an `MCPServer` whose sessions share
one Runtime). Each row of `TOOLS` (tools.py) becomes a tool through one mechanism (dispatch.py):
the input schema is the endpoint's request model plus the control arguments that apply (`wait`,
`timeout`, `mode`), flattened to the top level under the wire names (schema.py); arguments are
validated by those same models.

The work itself is not here: handlers ask the job service (mj_mcp.jobs), which knows no MCP, and
hand its outcome to mj_mcp.results, whose plain rendering dispatch.py turns into a
`CallToolResult`. This package adds what only MCP has: progress notifications, resources
(resources.py), the prompt (prompts.py), subscriptions (live.py) and the SDK glue (sdk_glue.py).

Modules depend downwards only: __init__ → dispatch → tools → runtime → (jobs, live); every
module may use results, schema, sdk_glue.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from mj_mcp import __version__
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.clock import Clock
from mj_mcp.config import Settings
from mj_mcp.loading import ImageLoader
from mj_mcp.server.aliases import refused_tool
from mj_mcp.server.dispatch import build_tool
from mj_mcp.server.live import LiveTasks
from mj_mcp.server.prompts import register_prompts
from mj_mcp.server.resources import register_resources
from mj_mcp.server.runtime import CallbackWiring, Holder, Opened, Runtime
from mj_mcp.server.sdk_glue import LegacyTasksWire, answer_unknown_tools, serve_subscriptions
from mj_mcp.server.tasks import McpTasks, TasksExtension
from mj_mcp.server.tenants import Tenants
from mj_mcp.server.tools import TOOLS, ToolSpec

__all__ = ["INSTRUCTIONS", "TOOLS", "MjServer", "Runtime", "ToolSpec", "create_server"]

INSTRUCTIONS: Final = """\
Midjourney image generation through a midjourney-proxy API.
Start with `imagine` (it waits and shows the picture); then press the task's buttons with \
`action` (U1-U4 upscale one image of the grid, V1-V4 vary it, 🔄 re-roll; on an upscale: \
'Vary (Strong)', 'Zoom Out 2x', pans ...). Jobs that need one more input come back in MODAL \
status: finish them with `modal`. `describe` turns an image into prompts, `shorten` trims a \
prompt, `blend` mixes 2-5 images. Images can be given as file paths, URLs or data URIs. \
If a wait times out, `get_task` with wait=true continues it."""


class MjServer(MCPServer[Opened]):
    """The MCP server, with one Runtime for the whole process, however many sessions it serves.

    Its lifespan, which the SDK runs per session (once per SSE connection), only attaches to the
    Runtime that `shared_runtime()` opened; with none open (stdio, an in-memory client) it opens one
    for as long as that session lasts. The HTTP app opens `shared_runtime()` in its own lifespan.
    """

    def __init__(self, holder: Holder, **options: Any) -> None:
        super().__init__("mj-mcp", lifespan=lambda _server: holder.for_session(), **options)
        self._holder = holder

    def shared_runtime(self) -> AbstractAsyncContextManager[Opened]:
        """Open the Runtime every session of this process shares, for as long as the context lasts."""
        return self._holder.for_process()


def create_server(
    settings: Settings,
    client: MjClient | None = None,
    *,
    clock: Clock | None = None,
    image_loader: ImageLoader | None = None,
    callbacks: CallbackReceiver | None = None,
) -> MjServer:
    """Build the MCP server. An injected client is used as is and not closed by the server.

    With `MJ_PUBLIC_URL` set, submits carry a `notifyHook` to this server. An injected `callbacks`
    receiver is served by whoever injected it (the HTTP app mounts it); otherwise, on stdio, the
    server opens a small listener of its own on MJ_HOST:MJ_PORT.
    """
    wiring = CallbackWiring.choose(settings, callbacks)
    bus = InMemorySubscriptionBus()
    live = LiveTasks(bus)

    def open_runtime() -> AbstractAsyncContextManager[Opened]:
        if settings.client_keys:  # a Runtime per tenant (MJ_CLIENT_KEYS)
            receiver = wiring.receiver if wiring is not None else None
            return Tenants.open(
                settings, live=live, client=client, clock=clock, image_loader=image_loader, callbacks=receiver
            )
        return Runtime.open(
            settings, live=live, client=client, clock=clock, image_loader=image_loader, callbacks=wiring
        )

    profile = settings.profile
    # Only what this upstream offers (directly or done another way), and with MJ_READ_ONLY only reads.
    specs = [s for s in TOOLS if profile.offers(s.endpoint) and not (settings.read_only and s.kind != "read")]
    # MCP Tasks for the tools that start a job; their background calls live as long as the Runtime.
    task_tools = frozenset(s.name for s in specs if s.endpoint.creates_task)
    mcp_tasks = McpTasks(task_tools, clock=clock, poll_interval_ms=round(settings.poll_interval * 1000))
    holder = Holder(lambda: mcp_tasks.running(open_runtime()))
    tools = [build_tool(spec, holder, preview=settings.preview) for spec in specs]
    server = MjServer(
        holder,
        title="Midjourney (mj-mcp)",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://github.com/mj-mcp/mj-mcp",
        tools=tools,
        log_level=settings.log_level,
        warn_on_duplicate_resources=False,
        subscriptions=bus,
        extensions=[TasksExtension(mcp_tasks)],
        middleware=[LegacyTasksWire(mcp_tasks)],
    )
    serve_subscriptions(server, live)
    answer_unknown_tools(server, refused_tool)
    register_resources(server, holder, offers=profile.offers)
    register_prompts(server)
    return server
