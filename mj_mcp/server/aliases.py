"""Tool names a model guesses, answered with the tools that do the job.

Models call what they expect a Midjourney server to have (`upscale`, `vary`, `zoom`, `status`),
or a listed name under a prefix of their framework (`mj_imagine`). The SDK would answer "Unknown
tool: upscale"; `refused_tool` says instead which of this server's tools does it, and how. Only
tools this server offers are named (a profile or MJ_READ_ONLY may leave some out).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

__all__ = ["GUESSES", "refused_tool"]

_ON_GRID: Final = "on a grid task (imagine's result)"
_ON_UPSCALE: Final = "on an upscaled image (the result of `U1`–`U4`)"

GUESSES: Final[dict[str, tuple[str, str]]] = {
    "upscale": ("action", f"use `action` with customId `U1`–`U4` {_ON_GRID}"),
    "vary": (
        "action",
        f"use `action` with customId `V1`–`V4` {_ON_GRID}, or `Vary (Subtle)`/`Vary (Strong)` {_ON_UPSCALE}",
    ),
    "variation": ("action", f"use `action` with customId `V1`–`V4` {_ON_GRID}"),
    "zoom": (
        "action",
        f"use `action` with customId `Zoom Out 2x`, `Zoom Out 1.5x` or `Custom Zoom` (then `modal`) {_ON_UPSCALE}",
    ),
    "outpaint": ("action", f"use `action` with customId `Zoom Out 2x` or `Custom Zoom` (then `modal`) {_ON_UPSCALE}"),
    "pan": ("action", f"use `action` with customId `pan left`, `pan right`, `pan up` or `pan down` {_ON_UPSCALE}"),
    "reroll": ("action", f"use `action` with customId `🔄` (or 'reroll') {_ON_GRID}"),
    "inpaint": ("action", f"use `action` with customId `Vary (Region)` {_ON_UPSCALE}, then `modal` with the mask"),
    "vary region": ("action", f"use `action` with customId `Vary (Region)` {_ON_UPSCALE}, then `modal` with the mask"),
    "edit": ("edit", "use `edit` with a prompt and the image"),
    "animate": ("video", "use `video` with a prompt and the start image"),
    "status": ("get_task", "use `get_task` with the taskId (wait=true waits for it to finish)"),
    "get image": ("get_task", "use `get_task` with the taskId (the image comes with it)"),
    "fetch": ("get_task", "use `get_task` with the taskId"),
    "task": ("get_task", "use `get_task` with the taskId"),
    "result": ("get_task", "use `get_task` with the taskId"),
    "history": ("recent_tasks", "use `recent_tasks`"),
    "list": ("recent_tasks", "use `recent_tasks`, or `list_tasks` with ids"),
    "generate": ("imagine", "use `imagine` with a prompt"),
    "image": ("imagine", "use `imagine` with a prompt"),
    "create": ("imagine", "use `imagine` with a prompt"),
    "seed": ("image_seed", "use `image_seed` with the taskId"),
    "cancel": ("cancel_task", "use `cancel_task` with the taskId"),
    "face swap": ("swap_face", "use `swap_face`"),
    "upload": ("upload_images", "use `upload_images`"),
}
"""A guessed name (folded: lower case, words by spaces, plural and verb endings off) → (tool, how)."""

_PREFIXES: Final = re.compile(r"^(?:mj|midjourney|mcp|mj mcp)\s+")
_WORDS: Final = re.compile(r"[^a-z0-9]+")


def refused_tool(name: str, offered: Collection[str]) -> str:
    """What to tell a model that called `name`, which this server does not offer."""
    folded = _fold(name)
    bare = _PREFIXES.sub("", folded)
    listed = ", ".join(f"`{tool}`" for tool in sorted(offered))
    for candidate in (folded, bare, bare.replace(" ", "_")):
        if candidate.replace(" ", "_") in offered:
            return f"No tool `{name}`: the tool is called `{candidate.replace(' ', '_')}`."
    for key in _keys(bare):
        if key.replace(" ", "_") in offered:
            return f"No tool `{name}`; use `{key.replace(' ', '_')}`."
        guess = GUESSES.get(key)
        if guess is not None and guess[0] in offered:
            return f"No tool `{name}`; {guess[1]}."
    return f"No tool `{name}`. The tools of this server are: {listed}."


def _keys(folded: str) -> list[str]:
    """The name and its words, each also without a plural or verb ending (`upscaled` → `upscale`)."""
    words = folded.split()
    found = [folded, *(" ".join(words[i : i + 2]) for i in range(len(words) - 1)), *words]
    endings = ("s", "d", "es", "ed", "ing")
    stemmed = (k for key in found for k in (key, *(key[: -len(end)] for end in endings if key.endswith(end))))
    return list(dict.fromkeys(stemmed))


def _fold(name: str) -> str:
    return " ".join(_WORDS.split(name.lower())).strip()
