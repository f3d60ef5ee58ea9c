"""The tool table: one `ToolSpec` per tool, holding its endpoint, its control model and its handler.

A spec is typed by its request model and its control model (`ToolSpec[FetchRequest,
WaitControls]`), so each handler receives the concrete types it works with. Handlers are thin:
they ask the job service (mj_mcp.jobs) or the client, and hand the answer to mj_mcp.results.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import InputError
from mj_mcp.jobs import Progress
from mj_mcp.masks import Region
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
    Mode,
    RetextureRequest,
    ShortenRequest,
    ShowRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
    Task,
    TaskIdRequest,
    UploadRequest,
    VideoRequest,
    WireModel,
)
from mj_mcp.querymodels import QueryRequest
from mj_mcp.results import (
    Rendered,
    cancel_result,
    page_result,
    render_outcome,
    seed_result,
    tasks_result,
    upload_result,
)
from mj_mcp.server.runtime import Runtime
from mj_mcp.views import CancelView, PageView, SeedView, TaskListView, TaskView, UploadView, View

__all__ = [
    "TOOLS",
    "JobControls",
    "ListControls",
    "NoControls",
    "RecentControls",
    "ToolCall",
    "ToolSpec",
    "WaitControls",
    "local_now",
    "newest_since",
]


# -- control arguments ---------------------------------------------------------------------------


class JobControls(WireModel):
    """Control arguments of the job-starting tools."""

    wait: bool = Field(default=True, description="Wait for it.")
    timeout: float | None = Field(default=None, gt=0, description="Max seconds.")
    mode: Mode | None = Field(default=None, description="Speed.")


class ModalControls(JobControls):
    """Control arguments of modal: a region, from which the server draws the Vary (Region) mask."""

    region: Region | None = Field(
        default=None,
        description="Vary (Region) area instead of maskBase64: fractions 0-1 of the image, x,y = top left.",
    )


class WaitControls(WireModel):
    """Control arguments of get_task."""

    wait: bool = Field(default=False, description="Wait for it.")
    timeout: float | None = Field(default=None, gt=0, description="Max seconds.")


class NoControls(WireModel):
    """Tools without control arguments: their arguments are the request model's alone."""


class ListControls(WireModel):
    """Control arguments of task_queue: how much of the list to show (a long list costs context)."""

    limit: int = Field(default=10, ge=1, le=100, description="Most tasks.")


class RecentControls(ListControls):
    """Control arguments of recent_tasks: how many, and from when."""

    since: str | None = Field(default=None, description="'today' or ISO date/time (local).")

    @field_validator("since")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and value.strip().casefold() != "today":
            try:
                datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    "must be 'today' or an ISO date or date-time, e.g. 2025-06-15 or 2025-06-15T09:30"
                ) from None
        return value

    def start(self, now: datetime) -> datetime | None:
        """The moment `since` names, read in `now`'s time zone where it names none ('today':
        midnight of `now`'s day); None without `since`."""
        if self.since is None:
            return None
        text = self.since.strip()
        if text.casefold() == "today":
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)


def newest_since(tasks: list[Task], start: datetime | None, limit: int) -> list[Task]:
    """The newest `limit` tasks submitted at or after `start` (all, without one), newest first.

    A task without a submit time cannot be placed, so no `since` leaves it out; it sorts last."""
    ordered = sorted(tasks, key=lambda t: t.submit_time or 0, reverse=True)
    if start is not None:
        cutoff = start.timestamp() * 1000
        ordered = [t for t in ordered if t.submit_time is None or t.submit_time >= cutoff]
    return ordered[:limit]


def local_now() -> datetime:
    """The wall-clock time in the server's own time zone (which 'today' means)."""
    return datetime.now().astimezone()


# -- specs ---------------------------------------------------------------------------------------

Req = TypeVar("Req", bound=WireModel)
Ctl = TypeVar("Ctl", bound=WireModel)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a handler knows about the call besides its arguments."""

    endpoint: Endpoint
    progress: Progress
    """Reports a waited-for task's changes to the caller."""
    now: Callable[[], datetime] = local_now
    """The wall clock, for history filters ('today'); tests pass their own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec(Generic[Req, Ctl]):
    """One tool: its upstream endpoint, description for the model, and behaviour."""

    endpoint: Endpoint
    request: type[Req]
    """The endpoint's request model, typed for the handler (a test checks it is `endpoint.request`)."""
    controls: type[Ctl]
    title: str
    description: str
    kind: Literal["job", "read", "destructive"]
    handler: Callable[[Runtime, ToolCall, Req, Ctl], Awaitable[Rendered]]
    output: type[View] = TaskView
    """The view its structured content is: the source of its outputSchema."""

    @property
    def name(self) -> str:
        return self.endpoint.name


# -- handlers ------------------------------------------------------------------------------------


async def _job(rt: Runtime, call: ToolCall, request: WireModel, controls: JobControls) -> Rendered:
    """Submit a job, then wait for it with progress (unless wait=false)."""
    outcome = await rt.jobs.run(
        call.endpoint,
        request,
        wait=controls.wait,
        timeout=controls.timeout,
        mode=controls.mode,
        on_progress=call.progress,
    )
    return render_outcome(outcome)


async def _modal(rt: Runtime, call: ToolCall, request: ModalRequest, controls: ModalControls) -> Rendered:
    if controls.region is not None:
        if request.mask_base64:
            raise InputError("Pass region or maskBase64, not both; nothing was sent.", hint="Leave one out.")
        mask = await rt.jobs.inputs.region_mask(request.task_id, controls.region)
        request = request.model_copy(update={"mask_base64": mask})
    return await _job(rt, call, request, controls)


async def _upload(rt: Runtime, call: ToolCall, request: UploadRequest, controls: NoControls) -> Rendered:
    return upload_result(await rt.jobs.upload(call.endpoint, request))


async def _get_task(rt: Runtime, call: ToolCall, request: FetchRequest, controls: WaitControls) -> Rendered:
    outcome = await rt.jobs.get(
        call.endpoint, request.task_id, wait=controls.wait, timeout=controls.timeout, on_progress=call.progress
    )
    # The lookup worked: an ended task (FAILURE, CANCEL) reads fine, with its failReason.
    return render_outcome(outcome, read=True)


async def _list_tasks(rt: Runtime, call: ToolCall, request: ConditionRequest, controls: NoControls) -> Rendered:
    tasks = await rt.client.list_by_condition(request.ids)
    found = {t.id for t in tasks}
    return tasks_result(tasks, missing=[i for i in request.ids if i not in found], saved=rt.jobs.saved_file)


async def _query(rt: Runtime, call: ToolCall, request: QueryRequest, controls: NoControls) -> Rendered:
    return page_result(await rt.client.query(request), saved=rt.jobs.saved_file)


async def _recent(rt: Runtime, call: ToolCall, request: EmptyRequest, controls: RecentControls) -> Rendered:
    return tasks_result(
        newest_since(await rt.client.recent(), controls.start(call.now()), controls.limit), saved=rt.jobs.saved_file
    )


async def _queue(rt: Runtime, call: ToolCall, request: EmptyRequest, controls: ListControls) -> Rendered:
    return tasks_result((await rt.client.queue())[: controls.limit], saved=rt.jobs.saved_file)


async def _seed(rt: Runtime, call: ToolCall, request: TaskIdRequest, controls: NoControls) -> Rendered:
    return seed_result(request.task_id, await rt.client.image_seed(request.task_id))


async def _cancel(rt: Runtime, call: ToolCall, request: TaskIdRequest, controls: NoControls) -> Rendered:
    return cancel_result(await rt.jobs.cancel(request.task_id))


# -- the table -----------------------------------------------------------------------------------


def _job_tool(name: str, request: type[Req], title: str, description: str) -> ToolSpec[Req, JobControls]:
    return ToolSpec(
        endpoint=ENDPOINTS[name],
        request=request,
        controls=JobControls,
        title=title,
        description=description,
        kind="job",
        handler=_job,
    )


def _read_tool(
    name: str,
    request: type[Req],
    title: str,
    description: str,
    handler: Callable[[Runtime, ToolCall, Req, NoControls], Awaitable[Rendered]],
    output: type[View],
) -> ToolSpec[Req, NoControls]:
    return _reading(name, request, NoControls, title, description, handler, output)


def _list_tool(
    name: str,
    controls: type[Ctl],
    title: str,
    description: str,
    handler: Callable[[Runtime, ToolCall, EmptyRequest, Ctl], Awaitable[Rendered]],
) -> ToolSpec[EmptyRequest, Ctl]:
    """A read of a whole list (no request body); its arguments say how much of it to show."""
    return _reading(name, EmptyRequest, controls, title, description, handler, TaskListView)


def _reading(
    name: str,
    request: type[Req],
    controls: type[Ctl],
    title: str,
    description: str,
    handler: Callable[[Runtime, ToolCall, Req, Ctl], Awaitable[Rendered]],
    output: type[View],
) -> ToolSpec[Req, Ctl]:
    return ToolSpec(
        endpoint=ENDPOINTS[name],
        request=request,
        controls=controls,
        title=title,
        description=description,
        kind="read",
        handler=handler,
        output=output,
    )


TOOLS: Final[tuple[ToolSpec[Any, Any], ...]] = (
    _job_tool(
        "imagine",
        ImagineRequest,
        "Generate images",
        "4 images (2x2 grid) from a prompt. Next: action U1-U4 upscales one, V1-V4 varies one, 🔄 redoes.",
    ),
    _job_tool("blend", BlendRequest, "Blend images", "Blend 2-5 images into a grid."),
    _job_tool("describe", DescribeRequest, "Describe an image", "4 prompts for an image; imagine with one."),
    _job_tool("shorten", ShortenRequest, "Shorten a prompt", "Shorter versions of a prompt."),
    _job_tool(
        "action",
        ActionRequest,
        "Press a button",
        "Press a task's button. Grid: U1-U4 upscale, V1-V4 vary, 🔄 redo. Upscale: Vary (Strong/Subtle/"
        "Region), Zoom Out 2x/1.5x, Custom Zoom, ⬅️➡️⬆️⬇️ pan, Animate. MODAL result: call modal.",
    ),
    ToolSpec(
        endpoint=ENDPOINTS["modal"],
        request=ModalRequest,
        controls=ModalControls,
        title="Finish a MODAL task",
        description="Input for a MODAL task: Custom Zoom: prompt with --zoom; Vary (Region): region or mask, "
        "prompt; remix: prompt.",
        kind="job",
        handler=_modal,
    ),
    _job_tool("swap_face", SwapFaceRequest, "Swap a face", "Put a face on another picture's person."),
    _job_tool("video", VideoRequest, "Animate an image", "Short videos from a prompt and a first frame."),
    _job_tool("edit", EditsRequest, "Edit an image", "Edit an image as the prompt says."),
    _job_tool("retexture", RetextureRequest, "Retexture an image", "New surfaces and lighting, same shapes."),
    ToolSpec(
        endpoint=ENDPOINTS["upload_images"],
        request=UploadRequest,
        controls=NoControls,
        title="Upload images",
        description="Host images; returns URLs.",
        kind="job",
        handler=_upload,
        output=UploadView,
    ),
    _job_tool("show", ShowRequest, "Bring back a job", "A Midjourney job as a task, to press its buttons."),
    _job_tool("change", ChangeRequest, "Upscale/vary by index", "U/V/🔄 by index (older API); prefer action."),
    _job_tool("simple_change", SimpleChangeRequest, "Upscale/vary by text", "change as text; prefer action."),
    ToolSpec(
        endpoint=ENDPOINTS["get_task"],
        request=FetchRequest,
        controls=WaitControls,
        title="Get a task",
        description="A task's status, image, buttons; wait=true waits on.",
        kind="read",
        handler=_get_task,
    ),
    _read_tool("list_tasks", ConditionRequest, "Get several tasks", "Tasks by id.", _list_tasks, TaskListView),
    _read_tool("query_tasks", QueryRequest, "Search tasks", "Filter tasks, page by page.", _query, PageView),
    _list_tool("recent_tasks", RecentControls, "Recent tasks", "Latest tasks, newest first.", _recent),
    _list_tool("task_queue", ListControls, "Queue", "Tasks waiting or running.", _queue),
    _read_tool("image_seed", TaskIdRequest, "Image seed", "An image's seed, for --seed.", _seed, SeedView),
    ToolSpec(
        endpoint=ENDPOINTS["cancel_task"],
        request=TaskIdRequest,
        controls=NoControls,
        title="Cancel a task",
        description="Stop a queued or running task.",
        kind="destructive",
        handler=_cancel,
        output=CancelView,
    ),
)
