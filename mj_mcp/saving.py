"""Saving task images and videos to disk, atomically and never over an existing file.

`ImageSaver.save` names a file after its *content* (a PNG is saved as `.png` whatever the
upstream declared; only a video's declared type counts), `ImageSaver.save_task` also saves
the four pictures of a grid. Every file is written to a temporary name in the target folder,
flushed to disk, then published under its final name with a hard link, which fails rather than
replace an existing file. Everything here blocks: call it with `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from mj_mcp.errors import ImageInputError
from mj_mcp.files import ensure_private_dir
from mj_mcp.images import FORMATS_TEXT, image_mime, split_grid

__all__ = ["ImageSaver", "SavedImages", "sanitize_stem"]

_MAX_STEM: Final = 80
_STEM_BAD_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS: Final[dict[str, str]] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
}


def sanitize_stem(name: str) -> str:
    """A file name stem made only of `[A-Za-z0-9._-]`, at most 80 characters, never starting
    with a dot or dash (no hidden files, nothing that reads as an option), never empty."""
    stem = _STEM_BAD_RE.sub("_", name)[:_MAX_STEM].lstrip(".-").rstrip(".")
    return stem or "image"


def _extension(data: bytes, mime: str | None) -> str:
    """The extension of what the bytes are; the declared MIME type only counts for videos."""
    detected = image_mime(data)
    if detected is not None:
        return _EXTENSIONS[detected]
    # ISO media: MP4 video, unless the brand says AVIF/HEIF still image.
    if data[4:8] == b"ftyp" and data[8:11] not in (b"avi", b"hei", b"hev", b"mif", b"msf"):
        return ".mp4"
    declared = (mime or "").split(";")[0].strip().lower()
    if declared.startswith("video/") and declared in _EXTENSIONS:
        return _EXTENSIONS[declared]
    raise ImageInputError(
        f"The file is not a {FORMATS_TEXT} image (or a video); it was not saved.",
        hint="Open the full-size URL instead.",
    )


@dataclass(frozen=True, slots=True)
class SavedImages:
    """Absolute paths of a saved task image and, for a grid, its four pictures (U1..U4)."""

    path: Path
    quadrants: list[Path] = field(default_factory=lambda: list[Path]())


class ImageSaver:
    """Saves images under `output_dir`; every method blocks (use `anyio.to_thread.run_sync`).

    The folder is created user-only (0o700) when missing. A file is written to a temporary name
    in the same folder, flushed to disk, then hard-linked under its final name, which fails
    rather than replace an existing file; the next free name (`stem_2.png`...) is used then.
    Raises OSError when the folder cannot be written, ImageInputError for data that is not an
    image (or a video).
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(os.path.expanduser(output_dir)).absolute()

    def save(self, name_stem: str, data: bytes, mime: str | None = None) -> Path:
        """Write `data` as `<sanitised stem><extension of its real format>`; return the path."""
        extension = _extension(data, mime)
        ensure_private_dir(self.output_dir)
        return self._publish(sanitize_stem(name_stem), extension, data)

    def save_task(
        self,
        task_id: str,
        data: bytes,
        mime: str | None = None,
        *,
        grid: bool = False,
        kind: str | None = None,
    ) -> SavedImages:
        """Save a task's image as `<kind>-<task_id>.<ext>` (or `<task_id>.<ext>`); for a grid
        also its four pictures as `<stem>-1.png` ... `<stem>-4.png`."""
        stem = f"{kind}-{task_id}" if kind else task_id
        path = self.save(stem, data, mime)
        quadrants: list[Path] = []
        if grid:
            for number, part in enumerate(split_grid(data), start=1):
                quadrants.append(self.save(f"{path.stem}-{number}", part, "image/png"))
        return SavedImages(path=path, quadrants=quadrants)

    def _publish(self, stem: str, extension: str, data: bytes) -> Path:
        fd, temp_name = tempfile.mkstemp(prefix=".mj-", suffix=".part", dir=self.output_dir)
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            for number in range(1, 10_000):
                final = self.output_dir / (f"{stem}{extension}" if number == 1 else f"{stem}_{number}{extension}")
                if self._claim(temp, final):
                    self._sync_dir()
                    return final
            raise FileExistsError(f"no free file name for {stem}{extension} in {self.output_dir}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    @staticmethod
    def _claim(temp: Path, final: Path) -> bool:
        """Publish `temp` as `final` unless `final` exists. False when the name is taken."""
        try:
            os.link(temp, final)
        except FileExistsError:
            return False
        except OSError:
            # No hard links here (some network and FAT file systems): reserve the name with an
            # exclusive create, then move the finished file over our own empty placeholder.
            try:
                os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                return False
            os.replace(temp, final)
        return True

    def _sync_dir(self) -> None:
        # Make the new directory entry durable too; not possible on every platform.
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(self.output_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
