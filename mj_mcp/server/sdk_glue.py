"""Every place this server reaches past the MCP SDK's public surface, in one module.

`MCPServer` builds a tool's schema and argument validation from a function's signature. Our
tools take their schema from the endpoint models instead (mj_mcp.server.schema) and validate
with those same models, so the SDK must pass the raw arguments through untouched: a
`FuncMetadata` over `_RawArguments`, in a `Tool` made directly. Resource subscriptions have no
public hook either; their handlers go on the low-level server. tests/test_sdk_glue.py pins down
each of these, so that an SDK release that changes them fails loudly there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import (
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import ConfigDict

from mj_mcp.server.live import LiveTasks

__all__ = ["CONTEXT_KWARG", "make_tool", "serve_subscriptions"]

CONTEXT_KWARG = "ctx"
"""The keyword under which a tool function receives the request's Context."""


class _RawArguments(ArgModelBase):
    """Hands the raw arguments through; the tool's own model validates them (with our messages)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def make_tool(
    fn: Callable[..., Awaitable[Any]],
    *,
    name: str,
    title: str | None,
    description: str,
    parameters: dict[str, Any],
    annotations: ToolAnnotations,
) -> Tool:
    """A tool with our schema whose function gets the Context as `ctx` and the raw arguments."""
    return Tool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=parameters,
        fn_metadata=FuncMetadata(arg_model=_RawArguments),
        is_async=True,
        context_kwarg=CONTEXT_KWARG,
        annotations=annotations,
    )


def serve_subscriptions(server: MCPServer[Any], live: LiveTasks) -> None:
    """Route the subscription requests of both protocol eras to `live`."""
    # MCPServer has no public hook for these three methods; registering on its low-level server
    # is how the SDK's own in-memory transport reaches it too. Registering `resources/subscribe`
    # is also what makes legacy-era capabilities say `resources.subscribe: true`.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, live.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, live.unsubscribe)
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, live.listen)
