"""Buttons by name: what a model calls a button, turned into the customId of the task's button.

A model names a button as the task shows it (`U2`, `🔄`, `Vary (Strong)`, `zoom out 2x`), by its
customId, or by a plain name for the emoji buttons (`pan left`, `reroll`). `resolve` finds it on
the parent task; a button that exists only on another kind of task (`Vary (Strong)` on a grid,
`U1` on an upscale) is refused with the way to reach it, and a button this upstream cannot relay
is refused before anything is sent. `pressable` keeps only the buttons the upstream can press,
so that what a task offers next is what works.
"""

from __future__ import annotations

import re
from typing import Final

from mj_mcp.client import MjClient
from mj_mcp.errors import ButtonNotFoundError
from mj_mcp.models import Task
from mj_mcp.upstreams import Profile

__all__ = ["ALIASES", "pressable", "resolve"]

ALIASES: Final[dict[str, str]] = {
    "pan left": "⬅️",
    "pan right": "➡️",
    "pan up": "⬆️",
    "pan down": "⬇️",
    "left": "⬅️",
    "right": "➡️",
    "up": "⬆️",
    "down": "⬇️",
    "reroll": "🔄",
    "re roll": "🔄",
}
"""Plain names of the emoji buttons (folded: lower case, `_`/`-` as spaces), by the emoji shown."""

_GRID_ONLY: Final = re.compile(r"^(?:[uv][1-4]|🔄)$")
"""Buttons of a four-image grid: upscale or vary one image, re-roll the grid."""
_SINGLE_ONLY: Final = re.compile(r"^(?:vary|zoom|custom zoom|animate|upscale \(|[⬅➡⬆⬇])")
"""Buttons of one upscaled image: vary it, zoom out, pan, animate, upscale it further."""
_GRID_MARK: Final = "::upsample::"
"""The customId fragment of a grid's U1-U4 (a video's U buttons are `video_virtual_upscale`)."""
_SINGLE_MARK: Final = "_variation::"
"""The customId fragment of an upscaled image's Vary (Subtle)/(Strong) buttons."""


def pressable(task: Task, profile: Profile) -> Task:
    """The task with only the buttons this upstream can press: what it offers next is what works
    (new-api, for one, relays no Describe or Shorten number buttons)."""
    kept = [b for b in task.buttons if profile.presses(b.custom_id)]
    return task if len(kept) == len(task.buttons) else task.model_copy(update={"buttons": kept})


async def resolve(client: MjClient, task_id: str, wanted: str) -> str:
    """The customId of the button `wanted` names on task `task_id`, or ButtonNotFoundError saying
    what to press instead. A customId this upstream presses is taken as it is, without a read."""
    profile = client.profile
    if wanted.startswith("MJ::") and profile.presses(wanted):
        return wanted
    parent = await client.fetch(task_id)
    shown = ALIASES.get(_fold(wanted), wanted)
    button = parent.button(shown)
    if button is not None and not profile.presses(button.custom_id):
        raise ButtonNotFoundError(
            f"This upstream ({profile.title}) cannot relay the {button.display!r} button of task {task_id}; "
            "nothing was sent.",
            available=[b.display for b in pressable(parent, profile).buttons],
            hint="Use the task's other buttons, or imagine with the prompt you wanted.",
        )
    if button is not None:
        return button.custom_id
    raise _missing(parent, wanted, shown)


def _missing(parent: Task, wanted: str, shown: str) -> ButtonNotFoundError:
    """Why task `parent` has no button `wanted` (`shown` as the task would show it), and where it is."""
    task_id, named = parent.id, _fold(shown)
    labels = [b.display for b in parent.buttons]
    ids = [b.custom_id for b in parent.buttons]
    if any(_GRID_MARK in i for i in ids) and _SINGLE_ONLY.match(named):
        return ButtonNotFoundError(
            f"Task {task_id} is a grid of four images, and `{wanted}` is on upscaled images: press `U1`–`U4` "
            f"first (e.g. action taskId={task_id} customId=U2 for the second image), then `{wanted}` on the "
            "new task.",
            available=labels,
            hint="Nothing was sent.",
        )
    if any(_SINGLE_MARK in i for i in ids) and _GRID_ONLY.match(named):
        grid = parent.parent_id
        where = f"action taskId={grid} customId={shown.upper()}" if grid else "action on the grid it came from"
        return ButtonNotFoundError(
            f"Task {task_id} is one upscaled image, and `{wanted}` is on grid tasks (four images): press it on "
            f"the grid ({where}), or use this task's own buttons: {_listed(labels)}.",
            available=labels,
            hint="Nothing was sent.",
        )
    if labels:
        return ButtonNotFoundError(
            f"Task {task_id} has no button {wanted!r}. Available: {_listed(labels)}.",
            available=labels,
            hint="Call action again with one of these labels (or its customId); the emoji buttons also go "
            "by name: 'pan left', 'pan right', 'pan up', 'pan down', 'reroll'.",
        )
    if not parent.finished:
        return ButtonNotFoundError(
            f"Task {task_id} has no buttons yet: it is {parent.status or 'not finished'}.",
            available=[],
            hint=f'Call get_task with taskId="{task_id}" and wait=true, then press a button of the finished task.',
        )
    return ButtonNotFoundError(
        f"Task {task_id} has no buttons (this upstream lists none).",
        available=[],
        hint=f"For a grid, use change (taskId={task_id}, action UPSCALE, VARIATION or REROLL, index 1-4) or "
        f'simple_change (content "{task_id} U2").',
    )


def _listed(labels: list[str]) -> str:
    return ", ".join(repr(label) for label in labels)


def _fold(text: str) -> str:
    # As Task.button compares labels: no emoji variation selector, one space, any case; and
    # "pan_left", "pan-left", "Pan Left" all name the same button.
    return " ".join(text.replace("\ufe0f", "").replace("_", " ").replace("-", " ").split()).casefold()
