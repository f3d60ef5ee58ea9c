"""Drawing the pictures: a 2×2 grid, one quadrant, or a small blurred preview.

Each quadrant has a colour and a disc derived from the task's art key, the prompt text and its
number, so a picture is reproducible and an upscale visibly matches its quadrant of the grid.
Pillow is imported where pictures are drawn or measured: `mj-mcp --simulator` builds the
simulator before its first answer, and most sessions never look at a picture.
"""

from __future__ import annotations

import colorsys
import functools
import io
import textwrap
from typing import TYPE_CHECKING, Final, Literal

from mj_mcp.simulator.prompts import digest

if TYPE_CHECKING:
    from PIL import Image, ImageFont

__all__ = ["PNG_LEVEL", "draw_variant", "image_size"]

_PREVIEW_DIVISOR: Final = 4
PNG_LEVEL: Final = 1
"""zlib level of the served PNGs (the simulator stands apart from the product, so it names its
own). A 1024² grid encodes in 38 ms at level 1 against 55 ms at Pillow's default 6, 153 KB
against 138 KB (`benchmarks/preview.py --png`); on these flat pictures Pillow's choice of a
filter for each row, not deflate, is most of the rest. Not 0: a stored 3 MB grid would be over
the 256 KiB up to which the product shows a PNG as its preview without decoding it."""


def image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (int(r * 255), int(g * 255), int(b * 255))


def _tile(key: str, text: str, n: int, size: tuple[int, int], font_px: int) -> Image.Image:
    """One quadrant: a colour and a disc derived from (key, n), the prompt and the number."""
    from PIL import Image, ImageDraw

    w, h = size
    d = digest(f"{key}#{n}")
    hue = d[0] / 255
    background = _colour(hue, 0.45 + d[1] / 850, 0.62 + d[2] / 910)
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    radius = int(min(w, h) * (0.18 + d[3] / 2125))
    cx, cy = int(w * (0.3 + d[4] / 640)), int(h * (0.3 + d[5] / 640))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=_colour(hue + 0.5, 0.55, 0.9))
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (20, 20, 24) if luminance > 140 else (245, 245, 245)
    margin = max(4, font_px // 2)
    draw.text((margin, margin), str(n), font=_font(font_px * 3), fill=ink)
    chars = max(8, int((w - 2 * margin) / (font_px * 0.55)))
    lines = textwrap.wrap(text, width=chars)[:6] or [""]
    block = "\n".join(lines)
    line_height = int(font_px * 1.25)
    draw.multiline_text(
        (margin, h - margin - line_height * len(lines)), block, font=_font(font_px), fill=ink, spacing=font_px // 4
    )
    return img


def _render_picture(key: str, text: str, index: int | None, size: tuple[int, int]) -> Image.Image:
    from PIL import Image

    if index is not None:
        return _tile(key, text, index, size, font_px=max(12, min(size) // 16))
    half = (size[0] // 2, size[1] // 2)
    grid = Image.new("RGB", size)
    for n in range(1, 5):
        tile = _tile(key, text, n, half, font_px=max(10, min(half) // 14))
        grid.paste(tile, (((n - 1) % 2) * half[0], ((n - 1) // 2) * half[1]))
    return grid


def _encode(img: Image.Image, fmt: Literal["PNG", "WEBP"]) -> bytes:
    buffer = io.BytesIO()
    if fmt == "PNG":
        img.save(buffer, "PNG", compress_level=PNG_LEVEL)
    else:
        img.save(buffer, "WEBP", quality=50)
    return buffer.getvalue()


def _preview(img: Image.Image) -> Image.Image:
    from PIL import ImageFilter

    return img.reduce(_PREVIEW_DIVISOR).filter(ImageFilter.GaussianBlur(6))


@functools.lru_cache(maxsize=24)
def draw_variant(key: str, text: str, index: int | None, size: tuple[int, int], variant: str) -> tuple[bytes, str]:
    """(bytes, media type) of one served picture: "final", "preview" (blurred WebP) or quadrant "1".."4".

    Cached for the process: the same art key always draws the same picture, and a seeded
    simulator (every test's) draws the same few again and again.
    """
    if variant in ("final", "preview"):
        img = _render_picture(key, text, index, size)
    else:
        quadrant = (size[0] // 2, size[1] // 2) if index is None else size
        img = _render_picture(key, text, int(variant), quadrant)
    if variant == "preview":
        return _encode(_preview(img), "WEBP"), "image/webp"
    return _encode(img, "PNG"), "image/png"
