"""Bounded memory for pictures (issue 12 row 6): the process-wide budget of decoded pixels, the
previews that keep their output while making fewer full-size copies, and the measured peak RSS
of four giant result images handled at once."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import memory as image_memory
from mj_mcp import images
from mj_mcp.images import DecodeBudget, make_preview, png_for_resource, split_grid

WAIT = 10.0  # seconds: only reached when something is broken


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = red.transpose(Image.Transpose.ROTATE_90).resize(size)
    blue = Image.new("L", (width, height), 90)
    return Image.merge("RGB", (red, green, blue)).convert(mode)


# -- the budget -----------------------------------------------------------------------------------


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_pictures_within_the_budget_decode_side_by_side() -> None:
    budget = DecodeBudget(100)
    with budget.hold(40), budget.hold(60):
        entered = threading.Event()

        def third() -> None:
            with budget.hold(1):
                entered.set()

        waiter = in_thread(third)
        assert not entered.wait(0.05)  # full: the third waits
    assert entered.wait(WAIT)
    waiter.join(WAIT)


def test_a_picture_larger_than_the_budget_decodes_alone() -> None:
    budget = DecodeBudget(100)
    order: list[str] = []
    giant_in = threading.Event()
    release_giant = threading.Event()

    def giant() -> None:
        with budget.hold(10_000):
            order.append("giant")
            giant_in.set()
            release_giant.wait(WAIT)

    def small() -> None:
        with budget.hold(1):
            order.append("small")

    first = in_thread(giant)
    assert giant_in.wait(WAIT)
    second = in_thread(small)
    second.join(0.05)
    assert order == ["giant"]  # the small one waits for the giant, which holds all of it
    release_giant.set()
    first.join(WAIT)
    second.join(WAIT)
    assert order == ["giant", "small"]


def test_the_budget_admits_first_come_first_served() -> None:
    """A big picture waiting for room is not overtaken by smaller ones that would fit."""
    budget = DecodeBudget(100)
    order: list[str] = []
    queued = threading.Semaphore(0)

    def take(name: str, pixels: int) -> Callable[[], None]:
        def run() -> None:
            queued.release()
            with budget.hold(pixels):
                order.append(name)

        return run

    with budget.hold(50):
        big = in_thread(take("big", 80))
        assert queued.acquire(timeout=WAIT)
        big.join(0.05)  # let it reach its wait
        small = in_thread(take("small", 10))
        assert queued.acquire(timeout=WAIT)
        small.join(0.05)
        assert order == []  # 10 would fit beside the 50, but the big one came first
    big.join(WAIT)
    small.join(WAIT)
    assert order == ["big", "small"]


def test_the_budget_is_given_back_when_the_work_fails() -> None:
    budget = DecodeBudget(10)
    with pytest.raises(RuntimeError), budget.hold(10):
        raise RuntimeError("decoder crashed")
    entered = threading.Event()

    def again() -> None:
        with budget.hold(10):
            entered.set()

    in_thread(again).join(WAIT)
    assert entered.is_set()


class RecordingBudget(DecodeBudget):
    def __init__(self) -> None:
        super().__init__(images.DECODE_BUDGET_PIXELS)
        self.held: list[int] = []

    @contextmanager
    def hold(self, pixels: int) -> Generator[None]:
        self.held.append(pixels)
        with super().hold(pixels):
            yield


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> RecordingBudget:
    recording = RecordingBudget()
    monkeypatch.setattr(images, "_BUDGET", recording)
    return recording


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_every_full_size_decode_holds_its_pixels(budget: RecordingBudget) -> None:
    data = encode(gradient((2000, 1000)), "PNG")
    make_preview(data)
    split_grid(data)
    png_for_resource(encode(gradient((300, 200)), "JPEG"))
    assert budget.held == [2_000_000, 2_000_000, 60_000]


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_jpeg_preview_holds_only_the_pixels_of_its_reduced_decode(budget: RecordingBudget) -> None:
    make_preview(encode(gradient((4000, 4000)), "JPEG"))
    assert budget.held == [2000 * 2000]  # libjpeg decodes at 1/2 for a 1568 px preview


def test_a_preview_that_fits_decodes_nothing(budget: RecordingBudget) -> None:
    make_preview(encode(gradient((100, 100)), "PNG"))
    png_for_resource(encode(gradient((100, 100)), "PNG"))
    assert budget.held == []


# -- the same pictures as before ------------------------------------------------------------------


def old_picture(data: bytes) -> Image.Image:
    """What make_preview shrank before it shrank in place: flatten, copy, thumbnail (to the
    preview's limits of today: long side and pixels)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    picture = image.convert("RGB").copy()
    width, height = picture.size
    scale = min(images.PREVIEW_MAX_SIDE / max(width, height), math.sqrt(images.PREVIEW_MAX_PIXELS / (width * height)))
    picture.thumbnail((int(width * scale), int(height * scale)), Image.Resampling.LANCZOS)
    return picture


def old_preview(data: bytes) -> bytes:
    """What make_preview made before it shrank in place: the old picture, as JPEG."""
    buffer = io.BytesIO()
    old_picture(data).save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue()


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_preview_is_the_same_picture_as_before() -> None:
    data = encode(gradient((3000, 1700)), "PNG")
    preview, mime = make_preview(data)
    assert (preview, mime) == (old_preview(data), "image/jpeg")


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_grey_preview_is_the_same_picture_as_before_in_lossless_png() -> None:
    # 256 greys at most: a flat picture, which PNG holds in fewer bytes than JPEG here.
    data = encode(gradient((3000, 1700), "L"), "PNG")
    preview, mime = make_preview(data)
    assert mime == "image/png"
    assert len(preview) < len(old_preview(data))
    assert Image.open(io.BytesIO(preview)).tobytes() == old_picture(data).tobytes()


@pytest.mark.slow  # Pillow on a picture whose size is the point: seconds of CPU
def test_a_preview_of_a_paletted_picture_is_shrunk_after_conversion() -> None:
    data = encode(gradient((2400, 1200)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    preview, _ = make_preview(data)
    assert preview == old_preview(data)


def test_a_grid_is_still_cut_into_exact_quadrants_from_one_decode() -> None:
    picture = gradient((640, 480))
    parts = split_grid(encode(picture, "PNG"))
    boxes = [(0, 0, 320, 240), (320, 0, 640, 240), (0, 240, 320, 480), (320, 240, 640, 480)]
    for part, box in zip(parts, boxes, strict=True):
        assert Image.open(io.BytesIO(part)).tobytes() == picture.crop(box).tobytes()


# -- the measurement ------------------------------------------------------------------------------


def test_the_benchmark_image_is_a_valid_png_made_without_decoding(tmp_path: Path) -> None:
    data = image_memory.striped_png(300)
    (tmp_path / "striped.png").write_bytes(data)
    with Image.open(tmp_path / "striped.png") as image:
        image.load()
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (300, 300))
