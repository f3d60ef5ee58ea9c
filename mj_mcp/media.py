"""A finished task's picture, as the model sees it and as the user keeps it.

`MediaFetcher.fetch` downloads the task's image (no key goes to the CDN), makes the small preview
the model looks at, and saves the full-size file (and a grid's four quadrants). What it fetched
is remembered for the last few tasks: an agent that reads the same finished task again (get_task
after imagine, a resource read, a retried call) gets the same preview without a second download
and decode, which for a large grid costs a second of CPU. The saved files of many more tasks are
remembered (`saved_file`), so that a list of tasks can name them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread

from mj_mcp.client import MjClient
from mj_mcp.errors import MjError
from mj_mcp.images import image_size, make_preview
from mj_mcp.models import Status, Task
from mj_mcp.saving import ImageSaver, SavedImages

__all__ = ["MEDIA_GRACE", "Media", "MediaFetcher", "Preview"]

logger = logging.getLogger(__name__)

MEDIA_GRACE: Final = 1.0
"""Seconds the image step may run past the call's wait deadline: a finished task is shown without
its picture rather than held back by a slow download."""
REMEMBERED: Final = 16
"""Tasks whose fetched picture is kept (a preview is at most 1 MiB)."""
SAVED_REMEMBERED: Final = 1024
"""Tasks whose saved file's path is kept, for task lists (a path is a few dozen bytes)."""
_TEXT_ONLY: Final = frozenset({"DESCRIBE", "SHORTEN"})
"""Actions whose result is text: their imageUrl is the input picture, not a result."""


@dataclass(frozen=True, slots=True)
class Preview:
    """A small image the model can look at (the saved files keep the full size)."""

    data: bytes
    mime: str


@dataclass(slots=True)
class Media:
    """What was fetched and saved for a task's image, and what went wrong doing so."""

    preview: Preview | None = None
    saved: Path | None = None
    quadrants: list[Path] = field(default_factory=lambda: list[Path]())
    size: tuple[int, int] | None = None
    """(width, height) of the full-size picture as downloaded."""
    notes: list[str] = field(default_factory=lambda: list[str]())


class MediaFetcher:
    """Fetches, previews and saves finished tasks' pictures; remembers the last few."""

    def __init__(self, client: MjClient, saver: ImageSaver | None) -> None:
        self._client = client
        self._saver = saver
        self._remembered: OrderedDict[tuple[str, str], Media] = OrderedDict()
        self._saved: OrderedDict[str, Path] = OrderedDict()

    def saved_file(self, task_id: str) -> Path | None:
        """Where this process saved the task's image, if it did (and the file is still there)."""
        path = self._saved.get(task_id)
        return path if path is not None and path.exists() else None

    async def fetch(self, task: Task, *, deadline: float | None = None) -> Media | None:
        """The task's picture (None for tasks without one: unfinished, text results).

        With a `deadline` (on `anyio.current_time()`), the step ends `MEDIA_GRACE` seconds after it
        at the latest, with a note instead of the picture.
        """
        source = _source(task)
        if source is None:
            return None
        key = (task.id, source)
        known = self._remembered.get(key)
        if known is not None and (known.saved is None or known.saved.exists()):
            self._remembered.move_to_end(key)
            return dataclasses.replace(known, quadrants=list(known.quadrants), notes=[])
        if deadline is None:
            media = await self._fetch(task, source)
        else:
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time()) + MEDIA_GRACE):
                media = await self._fetch(task, source)
                self._remember(key, media)
                return media
            return Media(notes=["(The image took too long to fetch; get_task shows it once it can be read.)"])
        self._remember(key, media)
        return media

    def _remember(self, key: tuple[str, str], media: Media) -> None:
        if media.saved is not None:
            self._saved[key[0]] = media.saved
            self._saved.move_to_end(key[0])
            while len(self._saved) > SAVED_REMEMBERED:
                self._saved.popitem(last=False)
        if media.notes or media.preview is None:
            return  # only a complete result is worth giving again
        self._remembered[key] = media
        while len(self._remembered) > REMEMBERED:
            self._remembered.popitem(last=False)

    async def _fetch(self, task: Task, source: str) -> Media:
        media = Media()
        video = (task.action or "").upper() == "VIDEO"
        try:
            data, mime = await self._client.download(source)
            # Abandoned, not awaited, when the deadline passes: the decode cannot be interrupted.
            preview, preview_mime = await anyio.to_thread.run_sync(make_preview, data, abandon_on_cancel=True)
            media.preview = Preview(preview, preview_mime)
            if not video:  # a video's picture is a thumbnail, not the task's image
                media.size = image_size(data)  # the header alone, after make_preview has checked it
            if self._saver is not None and not video:
                saved = await _save(self._saver, task, data, mime)
                media.saved = saved.path
                media.quadrants = list(saved.quadrants)
        except MjError as exc:
            media.notes.append(f"(The image could not be shown: {exc.message})")
        except OSError as exc:
            media.notes.append(f"(The image could not be saved: {exc.strerror or type(exc).__name__})")
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # an image that breaks the decoder must not hide the finished task
            logger.warning("The image of task %s could not be processed (%s)", task.id, type(exc).__name__)
            media.notes.append(f"(The image could not be shown: {type(exc).__name__}.)")
        return media


def _source(task: Task) -> str | None:
    """The URL of the picture that shows the task's result, or None if it has none."""
    if task.status != Status.SUCCESS or not task.image_url:
        return None
    action = (task.action or "").upper()
    if action in _TEXT_ONLY:
        return None
    if action == "VIDEO":
        # imageUrl is the picture the videos start from; a thumbnail of the first video, when
        # given, shows the result. Neither is the result itself, so nothing is saved.
        return next((v.thumbnail for v in task.video_urls or [] if v.thumbnail), task.image_url)
    return task.image_url


async def _save(saver: ImageSaver, task: Task, data: bytes, mime: str | None) -> SavedImages:
    grid = task.button("U1") is not None and task.button("V1") is not None
    kind = (task.action or "task").lower()

    def save() -> SavedImages:
        return saver.save_task(task.id, data, mime, grid=grid, kind=kind)

    return await anyio.to_thread.run_sync(save)
