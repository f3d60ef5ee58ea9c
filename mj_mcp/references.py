"""Image arguments that name a task: `<taskId>`, `<taskId>#<n>` and `mj://tasks/{taskId}/image`.

An agent refers to what it made by the ids this server hands out ("blend the upscale with the
fox"). `parse_reference` tells such a reference from the other kinds of image argument (it is
pure); `TaskImages` turns one into image bytes: the task is read from the upstream (so that a
reference reaches only tasks the caller's key can see), then its picture is taken from the file
this server saved for it, or else downloaded from the upstream's own result URL. `#n` is quadrant
n (1–4, U1..U4 order) of a grid. `loading.ImageLoader` calls a `TaskImages` it is given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread

from mj_mcp.client import DEFAULT_DOWNLOAD_BYTES, MjClient
from mj_mcp.errors import ImageInputError, ImageRejectedError, TaskNotFoundError
from mj_mcp.images import split_grid
from mj_mcp.models import Status, Task
from mj_mcp.saving import sanitize_stem

__all__ = ["ImageRef", "TaskImages", "parse_reference"]

_URI: Final = re.compile(r"mj://tasks/([^/#?\s]{1,64})(?:/image)?/?(?:#(\d+))?", re.IGNORECASE)
_BARE: Final = re.compile(r"([A-Za-z0-9_-]{0,63}\d[A-Za-z0-9_-]{0,63})(?:#(\d+))?")
"""A task id (letters, digits, `_`, `-`, with at least one digit: ids are numbers on every
upstream, and a plain word is more likely a file name), then `#n` for a quadrant."""
_MAX_ID: Final = 64
_LONGEST: Final = 100
_GRID_ACTIONS: Final = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "PAN"})
"""Actions whose result is a 2×2 grid, for upstreams that list no buttons."""
_SAVED_EXTENSIONS: Final = (".png", ".jpg", ".webp", ".gif")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A reference to a task's image: the whole picture, or quadrant 1–4 of a grid."""

    task_id: str
    quadrant: int | None
    written: str
    """As the caller wrote it, for messages."""


def parse_reference(text: str) -> ImageRef | None:
    """The task reference `text` is, or None when it is some other kind of image argument.

    `mj://...` that is not a task URI is an ImageInputError (it cannot be anything else).
    """
    value = text.strip()
    if len(value) > _LONGEST:
        return None  # base64 or a long path: no reference is this long
    if value[:5].lower() == "mj://":
        match = _URI.fullmatch(value)
        if match is None:
            raise ImageInputError(
                f"{value[:80]!r} is not a task image URI.",
                hint="Refer to a task's image as mj://tasks/<taskId>/image, <taskId>, or <taskId>#<n> for "
                "quadrant n of a grid.",
            )
    else:
        match = _BARE.fullmatch(value)
        if match is None or len(match.group(1)) > _MAX_ID:
            return None
    quadrant = match.group(2)
    return ImageRef(match.group(1), int(quadrant) if quadrant is not None else None, value)


class TaskImages:
    """Reads referenced task images (see the module docstring). `output_dir`: where this server
    saves images (None: saving is off, so every image is downloaded). The loader checks the
    picture's size and content afterwards, as for any other image argument."""

    def __init__(self, client: MjClient, output_dir: Path | None) -> None:
        self._client = client
        self._output_dir = output_dir

    async def __call__(self, ref: ImageRef) -> tuple[bytes, str]:
        """The referenced picture's bytes, and where it came from (for messages)."""
        if ref.quadrant is not None and not 1 <= ref.quadrant <= 4:
            raise ImageInputError(
                f"{ref.written!r} asks for quadrant {ref.quadrant}; a grid has quadrants 1 to 4.",
                hint=f"Pass {ref.task_id}#1 to {ref.task_id}#4 (U1..U4 order), or {ref.task_id} for the whole grid.",
            )
        task = await self._task(ref)
        if ref.quadrant is not None and not _is_grid(task):
            raise ImageInputError(
                f"Task {task.id} is a{_article(task)} {(task.action or 'task').upper()}, not a grid of four, so it has "
                f"no quadrant {ref.quadrant}.",
                hint=f"Pass {task.id} alone for its image.",
            )
        source = f"task {task.id}" + (f" quadrant {ref.quadrant}" if ref.quadrant else "")
        data = await anyio.to_thread.run_sync(self._saved, task, ref.quadrant)
        if data is not None:
            return data, source
        data = await anyio.to_thread.run_sync(self._saved, task, None)
        if data is None:
            assert task.image_url is not None  # `_task` checked it
            data, _mime = await self._client.download(task.image_url)
        if ref.quadrant is not None:
            data = (await anyio.to_thread.run_sync(split_grid, data))[ref.quadrant - 1]
        return data, source

    async def _task(self, ref: ImageRef) -> Task:
        """The finished task with an image that `ref` names, or an error that says what to do."""
        try:
            task = await self._client.fetch(ref.task_id)
        except TaskNotFoundError:
            raise ImageInputError(
                f"The image argument {ref.written!r} names task {ref.task_id}, which the upstream does not know.",
                hint="Check the id with get_task, or find it with recent_tasks; to pass a file, give its path "
                "with its extension.",
            ) from None
        status = task.status or "not started"
        if task.status in (Status.FAILURE, Status.CANCEL):
            reason = f" ({task.fail_reason})" if task.fail_reason else ""
            raise ImageInputError(
                f"Task {task.id} ended as {status}{reason}, so it has no image.",
                hint="Refer to a task that succeeded (recent_tasks lists them).",
            )
        if not task.finished:
            where = " ".join(part for part in (status, task.progress) if part)
            raise ImageInputError(
                f"Task {task.id} is not finished yet ({where}), so it has no image yet.",
                hint=f'Wait for it with get_task taskId="{task.id}" wait=true, then pass it again.',
            )
        if not task.image_url:
            raise ImageInputError(f"Task {task.id} has no image.", hint="Refer to a task that made a picture.")
        return task

    def _saved(self, task: Task, quadrant: int | None) -> bytes | None:
        """The picture (or quadrant) as this server saved it, if it did (blocking)."""
        if self._output_dir is None:
            return None
        # The names `media` saves under (`ImageSaver.save_task`): <action>-<id>.<ext>, and for a
        # grid <action>-<id>-<n>.png.
        stem = sanitize_stem(f"{(task.action or 'task').lower()}-{task.id}")
        names = [f"{stem}-{quadrant}.png"] if quadrant is not None else [stem + ext for ext in _SAVED_EXTENSIONS]
        for name in names:
            data = self._read(self._output_dir / name)
            if data is not None:
                return data
        return None

    def _read(self, path: Path) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        except OSError:
            return None  # not saved (or not readable): download it instead
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(fd).st_size > DEFAULT_DOWNLOAD_BYTES:
                raise ImageRejectedError(
                    f"The saved image {path.name} is larger than {DEFAULT_DOWNLOAD_BYTES} bytes.",
                    hint="Refer to one quadrant (<taskId>#<n>) or a smaller image.",
                )
            return handle.read()


def _is_grid(task: Task) -> bool:
    if task.buttons:
        return task.button("U1") is not None and task.button("V1") is not None
    return (task.action or "").upper() in _GRID_ACTIONS


def _article(task: Task) -> str:
    return "n" if (task.action or "t")[0].upper() in "AEIOU" else ""
