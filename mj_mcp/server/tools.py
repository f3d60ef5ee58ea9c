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
    QueryRequest,
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

__all__ = ["TOOLS", "JobControls", "NoControls", "ToolCall", "ToolSpec", "WaitControls"]


# -- control arguments ---------------------------------------------------------------------------


class JobControls(WireModel):
    """Control arguments of the job-starting tools."""

    wait: bool = Field(default=True, description="Wait for it.")
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Max seconds to wait.",
    )
    mode: Mode | None = Field(default=None, description="Speed mode.")


class ModalControls(JobControls):
    """Control arguments of modal: a region, from which the server draws the Vary (Region) mask."""

    region: Region | None = Field(
        default=None,
        description="Vary (Region) area instead of maskBase64: fractions 0-1 of the image, x,y = top left.",
    )


class WaitControls(WireModel):
    """Control arguments of get_task."""

    wait: bool = Field(default=False, description="Wait until it finishes, with progress.")
    timeout: float | None = Field(default=None, gt=0, description="Max seconds to wait.")


class NoControls(WireModel):
    """Tools without control arguments: their arguments are the request model's alone."""


class ListControls(WireModel):
    """Control arguments of task_queue: how much of the list to show (a long list costs context)."""

    limit: int = Field(default=10, ge=1, le=100, description="Most tasks to list.")


def _plain_string(schema: dict[str, Any]) -> None:
    # "today" and a bare date are meant too, which a date-time format would tell a model is wrong.
    schema.pop("format", None)


class RecentControls(ListControls):
    """Control arguments of recent_tasks: how many, and from when."""

    since: datetime | None = Field(
        default=None,
        description="Only tasks submitted from then on: an ISO date or date-time, or 'today'.",
        json_schema_extra=_plain_string,
    )

    @field_validator("since", mode="before")
    @classmethod
    def _today(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "today":
            return datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        return value

    def keeps(self, task: Task) -> bool:
        """Whether the task was submitted at or after `since` (tasks without a time are kept)."""
        if self.since is None or task.submit_time is None:
            return True
        since = self.since if self.since.tzinfo is not None else self.since.astimezone()
        return task.submit_time >= since.timestamp() * 1000


# -- specs ---------------------------------------------------------------------------------------

Req = TypeVar("Req", bound=WireModel)
Ctl = TypeVar("Ctl", bound=WireModel)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a handler knows about the call besides its arguments."""

    endpoint: Endpoint
    progress: Progress
    """Reports a waited-for task's changes to the caller."""


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
    tasks = sorted(await rt.client.recent(), key=lambda t: t.submit_time or 0, reverse=True)
    return tasks_result([t for t in tasks if controls.keeps(t)][: controls.limit], saved=rt.jobs.saved_file)


async def _queue(rt: Runtime, call: ToolCall, request: EmptyRequest, controls: ListControls) -> Rendered:
    return tasks_result((await rt.client.queue())[: controls.limit], saved=rt.jobs.saved_file)


async def _seed(rt: Runtime, call: ToolCall, request: TaskIdRequest, controls: NoControls) -> Rendered:
    return seed_result(request.task_id, await rt.client.image_seed(request.task_id))


async def _cancel(rt: Runtime, call: ToolCall, request: TaskIdRequest, controls: NoControls) -> Rendered:
    return cancel_result(await rt.jobs.cancel(request.task_id))


# -- the table -----------------------------------------------------------------------------------

_AFTER_JOB = " Waits with progress; returns the image, saved file and buttons."


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
        "Create a 2x2 grid of four images from a text prompt (Midjourney /imagine)."
        + _AFTER_JOB
        + " Next: action with U1-U4 to upscale one, V1-V4 for variations, 🔄 to re-roll.",
    ),
    _job_tool("blend", BlendRequest, "Blend images", "Blend 2-5 images into a new 2x2 grid." + _AFTER_JOB),
    _job_tool(
        "describe",
        DescribeRequest,
        "Describe an image",
        "Get four prompts describing an image; use one with imagine.",
    ),
    _job_tool(
        "shorten",
        ShortenRequest,
        "Shorten a prompt",
        "Analyse a long prompt: its important tokens and five shorter versions.",
    ),
    _job_tool(
        "action",
        ActionRequest,
        "Press a button",
        "Press a button of a finished task by label or customId: U1-U4 upscale, V1-V4 vary, 🔄 re-roll, "
        "'Vary (Strong)', 'Zoom Out 2x', ⬅️ ... as listed on the task."
        + _AFTER_JOB
        + " A MODAL result needs modal next.",
    ),
    ToolSpec(
        endpoint=ENDPOINTS["modal"],
        request=ModalRequest,
        controls=ModalControls,
        title="Confirm a MODAL task",
        description="Finish a MODAL task (after Custom Zoom, Vary (Region), remix): prompt (Custom Zoom: add "
        "--zoom 1..2); Vary (Region): region or maskBase64." + _AFTER_JOB,
        kind="job",
        handler=_modal,
    ),
    _job_tool(
        "swap_face",
        SwapFaceRequest,
        "Swap a face",
        "Put the face from sourceBase64 onto the person in targetBase64." + _AFTER_JOB,
    ),
    _job_tool(
        "video",
        VideoRequest,
        "Animate an image",
        "Make short videos from a prompt and a start image. Returns the video URLs.",
    ),
    _job_tool(
        "edit", EditsRequest, "Edit an image", "Edit an image by instruction (e.g. 'white background')." + _AFTER_JOB
    ),
    ToolSpec(
        endpoint=ENDPOINTS["upload_images"],
        request=UploadRequest,
        controls=NoControls,
        title="Upload images",
        description="Upload images; returns their URLs (for image prompts). No task.",
        kind="job",
        handler=_upload,
        output=UploadView,
    ),
    _job_tool(
        "show",
        ShowRequest,
        "Bring back a job",
        "Recreate a task from a Midjourney job id (UUID) or its image URL, to use its buttons." + _AFTER_JOB,
    ),
    _job_tool(
        "change",
        ChangeRequest,
        "Upscale/vary by index",
        "UPSCALE or VARIATION grid image `index` (1-4), or REROLL (older API; prefer action)." + _AFTER_JOB,
    ),
    _job_tool(
        "simple_change",
        SimpleChangeRequest,
        "Upscale/vary by text",
        "Like change, as one text: '<taskId> U2', '<taskId> V1' or '<taskId> R'." + _AFTER_JOB,
    ),
    ToolSpec(
        endpoint=ENDPOINTS["get_task"],
        request=FetchRequest,
        controls=WaitControls,
        title="Get a task",
        description="Get a task's status, image and buttons. With wait=true, wait for it to finish (with progress).",
        kind="read",
        handler=_get_task,
    ),
    _read_tool(
        "list_tasks",
        ConditionRequest,
        "Get several tasks",
        "Get several tasks by id in one call.",
        _list_tasks,
        TaskListView,
    ),
    _read_tool(
        "query_tasks",
        QueryRequest,
        "Search tasks",
        "Page through tasks (pageNumber is 0-based), filtered by action, status, prompt text or state.",
        _query,
        PageView,
    ),
    _list_tool("recent_tasks", RecentControls, "Recent tasks", "List the most recent tasks, newest first.", _recent),
    _list_tool("task_queue", ListControls, "Queue", "List the tasks waiting or running upstream.", _queue),
    _read_tool(
        "image_seed",
        TaskIdRequest,
        "Image seed",
        "Get the seed of a finished image task (use --seed to get similar images).",
        _seed,
        SeedView,
    ),
    ToolSpec(
        endpoint=ENDPOINTS["cancel_task"],
        request=TaskIdRequest,
        controls=NoControls,
        title="Cancel a task",
        description="Cancel a queued or running task. It ends as FAILURE/CANCEL; credits may not be refunded.",
        kind="destructive",
        handler=_cancel,
        output=CancelView,
    ),
)
