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
from typing import Any

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
from mj_mcp.server.runtime import CallbackWiring, Holder, Opened, Runtime, task_store_opener
from mj_mcp.server.schema import Surface
from mj_mcp.server.sdk_glue import LegacyTasksWire, answer_unknown_tools, serve_subscriptions
from mj_mcp.server.tasks import McpTasks, TasksExtension
from mj_mcp.server.tenants import Tenants
from mj_mcp.server.tools import TOOLS, ToolSpec

__all__ = ["TOOLS", "MjServer", "Runtime", "ToolSpec", "create_server", "server_instructions"]


def server_instructions(settings: Settings) -> str:
    """What a model is told once, at the start: the way to work, the folders, what every job tool shares.

    It names only tools this upstream offers (novicezk has no buttons but U/V by index)."""
    offers = settings.profile.offers
    folders = ", ".join(str(d) for d in settings.readable_dirs)
    out = settings.output_dir
    press = (
        "3. action with a button label from the result (U2, V1, 🔄; on an upscale: Vary (Strong), Zoom Out 2x, "
        "pan left, Animate)."
        if offers("action")
        else "3. change with UPSCALE or VARIATION and the grid image's index (1-4)."
    )
    reads = (("recent_tasks", "recent_tasks (since='today': today's work)"), ("query_tasks", "query_tasks"))
    history = [said for name, said in reads if offers(name)]
    lines = [
        "Midjourney through a midjourney-proxy API. The way to work:",
        "1. imagine with a prompt; it waits and shows the 2x2 grid.",
        "2. Look at the preview.",
        press,
        "Job tools wait (wait=true) up to timeout seconds, then return the running task: get_task with "
        "wait=true goes on." + (" A MODAL result needs modal." if offers("modal") else ""),
        "An image argument is a file path, an http(s) URL, a data URI, or an image made here: a task id, "
        "<taskId>#<n> (grid image n) or mj://tasks/<taskId>/image.",
        f"Image files are read from: {folders}." if folders else "No folder is open for image files (MJ_ALLOWED_DIRS).",
        f"Results are saved in {out.expanduser().resolve()}." if out is not None else "Saving is off.",
    ]
    if history:
        lines.append(f"History: {', '.join(history)}.")
    if settings.read_only:
        lines.append("This server is read-only (MJ_READ_ONLY): it reads tasks and starts none.")
    return "\n".join(lines)


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
    # With MJ_REDIS_URL their records live in Redis, so any instance answers for them.
    mcp_tasks = McpTasks(
        task_tools,
        open_store=task_store_opener(settings, clock),
        clock=clock,
        poll_interval_ms=round(settings.poll_interval * 1000),
    )
    holder = Holder(lambda: mcp_tasks.running(open_runtime()))
    surface = Surface.of(settings)
    tools = [build_tool(spec, holder, preview=settings.preview, surface=surface) for spec in specs]
    server = MjServer(
        holder,
        title="Midjourney (mj-mcp)",
        version=__version__,
        instructions=server_instructions(settings),
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
