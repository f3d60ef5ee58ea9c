"""Vary (Region) masks: building one from a region, and checking one before it is paid for.

Midjourney repaints the white part of the mask and keeps the black part; the mask must be the
size of the image being varied. An agent without a code tool cannot draw a PNG, so `modal`
takes a `Region` (fractions of the image) and `region_mask` draws the mask; a mask the caller
brings is checked by `check_mask` (its size, and that something is white), so that a wrong mask
is refused here rather than by the upstream after the job was accepted.

Both decode or draw pictures with Pillow and block: call them with `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

from io import BytesIO
from typing import Final, Self

from pydantic import model_validator

from mj_mcp.errors import InputError
from mj_mcp.images import MAX_PIXELS
from mj_mcp.models import WireModel

__all__ = ["WHITE_LEVEL", "Region", "check_mask", "region_mask"]

WHITE_LEVEL: Final = 128
"""A mask pixel at least this bright (0–255, grey) counts as white: part of the area to change."""


class Region(WireModel):
    """The part of the image to change, as fractions of its width and height (0,0 = top left)."""

    # The ranges are checked below rather than declared: every byte of the tools' schemas is read by
    # the model on every turn, and the tool's description of `region` says "fractions 0-1".
    x: float
    y: float
    width: float
    height: float

    @model_validator(mode="after")
    def _inside(self) -> Self:
        if not all(0 <= v <= 1 for v in (self.x, self.y, self.width, self.height)):
            raise ValueError("x, y, width and height are fractions of the image, from 0 to 1")
        if self.width <= 0 or self.height <= 0:
            raise ValueError("the region's width and height must be above 0")
        if self.x + self.width > 1 + 1e-9 or self.y + self.height > 1 + 1e-9:
            raise ValueError("the region must lie inside the image: x + width and y + height at most 1")
        return self

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The region in pixels of a `width`×`height` image: (left, top, right, bottom), at least 1×1."""
        left, top = round(self.x * width), round(self.y * height)
        right = max(left + 1, round((self.x + self.width) * width))
        bottom = max(top + 1, round((self.y + self.height) * height))
        return min(left, width - 1), min(top, height - 1), min(right, width), min(bottom, height)


def region_mask(region: Region, width: int, height: int) -> bytes:
    """A PNG the size of the image: white inside `region`, black elsewhere. Blocking."""
    from PIL import Image, ImageDraw

    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise InputError(f"The image is {width}×{height} pixels; no mask can be made for it.")
    mask = Image.new("L", (width, height), 0)
    left, top, right, bottom = region.box(width, height)
    ImageDraw.Draw(mask).rectangle((left, top, right - 1, bottom - 1), fill=255)
    buffer = BytesIO()
    mask.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def check_mask(data: bytes, width: int, height: int, *, task_id: str) -> None:
    """Refuse a mask that is not `width`×`height` or has no white area. Blocking.

    `data` has passed the image guards already (`ImageLoader.load`).
    """
    from PIL import Image, ImageChops

    with Image.open(BytesIO(data)) as mask:
        if mask.size != (width, height):
            raise InputError(
                f"The mask is {mask.width}×{mask.height} pixels, but the image of task {task_id} is {width}×{height}; "
                "nothing was sent.",
                hint=f"Pass a {width}×{height} mask, or region (fractions of the image) and the server draws it.",
            )
        if "A" in mask.getbands() or "transparency" in mask.info:
            # A transparent pixel is not white, whatever its colour: brightness times opacity.
            with_alpha = mask.convert("LA")
            grey = ImageChops.multiply(with_alpha.getchannel("L"), with_alpha.getchannel("A"))
        else:
            grey = mask.convert("L")
        brightest = grey.getextrema()[1]
    if not isinstance(brightest, int) or brightest < WHITE_LEVEL:
        raise InputError(
            "The mask has no white area, so Midjourney would change nothing; nothing was sent.",
            hint="Paint the area to change white and the rest black, or pass region instead of maskBase64.",
        )
