"""Tests for the image modules: input classification, previews, resource fitting and grid
splitting (images), loading with its guards (loading, netguard) and saving (saving). No real
network: downloads go through httpx2.MockTransport and host names resolve through an injected
fake resolver."""

from __future__ import annotations

import base64
import io
import itertools
import os
import re
import socket
import stat
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from mj_mcp import images, loading, saving
from mj_mcp.errors import ImageInputError, ImageRejectedError, MjError
from mj_mcp.images import FAST_PNG_LEVEL, RESOURCE_MAX_BYTES, classify, make_preview, png_for_resource, split_grid
from mj_mcp.loading import ImageLoader, LoadedImage
from mj_mcp.netguard import default_resolver
from mj_mcp.saving import ImageSaver, sanitize_stem

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V4_B = "93.184.216.35"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png(size: tuple[int, int] = (8, 8), color: str | tuple[int, ...] = "red", mode: str = "RGB") -> bytes:
    return encode(Image.new(mode, size, color), "PNG")


def jpeg(size: tuple[int, int] = (8, 8), color: str = "blue") -> bytes:
    return encode(Image.new("RGB", size, color), "JPEG")


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    bands = [Image.effect_noise(size, 120) for _ in range(len(mode))]
    return Image.merge(mode, bands)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose header claims width × height pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_at(data: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    pixel = decode(data).convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    red, green, blue = (int(v) for v in pixel)
    return red, green, blue


class FakeResolver:
    """Maps host names to addresses; unknown names do not resolve. Records every lookup."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = names or {}
        self.calls: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[host]


Handler = Callable[[httpx2.Request], httpx2.Response]


class Web:
    """A fake web: routes by (Host header, path); records what was requested."""

    def __init__(self, routes: dict[tuple[str, str], Handler] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        route = self.routes.get((request.headers["host"], request.url.path))
        if route is None:
            return httpx2.Response(404)
        return route(request)


def serve(data: bytes, content_type: str = "image/png") -> Handler:
    return lambda _request: httpx2.Response(200, headers={"content-type": content_type}, content=data)


def redirect(location: str, status: int = 302) -> Handler:
    return lambda _request: httpx2.Response(status, headers={"location": location})


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    folder.mkdir()
    return folder.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def make_loader(
    allowed: Path,
    web: Web | None = None,
    names: dict[str, list[str]] | None = None,
    *,
    max_bytes: int = 10 * 1024 * 1024,
    client: httpx2.AsyncClient | None = None,
) -> tuple[ImageLoader, FakeResolver]:
    resolver = FakeResolver(names if names is not None else {"img.example": [PUBLIC_V4]})
    http = client or httpx2.AsyncClient(transport=httpx2.MockTransport(web or Web()))
    return ImageLoader([allowed], max_bytes=max_bytes, http=http, resolver=resolver), resolver


# ---------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (data_uri(png()), "data_uri"),
        ("  DATA:image/png;base64,AAAA", "data_uri"),
        ("https://img.example/a.png", "url"),
        ("HTTP://img.example/a.png", "url"),
        ("ftp://img.example/a.png", "url"),
        ("file:///tmp/a.png", "path"),
        ("cat.png", "path"),
        ("/absolute/cat.png", "path"),
        ("~/Pictures/cat.png", "path"),
        ("abc/def", "path"),
        (b64(png()), "base64"),
        ("A" * 200, "base64"),
        ("C:\\images\\cat.png", "path"),
    ],
)
def test_classify_recognises_each_kind_of_image_argument(value: str, kind: str) -> None:
    assert classify(value) == kind


def test_classify_prefers_an_existing_file_over_a_short_base64_lookalike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loader = ImageLoader([tmp_path], http=httpx2.AsyncClient(), resolver=FakeResolver())
    lookalike = "iVBORw0KGgo/AAAA"  # decodes to the PNG signature
    assert loader.classify(lookalike) == "base64"
    (tmp_path / "iVBORw0KGgo").mkdir()
    (tmp_path / "iVBORw0KGgo" / "AAAA").write_bytes(png())
    assert loader.classify(lookalike) == "path"


LOOKALIKE = "iVBORw0KGgo/AAAA"  # a relative path, and base64 that decodes to the PNG signature


def record_file_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path that os.stat, os.lstat or os.readlink is asked about from now on."""
    seen: list[str] = []
    for name in ("stat", "lstat", "readlink"):
        real = getattr(os, name)

        def spy(path: object, *args: object, _real: Callable[..., object] = real, **kwargs: object) -> object:
            seen.append(os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return seen


def test_classify_looks_at_nothing_outside_the_allowed_folders(
    allowed: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outside / "iVBORw0KGgo").mkdir()
    (outside / "iVBORw0KGgo" / "AAAA").write_bytes(png())
    monkeypatch.chdir(outside)
    loader, _ = make_loader(allowed)
    seen = record_file_lookups(monkeypatch)
    assert loader.classify(LOOKALIKE) == "base64"
    assert classify(LOOKALIKE) == "base64"
    assert [p for p in seen if not Path(p).is_relative_to(allowed)] == []


@pytest.mark.anyio
async def test_load_answers_the_same_for_an_existing_and_a_missing_lookalike_path_outside(
    allowed: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a file outside the allowed folders exists cannot be told from the answer."""
    monkeypatch.chdir(outside)
    loader, _ = make_loader(allowed)
    answers: list[str] = []
    for exists in (False, True):
        if exists:
            (outside / "iVBORw0KGgo").mkdir()
            (outside / "iVBORw0KGgo" / "AAAA").write_bytes(png())
        with pytest.raises(MjError) as caught:
            await loader.load(LOOKALIKE)
        answers.append(f"{type(caught.value).__name__}: {caught.value}")
    assert answers[0] == answers[1]


def test_loader_classify_still_finds_a_lookalike_file_inside_through_a_link_to_the_folder(
    tmp_path: Path, allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (allowed / "iVBORw0KGgo").mkdir()
    (allowed / "iVBORw0KGgo" / "AAAA").write_bytes(png())
    (tmp_path / "alias").symlink_to(allowed, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "alias")
    loader = ImageLoader([tmp_path / "alias"], http=httpx2.AsyncClient(), resolver=FakeResolver())
    assert loader.classify(LOOKALIKE) == "path"
    (allowed / "link").symlink_to(tmp_path, target_is_directory=True)
    assert loader.classify(str(allowed / "link" / "alias" / LOOKALIKE)) == "path"


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_classify_refuses_an_empty_argument(value: str) -> None:
    with pytest.raises(ImageInputError, match="empty"):
        classify(value)


# ---------------------------------------------------------------------------------------------
# load: data URIs and base64
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png(), "image/png"),
        (jpeg(), "image/jpeg"),
        (encode(Image.new("RGB", (8, 8), "green"), "WEBP"), "image/webp"),
        (encode(Image.new("P", (8, 8)), "GIF"), "image/gif"),
    ],
)
@pytest.mark.anyio
async def test_load_accepts_each_image_format_and_reports_its_real_type(allowed: Path, data: bytes, mime: str) -> None:
    loader, _ = make_loader(allowed)
    loaded = await loader.load(data_uri(data, mime="image/png"))
    assert (loaded.data, loaded.mime, loaded.width, loaded.height) == (data, mime, 8, 8)
    assert loaded.source == "data URI"


@pytest.mark.anyio
async def test_load_decodes_raw_base64_with_line_breaks_and_the_url_safe_alphabet(allowed: Path) -> None:
    data = png((33, 7))
    loader, _ = make_loader(allowed)
    wrapped = "\n".join(re.findall(".{1,60}", b64(data)))
    url_safe = base64.urlsafe_b64encode(data).decode().rstrip("=")
    for value in (wrapped, url_safe):
        loaded = await loader.load(value)
        assert (loaded.data, loaded.width, loaded.height, loaded.source) == (data, 33, 7, "base64 text")


@pytest.mark.anyio
async def test_to_data_uri_returns_a_base64_data_uri_of_the_checked_image(allowed: Path) -> None:
    data = jpeg()
    loader, _ = make_loader(allowed)
    uri = await loader.to_data_uri(b64(data))
    assert uri.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == data


def test_loaded_image_repr_does_not_dump_the_bytes() -> None:
    loaded = LoadedImage(data=b"x" * 1000, mime="image/png", width=1, height=1, source="data URI")
    assert "xxxx" not in repr(loaded)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("data:image/png,plain-text", ImageInputError, "not base64-encoded"),
        ("data:image/png;base64", ImageInputError, "not base64-encoded"),
        ("data:image/png;base64,!!!notbase64!!!", ImageInputError, "not valid base64"),
        ("data:image/png;base64,", ImageInputError, "empty"),
        ("data:image/png;base64,AAAAB=AA", ImageInputError, "not valid base64"),
        (data_uri(b"plain text, not a picture" * 10), ImageRejectedError, "not a PNG, JPEG, WEBP or GIF"),
        (b64(b"%PDF-1.7 " * 40), ImageRejectedError, "not a PNG, JPEG, WEBP or GIF"),
    ],
)
@pytest.mark.anyio
async def test_load_refuses_bad_data_uris_and_base64(
    allowed: Path, value: str, error: type[Exception], message: str
) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(error, match=message):
        await loader.load(value)


@pytest.mark.anyio
async def test_load_accepts_a_percent_encoded_data_uri(allowed: Path) -> None:
    data = png()
    loader, _ = make_loader(allowed)
    encoded = data_uri(data).replace("+", "%2B").replace("/", "%2F")
    assert (await loader.load(encoded)).data == data


@pytest.mark.anyio
async def test_load_refuses_base64_larger_than_the_cap_before_decoding_it(allowed: Path) -> None:
    loader, _ = make_loader(allowed, max_bytes=1000)
    with pytest.raises(ImageRejectedError, match="larger than 1000 bytes"):
        await loader.load(data_uri(b"\x00" * 5000))


@pytest.mark.anyio
async def test_load_refuses_an_image_just_over_the_cap(allowed: Path) -> None:
    data = png((64, 64))
    loader, _ = make_loader(allowed, max_bytes=len(data) - 1)
    with pytest.raises(ImageRejectedError, match="larger than"):
        await loader.load(data_uri(data))


@pytest.mark.anyio
async def test_load_refuses_a_damaged_png(allowed: Path) -> None:
    data = bytearray(png((16, 16)))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # corrupt the compressed pixels; the CRC no longer matches
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match="damaged PNG"):
        await loader.load(data_uri(bytes(data)))


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (8000, 8000),  # 64 MP: over our cap, under Pillow's warning
        (10_000, 10_000),  # 100 MP: Pillow's DecompressionBombWarning band
        (100_000, 100_000),  # 10 GP: Pillow's DecompressionBombError
    ],
)
@pytest.mark.anyio
async def test_load_refuses_decompression_bombs(allowed: Path, width: int, height: int) -> None:
    bomb = png_claiming(width, height)
    assert len(bomb) < 100
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match="too large when decoded"):
        await loader.load(data_uri(bomb))


@pytest.mark.anyio
async def test_load_accepts_an_image_just_under_the_pixel_cap(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    loaded = await loader.load(data_uri(png_claiming(10_000, 5_000)))
    assert (loaded.width, loaded.height) == (10_000, 5_000)


# ---------------------------------------------------------------------------------------------
# load: local files
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_load_reads_an_absolute_path_inside_the_allowed_folder(allowed: Path) -> None:
    (allowed / "cat.png").write_bytes(data := png())
    loader, _ = make_loader(allowed)
    loaded = await loader.load(str(allowed / "cat.png"))
    assert loaded.data == data
    assert loaded.source == str((allowed / "cat.png").resolve())


@pytest.mark.anyio
async def test_load_reads_relative_home_and_file_url_paths(allowed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (allowed / "sub").mkdir()
    (allowed / "sub" / "a b.png").write_bytes(data := png())
    monkeypatch.chdir(allowed)
    monkeypatch.setenv("HOME", str(allowed))
    loader, _ = make_loader(allowed)
    for value in ("sub/a b.png", "~/sub/a b.png", (allowed / "sub" / "a b.png").as_uri()):
        assert (await loader.load(value)).data == data


@pytest.mark.anyio
async def test_load_refuses_file_urls_for_other_machines_or_malformed(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="another machine"):
        await loader.load("file://fileserver/share/cat.png")
    with pytest.raises(ImageInputError, match="not valid"):
        await loader.load("file://[")


@pytest.mark.anyio
async def test_load_refuses_a_file_outside_the_allowed_folders_and_says_how_to_allow_it(
    allowed: Path, outside: Path
) -> None:
    (outside / "cat.png").write_bytes(png())
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError) as caught:
        await loader.load(str(outside / "cat.png"))
    text = str(caught.value)
    assert "MJ_ALLOWED_DIRS" in text
    assert str(allowed) in text
    assert "add its folder" in text


@pytest.mark.anyio
async def test_load_gives_the_same_refusal_for_missing_and_existing_files_outside(allowed: Path, outside: Path) -> None:
    (outside / "exists.png").write_bytes(png())
    loader, _ = make_loader(allowed)
    messages: list[str] = []
    for name in ("exists.png", "missing.png"):
        with pytest.raises(ImageRejectedError) as caught:
            await loader.load(str(outside / name))
        messages.append(str(caught.value).replace(name, "NAME"))
    assert messages[0] == messages[1]


@pytest.mark.anyio
async def test_load_refuses_a_dotdot_path_that_climbs_out_of_the_allowed_folder(allowed: Path, outside: Path) -> None:
    (outside / "cat.png").write_bytes(png())
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match="MJ_ALLOWED_DIRS"):
        await loader.load(str(allowed / ".." / "outside" / "cat.png"))


@pytest.mark.anyio
async def test_load_refuses_a_symlink_inside_the_allowed_folder_that_points_outside(
    allowed: Path, outside: Path
) -> None:
    (outside / "secret.png").write_bytes(png())
    (allowed / "link.png").symlink_to(outside / "secret.png")
    (allowed / "linkdir").symlink_to(outside, target_is_directory=True)
    loader, _ = make_loader(allowed)
    for value in (allowed / "link.png", allowed / "linkdir" / "secret.png"):
        with pytest.raises(ImageRejectedError, match="MJ_ALLOWED_DIRS"):
            await loader.load(str(value))


@pytest.mark.anyio
async def test_load_follows_a_symlink_that_stays_inside_the_allowed_folder(allowed: Path) -> None:
    (allowed / "real.png").write_bytes(data := png())
    (allowed / "alias.png").symlink_to(allowed / "real.png")
    loader, _ = make_loader(allowed)
    assert (await loader.load(str(allowed / "alias.png"))).data == data


@pytest.mark.anyio
async def test_load_never_reads_through_a_folder_swapped_for_a_link_after_the_check(
    allowed: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of issue 12 row 8, made deterministic: `allowed/sub` is replaced by a link to
    an outside folder right after the path was found to be inside."""
    (allowed / "sub").mkdir()
    (allowed / "sub" / "secret.png").write_bytes(png(color="green"))
    (outside / "secret.png").write_bytes(outside_bytes := png(color="red"))
    loader, _ = make_loader(allowed)
    checked = loader._inside  # the step between check and open

    def check_then_swap(path: Path) -> bool:
        verdict = checked(path)
        if verdict and path.name == "secret.png" and not (allowed / "sub").is_symlink():
            (allowed / "sub").rename(allowed / "sub-before")
            (allowed / "sub").symlink_to(outside, target_is_directory=True)
        return verdict

    monkeypatch.setattr(loader, "_inside", check_then_swap)
    # The old code read the outside file here; refusing is the only safe answer.
    with pytest.raises(ImageInputError, match="cannot be opened"):
        await loader.load(str(allowed / "sub" / "secret.png"))
    assert (allowed / "sub").is_symlink()
    assert (allowed / "sub" / "secret.png").read_bytes() == outside_bytes


@pytest.mark.anyio
async def test_load_never_reads_a_file_swapped_for_a_link_after_the_check(
    allowed: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (allowed / "cat.png").write_bytes(png(color="green"))
    (outside / "secret.png").write_bytes(png(color="red"))
    loader, _ = make_loader(allowed)
    checked = loader._inside  # the step between check and open

    def check_then_swap(path: Path) -> bool:
        verdict = checked(path)
        if verdict and not (allowed / "cat.png").is_symlink():
            (allowed / "cat.png").unlink()
            (allowed / "cat.png").symlink_to(outside / "secret.png")
        return verdict

    monkeypatch.setattr(loader, "_inside", check_then_swap)
    with pytest.raises(ImageInputError, match="cannot be opened"):
        await loader.load(str(allowed / "cat.png"))


@pytest.mark.anyio
async def test_load_reads_a_file_in_a_nested_folder_and_refuses_the_allowed_folder_itself(allowed: Path) -> None:
    (allowed / "a" / "b").mkdir(parents=True)
    (allowed / "a" / "b" / "cat.png").write_bytes(data := png())
    loader, _ = make_loader(allowed)
    assert (await loader.load(str(allowed / "a" / "b" / "cat.png"))).data == data
    with pytest.raises(ImageInputError, match="not a regular file"):
        await loader.load(str(allowed))


@pytest.mark.anyio
async def test_load_accepts_files_under_an_allowed_folder_given_through_a_symlink(
    tmp_path: Path, allowed: Path
) -> None:
    (allowed / "cat.png").write_bytes(data := png())
    (tmp_path / "alias").symlink_to(allowed, target_is_directory=True)
    loader = ImageLoader([tmp_path / "alias"], http=httpx2.AsyncClient(), resolver=FakeResolver())
    assert (await loader.load(str(allowed / "cat.png"))).data == data
    assert (await loader.load(str(tmp_path / "alias" / "cat.png"))).data == data


@pytest.mark.anyio
async def test_load_reports_a_missing_file_inside_the_allowed_folder(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="There is no file") as caught:
        await loader.load(str(allowed / "missing.png"))
    assert not isinstance(caught.value, ImageRejectedError)


@pytest.mark.anyio
async def test_load_refuses_a_folder(allowed: Path) -> None:
    (allowed / "folder").mkdir()
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="not a regular file"):
        await loader.load(str(allowed / "folder"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.anyio
async def test_load_refuses_a_fifo_without_blocking_on_it(allowed: Path) -> None:
    os.mkfifo(allowed / "pipe")
    loader, _ = make_loader(allowed)
    with anyio.fail_after(10), pytest.raises(ImageInputError, match="not a regular file"):
        await loader.load(str(allowed / "pipe"))


@pytest.mark.anyio
async def test_load_refuses_a_file_that_is_not_an_image(allowed: Path) -> None:
    (allowed / "notes.png").write_text("these are notes, not a picture")
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match="not a PNG, JPEG, WEBP or GIF"):
        await loader.load(str(allowed / "notes.png"))


@pytest.mark.anyio
async def test_load_refuses_a_file_over_the_size_cap(allowed: Path) -> None:
    (allowed / "big.png").write_bytes(png((200, 200)) + b"\x00" * 5000)
    loader, _ = make_loader(allowed, max_bytes=4000)
    with pytest.raises(ImageRejectedError, match="larger than 4000 bytes"):
        await loader.load(str(allowed / "big.png"))


@pytest.mark.anyio
async def test_load_reads_no_more_than_the_cap_from_a_file(allowed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that grows after it was measured is still cut off at the cap."""
    (allowed / "grows.png").write_bytes(b"\x00" * 5000)
    real_fstat = os.fstat

    def shrunk_fstat(fd: int) -> os.stat_result:
        result = real_fstat(fd)
        fields = list(result)
        fields[stat.ST_SIZE] = 10
        return os.stat_result(fields)

    monkeypatch.setattr(loading.os, "fstat", shrunk_fstat)
    loader, _ = make_loader(allowed, max_bytes=1000)
    with pytest.raises(ImageRejectedError, match="larger than 1000 bytes"):
        await loader.load(str(allowed / "grows.png"))


@pytest.mark.anyio
async def test_load_reports_a_path_that_cannot_be_used(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="cannot be read"):
        await loader.load(str(allowed / "bad\x00name.png"))


@pytest.mark.anyio
async def test_load_reports_an_unreadable_file(allowed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = allowed / "locked.png"
    locked.write_bytes(png())
    real_open = os.open

    def deny(path: str | Path, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if Path(path).name == locked.name:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(loading.os, "open", deny)
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="cannot be opened"):
        await loader.load(str(allowed / "locked.png"))


@pytest.mark.anyio
async def test_load_reports_a_symlink_loop_inside_and_refuses_one_outside(allowed: Path, outside: Path) -> None:
    for folder in (allowed, outside):
        (folder / "loop.png").symlink_to(folder / "loop.png")
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="cannot be read"):
        await loader.load(str(allowed / "loop.png"))
    with pytest.raises(ImageRejectedError, match="MJ_ALLOWED_DIRS"):
        await loader.load(str(outside / "loop.png"))


@pytest.mark.anyio
async def test_loader_skips_unusable_and_repeated_allowed_folders(allowed: Path) -> None:
    (allowed / "cat.png").write_bytes(data := png())
    loader = ImageLoader(
        [Path("bad\x00folder"), allowed, allowed / ".." / allowed.name],
        http=httpx2.AsyncClient(),
        resolver=FakeResolver(),
    )
    assert loader.allowed_dirs == [allowed]
    assert (await loader.load(str(allowed / "cat.png"))).data == data


@pytest.mark.anyio
async def test_load_reports_a_pillow_parser_crash_as_not_an_image(
    allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_args: object, **_kwargs: object) -> Image.Image:
        raise ValueError("parser bug")

    monkeypatch.setattr(Image, "open", crash)
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match="not a PNG, JPEG, WEBP or GIF"):
        await loader.load(data_uri(png()))


@pytest.mark.anyio
async def test_load_says_so_when_no_folder_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(png())
    loader = ImageLoader([], http=httpx2.AsyncClient(), resolver=FakeResolver())
    with pytest.raises(ImageRejectedError, match="MJ_ALLOWED_DIRS: none"):
        await loader.load(str(tmp_path / "cat.png"))


# ---------------------------------------------------------------------------------------------
# URLs: the internal-address guard
# ---------------------------------------------------------------------------------------------

INTERNAL_LITERALS = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fec0::1]",
    "[ff02::1]",
    "[2001:db8::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:10.0.0.5]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[2002:7f00:1::]",
    "[2002:a00:5::1]",
    "[64:ff9b::a00:5]",
    "[64:ff9b:1::1]",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "017700000001",
    "0",
    "127.0.0.1.",
]


@pytest.mark.parametrize("host", INTERNAL_LITERALS)
@pytest.mark.anyio
async def test_check_url_refuses_internal_ip_literals_in_any_notation(allowed: Path, host: str) -> None:
    web = Web()
    loader, resolver = make_loader(allowed, web)
    for call in (loader.check_url, loader.load):
        with pytest.raises(ImageRejectedError, match="internal address"):
            await call(f"http://{host}/x.png")
    assert web.requests == []
    assert resolver.calls == []


@pytest.mark.anyio
async def test_a_refused_url_hint_suggests_what_fits_the_argument(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError) as image:
        await loader.check_url("http://10.0.0.5/x.png")
    assert "data URI" in image.value.hint
    with pytest.raises(ImageRejectedError) as hook:
        await loader.check_url("http://10.0.0.5/hook", what="notifyHook URL")
    assert str(hook.value).startswith("The notifyHook URL http://10.0.0.5/hook points to an internal address")
    assert "leave it out" in hook.value.hint
    assert "data URI" not in hook.value.hint


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.5", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("[fec0::1]", "site-local"),
        ("[64:ff9b:1::1]", "local NAT64"),
        ("[::ffff:127.0.0.1]", "embeds 127.0.0.1, loopback"),
        ("[2002:a00:5::1]", "embeds 10.0.0.5, private"),
    ],
)
@pytest.mark.anyio
async def test_check_url_names_the_kind_of_internal_address(allowed: Path, host: str, reason: str) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match=re.escape(f", {reason})")):
        await loader.check_url(f"http://{host}/x.png")


INTERNAL_ANSWERS = [
    "127.0.0.1",
    "10.1.2.3",
    "172.31.255.255",
    "192.168.0.10",
    "169.254.169.254",
    "100.100.100.200",
    "0.0.0.0",
    "::1",
    "fe80::abcd",
    "fd00::1",
    "::ffff:192.168.0.1",
    "2002:c0a8:1::1",
    "64:ff9b::7f00:1",
]


@pytest.mark.parametrize("address", INTERNAL_ANSWERS)
@pytest.mark.anyio
async def test_load_refuses_a_host_name_that_resolves_to_an_internal_address(allowed: Path, address: str) -> None:
    web = Web({("evil.example", "/x.png"): serve(png())})
    loader, _ = make_loader(allowed, web, {"evil.example": [address]})
    with pytest.raises(ImageRejectedError, match="internal address") as caught:
        await loader.load("https://evil.example/x.png")
    assert web.requests == []
    assert "MJ_ALLOWED_DIRS" in str(caught.value)


@pytest.mark.anyio
async def test_check_url_refuses_a_host_with_one_public_and_one_private_address(allowed: Path) -> None:
    loader, _ = make_loader(allowed, names={"mixed.example": [PUBLIC_V4, "10.0.0.7"]})
    with pytest.raises(ImageRejectedError, match=r"internal address \(10\.0\.0\.7, private\)"):
        await loader.check_url("https://mixed.example/x.png")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost"])
@pytest.mark.anyio
async def test_check_url_refuses_localhost_names_without_resolving_them(allowed: Path, host: str) -> None:
    loader, resolver = make_loader(allowed, names={host: [PUBLIC_V4]})
    with pytest.raises(ImageRejectedError, match="localhost"):
        await loader.check_url(f"http://{host}:8080/x.png")
    assert resolver.calls == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://IMG.Example/a b.png?size=2", "https://img.example/a%20b.png?size=2"),
        (f"http://{PUBLIC_V4}/x.png", f"http://{PUBLIC_V4}/x.png"),
        (f"http://[{PUBLIC_V6}]:8080/x", f"http://[{PUBLIC_V6}]:8080/x"),
        ("http://[::ffff:93.184.216.34]/x", "http://[::ffff:93.184.216.34]/x"),
        ("http://[64:ff9b::5db8:d822]/x", "http://[64:ff9b::5db8:d822]/x"),
    ],
)
@pytest.mark.anyio
async def test_check_url_accepts_public_addresses_and_returns_the_normalised_url(
    allowed: Path, url: str, expected: str
) -> None:
    loader, _ = make_loader(allowed)
    assert await loader.check_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["https://user:hunter2@img.example/x.png", "https://token@img.example/x.png", "https://:hunter2@img.example/"],
)
@pytest.mark.anyio
async def test_check_url_refuses_credentials_in_the_url_without_repeating_them(allowed: Path, url: str) -> None:
    web = Web({("img.example", "/x.png"): serve(png())})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageRejectedError, match="user name or password") as caught:
        await loader.load(url)
    assert "hunter2" not in str(caught.value)
    assert "token" not in str(caught.value)
    assert web.requests == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://img.example/x.png", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("gopher://img.example:70/", "only http and https"),
    ],
)
@pytest.mark.anyio
async def test_check_url_refuses_other_schemes(allowed: Path, url: str, message: str) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError, match=message):
        await loader.check_url(url)


@pytest.mark.parametrize("url", ["http://[::1", "http:///x.png", "https://", "http://0177.0.0.1/", "http://08.1.1.1/"])
@pytest.mark.anyio
async def test_check_url_reports_malformed_urls(allowed: Path, url: str) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError) as caught:
        await loader.check_url(url)
    assert not isinstance(caught.value, ImageRejectedError)


@pytest.mark.anyio
async def test_check_url_refuses_an_overlong_url(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageInputError, match="longer than"):
        await loader.check_url("https://img.example/" + "a" * 9000)


@pytest.mark.anyio
async def test_check_url_resolves_names_that_only_look_like_numeric_addresses(allowed: Path) -> None:
    loader, resolver = make_loader(allowed, names={"1a.be": [PUBLIC_V4]})
    assert await loader.check_url("http://1a.be/x.png") == "http://1a.be/x.png"
    assert resolver.calls == ["1a.be"]


@pytest.mark.anyio
async def test_a_download_from_a_host_that_does_not_resolve_is_reported(allowed: Path) -> None:
    loader, _ = make_loader(allowed, names={})
    with pytest.raises(ImageInputError, match="could not be resolved") as caught:
        await loader.load("https://nowhere.example/x.png")
    assert not isinstance(caught.value, ImageRejectedError)


@pytest.mark.anyio
async def test_a_url_only_passed_on_may_name_a_host_that_does_not_resolve_here(allowed: Path) -> None:
    """It leads nowhere from this machine; the upstream resolves it for itself (the seeds' own
    examples use such hosts, and a sandbox may have no DNS at all)."""
    loader, resolver = make_loader(allowed, names={})
    assert await loader.check_url("https://cdn.example/x.jpg") == "https://cdn.example/x.jpg"
    assert resolver.calls == ["cdn.example"]


@pytest.mark.anyio
async def test_check_url_treats_an_empty_or_failing_resolver_answer_as_not_resolving(allowed: Path) -> None:
    async def timing_out(_host: str) -> list[str]:
        raise TimeoutError

    for resolver in (FakeResolver({"empty.example": []}), timing_out):
        loader = ImageLoader([allowed], http=httpx2.AsyncClient(), resolver=resolver)
        with pytest.raises(ImageInputError, match="could not be resolved"):
            await loader.load("https://empty.example/x.png")


@pytest.mark.anyio
async def test_check_url_refuses_a_resolver_answer_that_is_not_an_address(allowed: Path) -> None:
    loader, _ = make_loader(allowed, names={"odd.example": ["not-an-ip"]})
    with pytest.raises(ImageRejectedError, match="cannot be checked"):
        await loader.check_url("https://odd.example/x.png")


@pytest.mark.anyio
async def test_internal_address_message_hides_the_query_string(allowed: Path) -> None:
    loader, _ = make_loader(allowed)
    with pytest.raises(ImageRejectedError) as caught:
        await loader.check_url("http://10.0.0.5/x.png?token=SECRET")
    text = str(caught.value)
    assert "SECRET" not in text
    assert "http://10.0.0.5/x.png?…" in text
    assert "data URI" in text


@pytest.mark.anyio
async def test_default_resolver_returns_the_addresses_of_a_literal() -> None:
    assert await default_resolver("127.0.0.1") == ["127.0.0.1"]


# ---------------------------------------------------------------------------------------------
# URLs: downloads
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_load_downloads_from_the_checked_address_without_credentials_or_cookies(allowed: Path) -> None:
    data = png((20, 10))
    web = Web({("img.example", "/cat.png"): serve(data)})
    client = httpx2.AsyncClient(
        transport=httpx2.MockTransport(web),
        headers={"Authorization": "Bearer sk-secret"},
        cookies={"session": "abc"},
    )
    loader, resolver = make_loader(allowed, client=client)
    loaded = await loader.load("https://img.example/cat.png?sig=SECRET")
    assert (loaded.data, loaded.mime, loaded.width) == (data, "image/png", 20)
    assert loaded.source == "https://img.example/cat.png?…"
    [request] = web.requests
    assert request.url.host == PUBLIC_V4  # pinned: no second lookup that could answer differently
    assert request.headers["host"] == "img.example"
    assert request.extensions["sni_hostname"] == "img.example"
    assert "authorization" not in request.headers
    assert "cookie" not in request.headers
    assert resolver.calls == ["img.example"]


@pytest.mark.anyio
async def test_load_keeps_a_non_default_port_in_the_host_header(allowed: Path) -> None:
    web = Web({("img.example:8443", "/a.png"): serve(png())})
    loader, _ = make_loader(allowed, web)
    await loader.load("https://img.example:8443/a.png")
    assert web.requests[0].url.port == 8443


@pytest.mark.anyio
async def test_load_follows_up_to_three_redirects_checking_each_hop(allowed: Path) -> None:
    data = png()
    web = Web(
        {
            ("img.example", "/1"): redirect("/2", 301),
            ("img.example", "/2"): redirect("https://cdn.example/3", 307),
            ("cdn.example", "/3"): redirect("//cdn.example/final.png", 308),
            ("cdn.example", "/final.png"): serve(data),
        }
    )
    loader, resolver = make_loader(allowed, web, {"img.example": [PUBLIC_V4], "cdn.example": [PUBLIC_V4_B]})
    loaded = await loader.load("https://img.example/1")
    assert loaded.data == data
    assert loaded.source == "https://cdn.example/final.png"
    assert [r.url.host for r in web.requests] == [PUBLIC_V4, PUBLIC_V4, PUBLIC_V4_B, PUBLIC_V4_B]
    assert resolver.calls == ["img.example", "img.example", "cdn.example", "cdn.example"]


@pytest.mark.anyio
async def test_load_refuses_a_fourth_redirect(allowed: Path) -> None:
    web = Web({("img.example", f"/{n}"): redirect(f"/{n + 1}") for n in range(4)})
    web.routes[("img.example", "/4")] = serve(png())
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageInputError, match="redirects more than 3 times"):
        await loader.load("https://img.example/0")
    assert len(web.requests) == 4


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://internal.example/x.png",
        "http://2130706433/",
    ],
)
@pytest.mark.anyio
async def test_load_refuses_a_redirect_to_an_internal_address(allowed: Path, location: str) -> None:
    web = Web({("img.example", "/x.png"): redirect(location)})
    loader, _ = make_loader(allowed, web, {"img.example": [PUBLIC_V4], "internal.example": ["192.168.1.20"]})
    with pytest.raises(ImageRejectedError, match="internal address"):
        await loader.load("https://img.example/x.png")
    assert len(web.requests) == 1


@pytest.mark.anyio
async def test_load_refuses_a_redirect_that_adds_credentials_or_changes_scheme(allowed: Path) -> None:
    for location, message in (
        ("https://u:p@img.example/y.png", "user name or password"),
        ("file:///etc/passwd", "only http and https"),
    ):
        web = Web({("img.example", "/x.png"): redirect(location)})
        loader, _ = make_loader(allowed, web)
        with pytest.raises(ImageRejectedError, match=message):
            await loader.load("https://img.example/x.png")


@pytest.mark.anyio
async def test_load_reports_a_redirect_to_an_invalid_location(allowed: Path) -> None:
    web = Web({("img.example", "/x.png"): redirect("http://[::1")})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageInputError, match="invalid location"):
        await loader.load("https://img.example/x.png")


@pytest.mark.parametrize("status", [404, 403, 500, 204])
@pytest.mark.anyio
async def test_load_reports_an_http_failure_with_its_status(allowed: Path, status: int) -> None:
    web = Web({("img.example", "/x.png"): lambda _r: httpx2.Response(status)})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageInputError, match=f"HTTP {status}"):
        await loader.load("https://img.example/x.png")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json", "video/mp4"])
@pytest.mark.anyio
async def test_load_refuses_a_url_that_does_not_serve_an_image(allowed: Path, content_type: str) -> None:
    web = Web({("img.example", "/x.png"): serve(png(), content_type)})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageRejectedError, match="not an image"):
        await loader.load("https://img.example/x.png")


@pytest.mark.parametrize("content_type", ["application/octet-stream", "", "IMAGE/PNG"])
@pytest.mark.anyio
async def test_load_accepts_generic_content_types_when_the_bytes_are_an_image(allowed: Path, content_type: str) -> None:
    web = Web({("img.example", "/x"): serve(data := png(), content_type)})
    loader, _ = make_loader(allowed, web)
    assert (await loader.load("https://img.example/x")).data == data


@pytest.mark.anyio
async def test_load_refuses_downloaded_bytes_that_are_not_an_image(allowed: Path) -> None:
    web = Web({("img.example", "/x.png"): serve(b"<html>surprise</html>", "image/png")})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageRejectedError, match="not a PNG, JPEG, WEBP or GIF"):
        await loader.load("https://img.example/x.png")


@pytest.mark.anyio
async def test_load_refuses_a_declared_content_length_over_the_cap(allowed: Path) -> None:
    web = Web({("img.example", "/x.png"): serve(b"\x00" * 5000)})
    loader, _ = make_loader(allowed, web, max_bytes=1000)
    with pytest.raises(ImageRejectedError, match="larger than 1000 bytes"):
        await loader.load("https://img.example/x.png")


@pytest.mark.anyio
async def test_load_stops_streaming_a_body_once_it_passes_the_cap(allowed: Path) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for n in range(10_000):
            sent.append(n)
            yield b"\x00" * 1024

    web = Web({("img.example", "/x.png"): lambda _r: httpx2.Response(200, content=endless())})
    loader, _ = make_loader(allowed, web, max_bytes=10_000)
    with pytest.raises(ImageRejectedError, match="larger than 10000 bytes"):
        await loader.load("https://img.example/x.png")
    assert len(sent) <= 11


@pytest.mark.anyio
async def test_load_tries_the_next_checked_address_when_one_does_not_connect(allowed: Path) -> None:
    data = png()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == PUBLIC_V4:
            raise httpx2.ConnectError("refused", request=request)
        return httpx2.Response(200, headers={"content-type": "image/png"}, content=data)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    loader, _ = make_loader(allowed, names={"img.example": [PUBLIC_V4, PUBLIC_V4_B]}, client=client)
    assert (await loader.load("https://img.example/x.png")).data == data


@pytest.mark.anyio
async def test_load_tries_each_distinct_address_once(allowed: Path) -> None:
    tried: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        tried.append(request.url.host)
        raise httpx2.ConnectError("refused", request=request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    names = {"img.example": [PUBLIC_V4, PUBLIC_V4, PUBLIC_V4_B]}
    loader, _ = make_loader(allowed, names=names, client=client)
    with pytest.raises(ImageInputError, match="could not be reached"):
        await loader.load("https://img.example/x.png")
    assert tried == [PUBLIC_V4, PUBLIC_V4_B]


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (httpx2.ConnectError, "could not be reached"),
        (httpx2.ReadTimeout, "timed out"),
        (httpx2.RemoteProtocolError, r"failed \(RemoteProtocolError\)"),
    ],
)
@pytest.mark.anyio
async def test_load_reports_transport_failures(allowed: Path, failure: type[httpx2.HTTPError], message: str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise failure("boom")

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    loader, _ = make_loader(allowed, client=client)
    with pytest.raises(ImageInputError, match=message):
        await loader.load("https://img.example/x.png")


@pytest.mark.anyio
async def test_load_reports_a_download_that_breaks_off(allowed: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield png()[:20]
        raise httpx2.ReadError("connection reset")

    web = Web({("img.example", "/x.png"): lambda _r: httpx2.Response(200, content=broken())})
    loader, _ = make_loader(allowed, web)
    with pytest.raises(ImageInputError, match=r"broke off \(ReadError\)"):
        await loader.load("https://img.example/x.png")


@pytest.mark.anyio
async def test_loader_closes_only_the_client_it_made(allowed: Path) -> None:
    shared = httpx2.AsyncClient()
    async with ImageLoader([allowed], http=shared, resolver=FakeResolver()):
        pass
    assert not shared.is_closed
    own = ImageLoader([allowed], resolver=FakeResolver())
    async with own:
        assert own._http.trust_env is False  # pyright: ignore[reportPrivateUsage]
    assert own._http.is_closed  # pyright: ignore[reportPrivateUsage]
    await shared.aclose()


# ---------------------------------------------------------------------------------------------
# Property: arbitrary text only ever fails with MjError
# ---------------------------------------------------------------------------------------------

_b64_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_", max_size=300)


def _prefixed(prefix: str, rest: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def join(text: str) -> str:
        return prefix + text

    return rest.map(join)


_arbitrary = st.one_of(
    st.text(max_size=300),
    _b64_text,
    _prefixed("data:", st.text(max_size=100)),
    _prefixed("data:image/png;base64,", _b64_text),
    _prefixed("http://", st.text(max_size=100)),
    _prefixed("https://img.example/", st.text(max_size=100)),
    _prefixed("file://", st.text(max_size=100)),
    _prefixed("~", st.text(max_size=50)),
)


@pytest.fixture(scope="module")
def property_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("property")
    (folder / "cat.png").write_bytes(png())
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.slow  # hypothesis: hundreds of examples, a second or more of CPU
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_arbitrary)
def test_classify_and_load_fail_only_with_mj_errors_on_arbitrary_text(property_dir: Path, value: str) -> None:
    try:
        kind = classify(value)
    except MjError:
        kind = None
    assert kind in (None, "data_uri", "url", "base64", "path")

    async def attempt() -> None:
        web = Web({("img.example", "/cat.png"): serve(png())})
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(web)) as client:
            loader = ImageLoader([property_dir], http=client, resolver=FakeResolver({"img.example": [PUBLIC_V4]}))
            try:
                loaded = await loader.load(value)
            except MjError:
                return
            assert loaded.mime.startswith("image/")

    anyio.run(attempt)


# ---------------------------------------------------------------------------------------------
# make_preview
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_make_preview_shrinks_a_noisy_3000x2000_image_under_both_limits() -> None:
    original = encode(noise((3000, 2000)), "JPEG", quality=95)
    assert len(original) > 1_048_576
    preview, mime = make_preview(original)
    assert mime == "image/jpeg"
    assert len(preview) <= 1_048_576
    image = decode(preview)
    assert image.format == "JPEG"
    assert max(image.size) <= 1568
    assert image.size[0] > image.size[1]


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_make_preview_steps_size_down_when_quality_alone_is_not_enough() -> None:
    original = encode(noise((1200, 1200)), "PNG")
    preview, _ = make_preview(original, max_bytes=60_000)
    assert len(preview) <= 60_000
    assert max(decode(preview).size) < 1200


def test_make_preview_returns_a_small_still_image_unchanged() -> None:
    original = png((100, 50))
    assert make_preview(original) == (original, "image/png")


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (40, 40), (0, 0, 0, 0)),
        Image.new("LA", (40, 40), (0, 0)),
    ],
)
def test_make_preview_flattens_transparency_onto_white(image: Image.Image) -> None:
    preview, mime = make_preview(encode(image, "PNG"), max_side=20)
    assert mime == "image/png"  # one flat colour: PNG is smaller than JPEG
    assert min(rgb_at(preview, (10, 10))) > 240


def test_make_preview_flattens_a_paletted_gif_with_a_transparent_colour() -> None:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    gif = encode(image, "GIF", transparency=0)
    preview, _ = make_preview(gif)
    assert decode(preview).convert("RGB").getpixel((20, 20)) == pytest.approx((255, 255, 255), abs=8)


def test_make_preview_shows_the_first_frame_of_an_animation() -> None:
    frames = [Image.new("RGB", (40, 40), "red"), Image.new("RGB", (40, 40), "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    preview, mime = make_preview(gif)
    assert mime == "image/png"  # one flat colour: PNG is smaller than JPEG
    red, green, blue = rgb_at(preview, (20, 20))
    assert (red > 200, green < 60, blue < 60) == (True, True, True)


def test_make_preview_applies_exif_orientation() -> None:
    image = Image.new("RGB", (200, 100), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    original = encode(image, "JPEG", exif=exif.tobytes())
    preview, _ = make_preview(original, max_side=100)
    width, height = decode(preview).size
    assert height > width


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_make_preview_refuses_data_that_is_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageInputError):
        make_preview(data)


def test_make_preview_refuses_a_truncated_image() -> None:
    original = encode(noise((400, 400)), "JPEG")
    with pytest.raises(ImageRejectedError, match="damaged"):
        make_preview(original[: len(original) // 2], max_side=100)


def test_make_preview_refuses_a_decompression_bomb() -> None:
    with pytest.raises(ImageRejectedError, match="too large when decoded"):
        make_preview(png_claiming(100_000, 100_000))


def test_make_preview_gives_up_on_an_impossible_byte_limit() -> None:
    with pytest.raises(ImageInputError, match="cannot be made smaller than 10 bytes"):
        make_preview(jpeg((64, 64)), max_bytes=10)


# ---------------------------------------------------------------------------------------------
# png_for_resource
# ---------------------------------------------------------------------------------------------


def test_png_for_resource_returns_a_fitting_png_unchanged() -> None:
    original = png((30, 30))
    assert png_for_resource(original) == original


def test_png_for_resource_converts_other_formats_to_png() -> None:
    converted = png_for_resource(jpeg((40, 30)))
    assert decode(converted).format == "PNG"
    assert decode(converted).size == (40, 30)


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_png_for_resource_scales_a_large_image_down_to_fit() -> None:
    original = encode(noise((800, 800)), "PNG")
    fitted = png_for_resource(original, max_bytes=200_000)
    assert len(fitted) <= 200_000
    assert decode(fitted).format == "PNG"
    assert max(decode(fitted).size) < 800


def test_png_for_resource_keeps_transparency() -> None:
    original = encode(noise((64, 64), "RGBA"), "WEBP")
    assert decode(png_for_resource(original)).mode == "RGBA"


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_resource_blob_stays_under_the_10_mib_stdio_clients_accept_once_base64_encoded() -> None:
    """An 8 MiB blob is 10.67 MiB as base64, which stdio clients drop: the default cap is lower."""
    original = encode(noise((1800, 1800)), "PNG")  # ~9.7 MB of incompressible pixels
    assert len(original) > RESOURCE_MAX_BYTES
    fitted = png_for_resource(original)
    assert len(fitted) <= RESOURCE_MAX_BYTES
    assert len(base64.b64encode(fitted)) < 10 * 1024 * 1024 - 64 * 1024


def zlib_speed(data: bytes) -> int:
    """The compression level class a PNG's zlib stream declares: 0 fastest (level 1), 2 default (6)."""
    idat = data.index(b"IDAT") + 4
    return data[idat + 1] >> 6


def grain(size: tuple[int, int]) -> Image.Image:
    """Grey noise, like a photograph's sensor grain: the fastest level packs it tighter than the default."""
    return Image.merge("RGB", [Image.effect_noise(size, 64)] * 3)


def smooth(size: tuple[int, int]) -> Image.Image:
    """Blurred grain, like an upscaled photograph: Pillow's default level packs it a third tighter."""
    return grain(size).filter(ImageFilter.GaussianBlur(3))


def test_png_for_resource_encodes_at_the_fast_level_when_that_fits() -> None:
    converted = png_for_resource(encode(noise((300, 200)), "JPEG"))
    assert FAST_PNG_LEVEL == 1
    assert zlib_speed(converted) == 0
    assert decode(converted).size == (300, 200)


def test_png_for_resource_keeps_the_full_size_when_the_default_level_fits_where_the_fast_one_does_not() -> None:
    picture = smooth((256, 256))
    fast, default = len(encode(picture, "PNG", compress_level=1)), len(encode(picture, "PNG"))
    cap = (fast + default) // 2
    assert default < cap < fast
    fitted = png_for_resource(encode(picture, "PNG", compress_level=0), max_bytes=cap)
    assert len(fitted) <= cap
    assert zlib_speed(fitted) == 2
    assert decode(fitted).size == (256, 256)
    assert decode(fitted).tobytes() == picture.tobytes()


def test_png_for_resource_tries_the_default_level_only_when_it_could_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Far over the cap the picture is scaled down after one fast encode; near it, the default
    level is tried too before it is."""
    encodes: list[tuple[int, tuple[int, int], int]] = []
    encode_png = images._png

    def counting(picture: Image.Image, level: int) -> bytes:
        encoded = encode_png(picture, level)
        encodes.append((level, picture.size, len(encoded)))
        return encoded

    monkeypatch.setattr(images, "_png", counting)
    cap = 60_000
    fitted = png_for_resource(encode(grain((400, 400)), "PNG", compress_level=0), max_bytes=cap)
    assert len(fitted) <= cap
    assert encodes[0][:2] == (1, (400, 400)) and encodes[0][2] > 1.5 * cap
    assert encodes[1][:2] == (1, (300, 300))  # scaled down without a try at the default level
    assert any(level == 6 for level, _, _ in encodes)  # near the cap
    for before, after in itertools.pairwise(encodes):
        if after[0] == 6:
            assert before[0] == 1 and before[1] == after[1] and cap < before[2] <= 1.5 * cap


@pytest.mark.parametrize("max_bytes", [8 * 1024 * 1024, 5])
def test_png_for_resource_refuses_data_that_is_not_an_image(max_bytes: int) -> None:
    with pytest.raises(ImageInputError):
        png_for_resource(b"<html>nope</html>", max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------------
# split_grid
# ---------------------------------------------------------------------------------------------


def grid_image(size: tuple[int, int] = (200, 200), mode: str = "RGB") -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    colours = ["red", "lime", "blue", "yellow"]
    boxes = [
        (0, 0, width // 2, height // 2),
        (width // 2, 0, width, height // 2),
        (0, height // 2, width // 2, height),
        (width // 2, height // 2, width, height),
    ]
    for colour, box in zip(colours, boxes, strict=True):
        image.paste(colour, box)
    return image.convert(mode)


def test_split_grid_returns_the_four_quadrants_in_u1_to_u4_order() -> None:
    parts = split_grid(encode(grid_image(), "PNG"))
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    assert len(parts) == 4
    for data, colour in zip(parts, expected, strict=True):
        image = decode(data)
        assert image.format == "PNG"
        assert image.size == (100, 100)
        assert image.convert("RGB").getpixel((50, 50)) == colour


def test_split_grid_writes_the_quadrants_at_the_fast_level() -> None:
    """Saving a finished grid is the job's last step: its quadrants are encoded at the fast level."""
    grid = noise((200, 200))
    parts = split_grid(encode(grid, "PNG"))
    assert {zlib_speed(part) for part in parts} == {0}
    assert decode(parts[3]).tobytes() == grid.crop((100, 100, 200, 200)).tobytes()


def test_split_grid_covers_every_pixel_of_an_odd_sized_grid() -> None:
    parts = split_grid(encode(grid_image((201, 101)), "PNG"))
    assert [decode(p).size for p in parts] == [(100, 50), (101, 50), (100, 51), (101, 51)]


def test_split_grid_converts_modes_png_cannot_store() -> None:
    parts = split_grid(encode(grid_image(mode="CMYK"), "JPEG"))
    assert {decode(p).mode for p in parts} == {"RGB"}


@pytest.mark.parametrize("data", [png((1, 1)), b"not an image"])
def test_split_grid_refuses_what_is_not_a_grid_image(data: bytes) -> None:
    with pytest.raises(ImageInputError):
        split_grid(data)


# ---------------------------------------------------------------------------------------------
# ImageSaver
# ---------------------------------------------------------------------------------------------

SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000, 0o277])
def test_saver_creates_a_missing_folder_user_only(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = ImageSaver(tmp_path / "a" / "out").save("x", png())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "out").stat().st_mode) == 0o700
    assert path.parent == tmp_path / "a" / "out"


def test_saver_leaves_the_mode_of_an_existing_folder_alone(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir(mode=0o755)
    (tmp_path / "out").chmod(0o755)
    ImageSaver(tmp_path / "out").save("x", png())
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_saver_refuses_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OSError, match="not a folder"):
        ImageSaver(tmp_path / "out").save("x", png())


@pytest.mark.parametrize(
    ("data", "mime", "extension"),
    [
        (png(), "image/jpeg", ".png"),
        (jpeg(), None, ".jpg"),
        (encode(Image.new("RGB", (4, 4)), "WEBP"), "image/png", ".webp"),
        (encode(Image.new("P", (4, 4)), "GIF"), None, ".gif"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", None, ".mp4"),
        (b"\x1aE\xdf\xa3 webm bytes", "video/webm", ".webm"),
    ],
)
def test_saver_names_the_extension_after_the_real_format(
    tmp_path: Path, data: bytes, mime: str | None, extension: str
) -> None:
    path = ImageSaver(tmp_path).save("task", data, mime)
    assert path.name == f"task{extension}"
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("data", "mime"),
    [(b"<html></html>", "image/png"), (b"\x00\x00\x00\x18ftypavif\x00\x00", "image/avif"), (b"", None)],
)
def test_saver_refuses_data_that_is_neither_image_nor_video_and_writes_nothing(
    tmp_path: Path, data: bytes, mime: str | None
) -> None:
    with pytest.raises(ImageInputError, match="not saved"):
        ImageSaver(tmp_path / "out").save("task", data, mime)
    assert not (tmp_path / "out").exists()


def test_saver_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    saver = ImageSaver(tmp_path)
    (tmp_path / "task.png").write_bytes(b"precious")
    first = saver.save("task", png(color="red"))
    second = saver.save("task", png(color="blue"))
    assert (tmp_path / "task.png").read_bytes() == b"precious"
    assert (first.name, second.name) == ("task_2.png", "task_3.png")
    assert decode(first.read_bytes()).getpixel((0, 0)) == (255, 0, 0)


def test_saver_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    saver = ImageSaver(tmp_path)
    saver.save("a", png())
    saver.save("a", png())
    with pytest.raises(ImageInputError):
        saver.save("b", b"junk")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_2.png"]


def test_saver_does_not_replace_a_file_that_appears_while_it_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link

    def racing_link(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "task.png":
            Path(dst).write_bytes(b"written by someone else")
        real_link(src, dst)

    monkeypatch.setattr(saving.os, "link", racing_link)
    path = ImageSaver(tmp_path).save("task", png())
    assert path.name == "task_2.png"
    assert (tmp_path / "task.png").read_bytes() == b"written by someone else"


def test_saver_writes_through_to_disk_before_publishing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def link(src: str | Path, dst: str | Path) -> None:
        events.append("link")
        real_link(src, dst)

    monkeypatch.setattr(saving.os, "fsync", fsync)
    monkeypatch.setattr(saving.os, "link", link)
    ImageSaver(tmp_path).save("task", png())
    assert events[:2] == ["fsync", "link"]


def test_saver_works_without_hard_links_and_still_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str | Path, dst: str | Path) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(saving.os, "link", no_links)
    (tmp_path / "task.png").write_bytes(b"precious")
    path = ImageSaver(tmp_path).save("task", data := png())
    assert path.name == "task_2.png"
    assert path.read_bytes() == data
    assert (tmp_path / "task.png").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.png", "task_2.png"]


def test_saver_gives_up_when_every_name_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def always_taken(src: str | Path, dst: str | Path) -> None:
        raise FileExistsError(dst)

    monkeypatch.setattr(saving.os, "link", always_taken)
    with pytest.raises(FileExistsError, match="no free file name"):
        ImageSaver(tmp_path).save("task", png())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("猫 cat", "_cat"),
        ("", "image"),
        ("...", "image"),
        ("imagine-1320098173412546", "imagine-1320098173412546"),
    ],
)
def test_saver_sanitises_file_names(tmp_path: Path, stem: str, expected: str) -> None:
    path = ImageSaver(tmp_path).save(stem, png())
    assert path == tmp_path / f"{expected}.png"


@given(st.text())
def test_sanitize_stem_always_gives_a_short_plain_visible_name(name: str) -> None:
    stem = sanitize_stem(name)
    assert SAFE_NAME.fullmatch(stem)
    assert len(stem) <= 80
    assert not stem.endswith(".")


def test_saver_returns_absolute_paths_for_a_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = ImageSaver(Path("out")).save("x", png())
    assert path.is_absolute()
    assert path == tmp_path / "out" / "x.png"


def test_save_task_saves_a_grid_and_its_four_quadrants(tmp_path: Path) -> None:
    saved = ImageSaver(tmp_path).save_task("1320098173412546", encode(grid_image(), "PNG"), grid=True, kind="imagine")
    assert saved.path == tmp_path / "imagine-1320098173412546.png"
    assert [p.name for p in saved.quadrants] == [f"imagine-1320098173412546-{n}.png" for n in range(1, 5)]
    assert decode(saved.quadrants[1].read_bytes()).convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_save_task_saves_a_single_image_without_quadrants(tmp_path: Path) -> None:
    saved = ImageSaver(tmp_path).save_task("42", jpeg(), "image/jpeg")
    assert saved.path == tmp_path / "42.jpg"
    assert saved.quadrants == []
