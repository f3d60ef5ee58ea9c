"""Images: what an image argument is, and turning pictures into what a model can look at.

`classify` tells the kinds of image argument apart (a data URI, raw base64, an http(s) URL or a
local path: absolute, `~`-relative, relative to the working directory, or a `file://` URL);
`loading.ImageLoader` reads them. `inspect_image` checks that bytes are a whole PNG, JPEG, WEBP
or GIF of at most `MAX_PIXELS` pixels (a small file can decode to gigabytes); only those
decoders ever run.

Outputs. `make_preview` makes the `image` content item (≤ 1568 px, ≤ 1.19 MP, ≤ 1 MiB, JPEG for
photographs, PNG where that is smaller), `image_size` reads a picture's size, `png_for_resource`
makes the PNG resource blob (at most 7 MiB, under 10 MiB as base64), and `split_grid` cuts a
2×2 grid into its four pictures; `saving.ImageSaver` writes them to disk.

Threading. Decoding with Pillow blocks: `inspect_image`, `make_preview`, `png_for_resource` and
`split_grid` are plain blocking functions; call them from async code with
`await anyio.to_thread.run_sync(...)`.

Memory. A 7071×7071 picture is 200 MB once decoded (Pillow keeps RGB at 4 bytes a pixel), so
the decoded pixels are bounded twice over. Each decode makes as few full-size copies as it can:
a JPEG preview is decoded at a reduced scale (`draft`), a preview is shrunk in place before it
is turned, flattened or converted, and a grid is cut with one crop at a time from one decoded
picture. And every full-size decode waits for its share of `DECODE_BUDGET_PIXELS`, a budget of
decoded pixels shared by the whole process: pictures of a few megapixels decode side by side,
a giant one decodes alone, so four giant result images at once cost one giant picture of memory
at a time instead of four.

Every refusal is an `ImageInputError` (could not be used) or `ImageRejectedError` (refused on
purpose) whose message says what was wrong and whose hint says what to do instead.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import math
import re
import threading
import warnings
from collections.abc import Callable, Generator, Iterable
from io import BytesIO
from typing import TYPE_CHECKING, Final, Literal

from mj_mcp.errors import ImageInputError, ImageRejectedError

if TYPE_CHECKING:
    # Pillow is imported where pictures are decoded, not here: importing it costs tens of
    # milliseconds that the server's start (up to its first tools/list answer) need not pay.
    from PIL import Image

__all__ = [
    "ALLOWED_FORMATS",
    "DECODE_BUDGET_PIXELS",
    "DEFAULT_MAX_IMAGE_BYTES",
    "FAST_PNG_LEVEL",
    "FORMATS_TEXT",
    "MAX_PIXELS",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_MAX_PIXELS",
    "PREVIEW_MAX_SIDE",
    "RESOURCE_MAX_BYTES",
    "DecodeBudget",
    "InputKind",
    "classify",
    "image_mime",
    "image_size",
    "inspect_image",
    "make_preview",
    "png_for_resource",
    "split_grid",
]

InputKind = Literal["data_uri", "url", "base64", "path"]

ALLOWED_FORMATS: Final = ("PNG", "JPEG", "WEBP", "GIF")
"""The only Pillow decoders ever run here (no EPS/Ghostscript, no exotic parsers). Pillow's JPEG
decoder reports many phone photos as format MPO; those are JPEGs too."""
FORMATS_TEXT: Final = "PNG, JPEG, WEBP or GIF"
_MIME: Final[dict[str, str]] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_PNG_MODES: Final = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})
"""Pillow modes that PNG stores as they are; any other is converted before saving as PNG."""
DEFAULT_MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
"""Largest image file, download or inline image accepted unless `MJ_MAX_IMAGE_BYTES` says otherwise."""
MAX_PIXELS: Final = 50_000_000
"""Largest decoded picture accepted (width × height); Pillow's own limit is ~89 MP."""
DECODE_BUDGET_PIXELS: Final = 64_000_000
"""Decoded pixels in flight at once, process-wide (~256 MB at Pillow's 4 bytes a pixel): more
than one `MAX_PIXELS` picture, less than two."""
PREVIEW_MAX_SIDE: Final = 1568
PREVIEW_MAX_PIXELS: Final = 1092 * 1092
"""Most pixels a preview keeps. Claude reads at most ~1.19 MP (1092² for a square; larger is scaled
down before the model sees it), OpenAI's high detail tiles the short side at 768 px and Gemini
tiles at 768 px too: more pixels cost bytes (and, where the client counts them, tokens) that no
model reads. A 2048² grid previews at 1092²."""
PREVIEW_MAX_BYTES: Final = 1_048_576
PREVIEW_QUALITIES: Final = (85, 80, 75, 70)
"""JPEG qualities a preview is tried at, best first, until one is at most `PREVIEW_TARGET_BYTES`:
none leaves artefacts a model notices on a photograph."""
PREVIEW_TARGET_BYTES: Final = 300_000
"""What a preview should weigh (a detailed 1092² photograph is 250-450 KB at quality 85). Above it
the next quality is tried; the last one that fits in the hard limit is kept."""
PREVIEW_KEEP_BYTES: Final = 256 * 1024
"""A PNG within the preview's size limits and at most this large is shown as it is: re-encoding
it would save little, and it may be a flat picture that JPEG blurs."""
_FLAT_COLOURS: Final = 256
"""A picture of at most this many colours is flat (a diagram, a mask): PNG is tried beside JPEG."""
RESOURCE_MAX_BYTES: Final = 7 * 1024 * 1024
"""Largest image resource blob, decoded. The contract allows 8 MiB, but stdio clients drop
messages over 10 MiB and base64 adds a third: 7 MiB is 9.33 MiB on the wire, with room for the
JSON around it."""
FAST_PNG_LEVEL: Final = 1
"""zlib level of the PNGs written where their size is not the point: a grid's saved quadrants
(working copies on the user's disk; the job is done when they are written) and the resource blob.
Measured by `benchmarks/preview.py --png` (docs/benchmarks.md, "PNG compress level"): the four
quadrants of a 2048² natural-photo grid take 0.48 s of CPU at level 1 against 1.49 s at Pillow's
default 6 (saving the whole finished grid: 0.50 s against 1.34 s) and come out 4 % smaller (7.06
against 7.33 MB: the slower levels find nothing more to match in grain); a smooth (upscaled) grid
comes out 5 % larger (6.41 against 6.08 MB), a flat one 10 %. Level 3 saves 3 % of the bytes for
a third more CPU; levels 4-6 cost two to three times as much."""
_COMPACT_PNG_LEVEL: Final = 6
"""Pillow's default: tried when a resource blob at `FAST_PNG_LEVEL` is over its cap."""
_COMPACT_REACH: Final = 1.5
"""How far over the cap a `FAST_PNG_LEVEL` PNG may be for `_COMPACT_PNG_LEVEL` to be worth a try:
the default level comes out 15-25 % smaller on smooth photographs (an upscale, a blur), up to 45 %
on the simulator's flat pictures, and 2-4 % larger on grainy ones."""
_MAX_PATH_LENGTH: Final = 4096
_BASE64_MIN_LENGTH: Final = 128
"""An alphabet-only string this long is base64 even without an image signature."""


# ---------------------------------------------------------------------------------------------
# Classifying an argument
# ---------------------------------------------------------------------------------------------

_B64_RE: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_mime(data: bytes) -> str | None:
    """The image MIME type by signature (PNG, JPEG, GIF, WEBP), or None. Cheap: no decoding."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _b64_prefix_is_image(compact: str) -> bool:
    head = compact[:24].rstrip("=").translate(str.maketrans("-_", "+/"))
    head = head[: len(head) - len(head) % 4]
    # Only alphabet characters, a multiple of 4 long, no padding: this always decodes.
    return image_mime(base64.b64decode(head)) is not None


def classify(value: str, is_file: Callable[[str], bool] | None = None) -> InputKind:
    """Which kind of image argument `value` is: `data_uri`, `url`, `base64` or `path`.

    Base64 and relative paths can look alike (`abc/def` is both). Base64 wins when the text
    uses only the base64 alphabet and either decodes to an image signature or is long; a short
    text with a slash is a path when `is_file` says it names a file (`ImageLoader.classify`
    passes a check that looks only inside the allowed folders, so that the answer never tells
    whether a file outside them exists). Without `is_file` nothing on disk is looked at. Any
    `scheme://` other than `file://` is a URL (so that `ftp://` is refused as a URL, not looked
    up as a file). Raises ImageInputError for empty text.
    """
    text = value.strip()
    if not text:
        raise ImageInputError("The image argument is empty.")
    lowered = text[:8].lower()
    if lowered.startswith("data:"):
        return "data_uri"
    if lowered.startswith("file:"):
        return "path"
    if _SCHEME_RE.match(text[:40]):
        return "url"
    compact = "".join(text.split())
    if _B64_RE.fullmatch(compact):
        if "/" in text and len(text) <= _MAX_PATH_LENGTH and is_file is not None and is_file(text):
            return "path"
        if len(compact) >= _BASE64_MIN_LENGTH or _b64_prefix_is_image(compact):
            return "base64"
    return "path"


# ---------------------------------------------------------------------------------------------
# Decoding and checking with Pillow (blocking)
# ---------------------------------------------------------------------------------------------


def _bomb_error(width: int | None = None, height: int | None = None) -> ImageRejectedError:
    size = f" ({width}×{height} pixels)" if width and height else ""
    return ImageRejectedError(
        f"The image is too large when decoded{size}; at most {MAX_PIXELS // 1_000_000} megapixels are accepted.",
        hint="Scale the image down and pass it again.",
    )


def _not_image_error(what: str) -> ImageRejectedError:
    return ImageRejectedError(
        f"{what} is not a {FORMATS_TEXT} image.",
        hint=f"Pass a {FORMATS_TEXT} image as a data URI, raw base64, an http(s) URL or a file path.",
    )


def _open(data: bytes, what: str = "The data") -> Image.Image:
    """Open (header only) and apply the format and pixel guards. Pillow's bomb warning is an error.

    `warnings.catch_warnings` is process-global; if two threads interleave here the worst case
    is that the "error" filter for DecompressionBombWarning outlives the block, which is the
    hardening we want anyway.
    """
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(BytesIO(data), formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb_error() from None
        except UnidentifiedImageError:
            raise _not_image_error(what) from None
        except Exception:
            # Pillow's parsers signal malformed input with many exception types (SyntaxError,
            # struct.error, ValueError, EOFError...); all mean the same thing to the caller.
            raise _not_image_error(what) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _bomb_error(width, height)
    return image


def _mime_of(image: Image.Image) -> str:
    return _MIME.get(image.format or "", "application/octet-stream")


def inspect_image(data: bytes, what: str) -> tuple[str, int, int]:
    """Check that `data` is a whole, sane image; return (mime, width, height). `what` names it in
    messages ("The image from data URI"). Blocking."""
    image = _open(data, what)
    mime = _mime_of(image)
    width, height = image.size
    try:
        image.verify()
    except Exception:
        raise ImageRejectedError(
            f"{what} is a damaged {image.format} image.", hint="Pass an intact image file."
        ) from None
    return mime, width, height


class DecodeBudget:
    """A process-wide budget of decoded pixels: `hold(pixels)` blocks until the pixels fit.

    Admission is first come, first served, so a giant picture waiting for the budget to empty
    is not overtaken forever by small ones. A picture larger than the whole budget takes all of
    it (it decodes alone). Blocking: used inside the worker threads that decode.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._next_ticket = 0
        self._serving = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Generator[None]:
        _give_back_big_blocks()
        want = max(1, min(pixels, self.capacity))
        with self._changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._changed.wait_for(lambda: ticket == self._serving and self._used + want <= self.capacity)
            self._serving += 1
            self._used += want
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._used -= want
                self._changed.notify_all()


_BUDGET: Final = DecodeBudget(DECODE_BUDGET_PIXELS)
_MMAP_THRESHOLD: Final = 1 << 20
_M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter number


@functools.cache
def _give_back_big_blocks() -> None:
    """Have glibc's malloc serve every block of 1 MiB or more with its own mapping (done once).

    Without this, glibc raises its mapping threshold to 32 MiB after the first big block is
    freed, and later blocks of pictures then come from per-thread heaps that keep the memory
    after it is freed: four worker threads that decode giant pictures one after another would
    hold four giant pictures' worth of memory for good (1.1 GB for four 7071² images, against
    0.3 GB with this). Elsewhere (macOS, musl) there is no such knob, and nothing is done.
    """
    with contextlib.suppress(OSError, AttributeError, TypeError):
        import ctypes

        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _pixels(image: Image.Image) -> int:
    width, height = image.size
    return width * height


def _load(image: Image.Image, what: str) -> None:
    """Decode the first frame's pixels; a damaged image is an ImageRejectedError."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
    except Exception:
        # Truncated or corrupt pixel data shows up only now, under assorted exception types.
        raise ImageRejectedError(f"{what} is a damaged image.", hint="Pass an intact image file.") from None


def _upright(image: Image.Image, what: str) -> Image.Image:
    """Apply the EXIF orientation in place: no full-size copy when there is nothing to turn."""
    from PIL import ImageOps

    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:
        raise ImageRejectedError(f"{what} is a damaged image.", hint="Pass an intact image file.") from None
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (JPEG has no alpha)."""
    from PIL import Image

    if _has_alpha(image):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, fmt: Literal["JPEG", "WEBP"], quality: int) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, quality=quality, optimize=fmt == "JPEG")
    return buffer.getvalue()


def _shrink_to_fit(
    image: Image.Image,
    *,
    fmt: Literal["JPEG", "WEBP"],
    max_bytes: int,
    qualities: Iterable[int],
) -> bytes:
    """Encode at falling quality, then at falling size, until the result fits in `max_bytes`."""
    from PIL import Image

    steps = tuple(qualities)
    while True:
        for quality in steps:
            encoded = _encode(image, fmt, quality)
            if len(encoded) <= max_bytes:
                return encoded
        width, height = image.size
        if max(width, height) <= 16:
            raise ImageInputError(
                f"The image cannot be made smaller than {max_bytes} bytes.",
                hint="Use the full-size location instead.",
            )
        image = image.copy()
        image.thumbnail((max(1, width * 3 // 4), max(1, height * 3 // 4)), Image.Resampling.LANCZOS)


_SHRINK_FIRST_MODES: Final = frozenset({"RGB", "RGBA", "L", "LA"})
"""Modes that resize well as they are (alpha premultiplied by Pillow); others (palettes, 1-bit,
CMYK...) are converted before a preview is shrunk."""


def make_preview(
    data: bytes,
    *,
    max_side: int = PREVIEW_MAX_SIDE,
    max_bytes: int = PREVIEW_MAX_BYTES,
    max_pixels: int = PREVIEW_MAX_PIXELS,
) -> tuple[bytes, str]:
    """The picture a model looks at, in the fewest bytes a model reads well at its size: at most
    `max_side` px on the long side, `max_pixels` pixels and `max_bytes` bytes.

    A still JPEG/WEBP within all three limits, or such a PNG of at most `PREVIEW_KEEP_BYTES`, is
    returned as it is. Anything else is shrunk to the limits and becomes a JPEG (first frame of an
    animation, transparency flattened onto white, EXIF orientation applied) of about
    `PREVIEW_TARGET_BYTES`, stepping quality and then size down until it fits; a flat picture (few
    colours) becomes a PNG when that is smaller, and a larger PNG within the limits stays as it is
    when the JPEG would not be smaller. Blocking: run it in a worker thread. Raises
    ImageInputError (or ImageRejectedError) when `data` is not an image.
    """
    image = _open(data, "The image")
    animated = bool(getattr(image, "is_animated", False))
    fits = (
        image.format in ("PNG", "JPEG", "WEBP")
        and not animated
        and _fitted(image.size, max_side, max_pixels) == image.size
        and len(data) <= max_bytes
    )
    if fits and (image.format != "PNG" or len(data) <= PREVIEW_KEEP_BYTES):
        mime, _, _ = inspect_image(data, "The image")
        return data, mime
    if image.format in ("JPEG", "MPO"):
        # Let libjpeg decode at a reduced scale: much less work and memory for a 4096 px upscale.
        image.draft("RGB", _fitted(image.size, max_side, max_pixels))
    with _BUDGET.hold(_pixels(image)):
        picture = _small_picture(image, max_side, max_pixels)
    encoded, mime = _smallest_encoding(picture, max_bytes)
    if fits and len(data) <= len(encoded):
        return data, "image/png"
    return encoded, mime


def _fitted(size: tuple[int, int], max_side: int, max_pixels: int) -> tuple[int, int]:
    """`size` scaled down (never up), aspect kept, to at most `max_side` a side and `max_pixels`."""
    width, height = size
    scale = min(1.0, max_side / max(width, height, 1), math.sqrt(max_pixels / max(width * height, 1)))
    if scale >= 1.0:
        return size
    return max(1, int(width * scale)), max(1, int(height * scale))


def _smallest_encoding(picture: Image.Image, max_bytes: int) -> tuple[bytes, str]:
    """JPEG for a photograph; PNG instead for a flat picture when it is smaller (and fits)."""
    jpeg = _preview_jpeg(picture, max_bytes)
    if picture.getcolors(_FLAT_COLOURS) is None:
        return jpeg, "image/jpeg"
    buffer = BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    png = buffer.getvalue()
    return (png, "image/png") if len(png) < len(jpeg) else (jpeg, "image/jpeg")


def _preview_jpeg(picture: Image.Image, max_bytes: int) -> bytes:
    """The first of `PREVIEW_QUALITIES` within the target; else the last that fits in `max_bytes`;
    else lower qualities and smaller sizes until it fits."""
    target = min(PREVIEW_TARGET_BYTES, max_bytes)
    encoded = b""
    for quality in PREVIEW_QUALITIES:
        encoded = _encode(picture, "JPEG", quality)
        if len(encoded) <= target:
            return encoded
    if len(encoded) <= max_bytes:
        return encoded
    return _shrink_to_fit(picture, fmt="JPEG", max_bytes=max_bytes, qualities=(65, 50, 35))


def _small_picture(image: Image.Image, max_side: int, max_pixels: int) -> Image.Image:
    """Decode `image` and shrink it in place to the preview's limits before it is turned upright
    and flattened, so that only the decoded picture itself is ever full size."""
    from PIL import Image

    _load(image, "The image")
    if image.mode not in _SHRINK_FIRST_MODES:
        image = _converted(image, "RGBA" if _has_alpha(image) else "RGB")
    image.thumbnail(_fitted(image.size, max_side, max_pixels), Image.Resampling.LANCZOS)
    return _flatten(_upright(image, "The image"))


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the picture, from its header alone. Raises like `make_preview`."""
    image = _open(data, "The image")
    size = image.size
    image.close()
    return size


def png_for_resource(data: bytes, *, max_bytes: int = RESOURCE_MAX_BYTES) -> bytes:
    """The image as PNG of at most `max_bytes`: what `mj://tasks/{id}/image` serves.

    The resource template declares one MIME type, so every image is served as PNG: a PNG that
    fits is returned unchanged; anything else is converted, and scaled down until it fits.
    Blocking: run it in a worker thread.
    """
    detected, _, _ = inspect_image(data, "The image")
    if detected == "image/png" and len(data) <= max_bytes:
        return data
    image = _open(data, "The image")
    with _BUDGET.hold(_pixels(image)):
        picture = _png_ready(image, "The image")
        try:
            return _fitting_png(picture, max_bytes)
        finally:
            # Free the pixels before the budget is handed on, not when the frame goes.
            image.close()
            picture.close()


def _fitting_png(picture: Image.Image, max_bytes: int) -> bytes:
    """`picture` as a PNG of at most `max_bytes`, scaled down (in place) until it fits.

    Encoded at `FAST_PNG_LEVEL`; when that is over the cap by no more than `_COMPACT_REACH`, at
    `_COMPACT_PNG_LEVEL` too before the picture is scaled down, so that a smooth or flat picture
    keeps the size it had at Pillow's default. Further over, the default level cannot fit either,
    and the picture is scaled down at once."""
    from PIL import Image

    while True:
        encoded = _png(picture, FAST_PNG_LEVEL)
        if max_bytes < len(encoded) <= max_bytes * _COMPACT_REACH:
            encoded = min(encoded, _png(picture, _COMPACT_PNG_LEVEL), key=len)
        if len(encoded) <= max_bytes or max(picture.size) <= 64:
            return encoded
        width, height = picture.size
        # In place: the picture is ours, and a copy would be one more full-size picture.
        picture.thumbnail((max(1, width * 3 // 4), max(1, height * 3 // 4)), Image.Resampling.LANCZOS)


def _png(picture: Image.Image, level: int) -> bytes:
    buffer = BytesIO()
    picture.save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()


def _png_ready(image: Image.Image, what: str) -> Image.Image:
    """Decoded, upright, in a mode PNG stores (converted only when it is not)."""
    _load(image, what)
    picture = _upright(image, what)
    if picture.mode not in _PNG_MODES:
        picture = _converted(picture, "RGBA" if _has_alpha(picture) else "RGB")
    return picture


def _converted(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode`, the original's pixels freed at once rather than when it goes."""
    converted = image.convert(mode)
    image.close()
    return converted


def split_grid(data: bytes) -> list[bytes]:
    """The four pictures of a 2×2 grid as PNG bytes: top-left, top-right, bottom-left,
    bottom-right (the U1..U4 order). Blocking: run it in a worker thread.

    The grid is decoded once; each quadrant is cropped, encoded (at `FAST_PNG_LEVEL`) and dropped
    before the next, so at most one quarter-size copy exists beside the decoded grid."""
    what = "The grid image"
    image = _open(data, what)
    with _BUDGET.hold(_pixels(image)):
        image = _png_ready(image, what)
        width, height = image.size
        if width < 2 or height < 2:
            raise ImageInputError("The grid image is too small to split into four.", hint="Pass a 2×2 grid image.")
        half_w, half_h = width // 2, height // 2
        boxes = ((0, 0, half_w, half_h), (half_w, 0, width, half_h), (0, half_h, half_w, height))
        boxes += ((half_w, half_h, width, height),)
        parts = [_png(image.crop(box), FAST_PNG_LEVEL) for box in boxes]
        image.close()  # free the pixels before the budget is handed on
    return parts
