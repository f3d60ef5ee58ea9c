"""The prompt: turning a plain description into a good Midjourney prompt.

It has no state, so one SDK `Prompt` (whose `from_function` builds pydantic models, milliseconds)
serves every server of the process.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts import Prompt

__all__ = ["PROMPT_GUIDE", "midjourney_prompt", "register_prompts"]

PROMPT_GUIDE: Final = """\
Write one Midjourney prompt for this request: {description}

How a good Midjourney prompt looks:
- Lead with the subject and what it does, then setting, style/medium, lighting, colour, camera or
  lens terms. Concrete nouns and adjectives beat long sentences; 15-60 words is plenty.
- Parameters go at the end:
  --ar W:H   aspect ratio (16:9 landscape, 9:16 phone, 2:3 portrait){aspect}
  --v 7      model version (--niji 6 for anime styles)
  --stylize N  (0-1000, default 100) how strongly Midjourney's own aesthetic applies
  --chaos N  (0-100) how different the four images are
  --no X     what to leave out (e.g. --no text, watermark)
  --seed N   repeatable results; --tile for seamless patterns; --q 2 for more detail
- Image prompts: put image URLs first (imagine's base64Array takes files, URLs or data URIs).
{style}
Answer with the prompt only, on one line. Then call the imagine tool with it."""


def midjourney_prompt(description: str, aspect_ratio: str = "", style: str = "") -> str:
    aspect = f"\n  (use --ar {aspect_ratio} for this one)" if aspect_ratio.strip() else ""
    style_line = f"- Wanted style: {style.strip()}" if style.strip() else ""
    return PROMPT_GUIDE.format(description=description.strip(), aspect=aspect, style=style_line)


@functools.cache
def _prompt() -> Prompt:
    return Prompt.from_function(
        midjourney_prompt,
        name="midjourney_prompt",
        title="Write a Midjourney prompt",
        description="Turn a plain description into a good Midjourney prompt with parameters.",
    )


def register_prompts(server: MCPServer[Any]) -> None:
    server.add_prompt(_prompt())
