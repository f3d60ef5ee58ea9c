"""The TA / PLUS upstream: its route table, its key check, and the handlers behind each route.

Routing is one table: every `mj_mcp.endpoints.ENDPOINTS` path plus the TA aliases. The app in
front (`Simulator`) strips the speed-mode prefix (`/{fast|relax|turbo}/mj/...` or
`/mj-{mode}/mj/...`) before a path gets here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from starlette.requests import Request
from starlette.responses import Response

from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.simulator.actions import Actions
from mj_mcp.simulator.auth import Auth
from mj_mcp.simulator.core import TaskStore
from mj_mcp.simulator.media import Media
from mj_mcp.simulator.quirks import Quirks
from mj_mcp.simulator.reads import Reads
from mj_mcp.simulator.submits import Submits
from mj_mcp.simulator.wire import Call, spring_error

__all__ = ["Handler", "Match", "Route", "RouteTable", "Upstream", "WrongMethod"]

Handler = Callable[[Call], Awaitable[Response]]

_ALIASES: Final = (("/mj/submit/edit", "edit"), ("/mj/task/list-by-ids", "list_tasks"))
"""TA's second paths for an operation: (path, endpoint name)."""


def _always(_quirks: Quirks) -> bool:
    return True


def _lists_by_condition(quirks: Quirks) -> bool:
    return quirks.list_by_condition


_SWITCHES: Final[dict[str, Callable[[Quirks], bool]]] = {"list_tasks": _lists_by_condition}
"""Routes a quirk can take away (they then answer 404), by endpoint name."""


@dataclass(frozen=True, slots=True)
class Route:
    """One path of the upstream and the handler behind it."""

    endpoint: Endpoint
    path: str
    """The path template as served (an alias differs from `endpoint.path`)."""
    handler: Handler
    served: Callable[[Quirks], bool] = _always
    """False: this upstream dialect has no such route (HTTP 404)."""
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.compile(re.escape(self.path).replace(re.escape("{id}"), r"(?P<id>[^/]+)"))
        object.__setattr__(self, "pattern", pattern)


@dataclass(frozen=True, slots=True)
class Match:
    """A route found for a request, with the parameters of its path."""

    route: Route
    params: dict[str, str]


WrongMethod = Literal["wrong_method"]
WRONG_METHOD: Final[WrongMethod] = "wrong_method"


class RouteTable:
    """Every route of the upstream, found by method and path."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def find(self, method: str, path: str) -> Match | WrongMethod | None:
        """The route, `WRONG_METHOD` when the path exists for another method, or None."""
        wrong_method = False
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.endpoint.method != method:
                wrong_method = True
                continue
            return Match(route, match.groupdict())
        return WRONG_METHOD if wrong_method else None


class Upstream:
    """The midjourney-proxy server (TA / PLUS flavour) itself."""

    def __init__(self, store: TaskStore, media: Media, auth: Auth) -> None:
        self.store = store
        self.auth = auth
        submits, actions, self.reads = Submits(store, media), Actions(store, media), Reads(store, media)
        handlers: dict[str, Handler] = {
            "imagine": submits.imagine,
            "blend": submits.blend,
            "describe": submits.describe,
            "shorten": submits.shorten,
            "action": actions.action,
            "modal": actions.modal,
            "swap_face": submits.swap_face,
            "video": submits.video,
            "edit": submits.edit,
            "upload_images": submits.upload,
            "show": submits.show,
            "change": actions.change,
            "simple_change": actions.simple_change,
            "get_task": self.reads.fetch,
            "list_tasks": self.reads.list_by_condition,
            "query_tasks": self.reads.query,
            "recent_tasks": self.reads.recent,
            "task_queue": self.reads.queue,
            "image_seed": self.reads.image_seed,
            "cancel_task": self.reads.cancel,
        }
        paths = [(e.path, e) for e in ENDPOINTS.values()] + [(path, ENDPOINTS[name]) for path, name in _ALIASES]
        self.routes = RouteTable(
            [Route(e, path, handlers[e.name], _SWITCHES.get(e.name, _always)) for path, e in paths]
        )

    def admit(self, request: Request, found: Match | WrongMethod | None, path: str) -> Match | Response:
        """The route to run, or why the upstream refuses, in its order: the key, then the route
        (another method's path, no such path, or one this dialect lacks)."""
        if not self.auth.admits(request.headers):
            return self.auth.refusal()
        if found == WRONG_METHOD:
            return spring_error(405, path, self.store.clock.now())
        if found is None or not found.route.served(self.store.quirks):
            return Response(status_code=404)
        return found

    def call(self, request: Request, found: Match, path: str, mode: str | None) -> Call:
        return Call(request, mode, path, found.params, self.store.clock)

    async def handle(self, request: Request, path: str, mode: str | None) -> Response:
        """Answer a `/mj/...` request (mode prefix already stripped)."""
        admitted = self.admit(request, self.routes.find(request.method, path), path)
        if isinstance(admitted, Response):
            return admitted
        return await admitted.route.handler(self.call(request, admitted, path, mode))
