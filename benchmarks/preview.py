"""What a model receives for a finished task: preview bytes and size, and structured-content bytes.

Run from the repository root:

    .venv/bin/python benchmarks/preview.py          # about 30 s on 2 cores

Previews: a 2×2 grid of natural-photo-like pictures (gradients, soft overlapping shapes, texture at
several scales and sensor grain: about as hard to compress as a photograph, nothing like a flat
colour) is made at 1024², 2048² and 4096², saved as PNG like an upstream's grid, and handed to
`make_preview`; the table gives the preview's format, size and bytes, against what the previous
rule made (the PNG as it was when within 1568 px and 1 MiB, else a JPEG of quality 85 at 1568 px).

Structured content: a finished `imagine` with a 200-character prompt, and `recent_tasks` of 25
finished grids, through the real server and the in-memory MCP client against the simulator; bytes
of the JSON on the wire (compact, UTF-8), against the raw upstream Task that was sent before.
The numbers of the last run are in docs/benchmarks.md ("Previews and structured content").

PNG compress level (`--png`, about 60 s; `--png --write` records the tables in docs/benchmarks.md
and its template, between the png markers): CPU time and bytes of the four quadrants that saving
a finished grid writes, at zlib levels 1-6, for the 2048² natural-photo grid, a smooth 2048² grid
and a 1024² grid as the simulator draws it; then `ImageSaver.save_task` of that natural grid,
`png_for_resource` of it as a JPEG, and the simulator's `draw_variant`, each at `FAST_PNG_LEVEL`
(the simulator's `PNG_LEVEL`) against Pillow's default 6. CPU is the least `time.process_time()` of interleaved
rounds: other jobs share this machine, and the least is the run they disturbed least.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from PIL import Image, ImageChops, ImageDraw, ImageFilter

PROMPT_200 = ("a lighthouse on a basalt cliff at dusk, watercolor, soft light, gulls over the surf " * 3)[:200]
SIDES = (1024, 2048, 4096)


def natural_picture(side: int, rng: random.Random) -> Image.Image:
    """One photo-like RGB picture: a gradient sky, soft shapes, texture at three scales, grain."""
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    ramp = Image.linear_gradient("L").resize((side, side))
    picture = Image.composite(Image.new("RGB", (side, side), bottom), Image.new("RGB", (side, side), top), ramp)
    shapes, mask = Image.new("RGB", (side, side)), Image.new("L", (side, side))
    draw_shape, draw_mask = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    for _ in range(40):
        x, y, r = rng.randrange(side), rng.randrange(side), rng.randrange(side // 30, side // 5)
        box = (x - r, y - r // 2, x + r, y + r // 2 + rng.randrange(r))
        draw_shape.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
        draw_mask.ellipse(box, fill=rng.randrange(120, 256))
    shapes = shapes.filter(ImageFilter.GaussianBlur(side / 200))
    picture = Image.composite(shapes, picture, mask.filter(ImageFilter.GaussianBlur(side / 150)))
    for cells, amplitude in ((side // 64, 50), (side // 16, 35), (side // 4, 25)):
        noise = Image.effect_noise((max(2, cells), max(2, cells)), 64).resize((side, side), Image.Resampling.BICUBIC)
        texture = ImageChops.multiply(
            Image.merge("RGB", (noise,) * 3), Image.new("RGB", (side, side), (amplitude,) * 3)
        )
        picture = ImageChops.add(picture, texture, offset=-amplitude // 4)
    grain = Image.effect_noise((side, side), 12)
    return ImageChops.add(picture, Image.merge("RGB", (grain,) * 3), offset=-128)


def natural_grid(side: int, seed: int = 1) -> bytes:
    """A side × side PNG of four natural pictures, as an upstream serves a finished grid."""
    rng = random.Random(seed)
    grid, half = Image.new("RGB", (side, side)), side // 2
    for index in range(4):
        grid.paste(natural_picture(half, rng), ((index % 2) * half, (index // 2) * half))
    buffer = io.BytesIO()
    grid.save(buffer, "PNG")
    return buffer.getvalue()


def wire_bytes(data: Any) -> int:
    """Bytes of `data` as JSON on the wire (compact separators, UTF-8)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _previous_preview(data: bytes) -> tuple[int, tuple[int, int], str]:
    image = Image.open(io.BytesIO(data))
    if max(image.size) <= 1568 and len(data) <= 1_048_576:
        return len(data), image.size, "PNG"
    picture = image.convert("RGB")
    picture.thumbnail((1568, 1568), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85, optimize=True)
    return len(buffer.getvalue()), picture.size, "JPEG"


def preview_rows() -> list[str]:
    from mj_mcp.images import make_preview

    rows: list[str] = []
    for side in SIDES:
        grid = natural_grid(side)
        preview, mime = make_preview(grid)
        size = Image.open(io.BytesIO(preview)).size
        before, before_size, before_format = _previous_preview(grid)
        rows.append(
            f"| natural-photo grid {side}² (PNG {len(grid) / 1e6:.1f} MB) | {mime.removeprefix('image/').upper()} "
            f"{size[0]}×{size[1]}, {len(preview) / 1000:.0f} KB | {before_format} {before_size[0]}×{before_size[1]}, "
            f"{before / 1000:.0f} KB |"
        )
    return rows


async def structured_rows() -> list[str]:
    from mcp import Client
    from mcp.types import TextContent

    from mj_mcp.client import MjClient
    from mj_mcp.config import load_settings
    from mj_mcp.server import create_server
    from mj_mcp.simulator import Simulator
    from tests.helpers import SIM_URL, FakeClock

    clock = FakeClock()
    sim = Simulator(clock=clock, seed=7)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "in").mkdir()
        settings = load_settings(
            simulator=True, output_dir=str(Path(folder) / "out"), allowed_dirs=[Path(folder) / "in"], poll_interval=2.0
        )
        async with (
            MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as mj,
            Client(create_server(settings, mj, clock=clock)) as client,
        ):
            first = await client.call_tool("imagine", {"prompt": PROMPT_200})
            raw = (await mj.fetch(str((first.structured_content or {})["id"]))).to_wire()
            for number in range(24):
                await client.call_tool("imagine", {"prompt": f"{PROMPT_200[:180]} --seed {number}"})
            recent = await client.call_tool("recent_tasks", {"limit": 25})
            raw_recent = [t.to_wire() for t in await mj.recent()][:25]
    listed = (recent.structured_content or {}).get("tasks", [])
    summary = next((block.text for block in recent.content if isinstance(block, TextContent)), "")
    return [
        f"| finished `imagine`, 200-character prompt | {wire_bytes(first.structured_content):,} bytes | "
        f"{wire_bytes(raw):,} bytes (the upstream Task) |",
        f"| `recent_tasks` of {len(listed)} finished grids | {wire_bytes(recent.structured_content):,} bytes "
        f"(text {len(summary):,} characters) | {wire_bytes({'tasks': raw_recent}):,} bytes |",
    ]


PNG_LEVELS = (1, 2, 3, 4, 5, 6)
PILLOW_DEFAULT_LEVEL = 6
ROUNDS = 5
ROOT = Path(__file__).resolve().parent.parent
DOC, TEMPLATE = ROOT / "docs" / "benchmarks.md", ROOT / "benchmarks" / "benchmarks_template.md"
START, END = "<!-- png:start -->", "<!-- png:end -->"


def least_cpu(runs: dict[str, Callable[[], object]], rounds: int = ROUNDS) -> dict[str, float]:
    """The least CPU seconds of each run over `rounds` rounds, the runs interleaved in each round."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return best


def quadrants(picture: Image.Image) -> list[Image.Image]:
    width, height = picture.size
    half_w, half_h = width // 2, height // 2
    boxes = ((0, 0, half_w, half_h), (half_w, 0, width, half_h), (0, half_h, half_w, height))
    return [picture.crop(box) for box in (*boxes, (half_w, half_h, width, height))]


def png_bytes(parts: list[Image.Image], level: int) -> int:
    total = 0
    for part in parts:
        buffer = io.BytesIO()
        part.save(buffer, "PNG", compress_level=level)
        total += len(buffer.getvalue())
    return total


def simulator_grid() -> Image.Image:
    from mj_mcp.simulator.render import draw_variant

    data, _ = draw_variant("bench/1", PROMPT_200, None, (1024, 1024), "final")
    return Image.open(io.BytesIO(data)).convert("RGB")


def level_rows(natural: Image.Image) -> list[str]:
    """Quadrant encoding at each level: CPU and bytes of the natural grid, a smooth one (the natural
    grid of 1024² upscaled twice, as an upscaler smooths) and the simulator's."""
    smooth = Image.open(io.BytesIO(natural_grid(1024))).convert("RGB").resize((2048, 2048), Image.Resampling.LANCZOS)
    pictures = {"natural": quadrants(natural), "smooth": quadrants(smooth), "simulator": quadrants(simulator_grid())}
    runs = {f"{name} {level}": (parts, level) for name, parts in pictures.items() for level in PNG_LEVELS}
    cpu = least_cpu({key: lambda a=args: png_bytes(*a) for key, args in runs.items()})
    rows = [
        "| zlib level | natural-photo grid 2048² | smooth grid 2048² (upscaled 2×) | simulator grid 1024² |",
        "|---|---|---|---|",
    ]
    for level in PNG_LEVELS:
        cells = []
        for name, parts in pictures.items():
            size = png_bytes(parts, level)
            amount = f"{size / 1e6:.2f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB"
            cells.append(f"{cpu[f'{name} {level}'] * 1000:.0f} ms, {amount}")
        note = " (Pillow's default)" if level == PILLOW_DEFAULT_LEVEL else ""
        rows.append(f"| {level}{note} | {' | '.join(cells)} |")
    return rows


def _at_level(level: int, run: Callable[[], object]) -> Callable[[], object]:
    """`run` with the product's and the simulator's fast PNG level set to `level`."""
    import mj_mcp.images
    import mj_mcp.simulator.render

    def patched() -> object:
        with (
            mock.patch.object(mj_mcp.images, "FAST_PNG_LEVEL", level),
            mock.patch.object(mj_mcp.simulator.render, "PNG_LEVEL", level),
        ):
            return run()

    return patched


def step_rows(natural: Image.Image, grid: bytes) -> list[str]:
    """Whole steps at the chosen level against Pillow's default: saving, the resource, drawing."""
    from mj_mcp.images import FAST_PNG_LEVEL, png_for_resource
    from mj_mcp.saving import ImageSaver
    from mj_mcp.simulator.render import PNG_LEVEL, draw_variant

    buffer = io.BytesIO()
    natural.save(buffer, "JPEG", quality=92)
    jpeg = buffer.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        saver = ImageSaver(Path(folder))
        steps: dict[str, tuple[int, Callable[[], object]]] = {
            "`ImageSaver.save_task` of the 2048² natural grid (PNG 7.3 MB) and its four quadrants": (
                FAST_PNG_LEVEL,
                lambda: saver.save_task("bench", grid, "image/png", grid=True),
            ),
            f"`png_for_resource` of that grid as a JPEG ({len(jpeg) / 1e6:.1f} MB)": (
                FAST_PNG_LEVEL,
                lambda: png_for_resource(jpeg),
            ),
            "simulator `draw_variant`, a 1024² grid": (
                PNG_LEVEL,
                lambda: draw_variant.__wrapped__("bench/1", PROMPT_200, None, (1024, 1024), "final"),
            ),
        }
        runs: dict[str, Callable[[], object]] = {}
        for name, (level, run) in steps.items():
            runs[f"{name} now"], runs[f"{name} default"] = _at_level(level, run), _at_level(PILLOW_DEFAULT_LEVEL, run)
        cpu = least_cpu(runs)
        rows = ["| step | at the chosen level | at Pillow's default (6) |", "|---|---|---|"]
        for name, (level, run) in steps.items():
            now, default = (_size_of(_at_level(lv, run)()) for lv in (level, PILLOW_DEFAULT_LEVEL))
            rows.append(
                f"| {name} | level {level}: {cpu[f'{name} now'] * 1000:.0f} ms CPU{now} | "
                f"{cpu[f'{name} default'] * 1000:.0f} ms CPU{default} |"
            )
    return rows


def _size_of(result: object) -> str:
    """The bytes a step made: the PNG it returns, or the quadrant files it saved."""
    from mj_mcp.saving import SavedImages

    if isinstance(result, SavedImages):
        return f", quadrants {sum(path.stat().st_size for path in result.quadrants) / 1e6:.2f} MB"
    if isinstance(result, bytes):
        return f", {len(result) / 1e6:.2f} MB"
    if isinstance(result, tuple) and result and isinstance(result[0], bytes):
        return f", {len(result[0]) / 1e3:.0f} KB"
    return ""


def png_tables() -> str:
    grid = natural_grid(2048)
    natural = Image.open(io.BytesIO(grid)).convert("RGB")
    return "\n".join([*level_rows(natural), "", *step_rows(natural, grid)])


PNG_SECTION_HEAD = """## PNG compress level (issue 11)

Written by [`benchmarks/preview.py`](../benchmarks/preview.py)
(`.venv/bin/python benchmarks/preview.py --png --write`). CPU time (the least of 5 interleaved
rounds; other jobs shared the machine) and bytes of the four quadrant PNGs that saving a finished
grid writes (`images.split_grid`), at each zlib level, for the 2048² natural-photo grid of the
section above, for a smooth one (its 1024² sibling upscaled twice, as an upscaler smooths) and for
a 1024² grid as the simulator draws it (flat colours, a disc, text). Then
whole steps at the level chosen (`images.FAST_PNG_LEVEL`, the simulator's `render.PNG_LEVEL`)
against Pillow's default.
"""


PNG_SECTION_TAIL = """
Chosen: level 1. It is the fastest level that compresses at all (level 0 stores the pixels: 12.6
MB for a 2048² grid), a third of the CPU of Pillow's default. On grainy photographs it is also
smaller (the default's lazy matching finds nothing more in grain); on smooth ones it is about 5 %
larger, on the simulator's flat pictures 10 %. Level 3 saves 3 % of the bytes for a third more
CPU. The quadrants are working copies on the user's disk, written as the job's last step, so the
job returns sooner. `png_for_resource` must stay under 7 MiB: when its level-1 PNG is over the cap
by at most half, it tries Pillow's default too (15-25 % smaller on a smooth picture as large as a
4096² upscale) before it scales the picture down; further over, it scales down at once.
"""


def write_png_section(tables: str) -> None:
    """Replace what is between the png markers of docs/benchmarks.md and of its template."""
    section = f"{START}\n{PNG_SECTION_HEAD}\n{tables}\n{PNG_SECTION_TAIL}{END}"
    for path, body in ((DOC, section), (TEMPLATE, section.replace("{", "{{").replace("}", "}}"))):
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: text.index(START)] + body + text[text.index(END) + len(END) :], encoding="utf-8")


def main() -> None:
    import anyio

    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", action="store_true", help="measure the PNG compress levels instead")
    parser.add_argument("--write", action="store_true", help="with --png: record the tables in docs/benchmarks.md")
    args = parser.parse_args()
    if args.png:
        tables = png_tables()
        print(tables)
        if args.write:
            write_png_section(tables)
            print(f"\nwritten to {DOC.relative_to(ROOT)} and {TEMPLATE.relative_to(ROOT)}", file=sys.stderr)
        return
    print("| what | now | before |\n|---|---|---|")
    for row in [*preview_rows(), *anyio.run(structured_rows)]:
        print(row)


if __name__ == "__main__":
    main()
