"""What a model reads of this server: the bytes at the start, and per result of the main flows.

Run from the repository root:

    .venv/bin/python benchmarks/context.py           # print the tables (a few seconds)
    .venv/bin/python benchmarks/context.py --write   # and record them in docs/benchmarks.md

At the start a model reads the server's `instructions` and, of each tool, its name, title,
description and input schema (`mj_mcp.server.schema.surface_bytes`; output schemas and
annotations are not given to models). That is measured for every upstream profile, with
`MJ_TOOL_FIELDS=lean` and `full`. Then the main flows run against the simulator (imagine, action
U1 on the grid, get_task on the upscale, recent_tasks after a dozen jobs), and each result's parts
are measured: its text, its structured content, its preview image (base64, as sent).

Everything runs in this process: the real `create_server(...)` and `MjClient` against the
project's simulator, through the MCP SDK's in-memory client, on a fake clock (jobs end at once).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mj_mcp.client import MjClient  # noqa: E402
from mj_mcp.config import Settings, load_settings  # noqa: E402
from mj_mcp.server import create_server  # noqa: E402
from mj_mcp.server.schema import surface_bytes  # noqa: E402
from mj_mcp.simulator import Simulator  # noqa: E402
from mj_mcp.upstreams import PROFILES  # noqa: E402
from tests.helpers import SIM_URL, FakeClock  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
TEMPLATE = ROOT / "benchmarks" / "benchmarks_template.md"
START, END = "<!-- context:start -->", "<!-- context:end -->"
RECENT_JOBS = 12
"""Jobs made before recent_tasks, so that its default limit (10) is what bounds the answer."""


def compact(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@dataclass(frozen=True)
class StartRow:
    upstream: str
    fields: str
    tools: int
    instructions: int
    surface: int
    answer: int
    """The whole tools/list answer (with annotations), for reference: what the client receives."""


@dataclass(frozen=True)
class ResultRow:
    flow: str
    text: int
    structured: int
    image: int
    whole: int


def settings_for(folder: Path, **overrides: Any) -> Settings:
    (folder / "in").mkdir(exist_ok=True)
    return load_settings(simulator=True, output_dir=str(folder / "out"), allowed_dirs=[folder / "in"], **overrides)


async def start_rows(folder: Path) -> list[StartRow]:
    rows: list[StartRow] = []
    for upstream in PROFILES:
        for fields in ("lean", "full"):
            async with Client(create_server(settings_for(folder, upstream=upstream, tool_fields=fields))) as client:
                listing = await client.list_tools()
                instructions = client.instructions or ""
            tools = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in listing.tools]
            rows.append(
                StartRow(
                    upstream=upstream,
                    fields=fields,
                    tools=len(tools),
                    instructions=len(instructions.encode()),
                    surface=surface_bytes(tools),
                    answer=compact(listing.model_dump(by_alias=True, exclude_none=True, mode="json")),
                )
            )
    return rows


def measure(flow: str, result: CallToolResult) -> ResultRow:
    if result.is_error:
        raise SystemExit(f"{flow} failed: {result.content}")
    texts = [c.text for c in result.content if isinstance(c, TextContent)]
    images = [c.data for c in result.content if isinstance(c, ImageContent)]
    return ResultRow(
        flow=flow,
        text=sum(len(t.encode()) for t in texts),
        structured=compact(result.structured_content) if result.structured_content is not None else 0,
        image=sum(len(i) for i in images),
        whole=compact(result.model_dump(by_alias=True, exclude_none=True, mode="json")),
    )


async def result_rows(folder: Path) -> list[ResultRow]:
    clock = FakeClock(start=time.time())  # the simulator's submit times are now, so 'today' finds them
    sim = Simulator(clock=clock, seed=7)
    async with (
        MjClient(SIM_URL, None, transport=sim.transport(), sleep=clock.sleep) as mj,
        Client(create_server(settings_for(folder), mj, clock=clock)) as client,
    ):
        grid = await client.call_tool("imagine", {"prompt": "a watercolor lighthouse at dusk --ar 3:2"})
        rows = [measure("imagine (the grid)", grid)]
        grid_id = (grid.structured_content or {})["id"]
        upscale = await client.call_tool("action", {"taskId": grid_id, "customId": "U1"})
        rows.append(measure("action U1 (the upscale)", upscale))
        upscale_id = (upscale.structured_content or {})["id"]
        rows.append(measure("get_task (the upscale)", await client.call_tool("get_task", {"taskId": upscale_id})))
        for n in range(RECENT_JOBS):
            await client.call_tool("imagine", {"prompt": f"a fox, study {n}", "wait": False})
        recent = await client.call_tool("recent_tasks", {})
        rows.append(measure(f"recent_tasks (default limit, {RECENT_JOBS + 2} tasks upstream)", recent))
        today = await client.call_tool("recent_tasks", {"since": "today", "limit": 3})
        rows.append(measure("recent_tasks since='today', limit 3", today))
    return rows


def markdown(start: list[StartRow], results: list[ResultRow]) -> str:
    lines = [
        "| upstream | MJ_TOOL_FIELDS | tools | instructions | tools as a model reads them | at start, in all | "
        "tools/list answer (reference) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r.upstream}` | `{r.fields}` | {r.tools} | {r.instructions:,} | {r.surface:,} | "
        f"{r.instructions + r.surface:,} | {r.answer:,} |"
        for r in start
    ]
    lines += [
        "",
        "| result (plus) | text | structured content | preview image (base64) | whole result |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.flow} | {r.text:,} | {r.structured:,} | {r.image:,} | {r.whole:,} |" for r in results]
    return "\n".join(lines)


SECTION_HEAD = """## What a model reads (issue 15)

Bytes, as compact UTF-8 JSON, written by [`benchmarks/context.py`](../benchmarks/context.py)
(`.venv/bin/python benchmarks/context.py --write`). "Tools as a model reads them" is each tool's
name, title, description and input schema (the contract bounds it at 10,000 bytes for `plus` in
`lean` mode; tests/test_surface.py checks it); titles are in the annotations, for clients to
show. The instructions name the allowed folders, so their size varies with the paths (here a
temporary folder). Before issue 15 the `plus` tools read 18,362 bytes (the old tools/list
snapshot) and the instructions 573. Results are the same in both modes; the preview image is
what a client passes to a model that sees images (none with `MJ_PREVIEW=none`).
"""


def write(table: str) -> None:
    section = f"{START}\n{SECTION_HEAD}\n{table}\n{END}"
    for path, body in ((DOC, section), (TEMPLATE, section.replace("{", "{{").replace("}", "}}"))):
        text = path.read_text(encoding="utf-8")
        if START in text:
            text = text.split(START)[0] + body + text.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + body + "\n"
        path.write_text(text, encoding="utf-8")


async def main(write_doc: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mj-context-") as tmp:
        folder = Path(tmp)
        table = markdown(await start_rows(folder), await result_rows(folder))
    print(table)
    if write_doc:
        write(table)
        print(f"\nwritten to {DOC.relative_to(ROOT)} and {TEMPLATE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the tables in docs/benchmarks.md")
    anyio.run(main, parser.parse_args().write)
