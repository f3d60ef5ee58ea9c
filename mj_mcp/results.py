"""Turning job outcomes and reads into results a model can act on, as plain data.

Every task result has: the task as a compact `TaskView` (structured; mj_mcp.views); a short text
with status, action, prompt, progress, the buttons by label and the next useful call; the preview
image and full-size locations when there is an image; and the task's resource URI. A `Rendered` is
that result before any protocol sees it: the MCP adapter turns it into a `CallToolResult`
(text blocks, the resource URIs as one line of text, the image block).
Nothing here talks to the network or the disk: the job service hands in what it fetched and saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from mj_mcp.jobs import (
    Cancelled,
    JobOutcome,
    ModalLagging,
    ModalNeeded,
    ModalNotTaken,
    UpstreamUnreadable,
    WaitFailed,
)
from mj_mcp.media import Media, Preview
from mj_mcp.models import Page, Status, Task
from mj_mcp.views import CancelView, SeedView, TaskListView, UploadView, page_view, task_view

__all__ = [
    "Link",
    "Rendered",
    "SavedLookup",
    "cancel_result",
    "describe_status",
    "error_result",
    "json_result",
    "modal_instructions",
    "page_result",
    "render_outcome",
    "seed_result",
    "task_uri",
    "tasks_result",
    "upload_result",
]

TEXT_PROMPT_ACTIONS: Final = frozenset({"DESCRIBE", "SHORTEN"})
LINE_PROMPT_CHARS: Final = 60
"""How much of a prompt a task line shows: enough to recognise the task."""

SavedLookup = Callable[[str], Path | None]
"""Where the server saved a task's image, by task id (None when it did not, or does not know)."""


def _nothing_saved(task_id: str) -> Path | None:
    return None


def task_uri(task_id: str) -> str:
    return f"mj://tasks/{task_id}"


@dataclass(frozen=True, slots=True)
class Link:
    """A link to the resource ``mj://tasks/{task_id}``."""

    task_id: str
    description: str = "task"

    @property
    def uri(self) -> str:
        return task_uri(self.task_id)

    @classmethod
    def to(cls, task: Task) -> Link:
        return cls(task.id, f"{task.action or 'task'} {task.status or ''}".strip())


@dataclass(frozen=True, slots=True)
class Rendered:
    """A tool result as plain data, in the order it is shown: the text, further notes, the
    preview, the links."""

    text: str
    structured: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    preview: Preview | None = None
    links: tuple[Link, ...] = ()
    is_error: bool = False


def error_result(message: str, *, task: Task | None = None) -> Rendered:
    """An error result: a message that names the next step, and the task when there is one."""
    if task is None:
        return Rendered(message, is_error=True)
    return Rendered(message, task_view(task).dump(), links=(Link.to(task),), is_error=True)


def json_result(text: str, data: dict[str, Any], *, links: Sequence[Task] = ()) -> Rendered:
    """A result for list-like reads: a readable summary plus the data as structured content."""
    return Rendered(text, data, links=tuple(Link.to(t) for t in links))


def describe_status(task: Task) -> str:
    """A one-line progress message naming the status, for progress notifications."""
    status = task.status
    if not status:
        # new-api shows a task it has not heard about yet with status "".
        return "NOT_START (no status reported yet)"
    if status == Status.IN_PROGRESS:
        return f"IN_PROGRESS {task.percent}%"
    if status == Status.NOT_START:
        return "NOT_START (queued upstream)"
    if status == Status.SUBMITTED:
        return "SUBMITTED (waiting for Midjourney to start)"
    return status


# -- job outcomes ----------------------------------------------------------------------------------


def render_outcome(outcome: JobOutcome, *, read: bool = False) -> Rendered:
    """The result for one job or task read, finished or not.

    A job that ended in FAILURE or CANCEL is an error for the call that started it; with `read`
    (get_task) the lookup itself worked, so the ended task reads fine, with its failReason.
    """
    task = outcome.task
    notes = _outcome_notes(outcome)
    links = (Link.to(task), *(Link(sibling) for sibling in outcome.siblings))
    step = outcome.next_step
    media = outcome.media or Media()
    structured = task_view(task, saved=media.saved, quadrants=media.quadrants, size=media.size).dump()
    if isinstance(step, WaitFailed):
        text = _wait_failed(outcome.tool, task.id, step)
        return Rendered(text, structured, notes=notes, links=links, is_error=True)
    lines = [_headline(task)]
    prompt = task.prompt or task.prompt_en
    if prompt and (task.action or "").upper() not in TEXT_PROMPT_ACTIONS:
        lines.append(f"Prompt: {_clip(prompt, 400)}")
    if outcome.queue_position:
        lines.append(f"Queued upstream behind {outcome.queue_position} other job(s).")
    if task.status in (Status.FAILURE, Status.CANCEL):
        lines.append(f"Failed: {task.fail_reason or 'no reason given'}")
        lines.append(_failure_next_step(task, None if read else outcome.tool))
        return Rendered("\n".join(lines), structured, notes=notes, links=links, is_error=not read)
    if (task.action or "").upper() in TEXT_PROMPT_ACTIONS and task.status == Status.SUCCESS:
        lines.append(_text_prompts(task))
    if task.status == Status.SUCCESS:
        lines.extend(_locations(task, media))
    lines.extend(media.notes)
    if task.buttons:
        lines.append("Buttons: " + ", ".join(_quote_label(b.display) for b in task.buttons))
    closing = _closing_line(outcome)
    if closing:
        lines.append(closing)
    return Rendered("\n".join(lines), structured, notes=notes, preview=media.preview, links=links)


def _closing_line(outcome: JobOutcome) -> str:
    """What to do next: the outcome's own step first, then what the task's state implies."""
    task, step = outcome.task, outcome.next_step
    if isinstance(step, ModalNeeded):
        return modal_instructions(task, step.custom_id)
    if isinstance(step, ModalLagging):
        return (
            f"The upstream still shows task {task.id} waiting for confirmation (a reseller's copy can lag "
            f'~15 s). Look again with get_task taskId="{task.id}" in a few seconds before calling modal '
            "again: each modal call may be charged."
        )
    if isinstance(step, ModalNotTaken):
        return (
            f"The upstream still shows task {task.id} waiting for confirmation {step.grace:g} s after this "
            "modal call, so it did not take it. Check the prompt (and maskBase64) against what the task needs "
            "before calling modal again: each modal call may be charged."
        )
    if outcome.timed_out:
        return (
            f'Still running. Call get_task with taskId="{task.id}" and wait=true to keep waiting '
            "(the job goes on upstream either way)."
        )
    if not task.finished and task.status != Status.MODAL:
        return f'Not finished yet. Call get_task with taskId="{task.id}" and wait=true to wait for it.'
    return _next_step(task)


def _outcome_notes(outcome: JobOutcome) -> tuple[str, ...]:
    """Text shown apart from the task's own: a joined job, tasks the call also started, a failed read."""
    notes: list[str] = []
    if outcome.joined:
        notes.append(
            f"This call repeats an earlier {outcome.tool} call with the same arguments that got no answer, so it "
            f"follows that job (task {outcome.task.id}) instead of paying for another. For a new job on purpose, "
            "change the arguments (for a prompt, add e.g. --seed 1234)."
        )
    if outcome.siblings:
        ids = ", ".join(outcome.siblings)
        quoted = ", ".join(json.dumps(i) for i in outcome.siblings)
        notes.append(
            f"This call also started {len(outcome.siblings)} more task(s): {ids}. Follow them with get_task "
            f"(wait=true) or list_tasks with ids=[{quoted}]."
        )
    if isinstance(outcome.next_step, UpstreamUnreadable):
        notes.append(f"(The upstream could not be read just now: {outcome.next_step.message})")
    return tuple(notes)


def _wait_failed(tool: str, task_id: str, step: WaitFailed) -> str:
    parts = (
        f"{tool} was submitted as task {task_id}, but waiting for it failed: {step.message}",
        "Do not submit it again.",
        step.hint,
        f"Then call get_task with taskId={task_id} and wait=true.",
    )
    return " ".join(part for part in parts if part)


def modal_instructions(task: Task, custom_id: str) -> str:
    """What the `modal` call for a MODAL task needs, by the button that led there."""
    base = f'This needs one more step: call modal with taskId="{task.id}"'
    prefill = task.final_prompt or task.prompt or ""
    if "CustomZoom" in custom_id:
        example = f"{prefill} --zoom 1.5".strip()
        return f"{base} and a prompt that contains --zoom between 1 and 2, e.g. prompt={json.dumps(example)}."
    if "Inpaint" in custom_id:
        return (
            f"{base}, maskBase64 (a black-and-white mask the size of the image, white = the region "
            "to repaint; a data URI, file path or URL) and a prompt describing the new content."
        )
    if "PicReader" in custom_id or "PromptAnalyzer" in custom_id:
        hint = f" (suggested: {json.dumps(_clip(prefill, 300))})" if prefill else ""
        return f"{base} and the prompt to imagine{hint}."
    if custom_id:
        return f"{base} and the new (remix) prompt."
    # The button that led here is not known (a get_task, or a reseller that answered code 1).
    action = (task.action or "").upper()
    if action == "ZOOM":
        return modal_instructions(task, "MJ::CustomZoom")
    if action in ("INPAINT", "VARY_REGION"):
        return modal_instructions(task, "MJ::Inpaint")
    return (
        f"{base} and a prompt: for Custom Zoom one that contains --zoom between 1 and 2; for Vary (Region) "
        "also maskBase64 (white = the region to repaint); otherwise the new (remix) prompt."
    )


# -- reads -----------------------------------------------------------------------------------------


def tasks_result(tasks: list[Task], *, missing: Sequence[str] = (), saved: SavedLookup = _nothing_saved) -> Rendered:
    """A list of tasks, one line each, and the ids asked for that the upstream does not know.

    The structured tasks leave their buttons out (a list of 25 grids would be 20 k characters of
    them); get_task shows them."""
    files = {t.id: path for t in tasks if (path := saved(t.id)) is not None}
    lines = [f"{len(tasks)} task(s)."]
    lines.extend(_task_line(t, files.get(t.id)) for t in tasks)
    if missing:
        lines.append("Not found: " + ", ".join(missing))
    if tasks:
        lines.append("Next: get_task with a taskId for the full task, its buttons and its image.")
    view = TaskListView(
        tasks=[task_view(t, saved=files.get(t.id), buttons=False) for t in tasks], missing=list(missing) or None
    )
    return json_result("\n".join(lines), view.dump(), links=tasks[:20])


def page_result(page: Page, *, saved: SavedLookup = _nothing_saved) -> Rendered:
    """One page of the paged task query."""
    files = {t.id: path for t in page.content if (path := saved(t.id)) is not None}
    head = (
        f"Page {page.number} of {max(page.total_pages, 1)} (0-based), {page.number_of_elements} of "
        f"{page.total_elements} task(s)."
    )
    lines = [head, *(_task_line(t, files.get(t.id)) for t in page.content)]
    if not page.last:
        lines.append(f"Next: query_tasks with pageNumber={page.number + 1} for more.")
    return json_result("\n".join(lines), page_view(page, files).dump(), links=page.content)


def seed_result(task_id: str, seed: str) -> Rendered:
    text = f"Seed of task {task_id}: {seed}. Add --seed {seed} to a prompt to get similar results."
    return json_result(text, SeedView(task_id=task_id, seed=seed).dump())


def cancel_result(cancelled: Cancelled) -> Rendered:
    """A cancel and where the task stands now; an error when there was nothing to cancel."""
    task_id, task = cancelled.task_id, cancelled.task
    if not cancelled.sent and task is not None:
        reason = f" ({task.fail_reason})" if task.fail_reason else ""
        return error_result(
            f"Task {task_id} has already ended as {task.status}{reason}: there was nothing to cancel, and no "
            f'cancel was sent. Read it with get_task taskId="{task_id}".',
            task=task,
        )
    data = CancelView(task_id=task_id, cancel_requested=True, task=task_view(task) if task else None).dump()
    if task is None:
        return json_result(
            f'Cancel sent for task {task_id}; it could not be read since. Check it with get_task taskId="{task_id}".',
            data,
        )
    reason = f" ({task.fail_reason})" if task.fail_reason else ""
    if task.finished:
        return json_result(f"Cancelled task {task_id}: it is now {task.status}{reason}.", data, links=[task])
    return json_result(
        f"Cancel sent for task {task_id}; the upstream still shows it {task.status or 'UNKNOWN'}. Check it "
        f'with get_task taskId="{task_id}" in a few seconds.',
        data,
        links=[task],
    )


def upload_result(urls: list[str]) -> Rendered:
    text = "Uploaded. Use these URLs as image prompts (e.g. at the start of an imagine prompt):\n" + "\n".join(urls)
    return json_result(text, UploadView(urls=urls).dump())


# -- pieces ----------------------------------------------------------------------------------------


def _headline(task: Task) -> str:
    action = task.action or "task"
    status = task.status or "UNKNOWN"
    progress = f" ({task.progress})" if task.progress and status not in (Status.SUCCESS, Status.FAILURE) else ""
    return f"{action} task {task.id}: {status}{progress}"


def _task_line(task: Task, saved: Path | None = None) -> str:
    """`- <id> <local submit time> <status> [<progress>] <action> "<prompt head>" [saved <file>]`."""
    parts = ["-", task.id]
    if task.submit_time:
        parts.append(datetime.fromtimestamp(task.submit_time / 1000).strftime("%Y-%m-%d %H:%M"))
    parts.append(task.status or "?")
    if task.progress and not task.finished:
        parts.append(task.progress)
    parts.append(task.action or "?")
    prompt = " ".join((task.prompt or task.prompt_en or "").split())
    if prompt:
        parts.append(json.dumps(_clip(prompt, LINE_PROMPT_CHARS), ensure_ascii=False))
    if saved is not None:
        parts.append(f"saved {saved}")
    return " ".join(parts)


def _locations(task: Task, media: Media) -> list[str]:
    lines: list[str] = []
    videos = {task.video_url, *(v.url for v in task.video_urls or ())}
    # trueai with EnableFillOfficialCdn makes a video task's imageUrl its first video: listed below.
    if task.image_url and task.image_url not in videos:
        # Otherwise a video task's imageUrl is the picture it was made from, not a result.
        label = "Start image" if (task.action or "").upper() == "VIDEO" else "Image"
        lines.append(f"{label}: {task.image_url}")
    if media.saved is not None:
        lines.append(f"Saved: {media.saved}")
    if media.quadrants:
        lines.append("Quadrants saved: " + ", ".join(str(p) for p in media.quadrants))
    if task.video_urls:
        lines.append("Videos: " + " ".join(v.url for v in task.video_urls if v.url))
    elif task.video_url:
        lines.append(f"Video: {task.video_url}")
    if task.image_urls and (task.action or "").upper() != "VIDEO":
        urls = [u.url for u in task.image_urls if u.url]
        if urls:
            lines.append("Images: " + " ".join(urls))
    return lines


def _text_prompts(task: Task) -> str:
    text = task.final_prompt or task.prompt or task.prompt_en or ""
    return f"Result:\n{text}" if text else "Result: (the upstream returned no text)"


def _quote_label(label: str) -> str:
    return label if len(label) <= 3 else f"'{label}'"


def _next_step(task: Task) -> str:
    if task.status == Status.MODAL:
        return f"Waiting for confirmation. {modal_instructions(task, task.custom_id or '')}"
    if task.status != Status.SUCCESS:
        return ""
    labels = {b.display for b in task.buttons}
    press = f'action with taskId="{task.id}" and customId'
    action = (task.action or "").upper()
    if action == "VIDEO" and "U1" in labels:
        return f"Next: {press}='U1'..'U4' to upscale one of the four videos, or '🔄' to re-roll them."
    if action == "DESCRIBE":
        if "1️⃣" not in labels:
            return "Next: imagine with one of these prompts."
        return (
            "Next: imagine with one of these prompts, or press a number with "
            f"{press}='1️⃣'..'4️⃣' (then confirm with modal)."
        )
    if action == "SHORTEN":
        if "1️⃣" not in labels:
            return "Next: imagine with one of the shortened prompts."
        return f"Next: imagine with one of the shortened prompts, or {press}='1️⃣'..'5️⃣' (then modal)."
    if "U1" in labels:
        return (
            f"Next: {press}='U1'..'U4' to upscale one image of the grid, 'V1'..'V4' for variations "
            "of one, or '🔄' to re-roll."
        )
    if any(label.startswith(("Vary", "Zoom")) for label in labels):
        return (
            f"The image is final. To go on: {press}='Vary (Subtle)', 'Vary (Strong)', 'Zoom Out 2x', "
            "'Custom Zoom', or a pan arrow such as '⬅️'."
        )
    if task.buttons:
        return f"Next: {press} set to one of the buttons above."
    return ""


def _failure_next_step(task: Task, tool: str | None) -> str:
    """What to do about an ended task; `tool` is the call that started it (None for a read)."""
    reason = (task.fail_reason or "").lower()
    again = f"call {tool} again" if tool else "submit the job again"
    if task.status == Status.CANCEL or "取消" in reason or "cancel" in reason:
        return "The task was cancelled; submit the job again if it is still wanted."
    if "banned" in reason or "敏感词" in reason or "moderation" in reason or "filter" in reason:
        return "Next: rephrase the prompt without the flagged words and submit it again."
    if "invalid" in reason or "parameter" in reason:
        return f"Next: fix the prompt's parameters (--ar, --v, --stylize ...) and {again}."
    return f"Next: {again}; if it keeps failing, change the prompt or try later."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
