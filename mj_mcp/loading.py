"""Loading image arguments: a data URI, raw base64, an http(s) URL or a local path, into checked bytes.

`ImageLoader.load` turns any kind of argument (`images.classify` tells them apart) into a
`LoadedImage`, and `ImageLoader.to_data_uri` into the `data:<mime>;base64,...` form the
upstream's base64 fields take. Every input is refused unless it is a real PNG, JPEG, WEBP or
GIF by content (never by name or declared type), at most `max_bytes` (counted while reading or
streaming, so a huge file is never read whole), and at most `images.MAX_PIXELS` pixels.

Two guards stand between a tool argument and this machine's surroundings:

- Local files are read only when their *real* path (symbolic links resolved) lies inside one of
  the allowed folders (`MJ_ALLOWED_DIRS`). That real path is then opened one component at a
  time from a descriptor of the allowed folder, none of them followed if it is a link
  (`O_NOFOLLOW`; `O_DIRECTORY` for the folders), so a folder swapped for a link between the
  check and the open makes the open fail instead of reading whatever the link points to. The
  file is checked to be a regular file on the open descriptor, so a FIFO or device cannot
  block or feed us. Whether a short text is a relative path or base64 is decided by looking
  only inside the allowed folders (`ImageLoader.classify`), so answers never tell whether a
  file outside them exists.
- URLs must be public (`netguard.UrlGuard`), and downloads connect to the very address that was
  checked (`netguard.pinned_request`). Redirects are followed by hand, at most `MAX_REDIRECTS`,
  each hop checked again. Requests carry no credentials, no cookies and ignore proxy
  environment variables.

An argument may also name a task's image (`<taskId>`, `<taskId>#<n>`, `mj://tasks/{id}/image`,
see `references`): the loader reads it through the `ReferenceResolver` it is given, and checks it
like any other image.

Every refusal is an `ImageInputError` (could not be used) or `ImageRejectedError` (refused on
purpose) whose message says what was wrong and whose hint says what to do instead.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread
import httpx2

from mj_mcp import __version__
from mj_mcp.errors import ImageInputError, ImageRejectedError
from mj_mcp.images import DEFAULT_MAX_IMAGE_BYTES, InputKind, classify, inspect_image, png_for_resource
from mj_mcp.netguard import CheckedUrl, Resolver, UrlGuard, pinned_request, safe_url
from mj_mcp.references import ImageRef, parse_reference
from mj_mcp.streams import declared_too_large, read_capped

__all__ = ["MAX_REDIRECTS", "ImageLoader", "LoadedImage", "ReferenceResolver"]

ReferenceResolver = Callable[[ImageRef], Awaitable[tuple[bytes, str]]]
"""Reads a referenced task image: its bytes, and where they came from (for messages)."""

MAX_REDIRECTS: Final = 3
_IMAGE_URL: Final = "image URL"
_ANOTHER_WAY: Final = "pass the image as a data URI or a file path inside MJ_ALLOWED_DIRS"
_ALLOW_HINT: Final = (
    "Move the file into one of those folders, or add its folder to MJ_ALLOWED_DIRS "
    f"(folders separated by {os.pathsep!r}) and restart the server, or pass the image as a data URI "
    "or a public http(s) URL."
)
_OK_CONTENT_TYPES: Final = ("application/octet-stream", "binary/octet-stream", "")
_ACCEPT: Final = "image/png, image/jpeg, image/webp, image/gif;q=0.9, */*;q=0.1"
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC | getattr(os, "O_BINARY", 0)
"""O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused as not a regular file)."""
_BY_DESCRIPTOR: Final = os.open in os.supports_dir_fd


def _url_hint(advice: str | None = None) -> str:
    """The hint for a refused or failed image URL: `advice`, then the other ways to pass the image."""
    if advice is None:
        return f"{_ANOTHER_WAY[0].upper()}{_ANOTHER_WAY[1:]} instead."
    return f"{advice}, or {_ANOTHER_WAY}."


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


class ImageLoader:
    """Turns image arguments into checked image bytes. See the module docstring for the guards.

    `http`: the client used for downloads. When None the loader makes its own at the first
    download (no auth, no cookies, proxies from the environment ignored) and closes it in
    `aclose`. Either way each request is built from scratch, so a shared client's default
    headers, auth and cookies are never sent. `resolver`: host name → IP addresses (tests
    inject a fake). `references`: reads task references; without one they are refused (the job
    service gives the loader its `references.TaskImages` when it has none).
    """

    def __init__(
        self,
        allowed_dirs: Iterable[Path],
        max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        http: httpx2.AsyncClient | None = None,
        resolver: Resolver | None = None,
        *,
        timeout: float = 30.0,
        references: ReferenceResolver | None = None,
    ) -> None:
        given = list(allowed_dirs)
        self.allowed_dirs = self._resolve_dirs(given)
        # The folders as configured too, `~` expanded (a link to an allowed folder names it):
        # `classify` compares paths to these as written, before anything on disk is looked at.
        self._named_dirs = self.allowed_dirs + [_absolute(folder) for folder in given]
        self.max_bytes = max_bytes
        self._shared_http = http
        self._own_http: httpx2.AsyncClient | None = None
        self._timeout = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        self._guard = UrlGuard(resolver)
        self.references = references

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

    def classify(self, value: str) -> InputKind:
        """`images.classify` that takes a short base64-like text for a relative path only when it
        names a file inside the allowed folders. Nothing outside them is looked at. Blocking
        (it may look at the disk), but only briefly."""
        return classify(value, self._names_allowed_file)

    def reference_in(self, value: str) -> ImageRef | None:
        """The task reference `value` is, if it is one. A text that could be either is a file
        when it names one inside the allowed folders. Blocking, briefly (as `classify`)."""
        ref = parse_reference(value)
        if ref is None or ref.written.lower().startswith("mj://") or not self._names_allowed_file(ref.written):
            return ref
        return None

    async def load(self, value: str) -> LoadedImage:
        """Read, decode or download `value` and check it. Raises ImageInputError/ImageRejectedError."""
        ref = self.reference_in(value)
        if ref is not None:
            data, source = await self._referenced(ref)
        else:
            data, source = await self._read(value)
        what = f"The image from {source}"
        if len(data) > self.max_bytes:
            raise ImageRejectedError(f"{what} is larger than {self.max_bytes} bytes.", hint="Pass a smaller image.")
        mime, width, height = await anyio.to_thread.run_sync(inspect_image, data, what)
        return LoadedImage(data=data, mime=mime, width=width, height=height, source=source)

    async def _referenced(self, ref: ImageRef) -> tuple[bytes, str]:
        if self.references is None:
            raise ImageInputError(
                f"{ref.written!r} names a task, and task images cannot be read here.",
                hint="Pass the image as a data URI, an http(s) URL or a file path.",
            )
        return await self.references(ref)

    async def _read(self, value: str) -> tuple[bytes, str]:
        kind = self.classify(value)
        text = value.strip()
        if kind == "url":
            data, source = await self._download(text)
        elif kind == "path":
            data, source = await anyio.to_thread.run_sync(self._read_file, text)
        elif kind == "data_uri":
            data, source = self._decode_data_uri(text), "data URI"
        else:
            data, source = self._decode_base64(text, "The base64 image"), "base64 text"
        return data, source

    async def to_data_uri(self, value: str) -> str:
        """`load`, then `data:<mime>;base64,...` as the upstream's base64 fields take it."""
        return (await self.load(value)).data_uri()

    async def to_png_data_uri(self, value: str) -> str:
        """`to_data_uri`, converted to PNG when it is not one: Vary Region masks must be PNG data URLs."""
        loaded = await self.load(value)
        if loaded.mime == "image/png":
            return loaded.data_uri()
        png = await anyio.to_thread.run_sync(png_for_resource, loaded.data)
        return f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}"

    async def check_url(self, url: str, *, what: str | None = None) -> str:
        """For a URL this server only passes on: refuse it unless it is http(s), carries no
        credentials and every address its host resolves to is public. Returns the normalised URL.

        Without `what` the URL is an image, and a refusal suggests passing the image another way.
        `what` names any other URL argument in messages ("notifyHook URL"); a refusal then
        suggests a public URL or none. A host that does not resolve here is let through: it
        leads nowhere from this machine, and the upstream, which resolves it for itself, may
        well reach it.
        """
        if what is None:
            what, instead = _IMAGE_URL, _url_hint()
        else:
            instead = f"Pass a public http(s) {what}, or leave it out."
        checked = await self._guard.check(url, what=what, instead=instead, unresolved_ok=True)
        return str(checked.url)

    # -- URLs ----------------------------------------------------------------------------------

    async def _download(self, url: str) -> tuple[bytes, str]:
        current: str | httpx2.URL = url
        for _hop in range(MAX_REDIRECTS + 1):
            checked = await self._guard.check(current, what=_IMAGE_URL, instead=_url_hint())
            shown = safe_url(checked.url)
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
            f"The image URL {safe_url(url)} redirects more than {MAX_REDIRECTS} times.",
            hint=_url_hint("Pass the final image URL"),
        )

    async def _connect(self, checked: CheckedUrl, shown: str) -> httpx2.Response:
        """Send the GET to each checked address in turn until one connects."""
        headers = {"User-Agent": f"mj-mcp/{__version__}", "Accept": _ACCEPT}
        failure = "could not be reached"
        for address in checked.addresses:
            request = pinned_request(checked, address, headers=headers, timeout=self._timeout)
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
        raise ImageInputError(f"Downloading the image from {shown} {failure}.", hint=_url_hint("Check the URL"))

    async def _read_body(self, response: httpx2.Response, shown: str) -> bytes:
        if response.status_code != 200:
            raise ImageInputError(
                f"Downloading the image from {shown} failed with HTTP {response.status_code}.",
                hint=_url_hint("Check that the URL opens the image in a browser"),
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/") and content_type not in _OK_CONTENT_TYPES:
            raise ImageRejectedError(
                f"The URL {shown} serves {content_type}, not an image.",
                hint="Pass the direct link to the image file (it usually ends in .png or .jpg).",
            )

        def too_big() -> ImageRejectedError:
            return ImageRejectedError(
                f"The image at {shown} is larger than {self.max_bytes} bytes.", hint="Pass a smaller image."
            )

        if declared_too_large(response.headers.get("content-length"), self.max_bytes):
            raise too_big()
        try:
            return await read_capped(response.aiter_bytes(), self.max_bytes, too_big)
        except httpx2.HTTPError as exc:
            raise ImageInputError(
                f"Downloading the image from {shown} broke off ({type(exc).__name__}).",
                hint=_url_hint("Try again"),
            ) from None

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

    def _names_allowed_file(self, text: str) -> bool:
        """Whether path `text` names something inside the allowed folders. A path that is not
        inside them as written is not looked up at all."""
        written = _absolute(Path(text))
        if not any(written.is_relative_to(folder) for folder in self._named_dirs):
            return False
        try:
            return self._inside(written.resolve(strict=True))
        except (OSError, RuntimeError, ValueError):
            return False

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
        fd = self._open_beneath(real, given)
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

    def _open_beneath(self, real: Path, given: str) -> int:
        """Open `real` (resolved, inside an allowed folder) from that folder's descriptor, one
        component at a time, following no link: the file that was checked, or an error."""
        cannot_open = ImageInputError(
            f"The file {given} cannot be opened.", hint="Check that it exists and is readable."
        )
        folder = next(folder for folder in self.allowed_dirs if real.is_relative_to(folder))
        parts = real.relative_to(folder).parts
        if not parts:
            raise ImageInputError(f"{given} is not a regular file.", hint="Pass the path of an image file.")
        if not _BY_DESCRIPTOR:  # pragma: no cover - Windows: no descriptor-relative open
            try:
                return os.open(real, _FILE_FLAGS)
            except OSError:
                raise cannot_open from None
        try:
            fd = os.open(folder, _DIR_FLAGS)
        except OSError:
            raise cannot_open from None
        try:
            for part in parts[:-1]:
                inner = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError:
            # Also a component that became a link since `real` was resolved (ELOOP, ENOTDIR).
            raise cannot_open from None
        finally:
            os.close(fd)


def _absolute(path: Path) -> Path:
    """`path` with `~` expanded, made absolute and `..` folded as written; nothing on disk is
    looked at."""
    return Path(os.path.abspath(os.path.expanduser(path)))


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
