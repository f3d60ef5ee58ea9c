"""The endpoint table: every upstream operation, with everything the code decides by it.

One row per operation. Code elsewhere asks a row what it does (`endpoint.creates_task`,
`endpoint.retry`, ...) and never compares names, so that a new operation, or an upstream that
behaves differently, is a change of this table alone. The request model of a row is the single
source of truth for the body the client sends and for the input schema of the tool that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from mj_mcp.models import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    ConditionRequest,
    DescribeRequest,
    EditsRequest,
    EmptyRequest,
    FetchRequest,
    ImagineRequest,
    ModalRequest,
    RetextureRequest,
    ShortenRequest,
    ShowRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
    TaskIdRequest,
    UploadRequest,
    VideoRequest,
    WireModel,
)
from mj_mcp.querymodels import QueryRequest

__all__ = ["ENDPOINTS", "Endpoint", "Retry"]

Retry = Literal["reads", "connect", "never"]
"""How a failed call is tried again.

- `reads`: on transport failures, 5xx and 429, with backoff (safe: reading twice costs nothing);
- `connect`: only when the connection never opened, so the upstream cannot have seen it (paid jobs);
- `never`: sent once (cancel: a second cancel of a task that meanwhile ended would mislead).
"""

_NO_BUTTONS_API: Final = (
    "This upstream has no buttons API (the original midjourney-proxy): use change (action UPSCALE, "
    "VARIATION or REROLL with index 1-4) or simple_change instead."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One upstream operation. `path` may contain `{id}` (filled from the request's task_id)."""

    name: str
    method: Literal["GET", "POST"]
    path: str
    request: type[WireModel]
    paid: bool = False
    """Starts a job the user may pay for: counted against MJ_MAX_JOBS, audited, never re-sent."""
    creates_task: bool = False
    """An accepted reply names the task it started (every paid job but an upload)."""
    references_task: bool = False
    """The request names an existing task, so that "not found" (code 3) can mean that task."""
    mode_applies: bool = False
    """The speed-mode URL prefix (MJ_MODE / the `mode` argument) goes in front of the path."""
    retry: Retry = "reads"
    waits_past_modal: bool = False
    """The call confirms a MODAL task, so a wait after it looks past a lagging MODAL read."""
    missing_route_hint: str | None = None
    """What to use instead when the upstream has no route for this operation."""

    @property
    def task_in_path(self) -> bool:
        """The task id is part of the path, so an HTTP 404 means that task is missing."""
        return "{id}" in self.path


def _job(
    name: str,
    path: str,
    request: type[WireModel],
    *,
    creates_task: bool = True,
    references_task: bool = False,
    waits_past_modal: bool = False,
    missing_route_hint: str | None = None,
) -> Endpoint:
    """A paid job: POSTed once, under the speed-mode prefix."""
    return Endpoint(
        name=name,
        method="POST",
        path=path,
        request=request,
        paid=True,
        creates_task=creates_task,
        references_task=references_task,
        mode_applies=True,
        retry="connect",
        waits_past_modal=waits_past_modal,
        missing_route_hint=missing_route_hint,
    )


ENDPOINTS: Final[dict[str, Endpoint]] = {
    e.name: e
    for e in (
        _job("imagine", "/mj/submit/imagine", ImagineRequest),
        _job("blend", "/mj/submit/blend", BlendRequest),
        _job("describe", "/mj/submit/describe", DescribeRequest),
        _job("shorten", "/mj/submit/shorten", ShortenRequest),
        _job("action", "/mj/submit/action", ActionRequest, references_task=True, missing_route_hint=_NO_BUTTONS_API),
        _job(
            "modal",
            "/mj/submit/modal",
            ModalRequest,
            references_task=True,
            waits_past_modal=True,
            missing_route_hint=_NO_BUTTONS_API,
        ),
        _job("swap_face", "/mj/insight-face/swap", SwapFaceRequest),
        _job("video", "/mj/submit/video", VideoRequest, references_task=True),
        _job("edit", "/mj/submit/edits", EditsRequest),
        _job("retexture", "/mj/submit/retexture", RetextureRequest),
        _job("upload_images", "/mj/submit/upload-discord-images", UploadRequest, creates_task=False),
        _job("show", "/mj/submit/show", ShowRequest, references_task=True),
        _job("change", "/mj/submit/change", ChangeRequest, references_task=True),
        _job("simple_change", "/mj/submit/simple-change", SimpleChangeRequest, references_task=True),
        Endpoint(name="get_task", method="GET", path="/mj/task/{id}/fetch", request=FetchRequest, references_task=True),
        Endpoint(name="list_tasks", method="POST", path="/mj/task/list-by-condition", request=ConditionRequest),
        Endpoint(name="query_tasks", method="POST", path="/mj/task/query", request=QueryRequest),
        Endpoint(name="recent_tasks", method="GET", path="/mj/task/list", request=EmptyRequest),
        Endpoint(name="task_queue", method="GET", path="/mj/task/queue", request=EmptyRequest),
        Endpoint(
            name="image_seed",
            method="GET",
            path="/mj/task/{id}/image-seed",
            request=TaskIdRequest,
            references_task=True,
        ),
        Endpoint(
            name="cancel_task",
            method="POST",
            path="/mj/task/{id}/cancel",
            request=TaskIdRequest,
            references_task=True,
            retry="never",
        ),
    )
}
