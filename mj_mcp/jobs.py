"""The job service: prepare, submit, wait and fetch media, with no MCP in sight.

`Jobs.run(endpoint, request, ...)` is what a job tool does: it turns image arguments into what
the endpoint takes and button labels into customIds, checks (or injects) the `notifyHook`,
counts the job against MJ_MAX_JOBS, submits it, writes the audit line once the upstream has
accepted it, waits on the shared `TaskWatcher` (reporting each change to a plain progress
callback), and downloads, previews and saves the image. It answers with a `JobOutcome`: the
task, its media, and one `NextStep` saying what the caller must know beyond the task itself.
`results.render_outcome` turns that into what a model reads; the MCP adapter (mj_mcp.server)
only hands the rendering on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import anyio

from mj_mcp import buttons
from mj_mcp.audit import AuditLog
from mj_mcp.callbacks import CallbackReceiver
from mj_mcp.client import MjClient
from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import (
    GuardrailError,
    InputError,
    MjError,
    RateLimitedError,
    TaskNotFoundError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.inputs import Inputs
from mj_mcp.jsonbody import JsonBody
from mj_mcp.loading import ImageLoader
from mj_mcp.media import Media, MediaFetcher
from mj_mcp.models import (
    CODE_EXISTED_MODAL,
    ActionRequest,
    ChangeRequest,
    Mode,
    SimpleChangeRequest,
    Status,
    SubmitResult,
    Task,
    UploadRequest,
    WireModel,
)
from mj_mcp.references import TaskImages
from mj_mcp.saving import ImageSaver
from mj_mcp.sharing import JobCounter, JobRegistry
from mj_mcp.upstreams import as_change, change_button
from mj_mcp.waiting import TaskWatcher, WaitOutcome

__all__ = [
    "MODAL_GRACE",
    "Cancelled",
    "JobOutcome",
    "Jobs",
    "ModalLagging",
    "ModalNeeded",
    "ModalNotTaken",
    "NextStep",
    "Progress",
    "Submitted",
    "UpstreamUnreadable",
    "WaitFailed",
]

logger = logging.getLogger(__name__)

Progress = Callable[[Task], Awaitable[None]]
"""Called with each new snapshot of a waited-for task (and again after quiet stretches)."""

JOIN_WINDOW: Final = 900.0
"""Seconds after its submit during which an unanswered job is joined by a call that repeats it."""
REMEMBERED_JOBS: Final = 256
MODAL_GRACE: Final = 20.0
"""Seconds a wait after a MODAL confirmation looks past MODAL: new-api refreshes its copy of a task
only every ~15 s, so the first reads after the confirmation may still show the task waiting for it."""

_Request = TypeVar("_Request", bound=WireModel)


# -- what a job comes back with ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModalNeeded:
    """The task waits for a `modal` call; `custom_id` is the button that led there ("" if unknown)."""

    custom_id: str


@dataclass(frozen=True, slots=True)
class ModalNotTaken:
    """After a `modal` call the task still showed MODAL `grace` seconds later: the upstream refused it."""

    grace: float


@dataclass(frozen=True, slots=True)
class ModalLagging:
    """After a `modal` call the wait timed out while the (possibly stale) task still showed MODAL."""


@dataclass(frozen=True, slots=True)
class UpstreamUnreadable:
    """Reading the task failed for now (unavailable, rate limited); the job may well go on."""

    message: str


@dataclass(frozen=True, slots=True)
class WaitFailed:
    """The job was accepted, but waiting for it failed for good: it must not be submitted again."""

    message: str
    hint: str


NextStep = ModalNeeded | ModalNotTaken | ModalLagging | UpstreamUnreadable | WaitFailed


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a job call ended. `tool` is the operation the outcome reports on (for "call it again")."""

    tool: str
    task: Task
    media: Media | None = None
    timed_out: bool = False
    queue_position: int | None = None
    siblings: tuple[str, ...] = ()
    """Further tasks the same submit started (describe's "Imagine all")."""
    next_step: NextStep | None = None
    joined: bool = False
    """The call repeated one whose caller gave up, and followed that job instead of paying again."""


@dataclass(eq=False)
class _Started:
    """A job this process submitted, and whether its call has answered yet."""

    task_id: str
    at: float
    answered: bool = False


class _Repeats:
    """Jobs started lately, by their arguments: a call that repeats one still unanswered joins it.

    A client whose timeout is shorter than the job (5 s is a common default) gives up, and the
    agent calls again with the same arguments while the first job runs on, paid for. The second
    call then follows that job instead of starting (and paying for) another one. This is the
    in-memory `JobRegistry`; with MJ_REDIS_URL the instances share one (mj_mcp.redisstate).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._started: OrderedDict[str, _Started] = OrderedDict()

    async def joinable(self, key: str) -> str | None:
        started = self._started.get(key)
        if started is None or started.answered or self._clock() - started.at > JOIN_WINDOW:
            return None
        return started.task_id

    async def started(self, key: str, task_id: str) -> None:
        self._started[key] = _Started(task_id, self._clock())
        self._started.move_to_end(key)
        while len(self._started) > REMEMBERED_JOBS:
            self._started.popitem(last=False)

    async def answered(self, key: str, task_id: str) -> None:
        started = self._started.get(key)
        if started is not None and started.task_id == task_id:
            started.answered = True


def _repeat_key(endpoint: Endpoint, request: WireModel, mode: Mode | None) -> str:
    # A digest, not the arguments: a blend's images are tens of MB of text, kept for 256 jobs.
    return JsonBody([endpoint.name, request.to_wire(), mode]).sha256()


@dataclass(frozen=True, slots=True)
class Submitted:
    """An accepted submit: the request as sent, and the upstream's answer."""

    endpoint: Endpoint
    request: WireModel
    result: SubmitResult
    task_id: str

    @property
    def siblings(self) -> tuple[str, ...]:
        return tuple(self.result.task_ids[1:])

    @property
    def custom_id(self) -> str:
        """The button the request pressed, when it pressed one."""
        return cast(str | None, getattr(self.request, "custom_id", None)) or ""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A cancel: the upstream's reply (if any) and the task as read afterwards (None: not readable).

    `sent` is False when the task had already ended, so that no cancel was sent: `task` is then
    the ended task, which there was nothing to cancel in.
    """

    task_id: str
    reply: SubmitResult | None
    task: Task | None
    sent: bool = True


# -- the service ---------------------------------------------------------------------------------


class Jobs:
    """Runs jobs against one upstream. Shared by every call while the server runs."""

    def __init__(
        self,
        client: MjClient,
        watcher: TaskWatcher,
        images: ImageLoader,
        *,
        saver: ImageSaver | None = None,
        audit: AuditLog | None = None,
        max_jobs: int | None = None,
        wait_timeout: float,
        callbacks: CallbackReceiver | None = None,
        registry: JobRegistry | None = None,
        counter: JobCounter | None = None,
    ) -> None:
        self._client = client
        self._watcher = watcher
        self._images = images
        if images.references is None:
            images.references = TaskImages(client, saver.output_dir if saver is not None else None)
        self.inputs = Inputs(client, images)
        """Prepares and checks what the caller gave (prompt, images, modal rules)."""
        self._media = MediaFetcher(client, saver)
        self._audit = audit
        self._max_jobs = max_jobs
        self._wait_timeout = wait_timeout
        self._callbacks = callbacks
        """Given when upstream callbacks can reach this server (MJ_PUBLIC_URL, and a listener)."""
        self._lock = anyio.Lock()
        self._repeats: JobRegistry = registry or _Repeats(anyio.current_time)
        self._counter = counter
        """Shared with other instances (MJ_REDIS_URL); without one, `started` is the count."""
        self.started = 0

    async def run(
        self,
        endpoint: Endpoint,
        request: WireModel,
        *,
        wait: bool = True,
        timeout: float | None = None,
        mode: Mode | None = None,
        on_progress: Progress | None = None,
    ) -> JobOutcome:
        """Submit a job, then (unless `wait` is false) wait for it and fetch its media.

        Once the upstream has accepted the job, nothing that goes wrong afterwards may lose its id:
        every later failure becomes an outcome that names the task and says not to submit again.
        """
        key = _repeat_key(endpoint, request, mode)
        earlier = await self._repeats.joinable(key)
        if earlier is not None:
            logger.info("%s repeats unanswered task %s: following it instead of paying again", endpoint.name, earlier)
            outcome = await self.get(endpoint, earlier, wait=wait, timeout=timeout, on_progress=on_progress)
            await self._repeats.answered(key, earlier)
            return dataclasses.replace(outcome, joined=True)
        sent, sent_request = self._as_offered(endpoint, request)
        try:
            submitted = await self.submit(sent, sent_request, mode=mode)
        except UpstreamRejectedError as exc:
            pressed = self._button_instead(sent_request, exc)
            if pressed is None:
                raise
            logger.info(
                "%s has no route upstream (HTTP 404, nothing started): pressing %s", sent.name, pressed.custom_id
            )
            submitted = await self.submit(ENDPOINTS["action"], pressed, mode=mode)
        await self._repeats.started(key, submitted.task_id)
        try:
            outcome = await self._follow(endpoint, submitted, wait=wait, timeout=timeout, on_progress=on_progress)
        except anyio.get_cancelled_exc_class():
            raise  # the caller gave up: the job stays unanswered, for a repeat of this call to join
        except Exception as exc:
            if isinstance(exc, MjError):
                message, hint = exc.message, exc.hint
            else:
                logger.exception("Following task %s failed unexpectedly", submitted.task_id)
                message, hint = f"an internal error ({type(exc).__name__}, logged on the server).", ""
            outcome = JobOutcome(endpoint.name, _stub(endpoint, submitted.task_id), next_step=WaitFailed(message, hint))
        await self._repeats.answered(key, submitted.task_id)
        return dataclasses.replace(outcome, task=self._pressable(outcome.task), siblings=submitted.siblings)

    async def _follow(
        self,
        endpoint: Endpoint,
        submitted: Submitted,
        *,
        wait: bool,
        timeout: float | None,
        on_progress: Progress | None,
    ) -> JobOutcome:
        if submitted.result.code == CODE_EXISTED_MODAL:
            task = await self._fetch_or_stub(endpoint, submitted.task_id, status=Status.MODAL)
            outcome = JobOutcome(endpoint.name, task, next_step=ModalNeeded(submitted.custom_id))
        elif not wait:
            task = await self._fetch_or_stub(endpoint, submitted.task_id)
            outcome = JobOutcome(endpoint.name, task, queue_position=submitted.result.queue_position)
        else:
            outcome = await self._wait(
                endpoint, submitted.task_id, timeout=timeout, on_progress=on_progress, submitted=submitted
            )
        return outcome

    def _as_offered(self, endpoint: Endpoint, request: WireModel) -> tuple[Endpoint, WireModel]:
        """The endpoint and request that do this job on this upstream.

        Some upstreams lack a route but not the operation: new-api cannot relay simple-change, so
        it is sent as the `change` it stands for; trueai has neither change route, so the grid
        button they name (U2, V1, 🔄) is pressed with `action` (its label is resolved on the task).
        """
        instead = self._client.profile.alternative_for(endpoint)
        if instead is None:
            return endpoint, request
        change = request
        if isinstance(request, SimpleChangeRequest):
            try:
                change = as_change(request)
            except ValueError as exc:
                raise InputError(f"{endpoint.name}: {exc}.", hint="Fix content and call again.") from None
        if not isinstance(change, ChangeRequest) or instead.request is ChangeRequest:
            return instead, change
        return instead, _pressing(change)

    def _button_instead(self, request: WireModel, refused: UpstreamRejectedError) -> ActionRequest | None:
        """The grid button to press for a `change` the upstream has no route for, or None.

        new-api relays change to its channel as it came, and a trueai channel has no change route:
        its HTTP 404 means nothing started, so pressing the button the change names pays once."""
        if refused.http_status != 404 or not isinstance(request, ChangeRequest):
            return None
        return _pressing(request) if self._client.profile.offers(ENDPOINTS["action"]) else None

    async def submit(self, endpoint: Endpoint, request: WireModel, *, mode: Mode | None = None) -> Submitted:
        """Prepare and send a job; count it, audit it, and tell the callback receiver to expect it."""
        request = await self.prepare(request)
        callbacks = self._callbacks
        if callbacks is not None and "notify_hook" in type(request).model_fields and not _attr(request, "notify_hook"):
            request = request.model_copy(update={"notify_hook": callbacks.hook_url})
        await self._count(endpoint)
        # Shielded: a client that cancels the call while the job is on its way must not leave a paid
        # job unrecorded. The send is bounded by the client's own request deadline.
        with anyio.CancelScope(shield=True):
            return await self._send(endpoint, request, mode)
        raise AssertionError("unreachable: a shielded scope is never cancelled")  # pragma: no cover

    async def _send(self, endpoint: Endpoint, request: WireModel, mode: Mode | None) -> Submitted:
        result = await self._client.submit(endpoint, request, mode=mode)
        task_id = result.task_id
        assert task_id is not None  # the client guarantees an id for accepted submits
        logger.info("Submitted %s as task %s (code %s)", endpoint.name, task_id, result.code)
        submitted = Submitted(endpoint, request, result, task_id)
        self.inputs.started(request, task_id)
        if self._callbacks is not None:
            for started in (task_id, *submitted.siblings):
                self._callbacks.expect(started)
        if self._audit is not None:
            await self._audit.record(
                endpoint.name, task_id, prompt=_attr(request, "prompt"), mode=mode or self._client.mode
            )
        return submitted

    async def upload(self, endpoint: Endpoint, request: UploadRequest) -> list[str]:
        """Upload images (no task is created); the upstream's URLs for them."""
        prepared = await self.prepare(request)
        await self._count(endpoint)
        urls = await self._client.upload_images(prepared)
        if self._audit is not None:
            await self._audit.record(endpoint.name, None, mode=self._client.mode)
        return urls

    async def get(
        self,
        endpoint: Endpoint,
        task_id: str,
        *,
        wait: bool = False,
        timeout: float | None = None,
        on_progress: Progress | None = None,
    ) -> JobOutcome:
        """Read a task; with `wait`, wait for it to finish (a MODAL task waits for a call, not time)."""
        task = await self._client.fetch(task_id)
        if wait and not task.finished and task.status != Status.MODAL:
            outcome = await self._wait(endpoint, task.id, timeout=timeout, on_progress=on_progress, initial=task)
        else:
            outcome = JobOutcome(endpoint.name, task, media=await self.media(task))
        return dataclasses.replace(outcome, task=self._pressable(outcome.task))

    def _pressable(self, task: Task) -> Task:
        return buttons.pressable(task, self._client.profile)

    async def cancel(self, task_id: str) -> Cancelled:
        """Cancel a task that is still running, then read it to say where it stands.

        The task is read first: trueai answers a cancel of an unknown or ended task with the same
        empty 200 as a real one, so only the read can tell "not found" and "nothing to cancel".
        """
        try:
            task = await self._client.fetch(task_id)
        except TaskNotFoundError as exc:
            raise TaskNotFoundError(
                f"Task {task_id} was not found, so nothing was cancelled.", http_status=exc.http_status
            ) from None
        if task.finished:
            return Cancelled(task_id, None, task, sent=False)
        try:
            reply = await self._client.cancel(task_id)
        except UpstreamRejectedError:
            # PLUS refuses to cancel a task that ended in the meantime (关联任务状态错误).
            now = await self._read_or_none(task_id)
            if now is None or not now.finished:
                raise
            return Cancelled(task_id, None, now, sent=False)
        return Cancelled(task_id, reply, await self._read_or_none(task_id))

    async def _read_or_none(self, task_id: str) -> Task | None:
        try:
            return await self._client.fetch(task_id)
        except MjError:
            return None

    # -- preparing -------------------------------------------------------------------------------

    async def prepare(self, request: _Request) -> _Request:
        """Turn image arguments into what the endpoint takes, and button labels into customIds;
        refuse, before anything is sent, a prompt or modal call that would be refused (`Inputs`)."""
        updates: dict[str, Any] = {}
        hook = _attr(request, "notify_hook")
        if hook:
            # The upstream would POST the task to it: no way into this machine's network.
            updates["notify_hook"] = await self._images.check_url(hook, what="notifyHook URL")
        if isinstance(request, ActionRequest):
            updates["custom_id"] = await self._resolve_button(request.task_id, request.custom_id)
        else:
            updates.update(await self.inputs.prepare(request))
        return request.model_copy(update=updates) if updates else request

    async def _resolve_button(self, task_id: str, wanted: str) -> str:
        return await buttons.resolve(self._client, task_id, wanted)

    async def _count(self, endpoint: Endpoint) -> None:
        limit = self._max_jobs
        async with self._lock:
            if limit is not None and not await self._allowed(limit):
                raise GuardrailError(
                    f"{endpoint.name} was not sent: this server may start at most {limit} job(s) (MJ_MAX_JOBS) and "
                    "has reached that limit.",
                    hint="Ask the user to raise MJ_MAX_JOBS and restart the server if more are wanted.",
                )
            self.started += 1

    async def _allowed(self, limit: int) -> bool:
        if self._counter is not None:
            return await self._counter.take(limit)
        return self.started < limit

    # -- waiting ---------------------------------------------------------------------------------

    async def _wait(
        self,
        endpoint: Endpoint,
        task_id: str,
        *,
        timeout: float | None,
        on_progress: Progress | None,
        submitted: Submitted | None = None,
        initial: Task | None = None,
    ) -> JobOutcome:
        """Wait for a task; failures to read it after a submit become outcomes, not errors."""
        timeout = timeout or self._wait_timeout
        deadline = anyio.current_time() + timeout
        try:
            waited = await self._watcher.wait(
                task_id,
                timeout=timeout,
                on_update=on_progress,
                initial=initial,
                modal_grace=MODAL_GRACE if endpoint.waits_past_modal else 0.0,
            )
        except (UpstreamUnavailableError, RateLimitedError) as exc:
            # The job exists and may well finish; only reading it failed. The same answer as a
            # timeout, so that nobody submits (and pays) again.
            logger.info("Waiting for task %s ended early: %s", task_id, exc.message)
            stub = initial or _stub(endpoint, task_id)
            return JobOutcome(endpoint.name, stub, timed_out=True, next_step=UpstreamUnreadable(exc.message))
        except MjError as exc:
            if submitted is None or isinstance(exc, TaskNotFoundError):
                raise
            logger.info("Waiting for task %s failed: %s", task_id, exc.message)
            stub = initial or _stub(endpoint, task_id)
            return JobOutcome(endpoint.name, stub, next_step=WaitFailed(exc.message, exc.hint))
        task = waited.task
        if task.status == Status.MODAL:
            return JobOutcome(endpoint.name, task, next_step=_modal_step(endpoint, waited, submitted))
        return JobOutcome(
            endpoint.name,
            task,
            media=await self.media(task, deadline=deadline),
            timed_out=waited.timed_out,
            queue_position=submitted.result.queue_position if submitted else None,
        )

    async def _fetch_or_stub(self, endpoint: Endpoint, task_id: str, *, status: str = Status.SUBMITTED) -> Task:
        try:
            return await self._client.fetch(task_id)
        except MjError:
            # The job exists (the submit said so); a lagging read must not hide its id.
            return _stub(endpoint, task_id, status)

    # -- media -----------------------------------------------------------------------------------

    async def media(self, task: Task, *, deadline: float | None = None) -> Media | None:
        """The task's image as the model sees it, and the saved files (see `MediaFetcher.fetch`)."""
        return await self._media.fetch(task, deadline=deadline)

    def saved_file(self, task_id: str) -> Path | None:
        """Where this process saved the task's image, if it did (see `MediaFetcher.saved_file`)."""
        return self._media.saved_file(task_id)


def _modal_step(endpoint: Endpoint, waited: WaitOutcome, submitted: Submitted | None) -> NextStep:
    if endpoint.waits_past_modal:
        # The call was itself the confirmation: asking for another one could charge twice.
        return ModalLagging() if waited.timed_out else ModalNotTaken(MODAL_GRACE)
    custom_id = submitted.custom_id if submitted else ""
    return ModalNeeded(custom_id or waited.task.custom_id or "")


def _pressing(change: ChangeRequest) -> ActionRequest:
    """The `action` that presses the grid button `change` names (U2, V1, 🔄; resolved on the task)."""
    return ActionRequest(
        task_id=change.task_id, custom_id=change_button(change), notify_hook=change.notify_hook, state=change.state
    )


def _stub(endpoint: Endpoint, task_id: str, status: str = Status.SUBMITTED) -> Task:
    """The task as far as the submit told: its id, the action, the status it must have."""
    return Task(id=task_id, action=endpoint.name.upper(), status=status)


def _attr(request: WireModel, name: str) -> str | None:
    """A string field that only some request models have (prompt, notify_hook)."""
    return cast(str | None, getattr(request, name, None))
