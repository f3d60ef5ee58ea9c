"""Uploaded images and the files the simulator serves: pictures, uploads and video placeholders.

Served without auth or mode prefix: `/sim/images/{taskId}.png` (final),
`/sim/images/{taskId}/preview.webp`, `/sim/images/{taskId}/{1..4}.png` (one quadrant),
`/sim/uploads/{name}` and `/sim/videos/{taskId}/{0..3}.mp4`. Pictures are drawn on first request
and kept in a small LRU cache; uploads are kept up to a bound.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import anyio.to_thread
from starlette.responses import Response

from mj_mcp.simulator.buttons import KINDS
from mj_mcp.simulator.core import TaskStore
from mj_mcp.simulator.render import draw_variant

__all__ = ["Blob", "Media", "decode_base64"]

IMAGE_CACHE_SIZE: Final = 48
UPLOAD_LIMIT: Final = 256
_DATA_URI: Final = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(.*)$", re.DOTALL)
_EXTENSIONS: Final = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
# A placeholder that players recognise as MP4 (an `ftyp` box and an empty `mdat` box).
_MP4_PLACEHOLDER: Final = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08mdat"


@dataclass(frozen=True, slots=True)
class Blob:
    """Decoded bytes of an image field, with their media type."""

    data: bytes
    mime: str


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"GIF8"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def decode_base64(value: str) -> Blob | None:
    """A data URI or bare base64 string as bytes; None when it is not valid base64."""
    mime: str | None = None
    payload = value.strip()
    match = _DATA_URI.match(payload)
    if match:
        mime, payload = match.group(1), match.group(2)
    elif payload.startswith("data:"):
        return None
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data:
        return None
    return Blob(data, mime or _sniff(data))


class Media:
    """The uploads and the picture cache, and the `/sim/...` files built from them."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._uploads: OrderedDict[str, Blob] = OrderedDict()
        self.images: OrderedDict[tuple[str, str], tuple[bytes, str]] = OrderedDict()
        """Drawn pictures by (task id, variant), least recently served first."""

    def keep(self, base: str, image: Blob | str) -> str:
        """Keep an uploaded image (bounded) and return the absolute URL serving it; a URL stays."""
        if isinstance(image, str):
            return image
        name = f"upload_{hashlib.sha256(image.data).hexdigest()[:20]}.{_EXTENSIONS.get(image.mime, 'bin')}"
        self._uploads[name] = image
        self._uploads.move_to_end(name)
        while len(self._uploads) > UPLOAD_LIMIT:
            self._uploads.popitem(last=False)
        return f"{base}/sim/uploads/{name}"

    async def serve(self, path: str) -> Response:
        """A `/sim/...` file, or 404."""
        match = re.fullmatch(r"/sim/images/([^/]+)\.png", path)
        if match:
            return await self._picture(match.group(1), "final")
        match = re.fullmatch(r"/sim/images/([^/]+)/(preview\.webp|[1-4]\.png)", path)
        if match:
            return await self._picture(match.group(1), match.group(2).split(".")[0])
        match = re.fullmatch(r"/sim/uploads/([^/]+)", path)
        if match and match.group(1) in self._uploads:
            blob = self._uploads[match.group(1)]
            return Response(blob.data, 200, media_type=blob.mime)
        match = re.fullmatch(r"/sim/videos/([^/]+)/[0-3]\.mp4", path)
        task = self._store.get(match.group(1)) if match else None
        if task is not None and KINDS[task.kind].video:
            return Response(_MP4_PLACEHOLDER, 200, media_type="video/mp4")
        return Response(status_code=404)

    async def _picture(self, task_id: str, variant: str) -> Response:
        task = self._store.get(task_id)
        if task is None or not KINDS[task.kind].picture:
            return Response(status_code=404)
        key = (task_id, variant)
        cached = self.images.get(key)
        if cached is None:
            # Drawing takes tens of milliseconds; on the event loop it would hold back every
            # reply and callback meanwhile, which real upstreams do not do.
            cached = await anyio.to_thread.run_sync(
                draw_variant, task.art_key, task.art_text, task.art_index, task.size, variant
            )
            self.images[key] = cached
            while len(self.images) > IMAGE_CACHE_SIZE:
                self.images.popitem(last=False)
        self.images.move_to_end(key)
        return Response(cached[0], 200, media_type=cached[1])
