"""new-api in front of the upstream (`Quirks.new_api`): the reseller gateway most commercial keys
go through, as a layer of its own between the client and the TA upstream.

Like the real one (`router/relay-router.go`, `relay/mjproxy_handler.go`), it routes only its own
paths (anything else gets its dashboard page), binds and checks the request itself (refusals are
HTTP 400 `{code, description, type: "upstream_error"}`), forwards the request to the upstream
without `notifyHook` and `accountFilter`, keeps its own record of every task it submitted, and
rewrites the reply: codes 21 (except Vary Region / Custom Zoom) and 22 become 1. Reads of a task
answer from its copy (trimmed Task view, FAILURE at "100%", the one-hour timeout, optionally
refreshed only every `Quirks.new_api_poll` seconds).
See docs/upstream-api.md §1.1, §2.1, §2.4 and §4.3 (the "NA" dialect).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from mj_mcp.models import CODE_EXISTED_MODAL, CODE_IN_QUEUE, CODE_SUCCESS, CODE_VALIDATION
from mj_mcp.simulator.auth import na_gateway_error
from mj_mcp.simulator.core import SimTask, Snap, TaskStore, ms
from mj_mcp.simulator.distributor import Refusal, action_of_button, distribute, model_of, refused
from mj_mcp.simulator.media import Media
from mj_mcp.simulator.profiles import Prefix
from mj_mcp.simulator.upstream import Match, Route, RouteTable, Upstream
from mj_mcp.simulator.views import full_view, picture_path
from mj_mcp.simulator.wire import MSG_OK, Answer, Call

__all__ = ["NA_BODY_LIMIT", "NA_TASK_TIMEOUT", "NA_TIMEOUT_REASON", "NewApiGateway"]

NA_BODY_LIMIT: Final = 32 * 1024 * 1024
"""`MAX_REQUEST_BODY_MB` (default 32): a larger body is refused with HTTP 413."""

NA_TIMEOUT_REASON: Final = "上游任务超时（超过1小时）"
NA_TASK_TIMEOUT: Final = 3600.0
"""new-api fails a task not at 100% this many seconds after its submit."""
_KEEPS_21: Final = frozenset({"INPAINT", "CUSTOM_ZOOM"})
"""new-api rewrites code 21 to 1 for every action but these."""
_NOT_FORWARDED: Final = frozenset({"notifyHook", "accountFilter"})
"""Removed from what it forwards (MjNotifyEnabled / MjAccountFilterEnabled are off by default)."""
_TEXT_FIELDS: Final = (
    "prompt",
    "customId",
    "botType",
    "notifyHook",
    "action",
    "state",
    "taskId",
    "content",
    "maskBase64",
    "sourceBase64",
    "targetBase64",
)
"""String fields of new-api's request DTOs: another JSON type there fails its binding."""
_PAGE: Final = (
    b'<!doctype html><html lang="zh"><head><meta charset="UTF-8" /><title>New API</title></head>'
    b'<body><div id="root"></div></body></html>'
)
"""What new-api answers for a path it does not route: its dashboard's index page, HTTP 200."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    """How new-api relays one of its routes, and what it checks and records on the way."""

    kind: Literal["submit", "fetch", "seed", "list"] = "submit"
    """fetch: answered from its copy; seed: checked against its records, then forwarded; list:
    forwarded, its copies shown; submit: checked, forwarded, recorded and rewritten."""
    action: str = ""
    """The action it records for the submit (`RelayMidjourneySubmit`)."""
    button: bool = False
    """The action is mapped from the customId instead (`CoverPlusActionToNormalAction`)."""
    required: tuple[str, ...] = ()
    """Text fields that must all be non-empty, else the refusal `missing`."""
    missing: str = ""
    prompt: str | None = None
    """The prompt it records instead of the request's."""
    parent: Literal["none", "known", "finished"] = "none"
    """How a `taskId` is checked: not at all, known to it, or known and SUCCESS in its copy."""
    change: bool = False
    """With a `taskId`, the action is the body's `action`, and `action` and `index` are required."""
    rewrites: bool = True
    """Codes 21 and 22 in the reply become 1 (RelaySwapFace rewrites nothing)."""


# By path: the MJ routes new-api relays. The TA aliases `/mj/submit/edit` and
# `/mj/task/list-by-ids`, and list/queue/query/cancel/show, are not among them.
_RELAYS: Final[dict[str, Relay]] = {
    "/mj/submit/action": Relay(button=True, parent="finished"),
    "/mj/submit/shorten": Relay(action="SHORTEN"),
    "/mj/submit/modal": Relay(action="MODAL", parent="known"),
    "/mj/submit/imagine": Relay(action="IMAGINE", required=("prompt",), missing="prompt_is_required"),
    "/mj/submit/change": Relay(parent="finished", change=True),
    "/mj/submit/simple-change": Relay(),
    "/mj/submit/describe": Relay(action="DESCRIBE"),
    "/mj/submit/blend": Relay(action="BLEND"),
    "/mj/submit/edits": Relay(action="EDITS"),
    "/mj/submit/video": Relay(action="VIDEO", parent="finished"),
    "/mj/task/{id}/fetch": Relay(kind="fetch"),
    "/mj/task/{id}/image-seed": Relay(kind="seed"),
    "/mj/task/list-by-condition": Relay(kind="list"),
    "/mj/insight-face/swap": Relay(
        action="SWAP_FACE",
        required=("sourceBase64", "targetBase64"),
        missing="sour_base64_and_target_base64_is_required",
        prompt="InsightFace",
        rewrites=False,
    ),
    "/mj/submit/upload-discord-images": Relay(action="UPLOAD"),
}


@dataclass(frozen=True, slots=True)
class Record:
    """new-api's own record of a submit: what its Task view shows besides the upstream's state."""

    action: str
    prompt: str
    """The submit's prompt (a button press: the parent's)."""
    description: str = MSG_OK
    """The description of the upstream's reply."""


def na_error(description: str, code: int = CODE_VALIDATION) -> NoReturn:
    """new-api's own refusal (`controller/relay.go` `RelayMidjourney`): HTTP 400, "<reason> <result>"."""
    body = {"code": code, "description": f"{description} ", "type": "upstream_error"}
    raise Answer(JSONResponse(body, status_code=400))


class _Fields:
    """A request body as Go's encoding/json binds it: keys match case-insensitively, and a
    wrong JSON type in a typed field fails the binding."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._by_key = {key.lower(): value for key, value in body.items()}
        for key in _TEXT_FIELDS:
            value = self.get(key)
            if value is not None and not isinstance(value, str):
                na_error("bind_request_body_failed")
        index = self.get("index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            na_error("bind_request_body_failed")

    def get(self, key: str) -> Any:
        return self._by_key.get(key.lower())

    def text(self, key: str) -> str:
        value = self.get(key)
        return value if isinstance(value, str) else ""


_Relaying = Callable[[Call, Route, Relay], Awaitable[Response]]


class NewApiGateway:
    """new-api: its routes, checks and records, in front of the upstream it forwards to."""

    def __init__(self, upstream: Upstream, store: TaskStore, media: Media) -> None:
        self._upstream = upstream
        self._store = store
        self._media = media
        self.records: dict[str, Record] = {}
        """Its own record of each task it submitted, by task id (the first one for an id)."""
        self._routes = RouteTable([r for r in upstream.routes.routes if r.path in _RELAYS])
        self._relaying: dict[str, _Relaying] = {
            "submit": self._submit,
            "fetch": self._fetch,
            "seed": self._seed,
            "list": self._list,
        }

    async def handle(self, request: Request, path: str, prefix: Prefix | None) -> Response:
        """Answer a `/mj/...` request as new-api does (`path` without its speed-mode prefix).

        Its router takes `/:mode/mj/...` with any segment; `getMjRequestPath` strips the
        segment only when the URL contains "/mj-" (the mode is lost), otherwise the request goes
        to the upstream as it came, prefix and all (the upstream audit of issue 13 A3).
        """
        if prefix is not None and "/mj-" in prefix.text:
            prefix = None
        found = self._routes.find(request.method, path)
        if not isinstance(found, Match):
            # No such route in new-api: the catch-all of its web UI answers with the dashboard.
            return Response(_PAGE, 200, media_type="text/html; charset=utf-8")
        refusal = self._upstream.authorize(request)
        if refusal is not None:
            return refusal
        if len(await request.body()) > NA_BODY_LIMIT:
            return na_gateway_error(413, "request body too large", self._store.clock.now())
        relay = _RELAYS[found.route.path]
        call = self._upstream.call(request, found, path, prefix.mode if prefix else None)
        call.prefix = prefix
        return await self._relaying[relay.kind](call, found.route, relay)

    # -- its copy of the upstream's tasks ------------------------------------------------------

    def copy(self, task: SimTask) -> Snap | None:
        """new-api's copy of the task: the upstream at its last read (None: not read yet).

        Its poller reads every `new_api_poll` seconds; it fails a task that is not at 100% an
        hour after its submit, and sets a failed task's progress to "100%" (docs/upstream-api.md
        §2.4, §4.3).
        """
        now = self._store.clock.now()
        every = self._store.quirks.new_api_poll
        at = math.floor(now / every) * every if every > 0 else now
        if ms(at) < task.submit_ms:
            return None
        snap = self._store.snapshot(task, at)
        if at - task.submit_ms / 1000 > NA_TASK_TIMEOUT and snap.status not in ("SUCCESS", "FAILURE"):
            return Snap("FAILURE", "100%", snap.start_ms, snap.finish_ms, NA_TIMEOUT_REASON)
        if every <= 0 and snap.status == "NOT_START":
            return None
        if snap.status == "FAILURE":
            return Snap("FAILURE", "100%", snap.start_ms, snap.finish_ms, snap.fail_reason)
        return snap

    def view(self, task: SimTask) -> dict[str, Any]:
        """new-api's Task (docs/upstream-api.md §2.1 "NA view", `coverMidjourneyTaskDto`): fixed
        keys, "" and 0 for nothing; action, prompt and description are what it recorded at the
        submit, the rest is its copy of the upstream's task (customId, botType and maskBase64 it
        never fills)."""
        record = self.records.get(task.id)
        view: dict[str, Any] = {
            "id": task.id,
            "action": (record.action if record else "") or task.action,
            "customId": "",
            "botType": "",
            "prompt": record.prompt if record else (task.prompt or ""),
            "promptEn": "",
            "description": record.description if record else MSG_OK,
            "state": "",
            "submitTime": task.submit_ms,
            "startTime": 0,
            "finishTime": 0,
            "imageUrl": "",
            "videoUrl": "",
            "videoUrls": None,
            "status": "",
            "progress": "0%",
            "failReason": "",
            "buttons": None,
            "maskBase64": "",
            "properties": None,
        }
        snap = self.copy(task)
        if snap is not None:
            view.update(self._copied(task, snap))
        # Otherwise its own record, before its first read of the upstream.
        return view

    def _copied(self, task: SimTask, snap: Snap) -> dict[str, Any]:
        """The fields of its view that come from its copy of the upstream's task."""
        full = full_view(task, snap)
        image_url = full["imageUrl"] or ""
        if image_url:
            # new-api rewrites result links to its own image proxy (MjForwardUrlEnabled).
            image_url = f"{task.base}/mj/image/{task.id}"
            if snap.status != "SUCCESS":
                image_url += f"?rand={int(self._store.clock.now() * 1e9)}"
        video_urls = full["videoUrls"]
        return {
            "promptEn": full["promptEn"] or "",
            "state": full["state"] or "",
            "startTime": snap.start_ms or 0,
            "finishTime": snap.finish_ms or 0,
            "imageUrl": image_url,
            "videoUrl": full["videoUrl"] or "",
            "videoUrls": [{"url": v["url"]} for v in video_urls] if video_urls else None,
            "status": snap.status,
            "progress": snap.progress or "",
            "failReason": snap.fail_reason or "",
            "buttons": full["buttons"],
            "properties": {"finalPrompt": full["properties"].get("finalPrompt") or "", "finalZhPrompt": ""},
        }

    async def serve_image(self, task_id: str, *, copied: bool) -> Response:
        """Its image proxy `/mj/image/{id}`: whatever the task's imageUrl is at the moment (in
        its copy when it is in front, else in the upstream's task)."""
        task = self._store.get(task_id)
        snap = None
        if task is not None:
            snap = self.copy(task) if copied else self._store.snapshot(task)
        path = picture_path(task, snap) if task is not None and snap is not None else None
        if path is None:
            return Response(status_code=404)
        if not path.startswith("/"):
            return RedirectResponse(path, status_code=302)
        return await self._media.serve(path)

    # -- relaying, by kind of route ------------------------------------------------------------

    async def _fetch(self, call: Call, _route: Route, _relay: Relay) -> Response:
        return JSONResponse(self.view(self._known(call.params["id"])))

    async def _seed(self, call: Call, route: Route, _relay: Relay) -> Response:
        self._known(call.params["id"])
        return await self._upstream.forward(call, route, call.prefix)

    async def _list(self, call: Call, route: Route, _relay: Relay) -> Response:
        await self._bind(call, "do_request_failed")
        response = await self._upstream.forward(call, route, call.prefix)
        tasks = json.loads(bytes(response.body)) if response.status_code == 200 else None
        if not isinstance(tasks, list):
            return response  # the upstream's refusal, passed on
        # Each task as its copy shows it, not as the upstream does.
        listed = cast(list[dict[str, Any]], tasks)
        return JSONResponse([self.view(self._store.tasks[t["id"]]) for t in listed])

    async def _submit(self, call: Call, route: Route, relay: Relay) -> Response:
        """Bind and check the request, forward it, then record and rewrite the reply."""
        body = await self._bind(call, "bind_request_body_failed")
        fields = _Fields(body)
        action, prompt = self._check(relay, fields, self._distribute(relay, fields))
        forwarded = {key: value for key, value in body.items() if key not in _NOT_FORWARDED}
        call.body = json.dumps(forwarded, ensure_ascii=False).encode()
        try:
            response = await self._upstream.forward(call, route, call.prefix)
        except Answer as answer:
            return answer.response  # the upstream's refusal, passed on as it came
        return self._relay_reply(response, relay, Record(action, prompt))

    # -- the steps of a submit -----------------------------------------------------------------

    def _known(self, task_id: str) -> SimTask:
        task = self._store.get(task_id)
        if task is None:
            na_error("task_no_found")
        return task

    @staticmethod
    async def _bind(call: Call, failure: str) -> dict[str, Any]:
        """The body as a JSON object, or new-api's refusal `failure`."""
        try:
            data = json.loads(await call.request.body())
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            na_error(failure)
        return cast(dict[str, Any], data)

    def _distribute(self, relay: Relay, fields: _Fields) -> str:
        """The `Distribute` middleware: the action the submit maps to (a button's, a change's
        `action`, else the route's), refused when it cannot be mapped or served."""
        now = self._store.clock.now()
        try:
            action = action_of_button(fields.text("customId")) if relay.button else relay.action
        except Refusal as refusal:
            raise refused(refusal, now) from None
        if relay.change:
            action = fields.text("action")
        distribute(model_of(action), self._store.quirks, now)
        return action

    def _check(self, relay: Relay, fields: _Fields, action: str) -> tuple[str, str]:
        """new-api's own checks of a submit; the action and prompt it will record."""
        prompt = relay.prompt if relay.prompt is not None else fields.text("prompt")
        if relay.required and not all(fields.text(key) for key in relay.required):
            na_error(relay.missing)
        task_id = fields.text("taskId")
        if task_id and relay.parent != "none":
            # Calls on an existing task are checked against new-api's own records first.
            action, prompt = self._check_parent(relay, fields, task_id, action)
        return action, prompt

    def _check_parent(self, relay: Relay, fields: _Fields, task_id: str, action: str) -> tuple[str, str]:
        if relay.change:
            # An empty `action` never gets here: the distributor finds no channel for "mj_".
            action = fields.text("action")
            if not fields.get("index"):
                na_error("index_is_required")
        parent = self._store.get(task_id)
        if parent is None:
            na_error("task_not_found")
        if relay.parent == "finished":
            copy = self.copy(parent)
            if copy is None or copy.status != "SUCCESS":
                na_error("task_status_not_success")
        record = self.records.get(parent.id)
        return action, record.prompt if record else (parent.prompt or "")

    def _relay_reply(self, response: Response, relay: Relay, record: Record) -> Response:
        content = bytes(response.body)
        if not content:
            return response  # e.g. the upstream's empty 404 for a route or prefix it lacks
        reply = json.loads(content)
        if not isinstance(reply, dict):
            return response
        reply = cast(dict[str, Any], reply)
        code, result = reply.get("code"), reply.get("result")
        if code in (CODE_SUCCESS, CODE_EXISTED_MODAL, CODE_IN_QUEUE) and isinstance(result, str | int):
            task = self._store.get(str(result))
            if task is not None and task.id not in self.records:
                # new-api shows the first record it made for an id (a modal call makes a second).
                description = str(reply.get("description") or "")
                self.records[task.id] = Record(record.action, record.prompt, description)
        if not relay.rewrites:
            return response
        # String replacement on the reply, as new-api does it.
        if code == CODE_EXISTED_MODAL and record.action not in _KEEPS_21:
            content = content.replace(b'"code":21', b'"code":1')
        if code == CODE_IN_QUEUE:
            content = content.replace(b'"code":22', b'"code":1')
        return Response(content, response.status_code, media_type="application/json")
