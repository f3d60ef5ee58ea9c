"""Images in and out: turning image arguments into what the upstream takes, and upstream images
into what a model can look at and what is saved on disk.

Inputs. An image argument is a data URI, raw base64, an http(s) URL or a local path (absolute,
``~``-relative, relative to the working directory, or a ``file://`` URL). `classify` tells them
apart; `ImageLoader.load` turns any of them into checked bytes (`LoadedImage`), and
`ImageLoader.to_data_uri` into the ``data:<mime>;base64,...`` form the upstream's base64 fields
take. Every input is refused unless it is a real PNG, JPEG, WEBP or GIF by content (never by
name or declared type), at most ``max_bytes`` (counted while reading or streaming, so a huge
file is never read whole), and at most `MAX_PIXELS` pixels (a small file can decode to gigabytes).

Two guards stand between a tool argument and this machine's surroundings:

- Local files are read only when their *real* path (symbolic links resolved) lies inside one of
  the allowed folders (``MJ_ALLOWED_DIRS``). The file is then opened without following links and
  checked to be a regular file on the open descriptor, so a FIFO or device cannot block or feed us.
- URLs must be public. `ImageLoader.check_url` parses the URL with the same parser the HTTP client
  uses (no parser differential), resolves the host and refuses it when *any* address is internal
  (loopback, private, link-local, CGNAT, multicast, reserved, unspecified, and the same addresses
  embedded in IPv4-mapped/compatible, 6to4 and NAT64 IPv6 forms). Downloads then connect to the
  very address that was checked (the URL is pinned to the IP; Host header and TLS SNI keep the
  name), so a DNS answer that changes between check and connect (DNS rebinding) cannot redirect
  us inward. Redirects are followed by hand, at most `MAX_REDIRECTS`, each hop checked again.
  Requests carry no credentials, no cookies and ignore proxy environment variables.

Outputs. `make_preview` makes the ``image`` content item (≤ 1568 px, ≤ 1 MiB), `png_for_resource`
makes the PNG resource blob (at most 7 MiB, under 10 MiB as base64), `split_grid` cuts a 2×2 grid
into its four pictures, and `ImageSaver` writes files atomically and never over an existing file.

Threading. Decoding with Pillow and writing files block. The ``async`` methods of `ImageLoader`
do that work in a worker thread themselves. Everything else here is a plain blocking function
(`make_preview`, `png_for_resource`, `split_grid`, `ImageSaver.save`, `ImageSaver.save_task`):
call it from async code with ``await anyio.to_thread.run_sync(...)``.

Every refusal is an `ImageInputError` (could not be used) or `ImageRejectedError` (refused on
purpose) whose message says what was wrong and whose hint says what to do instead; messages show
URLs without user info or query string, since those are where tokens live.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import os
import re
import socket
import stat
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Self, TypeAlias
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread
import httpx2

from mj_mcp import __version__
from mj_mcp.config import DEFAULT_MAX_IMAGE_BYTES
from mj_mcp.errors import ImageInputError, ImageRejectedError

if TYPE_CHECKING:
    # Pillow is imported where pictures are decoded, not here: importing it costs tens of
    # milliseconds that the server's start (up to its first tools/list answer) need not pay.
    from PIL import Image

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_PIXELS",
    "MAX_REDIRECTS",
    "PREVIEW_MAX_BYTES",
    "PREVIEW_MAX_SIDE",
    "RESOURCE_MAX_BYTES",
    "ImageLoader",
    "ImageSaver",
    "InputKind",
    "LoadedImage",
    "Resolver",
    "SavedImages",
    "classify",
    "image_mime",
    "make_preview",
    "png_for_resource",
    "sanitize_stem",
    "split_grid",
]

InputKind = Literal["data_uri", "url", "base64", "path"]
Resolver = Callable[[str], Awaitable[list[str]]]
"""Returns the IP addresses (as text) a host name resolves to; raises OSError when it does not."""

ALLOWED_FORMATS: Final = ("PNG", "JPEG", "WEBP", "GIF")
"""The only Pillow decoders ever run here (no EPS/Ghostscript, no exotic parsers). Pillow's JPEG
decoder reports many phone photos as format MPO; those are JPEGs too."""
_MIME: Final[dict[str, str]] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
MAX_PIXELS: Final = 50_000_000
"""Largest decoded picture accepted (width × height); Pillow's own limit is ~89 MP."""
MAX_REDIRECTS: Final = 3
PREVIEW_MAX_SIDE: Final = 1568
PREVIEW_MAX_BYTES: Final = 1_048_576
RESOURCE_MAX_BYTES: Final = 7 * 1024 * 1024
"""Largest image resource blob, decoded. The contract allows 8 MiB, but stdio clients drop
messages over 10 MiB and base64 adds a third: 7 MiB is 9.33 MiB on the wire, with room for the
JSON around it."""
RESOLVE_TIMEOUT: Final = 10.0
_MAX_URL_LENGTH: Final = 8192
_MAX_PATH_LENGTH: Final = 4096
_BASE64_MIN_LENGTH: Final = 128
"""An alphabet-only string this long is base64 even without an image signature."""
_MAX_STEM: Final = 80

_ALLOW_HINT: Final = (
    "Move the file into one of those folders, or add its folder to MJ_ALLOWED_DIRS "
    f"(folders separated by {os.pathsep!r}) and restart the server, or pass the image as a data URI "
    "or a public http(s) URL."
)
_URL_HINT: Final = "Pass the image as a data URI or a file path inside MJ_ALLOWED_DIRS instead."
_FORMATS_TEXT: Final = "PNG, JPEG, WEBP or GIF"


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


def classify(value: str) -> InputKind:
    """Which kind of image argument `value` is: ``data_uri``, ``url``, ``base64`` or ``path``.

    Base64 and relative paths can look alike (``abc/def`` is both). Base64 wins when the text
    uses only the base64 alphabet and either decodes to an image signature or is long; a short
    text with a slash that names an existing file is a path. Any ``scheme://`` other than
    ``file://`` is a URL (so that ``ftp://`` is refused as a URL, not looked up as a file).
    Raises ImageInputError for empty text.
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
        if "/" in text and len(text) <= _MAX_PATH_LENGTH and os.path.exists(os.path.expanduser(text)):
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
        f"{what} is not a {_FORMATS_TEXT} image.",
        hint=f"Pass a {_FORMATS_TEXT} image as a data URI, raw base64, an http(s) URL or a file path.",
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


def _inspect(data: bytes, what: str) -> tuple[str, int, int]:
    """Check that `data` is a whole, sane image; return (mime, width, height)."""
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


def _decoded(data: bytes, what: str) -> Image.Image:
    """Open with the guards, take the first frame, decode it and apply EXIF orientation."""
    return _decoded_from(_open(data, what), what)


def _decoded_from(image: Image.Image, what: str) -> Image.Image:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
            return ImageOps.exif_transpose(image)
    except Exception:
        # Truncated or corrupt pixel data shows up only now, under assorted exception types.
        raise ImageRejectedError(f"{what} is a damaged image.", hint="Pass an intact image file.") from None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white (JPEG has no alpha)."""
    from PIL import Image

    if _has_alpha(image):
        rgba = image.convert("RGBA")
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
    max_side: int,
    max_bytes: int,
    qualities: Iterable[int],
) -> bytes:
    """Encode at falling quality, then at falling size, until the result fits in `max_bytes`."""
    from PIL import Image

    steps = tuple(qualities)
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
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


def make_preview(
    data: bytes, *, max_side: int = PREVIEW_MAX_SIDE, max_bytes: int = PREVIEW_MAX_BYTES
) -> tuple[bytes, str]:
    """The picture a model looks at: at most `max_side` px on the long side and `max_bytes` bytes.

    A still PNG/JPEG/WEBP already within both limits is returned as it is; anything else becomes
    a JPEG (first frame of an animation, transparency flattened onto white, EXIF orientation
    applied), stepping quality and then size down until it fits. Blocking: run it in a worker
    thread. Raises ImageInputError (or ImageRejectedError) when `data` is not an image.
    """
    image = _open(data, "The image")
    animated = bool(getattr(image, "is_animated", False))
    if (
        image.format in ("PNG", "JPEG", "WEBP")
        and not animated
        and max(image.size) <= max_side
        and len(data) <= max_bytes
    ):
        mime, _, _ = _inspect(data, "The image")
        return data, mime
    if image.format in ("JPEG", "MPO"):
        # Let libjpeg decode at a reduced scale: much less work for a 4096 px upscale.
        image.draft("RGB", (max_side, max_side))
    picture = _flatten(_decoded_from(image, "The image"))
    encoded = _shrink_to_fit(
        picture, fmt="JPEG", max_side=max_side, max_bytes=max_bytes, qualities=(85, 75, 65, 50, 35)
    )
    return encoded, "image/jpeg"


def png_for_resource(data: bytes, *, max_bytes: int = RESOURCE_MAX_BYTES) -> bytes:
    """The image as PNG of at most `max_bytes`: what ``mj://tasks/{id}/image`` serves.

    The resource template declares one MIME type, so every image is served as PNG: a PNG that
    fits is returned unchanged; anything else is converted, and scaled down until it fits.
    Blocking: run it in a worker thread.
    """
    from PIL import Image

    detected, _, _ = _inspect(data, "The image")
    if detected == "image/png" and len(data) <= max_bytes:
        return data
    picture = _decoded(data, "The image")
    if picture.mode not in _PNG_MODES:
        picture = picture.convert("RGBA" if _has_alpha(picture) else "RGB")
    while True:
        buffer = BytesIO()
        picture.save(buffer, "PNG", optimize=False)
        encoded = buffer.getvalue()
        if len(encoded) <= max_bytes or max(picture.size) <= 64:
            return encoded
        width, height = picture.size
        picture = picture.copy()
        picture.thumbnail((max(1, width * 3 // 4), max(1, height * 3 // 4)), Image.Resampling.LANCZOS)


_PNG_MODES: Final = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


def split_grid(data: bytes) -> list[bytes]:
    """The four pictures of a 2×2 grid as PNG bytes: top-left, top-right, bottom-left,
    bottom-right (the U1..U4 order). Blocking: run it in a worker thread."""
    image = _decoded(data, "The grid image")
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    width, height = image.size
    if width < 2 or height < 2:
        raise ImageInputError("The grid image is too small to split into four.", hint="Pass a 2×2 grid image.")
    half_w, half_h = width // 2, height // 2
    boxes = ((0, 0, half_w, half_h), (half_w, 0, width, half_h), (0, half_h, half_w, height))
    boxes += ((half_w, half_h, width, height),)
    parts: list[bytes] = []
    for box in boxes:
        buffer = BytesIO()
        image.crop(box).save(buffer, format="PNG")
        parts.append(buffer.getvalue())
    return parts


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_V4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_LEGACY_V4_RE: Final = re.compile(r"[0-9a-fA-FxX.]+")

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _internal_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public internet address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            reason = _internal_reason(embedded)
            return f"embeds {embedded}, {reason}" if reason else None
        if address in _NAT64_LOCAL:
            return "local NAT64"
        if address.is_site_local:
            return "site-local"
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally reachable"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any notation: ipaddress's, or the legacy IPv4 forms
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) that system resolvers also accept."""
    bare = host.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(unquote(bare))
    candidate = bare.rstrip(".")
    if candidate[:1].isdigit() and _LEGACY_V4_RE.fullmatch(candidate):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            return None
    return None


async def default_resolver(host: str) -> list[str]:
    """Resolve with the system resolver (in a worker thread, via anyio)."""
    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _safe_url(url: str | httpx2.URL) -> str:
    """A URL fit for a message: no user info, no query or fragment, not too long."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        shown = f"{parts.scheme}://{host}{port}{parts.path}"
        if parts.query or parts.fragment:
            shown += "?…"
    except ValueError:
        shown = "(unparseable URL)"
    return shown if len(shown) <= 120 else shown[:117] + "…"


@dataclass(frozen=True, slots=True)
class _Checked:
    url: httpx2.URL
    addresses: list[IPAddress]


# ---------------------------------------------------------------------------------------------
# Loading inputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """A checked input image."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    source: str
    """Where it came from, fit for messages: a URL without query/user info, a path, or a kind."""

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


_OK_CONTENT_TYPES: Final = ("application/octet-stream", "binary/octet-stream", "")


class ImageLoader:
    """Turns image arguments into checked image bytes. See the module docstring for the guards.

    `http`: the client used for downloads. When None the loader makes its own at the first
    download (no auth, no cookies, proxies from the environment ignored) and closes it in
    `aclose`. Either way each request is built from scratch, so a shared client's default
    headers, auth and cookies are never sent. `resolver`: host name → IP addresses (tests
    inject a fake).
    """

    def __init__(
        self,
        allowed_dirs: Iterable[Path],
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        http: httpx2.AsyncClient | None = None,
        resolver: Resolver | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.allowed_dirs = self._resolve_dirs(allowed_dirs)
        self.max_bytes = max_bytes
        self._shared_http = http
        self._own_http: httpx2.AsyncClient | None = None
        self._timeout = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        self._resolver: Resolver = resolver or default_resolver

    @property
    def _http(self) -> httpx2.AsyncClient:
        # Our own client is made on first download: building one loads the TLS trust store and
        # the HTTP/1.1 connection modules (~60 ms), which the server's start need not wait for.
        if self._shared_http is not None:
            return self._shared_http
        if self._own_http is None:
            self._own_http = httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False)
        return self._own_http

    @staticmethod
    def _resolve_dirs(dirs: Iterable[Path]) -> list[Path]:
        resolved: list[Path] = []
        for folder in dirs:
            try:
                real = Path(os.path.expanduser(folder)).resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if real not in resolved:
                resolved.append(real)
        return resolved

    async def aclose(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- public --------------------------------------------------------------------------------

    async def load(self, value: str) -> LoadedImage:
        """Read, decode or download `value` and check it. Raises ImageInputError/ImageRejectedError."""
        kind = classify(value)
        text = value.strip()
        if kind == "url":
            data, source = await self._download(text)
        elif kind == "path":
            data, source = await anyio.to_thread.run_sync(self._read_file, text)
        elif kind == "data_uri":
            data, source = self._decode_data_uri(text), "data URI"
        else:
            data, source = self._decode_base64(text, "The base64 image"), "base64 text"
        what = f"The image from {source}"
        mime, width, height = await anyio.to_thread.run_sync(_inspect, data, what)
        return LoadedImage(data=data, mime=mime, width=width, height=height, source=source)

    async def to_data_uri(self, value: str) -> str:
        """`load`, then ``data:<mime>;base64,...`` as the upstream's base64 fields take it."""
        return (await self.load(value)).data_uri()

    async def to_png_data_uri(self, value: str) -> str:
        """`to_data_uri`, converted to PNG when it is not one: Vary Region masks must be PNG data URLs."""
        loaded = await self.load(value)
        if loaded.mime == "image/png":
            return loaded.data_uri()
        png = await anyio.to_thread.run_sync(png_for_resource, loaded.data)
        return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}"

    async def check_url(self, url: str, *, what: str = "image URL") -> str:
        """For a URL this server only passes on: refuse it unless it is http(s), carries no
        credentials and every address its host resolves to is public. Returns the normalised URL;
        `what` names the argument in messages.

        A host that does not resolve here is let through: it leads nowhere from this machine, and
        the upstream, which resolves it for itself, may well reach it.
        """
        return str((await self._check(url, what, unresolved_ok=True)).url)

    # -- URLs ----------------------------------------------------------------------------------

    async def _check(self, raw: str | httpx2.URL, what: str = "image URL", *, unresolved_ok: bool = False) -> _Checked:
        hint = _URL_HINT if what == "image URL" else f"Pass a public http(s) {what}, or leave it out."
        shown = _safe_url(raw)
        if isinstance(raw, str) and len(raw) > _MAX_URL_LENGTH:
            raise ImageInputError(f"The {what} is longer than {_MAX_URL_LENGTH} characters.")
        try:
            url = raw if isinstance(raw, httpx2.URL) else httpx2.URL(raw.strip())
            scheme, host, userinfo = url.scheme, url.host, url.userinfo
            raw_host = url.raw_host.decode("ascii")
        except Exception:
            # httpx2.InvalidURL, and UnicodeError/ValueError from IDNA on odd host names.
            raise ImageInputError(f"The {what} {shown} is not a valid URL.", hint="Pass a full http(s) URL.") from None
        if scheme not in ("http", "https"):
            raise ImageRejectedError(
                f"The {what} {shown} uses {scheme or 'no'} scheme; only http and https URLs are accepted.",
                hint=hint,
            )
        if userinfo:
            raise ImageRejectedError(
                f"The {what} {shown} contains a user name or password; URLs with credentials are "
                "refused so that they are not sent anywhere.",
                hint="Pass a public URL that needs no login, or the image as a data URI or file path.",
            )
        if not host:
            raise ImageInputError(f"The {what} {shown} has no host.", hint="Pass a full http(s) URL.")
        literal = _literal_ip(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            name = raw_host.rstrip(".").lower()
            if name == "localhost" or name.endswith(".localhost"):
                raise ImageRejectedError(
                    f"The {what} {shown} points to this machine (localhost); only public http(s) URLs are accepted.",
                    hint=hint,
                )
            try:
                addresses = await self._resolve(raw_host, shown, what)
            except ImageRejectedError:
                raise
            except ImageInputError:
                if not unresolved_ok:
                    raise
                addresses = []
        for address in addresses:
            reason = _internal_reason(address)
            if reason is not None:
                raise ImageRejectedError(
                    f"The {what} {shown} points to an internal address ({address}, {reason}); only "
                    "public http(s) URLs are accepted.",
                    hint=hint,
                )
        return _Checked(url=url, addresses=addresses)

    async def _resolve(self, host: str, shown: str, what: str = "image URL") -> list[IPAddress]:
        not_found = ImageInputError(
            f"The host of the {what} {shown} could not be resolved.",
            hint="Check the URL"
            + (", or pass the image as a data URI or a file path." if what == "image URL" else "."),
        )
        try:
            with anyio.fail_after(RESOLVE_TIMEOUT):
                answers = await self._resolver(host)
        except (OSError, UnicodeError, ValueError, TimeoutError):
            raise not_found from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer)
            except ValueError:
                raise ImageRejectedError(
                    f"The host of the {what} {shown} resolved to an address that cannot be checked.",
                    hint=_URL_HINT,
                ) from None
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise not_found
        return addresses

    async def _download(self, url: str) -> tuple[bytes, str]:
        current: str | httpx2.URL = url
        for _hop in range(MAX_REDIRECTS + 1):
            checked = await self._check(current)
            shown = _safe_url(checked.url)
            response = await self._connect(checked, shown)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    try:
                        current = checked.url.join(location)
                    except Exception:
                        raise ImageInputError(
                            f"The image URL {shown} redirects to an invalid location.",
                            hint="Pass the final image URL.",
                        ) from None
                    continue
                return await self._read_body(response, shown), shown
            finally:
                await response.aclose()
        raise ImageInputError(
            f"The image URL {_safe_url(url)} redirects more than {MAX_REDIRECTS} times.",
            hint="Pass the final image URL, or the image as a data URI or a file path.",
        )

    async def _connect(self, checked: _Checked, shown: str) -> httpx2.Response:
        """Send the GET to each checked address in turn until one connects."""
        url = checked.url
        host_header = url.netloc.decode("ascii")
        failure = "could not be reached"
        for address in checked.addresses:
            # Pinned to the address just checked: the transport does not resolve the name again.
            request = httpx2.Request(
                "GET",
                url.copy_with(host=str(address)),
                headers={
                    "Host": host_header,
                    "User-Agent": f"mj-mcp/{__version__}",
                    "Accept": "image/png, image/jpeg, image/webp, image/gif;q=0.9, */*;q=0.1",
                    # Pinned requests for different names can share an IP; never reuse one
                    # connection (and its TLS name) for another host.
                    "Connection": "close",
                },
                extensions={
                    "timeout": self._timeout.as_dict(),
                    "sni_hostname": url.raw_host.decode("ascii"),
                },
            )
            try:
                return await self._http.send(request, stream=True, auth=None, follow_redirects=False)
            except (httpx2.ConnectError, httpx2.ConnectTimeout):
                continue
            except httpx2.TimeoutException:
                failure = "timed out"
                break
            except httpx2.HTTPError as exc:
                failure = f"failed ({type(exc).__name__})"
                break
        raise ImageInputError(
            f"Downloading the image from {shown} {failure}.",
            hint="Check the URL, or pass the image as a data URI or a file path.",
        )

    async def _read_body(self, response: httpx2.Response, shown: str) -> bytes:
        if response.status_code != 200:
            raise ImageInputError(
                f"Downloading the image from {shown} failed with HTTP {response.status_code}.",
                hint="Check that the URL opens the image in a browser, or pass it as a data URI or file path.",
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/") and content_type not in _OK_CONTENT_TYPES:
            raise ImageRejectedError(
                f"The URL {shown} serves {content_type}, not an image.",
                hint="Pass the direct link to the image file (it usually ends in .png or .jpg).",
            )
        too_big = ImageRejectedError(
            f"The image at {shown} is larger than {self.max_bytes} bytes.",
            hint="Pass a smaller image.",
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise too_big
                chunks.append(chunk)
        except httpx2.HTTPError as exc:
            raise ImageInputError(
                f"Downloading the image from {shown} broke off ({type(exc).__name__}).",
                hint="Try again, or pass the image as a data URI or a file path.",
            ) from None
        return b"".join(chunks)

    # -- data URIs and base64 ------------------------------------------------------------------

    def _decode_data_uri(self, text: str) -> bytes:
        header, comma, payload = text.partition(",")
        params = [p.strip().lower() for p in header[5:].split(";")]
        if not comma or "base64" not in params[1:]:
            raise ImageInputError(
                "The data URI is not base64-encoded.",
                hint="Use the form data:image/png;base64,<base64 data>.",
            )
        if "%" in payload:
            payload = unquote(payload)
        return self._decode_base64(payload, "The data URI")

    def _decode_base64(self, text: str, what: str) -> bytes:
        compact = "".join(text.split())
        if len(compact) // 4 * 3 > self.max_bytes + 3:
            raise ImageRejectedError(f"{what} is larger than {self.max_bytes} bytes.", hint="Pass a smaller image.")
        if "-" in compact or "_" in compact:
            compact = compact.translate(str.maketrans("-_", "+/"))
        compact += "=" * (-len(compact) % 4)
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise ImageInputError(
                f"{what} is not valid base64.",
                hint="Pass standard base64 (or a data URI, URL or file path).",
            ) from None
        if not data:
            raise ImageInputError(f"{what} is empty.")
        if len(data) > self.max_bytes:
            raise ImageRejectedError(f"{what} is larger than {self.max_bytes} bytes.", hint="Pass a smaller image.")
        return data

    # -- local files (blocking; runs in a worker thread) -----------------------------------------

    def _outside(self, given: str) -> ImageRejectedError:
        folders = ", ".join(str(d) for d in self.allowed_dirs) or "none"
        return ImageRejectedError(
            f"The file {given} is outside the folders this server may read images from (MJ_ALLOWED_DIRS: {folders}).",
            hint=_ALLOW_HINT,
        )

    def _inside(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.allowed_dirs)

    def _read_file(self, text: str) -> tuple[bytes, str]:
        given = text if len(text) <= 200 else text[:197] + "…"
        if text[:5].lower() == "file:":
            try:
                parts = urlsplit(text)
            except ValueError:
                raise ImageInputError(
                    f"The file URL {given} is not valid.", hint="Pass a plain file path instead."
                ) from None
            if parts.netloc not in ("", "localhost"):
                raise ImageInputError(f"The file URL {given} names another machine.", hint="Pass a local file path.")
            text = unquote(parts.path)
        cannot_read = ImageInputError(f"The path {given} cannot be read.", hint="Check the path.")
        path = Path(text)
        try:
            path = Path(os.path.expanduser(text))
            if not path.is_absolute():
                path = Path.cwd() / path
            real = path.resolve(strict=True)
        except ValueError:  # NUL bytes, unencodable characters
            raise cannot_read from None
        except (OSError, RuntimeError) as exc:
            # Say "outside" for anything outside, so that answers never reveal which files
            # exist beyond the allowed folders.
            if not self._inside(_best_effort_resolve(path)):
                raise self._outside(given) from None
            if isinstance(exc, FileNotFoundError):
                raise ImageInputError(
                    f"There is no file {given}.",
                    hint="Check the path; relative paths are taken from the server's working folder.",
                ) from None
            raise cannot_read from None
        if not self._inside(real):
            raise self._outside(given)
        return self._read_regular(real, given), str(real)

    def _read_regular(self, real: Path, given: str) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(real, flags)
        except OSError:
            raise ImageInputError(
                f"The file {given} cannot be opened.", hint="Check that it exists and is readable."
            ) from None
        too_big = ImageRejectedError(
            f"The file {given} is larger than {self.max_bytes} bytes.", hint="Pass a smaller image."
        )
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageInputError(f"{given} is not a regular file.", hint="Pass the path of an image file.")
            if info.st_size > self.max_bytes:
                raise too_big
            data = _read_at_most(fd, self.max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self.max_bytes:
            raise too_big
        return data


def _best_effort_resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, say: judge the path as written
        return Path(os.path.abspath(path))


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Saving outputs (blocking)
# ---------------------------------------------------------------------------------------------

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
    """A file name stem made only of ``[A-Za-z0-9._-]``, at most 80 characters, never starting
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
        "The file is not a PNG, JPEG, WEBP or GIF image (or a video); it was not saved.",
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
    rather than replace an existing file; the next free name (``stem_2.png``...) is used then.
    Raises OSError when the folder cannot be written, ImageInputError for data that is not an
    image (or a video).
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(os.path.expanduser(output_dir)).absolute()

    def _ensure_dir(self) -> None:
        try:
            self.output_dir.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            if not self.output_dir.is_dir():
                raise NotADirectoryError(f"{self.output_dir} exists and is not a folder") from None
            return
        # mkdir's mode is filtered by the umask; make it exactly user-only.
        os.chmod(self.output_dir, 0o700)

    def save(self, name_stem: str, data: bytes, mime: str | None = None) -> Path:
        """Write `data` as ``<sanitised stem><extension of its real format>``; return the path."""
        extension = _extension(data, mime)
        self._ensure_dir()
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
        """Save a task's image as ``<kind>-<task_id>.<ext>`` (or ``<task_id>.<ext>``); for a grid
        also its four pictures as ``<stem>-1.png`` ... ``<stem>-4.png``."""
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
