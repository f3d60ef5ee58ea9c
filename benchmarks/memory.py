"""Peak memory under the two hostile loads of issue 12: giant result images, and a huge reply.

Run from the repository root:

    .venv/bin/python benchmarks/memory.py             # 4 images of 7071² (about 20 s on 2 cores)
    .venv/bin/python benchmarks/memory.py --side 4096 --count 2

A child process imports mj_mcp, writes one PNG of side × side pixels row by row (so that making
it costs no memory), then does what the server does with each finished task's image, `count`
times at once: `make_preview` and `ImageSaver.save_task(..., grid=True)` (the file and its four
quadrants), each in a worker thread, and `png_for_resource` for the `mj://tasks/{id}/image`
resource. It reports its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) and its RSS
before the work. A second child reads one task from an upstream that answers with a 500 MB
chunked JSON body, and reports the same. `--max-mb 400` makes both a check: .ci/run runs it so,
outside the test suite (the images alone take 10-30 s of CPU).
The numbers of the last run are in docs/benchmarks.md ("Peak RSS with giant result images").
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

SIDE = 7071
COUNT = 4


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def striped_png(side: int) -> bytes:
    """An RGB PNG of side × side with soft diagonal stripes, built a row at a time."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    pattern = bytes((x * 7) % 256 for x in range(3 * (side + 256)))
    packer = zlib.compressobj(6)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header)]
    body: list[bytes] = []
    for y in range(side):
        start = 3 * (y % 256)
        body.append(packer.compress(b"\x00" + pattern[start : start + 3 * side]))
    body.append(packer.flush())
    parts.append(_chunk(b"IDAT", b"".join(body)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS); this benchmark targets Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return _rss_mb()


def child(side: int, count: int) -> dict[str, Any]:
    """Run in the child process: the work, measured."""
    import anyio
    import anyio.to_thread

    from mj_mcp.images import make_preview, png_for_resource
    from mj_mcp.saving import ImageSaver

    data = striped_png(side)
    before = _current_rss_mb()
    previews: list[int] = []
    started = time.perf_counter()

    async def one(saver: ImageSaver, number: int) -> None:
        preview, _mime = await anyio.to_thread.run_sync(make_preview, data)
        previews.append(len(preview))
        await anyio.to_thread.run_sync(lambda: saver.save_task(f"task{number}", data, "image/png", grid=True))
        await anyio.to_thread.run_sync(png_for_resource, data)

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="mj-memory-") as folder:
            saver = ImageSaver(Path(folder))
            async with anyio.create_task_group() as group:
                for number in range(count):
                    group.start_soon(one, saver, number)

    anyio.run(main)
    return {
        "side": side,
        "count": count,
        "file_mb": round(len(data) / 1e6, 2),
        "before_mb": round(before, 1),
        "peak_mb": round(_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 2),
        "preview_bytes": sorted(previews),
    }


REPLY_MB = 500


def reply_child(megabytes: int) -> dict[str, Any]:
    """Run in the child process: one upstream read answered with `megabytes` MB of JSON, measured.

    The upstream is a raw socket server on loopback that streams a chunked body (no Content-Length,
    so the client cannot refuse it up front and must count while reading).
    """
    import asyncio

    from mj_mcp.client import MjClient
    from mj_mcp.errors import MjError

    piece = b"x" * (1024 * 1024)
    sent = 0

    async def upstream(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(megabytes):
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                await writer.drain()
                sent += len(piece)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client hung up once it had read enough
        finally:
            writer.close()

    async def main() -> str:
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with MjClient(f"http://127.0.0.1:{port}", "sk-memory-benchmark", timeout=120.0) as client:
            try:
                await client.fetch("1")
            except MjError as exc:
                return type(exc).__name__
            finally:
                server.close()
        return "no error"

    before = _current_rss_mb()
    started = time.perf_counter()
    outcome = asyncio.run(main())
    return {
        "reply_mb": megabytes,
        "served_mb": round(sent / 1e6, 1),
        "outcome": outcome,
        "before_mb": round(before, 1),
        "peak_mb": round(_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 2),
    }


def measure(side: int = SIDE, count: int = COUNT, python: str = sys.executable) -> dict[str, Any]:
    """Run `child` in a fresh interpreter (so nothing else inflates its peak) and return its numbers."""
    return _run_child(python, "_child", str(side), str(count))


def measure_reply(megabytes: int = REPLY_MB, python: str = sys.executable) -> dict[str, Any]:
    """Run `reply_child` in a fresh interpreter and return its numbers."""
    return _run_child(python, "_reply", str(megabytes))


def _run_child(python: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), *args], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring child failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--side", type=int, default=SIDE)
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--reply-mb", type=int, default=REPLY_MB, help="size of the hostile upstream reply")
    parser.add_argument("--max-mb", type=float, help="exit 1 if either peak RSS reaches this (CI uses 400)")
    args = parser.parse_args()
    results = {"images": measure(args.side, args.count), "reply": measure_reply(args.reply_mb)}
    print(json.dumps(results))
    over = [name for name, result in results.items() if args.max_mb is not None and result["peak_mb"] >= args.max_mb]
    if over:
        print(f"peak RSS over {args.max_mb} MB: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "_reply":
        print(json.dumps(reply_child(int(sys.argv[2]))))
    else:
        sys.exit(main())
