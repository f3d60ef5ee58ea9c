"""`mj-mcp demo` in memory: the same script a newcomer runs, against an in-process server on the
test's fake clock (tests/test_transports.py runs the real thing, a stdio subprocess, in the slow tier)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from mj_mcp.demo import demo
from tests.conftest import ServerFactory

pytestmark = pytest.mark.anyio


async def test_the_demo_imagines_presses_u1_and_says_where_the_images_are(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert await demo(out, make_server()) == 0
    printed = out.getvalue()
    assert "imagine: a lighthouse on a cliff at dawn" in printed
    assert "100.0%" in printed  # the progress bar reached the end
    assert "action: pressing U1" in printed
    done = re.search(r"^Done\. The images are in (.+) \(the upscale: (.+)\)\.$", printed, re.MULTILINE)
    assert done is not None
    folder, upscale = Path(done[1]), Path(done[2])
    assert folder == tmp_path / "out" and upscale.parent == folder and upscale.is_file()


async def test_with_saving_off_the_demo_points_at_the_urls(make_server: ServerFactory) -> None:
    out = io.StringIO()
    assert await demo(out, make_server(output_dir=None)) == 0
    assert "Done. Saving is off (MJ_OUTPUT_DIR=off); the image URLs are above." in out.getvalue()


async def test_a_refused_imagine_ends_the_demo_with_exit_status_1(make_server: ServerFactory) -> None:
    out = io.StringIO()
    assert await demo(out, make_server(read_only=True)) == 1  # MJ_READ_ONLY: no imagine tool
    assert "action: pressing U1" not in out.getvalue()
