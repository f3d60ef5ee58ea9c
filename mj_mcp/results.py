"""Turning tasks into tool results a model can act on.

Every task result has: `structuredContent` = the upstream Task as received; a short text with
status, action, prompt, progress, the buttons by label and the next useful call; the preview
image and full-size locations when there is an image; and a resource link to the task.
Nothing here talks to the network or the disk: the server hands in what it fetched and saved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from mj_mcp.models import Task

__all__ = [
    "Media",
    "error_result",
    "json_result",
    "modal_instructions",
    "task_link",
    "task_result",
    "task_uri",
]

TEXT_PROMPT_ACTIONS: Final = frozenset({"DESCRIBE", "SHORTEN"})


def task_uri(task_id: str) -> str:
    return f"mj://tasks/{task_id}"


@dataclass(slots=True)
class Media:
    """What the server fetched and saved for a task's image."""

    preview: ImageContent | None = None
    saved: Path | None = None
    quadrants: list[Path] = field(default_factory=lambda: list[Path]())
    notes: list[str] = field(default_factory=lambda: list[str]())


def error_result(message: str, *, task: Task | None = None) -> CallToolResult:
    """An isError result: a message that names the next step, and the task when there is one."""
    content: list[ContentBlock] = [TextContent(text=message)]
    if task is not None:
        content.append(_link(task))
    return CallToolResult(
        content=content,
        structured_content=task.to_wire() if task is not None else None,
        is_error=True,
    )


def json_result(text: str, data: dict[str, Any], *, links: Sequence[Task] = ()) -> CallToolResult:
    """A result for list-like reads: a readable summary plus the data as structuredContent."""
    content: list[ContentBlock] = [TextContent(text=text)]
    content.extend(_link(t) for t in links)
    return CallToolResult(content=content, structured_content=data)


def task_result(
    task: Task,
    *,
    tool: str,
    media: Media | None = None,
    timed_out: bool = False,
    modal_hint: str | None = None,
    queue_position: int | None = None,
) -> CallToolResult:
    """The result for one task, finished or not."""
    media = media or Media()
    lines = [_headline(task)]
    prompt = task.prompt or task.prompt_en
    if prompt and (task.action or "").upper() not in TEXT_PROMPT_ACTIONS:
        lines.append(f"Prompt: {_clip(prompt, 400)}")
    if queue_position:
        lines.append(f"Queued upstream behind {queue_position} other job(s).")
    if task.status == "FAILURE" or (task.status == "CANCEL"):
        reason = task.fail_reason or "no reason given"
        lines.append(f"Failed: {reason}")
        lines.append(_failure_next_step(task, tool))
        return error_result("\n".join(lines), task=task)
    if (task.action or "").upper() in TEXT_PROMPT_ACTIONS and task.status == "SUCCESS":
        lines.append(_text_prompts(task))
    if task.status == "SUCCESS":
        lines.extend(_locations(task, media))
    lines.extend(media.notes)
    if task.buttons:
        lines.append("Buttons: " + ", ".join(_quote_label(b.display) for b in task.buttons))
    if modal_hint:
        lines.append(modal_hint)
    elif timed_out:
        lines.append(
            f'Still running. Call get_task with taskId="{task.id}" and wait=true to keep waiting '
            "(the job goes on upstream either way)."
        )
    elif not task.finished and task.status != "MODAL":
        lines.append(f'Not finished yet. Call get_task with taskId="{task.id}" and wait=true to wait for it.')
    else:
        step = _next_step(task)
        if step:
            lines.append(step)
    content: list[ContentBlock] = [TextContent(text="\n".join(lines))]
    if media.preview is not None:
        content.append(media.preview)
    content.append(_link(task))
    return CallToolResult(content=content, structured_content=task.to_wire())


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


# -- pieces ------------------------------------------------------------------------------------


def _headline(task: Task) -> str:
    action = task.action or "task"
    status = task.status or "UNKNOWN"
    progress = f" ({task.progress})" if task.progress and status not in ("SUCCESS", "FAILURE") else ""
    return f"{action} task {task.id}: {status}{progress}"


def _link(task: Task) -> ResourceLink:
    return task_link(task.id, f"{task.action or 'task'} {task.status or ''}".strip())


def task_link(task_id: str, description: str = "task") -> ResourceLink:
    """A resource link to ``mj://tasks/{task_id}``."""
    return ResourceLink(
        name=f"task-{task_id}", uri=task_uri(task_id), mime_type="application/json", description=description
    )


def _locations(task: Task, media: Media) -> list[str]:
    lines: list[str] = []
    if task.image_url:
        # A video task's imageUrl is the picture it was made from, not a result.
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


def _labels(task: Task) -> set[str]:
    return {b.display for b in task.buttons}


def _next_step(task: Task) -> str:
    if task.status == "MODAL":
        return f"Waiting for confirmation. {modal_instructions(task, task.custom_id or '')}"
    if task.status != "SUCCESS":
        return ""
    labels = _labels(task)
    press = f'action with taskId="{task.id}" and customId'
    action = (task.action or "").upper()
    if action == "VIDEO" and "U1" in labels:
        return f"Next: {press}='U1'..'U4' to upscale one of the four videos, or '🔄' to re-roll them."
    if action == "DESCRIBE":
        return (
            "Next: imagine with one of these prompts, or press a number with "
            f"{press}='1️⃣'..'4️⃣' (then confirm with modal)."
        )
    if action == "SHORTEN":
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


def _failure_next_step(task: Task, tool: str) -> str:
    reason = (task.fail_reason or "").lower()
    if task.status == "CANCEL" or "取消" in reason or "cancel" in reason:
        return "The task was cancelled; submit the job again if it is still wanted."
    if "banned" in reason or "敏感词" in reason or "moderation" in reason or "filter" in reason:
        return "Next: rephrase the prompt without the flagged words and submit it again."
    if "invalid" in reason or "parameter" in reason:
        return f"Next: fix the prompt's parameters (--ar, --v, --stylize ...) and call {tool} again."
    return f"Next: call {tool} again; if it keeps failing, change the prompt or try later."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
