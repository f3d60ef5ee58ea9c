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
"""

from __future__ import annotations

import io
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def main() -> None:
    import anyio

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print("| what | now | before |\n|---|---|---|")
    for row in [*preview_rows(), *anyio.run(structured_rows)]:
        print(row)


if __name__ == "__main__":
    main()
