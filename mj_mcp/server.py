"""The MCP server: every upstream operation a tool, built from its request model.

`create_server(settings, client=None)` returns an `MCPServer`. One mechanism (`_build_tool`)
turns each row of `TOOLS` into a tool: the input schema is the endpoint's request model
(models.py) plus the control arguments that apply (`wait`, `timeout`, `mode`), flattened to the
top level under the wire names. Arguments are validated by those same models, so a model that
sends a wrong argument gets a readable isError result naming the field, not a traceback.

Job tools submit, then wait on the shared `TaskWatcher` while turning each change into an MCP
progress notification (percent of 100, message naming the status), and return the task as
`results.task_result` renders it: structured Task, text, a preview the model can see, the
saved files, a resource link.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import anyio
import httpx2
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    ImageContent,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    TextContent,
    ToolAnnotations,
    UnsubscribeRequestParams,
)
from pydantic import ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from mj_mcp import __version__
from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.callbacks import serve as serve_callbacks
from mj_mcp.client import MjClient
from mj_mcp.config import HEARTBEAT_SECONDS, Settings
from mj_mcp.endpoints import ENDPOINTS
from mj_mcp.errors import (
    ButtonNotFoundError,
    GuardrailError,
    MjError,
    RateLimitedError,
    TaskNotFoundError,
    UpstreamUnavailableError,
    validation_problems,
)
from mj_mcp.images import classify, make_preview, png_for_resource
from mj_mcp.live import LiveTasks
from mj_mcp.loading import ImageLoader
from mj_mcp.models import (
    CODE_EXISTED_MODAL,
    ActionRequest,
    ConditionRequest,
    FetchRequest,
    ImagineRequest,
    Mode,
    QueryRequest,
    SubmitResult,
    Task,
    TaskIdRequest,
    UploadRequest,
    WireModel,
)
from mj_mcp.results import (
    Media,
    error_result,
    json_result,
    modal_instructions,
    task_link,
    task_result,
    task_uri,
)
from mj_mcp.saving import ImageSaver, SavedImages
from mj_mcp.waiting import Clock, TaskWatcher, describe_status

__all__ = ["TOOLS", "App", "create_server"]

logger = logging.getLogger(__name__)

INSTRUCTIONS: Final = """\
Midjourney image generation through a midjourney-proxy API.
Start with `imagine` (it waits and shows the picture); then press the task's buttons with \
`action` (U1-U4 upscale one image of the grid, V1-V4 vary it, 🔄 re-roll; on an upscale: \
'Vary (Strong)', 'Zoom Out 2x', pans ...). Jobs that need one more input come back in MODAL \
status: finish them with `modal`. `describe` turns an image into prompts, `shorten` trims a \
prompt, `blend` mixes 2-5 images. Images can be given as file paths, URLs or data URIs. \
If a wait times out, `get_task` with wait=true continues it."""


# -- control arguments ---------------------------------------------------------------------------


class JobControls(WireModel):
    """Control arguments of the job-starting tools."""

    wait: bool = Field(
        default=True,
        description="false: return at once, without waiting.",
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="Max seconds to wait.",
    )
    mode: Mode | None = Field(default=None, description="Speed mode.")


class WaitControls(WireModel):
    """Control arguments of get_task."""

    wait: bool = Field(default=False, description="Wait until it finishes, with progress.")
    timeout: float | None = Field(default=None, gt=0, description="Max seconds to wait.")


CONTROL_FIELDS: Final = frozenset({"wait", "timeout", "mode"})
MODAL_GRACE: Final = 20.0
"""Seconds a `modal` call's wait looks past MODAL: new-api refreshes its copy of a task only every
~15 s, so the first reads after the confirmation may still show the task waiting for it."""


class _RawArguments(ArgModelBase):
    """Hands the raw arguments through; the tool's own model validates them (with our messages)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# -- runtime -------------------------------------------------------------------------------------


@dataclass
class App:
    """What the tools share while the server runs (made in the lifespan)."""

    settings: Settings
    client: MjClient
    watcher: TaskWatcher
    images: ImageLoader
    saver: ImageSaver | None
    jobs_started: int = 0
    job_lock: anyio.Lock = field(default_factory=anyio.Lock)
    audit: AuditLog | None = None
    callbacks: CallbackReceiver | None = None
    """Set while upstream callbacks can reach this server (MJ_PUBLIC_URL, and a listener)."""


class _Holder:
    """Lets resources (which get no Context) reach the running App."""

    app: App | None = None

    def get(self) -> App:
        if self.app is None:
            raise ResourceError("The server is not running yet.")
        return self.app


Handler = Callable[[App, Context, str, WireModel, WireModel | None], Awaitable[CallToolResult]]
"""(app, ctx, tool name, validated request, validated control arguments or None)"""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its upstream endpoint, description for the model, and behaviour."""

    name: str
    title: str
    description: str
    kind: Literal["job", "read", "destructive"]
    handler: Handler


# -- tool handlers -------------------------------------------------------------------------------


async def _job(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    """Submit a job, then wait for it with progress (unless wait=false)."""
    assert isinstance(controls, JobControls)
    request = await _prepare(app, name, request)
    callbacks = app.callbacks
    if (
        callbacks is not None
        and "notify_hook" in type(request).model_fields
        and not getattr(request, "notify_hook", None)
    ):
        request = request.model_copy(update={"notify_hook": callbacks.hook_url})
    await _count_job(app, name)
    result = await app.client.submit(ENDPOINTS[name], request, mode=controls.mode)
    task_id = result.task_id
    assert task_id is not None  # the client guarantees an id for accepted submits
    if callbacks is not None:
        callbacks.expect(task_id)
    logger.info("Submitted %s as task %s (code %s)", name, task_id, result.code)
    if app.audit is not None:
        await app.audit.record(
            name, task_id, prompt=getattr(request, "prompt", None), mode=controls.mode or app.client.mode
        )
    siblings = result.task_ids[1:]
    if callbacks is not None:
        for sibling in siblings:
            callbacks.expect(sibling)
    if result.code == CODE_EXISTED_MODAL:
        return _with_siblings(await _modal_result(app, name, task_id, request), siblings)
    if not controls.wait:
        task = await _fetch_or_stub(app, task_id, name)
        return _with_siblings(task_result(task, tool=name, queue_position=result.queue_position), siblings)
    rendered = await _wait_and_render(
        app,
        ctx,
        name,
        task_id,
        controls.timeout,
        result,
        custom_id=getattr(request, "custom_id", None) or "",
        modal_grace=MODAL_GRACE if ENDPOINTS[name].waits_past_modal else 0.0,
    )
    return _with_siblings(rendered, siblings)


def _with_siblings(result: CallToolResult, siblings: list[str]) -> CallToolResult:
    """One submit may start several tasks (describe's "Imagine all"): none may go unmentioned."""
    if not siblings:
        return result
    ids = ", ".join(siblings)
    note = (
        f"This call also started {len(siblings)} more task(s): {ids}. Follow them with get_task (wait=true) "
        f"or list_tasks with ids=[{', '.join(json.dumps(i) for i in siblings)}]."
    )
    result.content.insert(1, TextContent(text=note))
    result.content.extend(task_link(sibling) for sibling in siblings)
    return result


async def _get_task(
    app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None
) -> CallToolResult:
    assert isinstance(request, FetchRequest)
    assert isinstance(controls, WaitControls)
    task = await app.client.fetch(request.task_id)
    if controls.wait and not task.finished and task.status != "MODAL":
        return await _wait_and_render(app, ctx, "get_task", task.id, controls.timeout, None, initial=task)
    return task_result(task, tool="get_task", media=await _media(app, task))


async def _upload(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    prepared = await _prepare(app, name, request)
    assert isinstance(prepared, UploadRequest)
    await _count_job(app, name)
    urls = await app.client.upload_images(prepared)
    if app.audit is not None:
        await app.audit.record(name, None, mode=app.client.mode)
    text = "Uploaded. Use these URLs as image prompts (e.g. at the start of an imagine prompt):\n" + "\n".join(urls)
    return json_result(text, {"urls": urls})


async def _list_tasks(
    app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None
) -> CallToolResult:
    assert isinstance(request, ConditionRequest)
    tasks = await app.client.list_by_condition(request.ids)
    missing = [i for i in request.ids if i not in {t.id for t in tasks}]
    return _tasks_result(tasks, "list_tasks", missing=missing)


async def _query(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    assert isinstance(request, QueryRequest)
    page = await app.client.query(request)
    head = (
        f"Page {page.number} of {max(page.total_pages, 1)} (0-based), {page.number_of_elements} of "
        f"{page.total_elements} task(s)."
    )
    lines = [head, *(_task_line(t) for t in page.content)]
    if not page.last:
        lines.append(f"Next: query_tasks with pageNumber={page.number + 1} for more.")
    return json_result("\n".join(lines), page.to_wire(), links=page.content)


async def _recent(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    return _tasks_result(await app.client.recent(), "recent_tasks")


async def _queue(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    return _tasks_result(await app.client.queue(), "task_queue")


async def _seed(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    assert isinstance(request, TaskIdRequest)
    seed = await app.client.image_seed(request.task_id)
    text = f"Seed of task {request.task_id}: {seed}. Add --seed {seed} to a prompt to get similar results."
    return json_result(text, {"taskId": request.task_id, "seed": seed})


async def _cancel(app: App, ctx: Context, name: str, request: WireModel, controls: WireModel | None) -> CallToolResult:
    assert isinstance(request, TaskIdRequest)
    reply = await app.client.cancel(request.task_id)
    try:
        task = await app.client.fetch(request.task_id)
    except TaskNotFoundError:
        task = None
    data: dict[str, Any] = {"taskId": request.task_id, "cancelRequested": True}
    if reply is not None:
        data["reply"] = reply.to_wire()
    if task is not None:
        data["task"] = task.to_wire()
        text = f"Cancel sent for task {request.task_id}; it is now {task.status or 'UNKNOWN'}"
        if task.fail_reason:
            text += f" ({task.fail_reason})"
        text += "."
    else:
        text = f"Cancel sent for task {request.task_id}."
    return json_result(text, data, links=[task] if task is not None else [])


# -- job helpers ---------------------------------------------------------------------------------


async def _count_job(app: App, name: str) -> None:
    limit = app.settings.max_jobs
    async with app.job_lock:
        if limit is not None and app.jobs_started >= limit:
            raise GuardrailError(
                f"{name} was not sent: this server may start at most {limit} job(s) (MJ_MAX_JOBS) and has "
                "reached that limit.",
                hint="Ask the user to raise MJ_MAX_JOBS and restart the server if more are wanted.",
            )
        app.jobs_started += 1


async def _prepare(app: App, name: str, request: WireModel) -> WireModel:
    """Turn image arguments into what the endpoint takes, and button labels into customIds."""
    updates: dict[str, Any] = {}
    images = app.images
    hook = getattr(request, "notify_hook", None)
    if hook:
        # The upstream would POST the task to it: no way into this machine's network.
        updates["notify_hook"] = await images.check_url(hook, what="notifyHook URL")
    if isinstance(request, ImagineRequest) and request.base64_array:
        urls: list[str] = []
        datas: list[str] = []
        for item in request.base64_array:
            if classify(item) == "url":
                urls.append(await images.check_url(item))
            else:
                datas.append(await images.to_data_uri(item))
        if urls:
            # Midjourney reads image prompts as URLs at the very start of the prompt.
            updates["prompt"] = " ".join([*urls, request.prompt])
        updates["base64_array"] = datas or None
    elif isinstance(request, ActionRequest):
        updates["custom_id"] = await _resolve_button(app, request.task_id, request.custom_id)
    else:
        for attr in ("base64_array", "base64", "mask_base64", "source_base64", "target_base64", "image"):
            value = getattr(request, attr, None)
            if value is None:
                continue
            if not value:
                # The seeds' examples send "" and [] for "none"; the upstream must not get a bad image.
                updates[attr] = None
                continue
            if isinstance(value, list):
                items = cast(list[str], value)
                updates[attr] = [await images.to_data_uri(v) for v in items]
            elif attr == "image" and classify(cast(str, value)) == "url":
                # video/edits take URLs as they are; they must still be public addresses.
                updates[attr] = await images.check_url(cast(str, value))
            elif attr == "mask_base64":
                # Upstreams strip only "data:image/png;base64," from a Vary Region mask.
                updates[attr] = await images.to_png_data_uri(cast(str, value))
            else:
                updates[attr] = await images.to_data_uri(cast(str, value))
    return request.model_copy(update=updates) if updates else request


async def _resolve_button(app: App, task_id: str, wanted: str) -> str:
    if wanted.startswith("MJ::"):
        return wanted
    parent = await app.client.fetch(task_id)
    button = parent.button(wanted)
    if button is not None:
        return button.custom_id
    labels = [b.display for b in parent.buttons]
    if labels:
        raise ButtonNotFoundError(
            f"Task {task_id} has no button {wanted!r}. Available: {', '.join(repr(label) for label in labels)}.",
            available=labels,
            hint="Call action again with one of these labels (or its customId).",
        )
    if not parent.finished:
        raise ButtonNotFoundError(
            f"Task {task_id} has no buttons yet: it is {parent.status or 'not finished'}.",
            available=[],
            hint=f'Call get_task with taskId="{task_id}" and wait=true, then press a button of the finished task.',
        )
    raise ButtonNotFoundError(
        f"Task {task_id} has no buttons (this upstream lists none).",
        available=[],
        hint=f"For a grid, use change (taskId={task_id}, action UPSCALE, VARIATION or REROLL, index 1-4) or "
        f'simple_change (content "{task_id} U2").',
    )


async def _modal_result(app: App, name: str, task_id: str, request: WireModel) -> CallToolResult:
    task = await _fetch_or_stub(app, task_id, name, status="MODAL")
    custom_id = getattr(request, "custom_id", "") or ""
    return task_result(task, tool=name, modal_hint=modal_instructions(task, custom_id))


async def _fetch_or_stub(app: App, task_id: str, name: str, *, status: str = "SUBMITTED") -> Task:
    try:
        return await app.client.fetch(task_id)
    except MjError:
        # The job exists (the submit said so); a lagging read must not hide its id.
        return Task(id=task_id, action=name.upper(), status=status)


async def _wait_and_render(
    app: App,
    ctx: Context,
    name: str,
    task_id: str,
    timeout: float | None,
    submitted: SubmitResult | None,
    *,
    initial: Task | None = None,
    custom_id: str = "",
    modal_grace: float = 0.0,
) -> CallToolResult:
    async def on_update(task: Task) -> None:
        try:
            await ctx.report_progress(float(task.percent), 100.0, describe_status(task))
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:  # a client that went away must not fail the wait
            logger.debug("Could not send a progress notification", exc_info=True)

    try:
        outcome = await app.watcher.wait(
            task_id,
            timeout=timeout or app.settings.wait_timeout,
            on_update=on_update,
            initial=initial,
            modal_grace=modal_grace,
        )
    except (UpstreamUnavailableError, RateLimitedError) as exc:
        # The job exists and may well finish; only reading it failed. Not an error: the same
        # answer as a timeout, so that nobody submits (and pays) again.
        logger.info("Waiting for task %s ended early: %s", task_id, exc.message)
        stub = initial or Task(id=task_id, action=name.upper(), status="SUBMITTED")
        result = task_result(stub, tool=name, timed_out=True)
        result.content.insert(1, TextContent(text=f"(The upstream could not be read just now: {exc.message})"))
        return result
    except MjError as exc:
        if submitted is None or isinstance(exc, TaskNotFoundError):
            raise
        logger.info("Waiting for task %s failed: %s", task_id, exc.message)
        return error_result(
            f"{name} was submitted as task {task_id}, but waiting for it failed: {exc.message} Do not submit "
            f"it again. {exc.hint} Then call get_task with taskId={task_id} and wait=true.".replace("  ", " "),
            task=initial or Task(id=task_id, action=name.upper(), status="SUBMITTED"),
        )
    task = outcome.task
    if task.status == "MODAL" and name == "modal":
        if outcome.timed_out:
            hint = (
                f"The upstream still shows task {task_id} waiting for confirmation (a reseller's copy can lag "
                f'~15 s). Look again with get_task taskId="{task_id}" in a few seconds before calling modal '
                "again: each modal call may be charged."
            )
        else:
            hint = (
                f"The upstream still shows task {task_id} waiting for confirmation {modal_grace:g} s after this "
                "modal call, so it did not take it. Check the prompt (and maskBase64) against what the task needs "
                "before calling modal again: each modal call may be charged."
            )
        return task_result(task, tool=name, modal_hint=hint)
    if task.status == "MODAL":
        return task_result(task, tool=name, modal_hint=modal_instructions(task, custom_id or task.custom_id or ""))
    media = await _media(app, task) if task.status == "SUCCESS" else None
    return task_result(
        task,
        tool=name,
        media=media,
        timed_out=outcome.timed_out,
        queue_position=submitted.queue_position if submitted else None,
    )


async def _media(app: App, task: Task) -> Media | None:
    """Download the task's image, make the preview the model sees, and save the files."""
    if task.status != "SUCCESS" or not task.image_url:
        return None
    action = (task.action or "").upper()
    if action in ("DESCRIBE", "SHORTEN"):
        return None
    source = task.image_url
    if action == "VIDEO":
        # imageUrl is the picture the videos start from; a thumbnail of the first video, when
        # given, shows the result. Neither is the result itself, so nothing is saved.
        source = next((v.thumbnail for v in task.video_urls or [] if v.thumbnail), source)
    media = Media()
    try:
        data, mime = await app.client.download(source)
        preview, preview_mime = await anyio.to_thread.run_sync(make_preview, data)
        media.preview = ImageContent(data=base64.b64encode(preview).decode("ascii"), mime_type=preview_mime)
        saver = app.saver
        if saver is not None and action != "VIDEO":
            grid = task.button("U1") is not None and task.button("V1") is not None
            kind = (task.action or "task").lower()

            def save() -> SavedImages:
                assert saver is not None
                return saver.save_task(task.id, data, mime, grid=grid, kind=kind)

            saved = await anyio.to_thread.run_sync(save)
            media.saved = saved.path
            media.quadrants = list(saved.quadrants)
    except MjError as exc:
        media.notes.append(f"(The image could not be shown: {exc.message})")
    except OSError as exc:
        media.notes.append(f"(The image could not be saved: {exc.strerror or type(exc).__name__})")
    return media


def _task_line(task: Task) -> str:
    prompt = (task.prompt or "").replace("\n", " ")
    prompt = prompt if len(prompt) <= 80 else prompt[:79] + "…"
    return f"- {task.id} {task.action or '?'} {task.status or '?'} {task.progress or ''} {prompt}".rstrip()


def _tasks_result(tasks: list[Task], tool: str, *, missing: list[str] | None = None) -> CallToolResult:
    lines = [f"{len(tasks)} task(s)."]
    lines.extend(_task_line(t) for t in tasks)
    if missing:
        lines.append("Not found: " + ", ".join(missing))
    if tasks:
        lines.append("Next: get_task with a taskId for the full task and its image.")
    return json_result("\n".join(lines), {"tasks": [t.to_wire() for t in tasks]}, links=tasks[:20])


# -- the tool table ------------------------------------------------------------------------------

_AFTER_JOB = " Waits with progress; returns the image, saved file and buttons."

TOOLS: Final[tuple[ToolSpec, ...]] = (
    ToolSpec(
        "imagine",
        "Generate images",
        "Create a 2x2 grid of four images from a text prompt (Midjourney /imagine)."
        + _AFTER_JOB
        + " Next: action with U1-U4 to upscale one, V1-V4 for variations, 🔄 to re-roll.",
        "job",
        _job,
    ),
    ToolSpec(
        "blend",
        "Blend images",
        "Blend 2-5 images into a new 2x2 grid." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "describe",
        "Describe an image",
        "Get four prompts describing an image; use one with imagine.",
        "job",
        _job,
    ),
    ToolSpec(
        "shorten",
        "Shorten a prompt",
        "Analyse a long prompt: its important tokens and five shorter versions.",
        "job",
        _job,
    ),
    ToolSpec(
        "action",
        "Press a button",
        "Press a button of a finished task by label or customId: U1-U4 upscale, V1-V4 vary, 🔄 re-roll, "
        "'Vary (Strong)', 'Zoom Out 2x', ⬅️ ... as listed on the task."
        + _AFTER_JOB
        + " A MODAL result needs modal next.",
        "job",
        _job,
    ),
    ToolSpec(
        "modal",
        "Confirm a MODAL task",
        "Finish a MODAL task (after Custom Zoom, Vary (Region), remix): prompt (Custom Zoom: add "
        "--zoom 1..2); Vary (Region) also needs maskBase64." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "swap_face",
        "Swap a face",
        "Put the face from sourceBase64 onto the person in targetBase64." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "video",
        "Animate an image",
        "Make short videos from a prompt and a start image. Returns the video URLs.",
        "job",
        _job,
    ),
    ToolSpec(
        "edit",
        "Edit an image",
        "Edit an image by instruction (e.g. 'white background')." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "upload_images",
        "Upload images",
        "Upload images; returns their URLs (for image prompts). No task.",
        "job",
        _upload,
    ),
    ToolSpec(
        "show",
        "Bring back a job",
        "Recreate a task from a Midjourney job id (UUID) or its image URL, to use its buttons." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "change",
        "Upscale/vary by index",
        "UPSCALE or VARIATION grid image `index` (1-4), or REROLL (older API; prefer action)." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "simple_change",
        "Upscale/vary by text",
        "Like change, as one text: '<taskId> U2', '<taskId> V1' or '<taskId> R'." + _AFTER_JOB,
        "job",
        _job,
    ),
    ToolSpec(
        "get_task",
        "Get a task",
        "Get a task's status, image and buttons. With wait=true, wait for it to finish (with progress).",
        "read",
        _get_task,
    ),
    ToolSpec("list_tasks", "Get several tasks", "Get several tasks by id in one call.", "read", _list_tasks),
    ToolSpec(
        "query_tasks",
        "Search tasks",
        "Page through tasks (pageNumber is 0-based), filtered by action, status, prompt text or state.",
        "read",
        _query,
    ),
    ToolSpec("recent_tasks", "Recent tasks", "List the most recent tasks, newest first.", "read", _recent),
    ToolSpec("task_queue", "Queue", "List the tasks waiting or running upstream.", "read", _queue),
    ToolSpec(
        "image_seed",
        "Image seed",
        "Get the seed of a finished image task (use --seed to get similar images).",
        "read",
        _seed,
    ),
    ToolSpec(
        "cancel_task",
        "Cancel a task",
        "Cancel a queued or running task. It ends as FAILURE/CANCEL; credits may not be refunded.",
        "destructive",
        _cancel,
    ),
)

JOB_TOOLS: Final = frozenset(spec.name for spec in TOOLS if spec.kind == "job")
_SPECS: Final = {spec.name: spec for spec in TOOLS}


def _controls_for(spec: ToolSpec) -> type[WireModel] | None:
    if spec.kind == "job" and spec.name != "upload_images":
        return JobControls
    if spec.name == "get_task":
        return WaitControls
    return None


@functools.cache
def _arguments_model(name: str) -> type[WireModel]:
    """The endpoint's request model, plus the control arguments that apply.

    Made at a tool's first call, not at start-up: `create_model` costs milliseconds per tool,
    and the schema in tools/list is put together from the two models without it.
    """
    request = ENDPOINTS[name].request
    controls = _controls_for(_SPECS[name])
    if controls is None:
        return request
    # Base order puts the DTO's fields first, the controls after them, as in the input schema.
    return create_model(f"{name}_arguments", __base__=(controls, request), __doc__=request.__doc__)


def _compact_schema(schema: Any) -> Any:
    """Smaller schema, same meaning: agents pay for tools/list on every turn."""
    if isinstance(schema, dict):
        source = cast(dict[str, Any], schema)
        out: dict[str, Any] = {}
        for key, value in source.items():
            if key == "title" and isinstance(value, str):
                continue
            if key == "default" and value is None:
                continue
            out[key] = _compact_schema(value)
        any_of = out.get("anyOf")
        if isinstance(any_of, list):
            options = [o for o in cast(list[Any], any_of) if o != {"type": "null"}]
            if len(options) == 1 and isinstance(options[0], dict):
                del out["anyOf"]
                out = {**cast(dict[str, Any], options[0]), **out}
        return out
    if isinstance(schema, list):
        return [_compact_schema(v) for v in cast(list[Any], schema)]
    return schema


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `$ref`s to `$defs` by their definitions (our models are not recursive)."""
    if isinstance(node, dict):
        source = cast(dict[str, Any], node)
        ref = source.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in source.items() if k != "$ref"}
            target = cast(dict[str, Any], defs[ref.removeprefix("#/$defs/")])
            return _inline_refs({**target, **rest}, defs)
        return {k: _inline_refs(v, defs) for k, v in source.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in cast(list[Any], node)]
    return node


@functools.cache
def _model_schema(model: type[WireModel]) -> dict[str, Any]:
    """Cached: the controls' schema is part of fifteen tools, and tests build many servers.
    Callers copy what they keep."""
    raw = model.model_json_schema(by_alias=True)
    defs = cast(dict[str, Any], raw.pop("$defs", {}))
    return cast(dict[str, Any], _compact_schema(_inline_refs(raw, defs)))


def _input_schema(spec: ToolSpec) -> dict[str, Any]:
    """The schema of `_arguments_model(spec.name)`: the DTO's fields, then the controls."""
    parts = [_model_schema(ENDPOINTS[spec.name].request)]
    controls = _controls_for(spec)
    if controls is not None:
        parts.append(_model_schema(controls))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in parts:
        properties.update(copy.deepcopy(cast(dict[str, Any], part.get("properties", {}))))
        required += [name for name in cast(list[str], part.get("required", [])) if name not in required]
    # Unknown arguments are still refused by the model at call time, with a message naming them.
    schema: dict[str, Any] = {"type": "object"}
    # Required fields first: the order a model reads them in is the order it fills them in.
    schema["properties"] = dict(sorted(properties.items(), key=lambda kv: kv[0] not in required))
    if required:
        schema["required"] = required
    return schema


def _format_validation(tool: str, exc: PydanticValidationError) -> str:
    shown = validation_problems(exc, whole="arguments", limit=8)
    return f"Invalid arguments for {tool}: {shown}. Fix these and call {tool} again (see its input schema)."


def _build_tool(spec: ToolSpec, holder: _Holder) -> Tool:
    """One mechanism for every tool: schema and validation from the models, errors as results."""
    request_model = ENDPOINTS[spec.name].request
    has_controls = _controls_for(spec) is not None
    request_fields = {f.alias or name for name, f in request_model.model_fields.items()}

    async def run_tool(ctx: Context, **arguments: Any) -> CallToolResult:
        app = holder.get()
        try:
            parsed = _arguments_model(spec.name).model_validate(arguments)
        except PydanticValidationError as exc:
            return error_result(_format_validation(spec.name, exc))
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True)
        request = request_model.model_validate({k: v for k, v in dumped.items() if k in request_fields})
        controls = parsed if has_controls else None
        try:
            return await spec.handler(app, ctx, spec.name, request, controls)
        except MjError as exc:
            logger.info("%s failed: %s", spec.name, exc.message)
            return error_result(str(exc))
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:
            logger.exception("Unexpected error in tool %s", spec.name)
            return error_result(
                f"{spec.name} failed with an internal error (logged on the server). Try again; if it "
                "persists, check the server log."
            )

    # Only hints that differ from the spec's defaults (every byte of tools/list is paid per turn).
    annotations = ToolAnnotations(
        read_only_hint=True if spec.kind == "read" else None,
        destructive_hint={"job": False, "destructive": True}.get(spec.kind),
        idempotent_hint=True if spec.kind == "read" else None,
        open_world_hint=True,
    )
    return Tool(
        fn=run_tool,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=_input_schema(spec),
        fn_metadata=FuncMetadata(arg_model=_RawArguments),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
    )


# -- the server ----------------------------------------------------------------------------------


def create_server(
    settings: Settings,
    client: MjClient | None = None,
    *,
    clock: Clock | None = None,
    image_loader: ImageLoader | None = None,
    callbacks: CallbackReceiver | None = None,
) -> MCPServer[App]:
    """Build the MCP server. An injected client is used as is and not closed by the server.

    With `MJ_PUBLIC_URL` set, submits carry a `notifyHook` to this server. An injected `callbacks`
    receiver is served by whoever injected it (the HTTP app mounts it); otherwise, on stdio, the
    server opens a small listener of its own on MJ_HOST:MJ_PORT.
    """
    holder = _Holder()
    tools = [_build_tool(spec, holder) for spec in TOOLS if not (settings.read_only and spec.kind != "read")]
    receiver = callbacks
    if receiver is None and settings.public_url is not None and settings.transport == "stdio":
        receiver = CallbackReceiver(settings.public_url)
    serve_own = callbacks is None and receiver is not None
    bus = InMemorySubscriptionBus()
    live = LiveTasks(bus)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[App]) -> AsyncGenerator[App]:
        owned = client is None
        mj = client or _client_from_settings(settings)
        loader = image_loader or ImageLoader(settings.readable_dirs, settings.max_image_bytes)
        watcher = TaskWatcher(
            mj,
            interval=settings.poll_interval,
            heartbeat=HEARTBEAT_SECONDS,
            clock=clock,
        )
        saver = ImageSaver(settings.output_dir) if settings.output_dir is not None else None
        audit = AuditLog(settings.output_dir) if settings.output_dir is not None else None
        app = App(settings=settings, client=mj, watcher=watcher, images=loader, saver=saver, audit=audit)
        holder.app = app
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run)
                live.start(watcher, tg, retry_after=settings.poll_interval)
                if receiver is not None:
                    listening = True
                    if serve_own:
                        listening = await tg.start(serve_callbacks, receiver, settings.host, settings.port)
                    if listening:
                        receiver.attach(watcher)
                        app.callbacks = receiver
                try:
                    yield app
                finally:
                    tg.cancel_scope.cancel()
        finally:
            live.stop()
            if receiver is not None:
                receiver.attach(None)
            holder.app = None
            if image_loader is None:
                await loader.aclose()
            if owned:
                await mj.aclose()

    server: MCPServer[App] = MCPServer(
        "mj-mcp",
        title="Midjourney (mj-mcp)",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://github.com/mj-mcp/mj-mcp",
        tools=tools,
        lifespan=lifespan,
        log_level=settings.log_level,
        warn_on_duplicate_resources=False,
        subscriptions=bus,
    )
    _serve_subscriptions(server, live)
    _register_resources(server, holder)
    _register_prompts(server)
    return server


class _LazySimulator(httpx2.AsyncBaseTransport):
    """The in-process simulator, made at its first request: `tools/list` does not wait for it."""

    def __init__(self, job_seconds: float) -> None:
        self._job_seconds = job_seconds
        self._transport: httpx2.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._transport is None:
            from mj_mcp.simulator import Simulator

            self._transport = Simulator(job_seconds=self._job_seconds).transport()
        return await self._transport.handle_async_request(request)


def _client_from_settings(settings: Settings) -> MjClient:
    if settings.simulator:
        return MjClient(
            "http://simulator.mj-mcp.invalid",
            None,
            transport=_LazySimulator(settings.sim_job_seconds),
            timeout=settings.http_timeout,
        )
    assert settings.base_url is not None
    return MjClient(
        settings.base_url,
        settings.api_key.get_secret_value() if settings.api_key else None,
        auth_header=settings.auth_header,
        mode=settings.mode,
        mode_prefix=settings.mode_prefix,
        timeout=settings.http_timeout,
    )


# -- resources -----------------------------------------------------------------------------------


def _serve_subscriptions(server: MCPServer[App], live: LiveTasks) -> None:
    # MCPServer has no public hook for these three methods; registering on its low-level server
    # is how the SDK's own in-memory transport reaches it too. Registering `resources/subscribe`
    # is also what makes legacy-era capabilities say `resources.subscribe: true`.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, live.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, live.unsubscribe)
    lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, live.listen)


def _resource_errors(uri: str, exc: MjError) -> ResourceError:
    if isinstance(exc, TaskNotFoundError):
        return ResourceNotFoundError(f"{uri}: no such task. recent_tasks lists the latest tasks.")
    return ResourceError(f"{uri}: {exc}")


def _register_resources(server: MCPServer[App], holder: _Holder) -> None:
    import json

    @server.resource(
        "mj://tasks/{taskId}",
        name="task",
        title="A task",
        description="The upstream Task (status, progress, imageUrl, buttons) as JSON.",
        mime_type="application/json",
    )
    async def task_resource(taskId: str) -> str:
        app = holder.get()
        try:
            task = await app.client.fetch(taskId)
        except MjError as exc:
            raise _resource_errors(task_uri(taskId), exc) from None
        return json.dumps(task.to_wire(), ensure_ascii=False)

    @server.resource(
        "mj://tasks/{taskId}/image",
        name="task-image",
        title="A task's image",
        description="The task's image as PNG (full size; scaled down only to stay under 7 MiB).",
        mime_type="image/png",
    )
    async def task_image_resource(taskId: str) -> bytes:
        app = holder.get()
        uri = f"{task_uri(taskId)}/image"
        try:
            task = await app.client.fetch(taskId)
            if not task.image_url:
                raise ResourceNotFoundError(f"{uri}: task {taskId} has no image (status {task.status}).")
            data, _mime = await app.client.download(task.image_url)
            data = await anyio.to_thread.run_sync(png_for_resource, data)
        except MjError as exc:
            raise _resource_errors(uri, exc) from None
        return data

    @server.resource(
        "mj://tasks/page/{pageNumber}{?pageSize,sort,action,status,prompt,state}",
        name="task-page",
        title="A page of tasks",
        description="One page of the paged task query (0-based), as the upstream's Page object.",
        mime_type="application/json",
    )
    async def page_resource(
        pageNumber: str,
        pageSize: str | None = None,
        sort: str | None = None,
        action: str | None = None,
        status: str | None = None,
        prompt: str | None = None,
        state: str | None = None,
    ) -> str:
        app = holder.get()
        uri = f"mj://tasks/page/{pageNumber}"
        raw = {
            "pageNumber": pageNumber,
            "pageSize": pageSize,
            "sort": sort,
            "action": action,
            "status": status,
            "prompt": prompt,
            "state": state,
        }
        try:
            query = QueryRequest.model_validate({k: v for k, v in raw.items() if v is not None})
        except PydanticValidationError as exc:
            problems = validation_problems(exc, whole="page", limit=4)
            raise MCPError(
                INVALID_PARAMS,
                f"{uri}: {problems}. Use a 0-based page number, and optionally pageSize (1-100), sort, action, "
                "status, prompt, state as query parameters.",
                {"uri": uri},
            ) from None
        try:
            page = await app.client.query(query)
        except MjError as exc:
            raise _resource_errors(uri, exc) from None
        return json.dumps(page.to_wire(), ensure_ascii=False)

    @server.resource(
        "mj://tasks/recent",
        name="recent-tasks",
        title="Recent tasks",
        description="The latest tasks, newest first (JSON array of Tasks).",
        mime_type="application/json",
    )
    async def recent_resource() -> str:
        try:
            tasks = await holder.get().client.recent()
        except MjError as exc:
            raise _resource_errors("mj://tasks/recent", exc) from None
        return json.dumps([t.to_wire() for t in tasks], ensure_ascii=False)

    @server.resource(
        "mj://queue",
        name="queue",
        title="Upstream queue",
        description="Tasks waiting or running upstream (JSON array of Tasks).",
        mime_type="application/json",
    )
    async def queue_resource() -> str:
        try:
            tasks = await holder.get().client.queue()
        except MjError as exc:
            raise _resource_errors("mj://queue", exc) from None
        return json.dumps([t.to_wire() for t in tasks], ensure_ascii=False)


# -- prompts -------------------------------------------------------------------------------------

PROMPT_GUIDE: Final = """\
Write one Midjourney prompt for this request: {description}

How a good Midjourney prompt looks:
- Lead with the subject and what it does, then setting, style/medium, lighting, colour, camera or
  lens terms. Concrete nouns and adjectives beat long sentences; 15-60 words is plenty.
- Parameters go at the end:
  --ar W:H   aspect ratio (16:9 landscape, 9:16 phone, 2:3 portrait){aspect}
  --v 7      model version (--niji 6 for anime styles)
  --stylize N  (0-1000, default 100) how strongly Midjourney's own aesthetic applies
  --chaos N  (0-100) how different the four images are
  --no X     what to leave out (e.g. --no text, watermark)
  --seed N   repeatable results; --tile for seamless patterns; --q 2 for more detail
- Image prompts: put image URLs first (imagine's base64Array takes files, URLs or data URIs).
{style}
Answer with the prompt only, on one line. Then call the imagine tool with it."""


def _register_prompts(server: MCPServer[App]) -> None:
    @server.prompt(
        name="midjourney_prompt",
        title="Write a Midjourney prompt",
        description="Turn a plain description into a good Midjourney prompt with parameters.",
    )
    def midjourney_prompt(description: str, aspect_ratio: str = "", style: str = "") -> str:
        aspect = f"\n  (use --ar {aspect_ratio} for this one)" if aspect_ratio.strip() else ""
        style_line = f"- Wanted style: {style.strip()}" if style.strip() else ""
        return PROMPT_GUIDE.format(description=description.strip(), aspect=aspect, style=style_line)
