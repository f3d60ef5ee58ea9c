"""The compact views that tools return as structured content, and from which their output schemas come.

The upstream Task carries 2-3 k characters of Discord internals (instance and channel ids, message
hashes, button styles), the prompt three or four times over (`prompt`, `promptEn`, `description`,
`properties.finalPrompt`) and the callback URL. A model reads all of it on every result, and a
list of 25 tasks was 86 k characters. A `TaskView` keeps what an agent acts on, under the upstream
Task's own field names (`id`, `action`, `status`, `prompt`, `imageUrl`, `buttons`...), each said
once, plus what this server knows itself (`savedFile`, `quadrantFiles`, the image's real size).
Empty and null fields are left out. The same models generate each tool's `outputSchema`.

Plain data only: nothing here talks to MCP, the network or the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mj_mcp.models import Button, MediaUrl, Page, Status, Task

__all__ = [
    "ButtonView",
    "CancelView",
    "MediaUrlView",
    "PageView",
    "SeedView",
    "TaskListView",
    "TaskView",
    "UploadView",
    "View",
    "page_view",
    "task_view",
]

_COMMAND_ECHO: Final = "/"
"""A description that starts so is Discord's echo of the command (`/imagine <prompt>`, `/up <id> U2`):
the prompt, action and parent again."""


class View(BaseModel):
    """Base of the views: camelCase on the wire, nothing unknown, None fields left out by `dump`."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def dump(self) -> dict[str, Any]:
        """The structured content: wire names, no None fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ButtonView(View):
    """A button of the task; `action` takes its customId, label or emoji."""

    custom_id: str
    label: str | None = None
    emoji: str | None = None


class MediaUrlView(View):
    """One entry of `imageUrls` / `videoUrls`."""

    url: str
    thumbnail: str | None = None


class TaskView(View):
    """A task, compact: the upstream Task's fields an agent acts on, and the server's own."""

    id: str
    action: str | None = None
    status: str | None = None
    progress: str | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    final_prompt: str | None = Field(default=None, description="Text result (describe, shorten) or prompt as run.")
    description: str | None = None
    state: str | None = None
    parent_id: str | None = None
    job_id: str | None = Field(default=None, description="Midjourney job id (show takes it).")
    fail_reason: str | None = None
    image_url: str | None = None
    image_urls: list[MediaUrlView] | None = None
    video_url: str | None = None
    video_urls: list[MediaUrlView] | None = None
    image_width: int | None = None
    image_height: int | None = None
    saved_file: str | None = Field(default=None, description="Local path of the full-size image.")
    quadrant_files: list[str] | None = Field(default=None, description="Local paths of the grid's U1-U4 images.")
    buttons: list[ButtonView] | None = None
    submit_time: int | None = Field(default=None, description="Epoch ms, like startTime and finishTime.")
    start_time: int | None = None
    finish_time: int | None = None


class TaskListView(View):
    """list_tasks, recent_tasks, task_queue: the tasks (without buttons), and ids not found."""

    tasks: list[TaskView]
    missing: list[str] | None = None


class PageView(View):
    """One page of query_tasks (the upstream Page's own field names)."""

    content: list[TaskView]
    number: int
    size: int
    total_elements: int
    total_pages: int
    last: bool


class SeedView(View):
    task_id: str
    seed: str


class CancelView(View):
    task_id: str
    cancel_requested: bool
    task: TaskView | None = None


class UploadView(View):
    urls: list[str]


def task_view(
    task: Task,
    *,
    saved: Path | None = None,
    quadrants: Sequence[Path] = (),
    size: tuple[int, int] | None = None,
    buttons: bool = True,
) -> TaskView:
    """The compact view of `task`. `saved`, `quadrants` and `size` are what the server fetched and
    saved (the downloaded image's real size wins over the upstream's `imageWidth`/`imageHeight`);
    `buttons=False` leaves the buttons out (lists: get_task shows them)."""
    width, height = size if size is not None else (task.image_width, task.image_height)
    return TaskView(
        id=task.id,
        action=task.action or None,
        status=task.status or None,
        progress=task.progress if task.progress and task.status != Status.SUCCESS else None,  # SUCCESS is 100%
        prompt=task.prompt or None,
        prompt_en=task.prompt_en if task.prompt_en and task.prompt_en != task.prompt else None,
        final_prompt=_final_prompt(task),
        description=_description(task),
        state=task.state or None,
        parent_id=task.parent_id or None,
        job_id=_job_id(task),
        fail_reason=task.fail_reason or None,
        image_url=task.image_url or None,
        image_urls=_media_urls(task.image_urls),
        video_url=task.video_url or None,
        video_urls=_media_urls(task.video_urls),
        image_width=width or None,
        image_height=height or None,
        saved_file=str(saved) if saved is not None else None,
        quadrant_files=[str(p) for p in quadrants] or None,
        buttons=[_button(b) for b in task.buttons] or None if buttons else None,
        submit_time=task.submit_time or None,
        start_time=task.start_time or None,
        finish_time=task.finish_time or None,
    )


def page_view(page: Page, saved: dict[str, Path] | None = None) -> PageView:
    known = saved or {}
    return PageView(
        content=[task_view(t, saved=known.get(t.id), buttons=False) for t in page.content],
        number=page.number,
        size=page.size,
        total_elements=page.total_elements,
        total_pages=page.total_pages,
        last=page.last,
    )


def _final_prompt(task: Task) -> str | None:
    """`properties.finalPrompt` when it says something new: the text result of describe and
    shorten, a MODAL task's prefilled prompt, a prompt rewritten upstream. Not the prompt again
    with the upstream's default parameters appended (`a fox --v 7`)."""
    final = task.final_prompt
    if final is None:
        return None
    if any(known and final.startswith(known) for known in (task.prompt, task.prompt_en)):
        return None
    return final


def _job_id(task: Task) -> str | None:
    """`properties.messageHash`: the Midjourney job id, the one of Discord's properties an agent can
    use (`show` takes it; midjourney.com names the job by it)."""
    value = task.properties.get("messageHash")
    return value if isinstance(value, str) and value else None


def _description(task: Task) -> str | None:
    """The upstream's description unless it repeats what the view already says."""
    text = (task.description or "").strip()
    if not text or text.startswith(_COMMAND_ECHO):
        return None
    if any(known and text in known for known in (task.prompt, task.prompt_en, task.final_prompt)):
        return None
    return text


def _button(button: Button) -> ButtonView:
    return ButtonView(custom_id=button.custom_id, label=button.label or None, emoji=button.emoji or None)


def _media_urls(urls: list[MediaUrl] | None) -> list[MediaUrlView] | None:
    kept = [MediaUrlView(url=u.url, thumbnail=u.thumbnail or None) for u in urls or [] if u.url]
    return kept or None
