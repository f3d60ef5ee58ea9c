"""The TA / PLUS upstream: its route table, its key check, and the handlers behind each route.

Routing is one table: every `mj_mcp.endpoints.ENDPOINTS` path plus the TA aliases (where the
profile has them). The app in front (`Simulator`) splits the speed-mode prefix
(`/{fast|relax|turbo}/mj/...` or `/mj-{mode}/mj/...`) off the path; the upstream answers a
prefix style, a route or an alias its profile lacks with that profile's 404 (`Profile`).
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
from mj_mcp.simulator.profiles import Prefix, Profile
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
    """The midjourney-proxy server itself, as its profile (`store.profile`) describes it."""

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
            "retexture": submits.retexture,
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
        aliases = _ALIASES if store.profile.aliases else ()
        paths = [(e.path, e) for e in ENDPOINTS.values()] + [(path, ENDPOINTS[name]) for path, name in aliases]
        self.routes = RouteTable(
            [Route(e, path, handlers[e.name], _SWITCHES.get(e.name, _always)) for path, e in paths]
        )

    @property
    def profile(self) -> Profile:
        return self.store.profile

    def not_found(self, path: str) -> Response:
        """The profile's 404: empty (TA, PLUS) or Spring's JSON naming the path (NZ)."""
        if self.profile.not_found == "spring":
            return spring_error(404, path, self.store.clock.now())
        return Response(status_code=404)

    def serves(self, route: Route, prefix: Prefix | None) -> bool:
        """Whether this upstream routes this path under this speed-mode prefix."""
        if prefix is not None and prefix.style not in self.profile.mode_routes:
            return False
        return route.endpoint.name not in self.profile.lacks and route.served(self.store.quirks)

    def authorize(self, request: Request) -> Response | None:
        """The key check (of whichever server is in front), then TA's account check."""
        if not self.auth.admits(request.headers):
            return self.auth.refusal()
        return self.auth.account_refusal()

    def admit(
        self, request: Request, found: Match | WrongMethod | None, path: str, prefix: Prefix | None = None
    ) -> Match | Response:
        """The route to run, or why the upstream refuses, in its order: the key, the account,
        then the route (another method's path, no such path, or one this profile lacks)."""
        refusal = self.authorize(request)
        if refusal is not None:
            return refusal
        if found == WRONG_METHOD:
            return spring_error(405, path, self.store.clock.now())
        if found is None or not self.serves(found.route, prefix):
            return self.not_found(_full(path, prefix))
        return found

    def call(self, request: Request, found: Match, path: str, mode: str | None) -> Call:
        return Call(request, mode, path, found.params, self.store.clock)

    async def handle(self, request: Request, path: str, prefix: Prefix | None) -> Response:
        """Answer a `/mj/...` request (`path` without its speed-mode prefix)."""
        admitted = self.admit(request, self.routes.find(request.method, path), path, prefix)
        if isinstance(admitted, Response):
            return admitted
        call = self.call(request, admitted, path, prefix.mode if prefix else None)
        return await self.run(call, admitted.route)

    async def forward(self, call: Call, route: Route, prefix: Prefix | None) -> Response:
        """A request a gateway in front relays: answered as this upstream would answer it (its
        404 for a route or prefix it lacks)."""
        if not self.serves(route, prefix):
            return self.not_found(_full(call.path, prefix))
        return await self.run(call, route)

    async def run(self, call: Call, route: Route) -> Response:
        """Run the route's handler, unless the body is over the profile's limit (Kestrel's 413)."""
        limit = self.profile.body_limit
        if limit is not None:
            body = call.body if call.body is not None else await call.request.body()
            if len(body) > limit:
                return Response(status_code=413)
        return await route.handler(call)


def _full(path: str, prefix: Prefix | None) -> str:
    """The path as the upstream received it, prefix and all."""
    return (prefix.text if prefix else "") + path
