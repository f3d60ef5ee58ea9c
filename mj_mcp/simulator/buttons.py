"""Buttons: what each kind of task offers, and what pressing a customId does.

`KINDS` says which buttons a finished task of each kind shows (by model family for single
images); `RULES` maps a customId to the task it creates (docs/upstream-api.md §1.3). Both are
tables, so a new button or job kind is one row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from mj_mcp.simulator.core import Kind, ModalNeed, SimTask
from mj_mcp.simulator.prompts import keycap

__all__ = [
    "BLEND_RATIOS",
    "CHANGEABLE",
    "KINDS",
    "NZ_ACTIONS",
    "REROLL_AS",
    "RULES",
    "Button",
    "KindSpec",
    "Rule",
    "buttons_of",
    "rule_for",
]

Button = dict[str, str | int]
"""One button of a task, as the upstream shows it."""


def _button(custom_id: str, emoji: str = "", label: str = "") -> Button:
    return {"customId": custom_id, "emoji": emoji, "label": label, "style": 2, "type": 2}


def _reroll_button(h: str) -> Button:
    return _button(f"MJ::JOB::reroll::0::{h}::SOLO", "🔄")


def _grid_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        *(_button(f"MJ::JOB::upsample::{n}::{h}", label=f"U{n}") for n in range(1, 5)),
        _reroll_button(h),
        *(_button(f"MJ::JOB::variation::{n}::{h}", label=f"V{n}") for n in range(1, 5)),
    ]


# Upscale buttons of a single image, by model family (docs/upstream-api.md §2.6); v8 has none.
_UPSCALE_FLAVOURS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "4": (("Upscale (2x)", "upsample_v5_2x"), ("Upscale (4x)", "upsample_v5_4x")),
    "5": (("Upscale (2x)", "upsample_v5_2x"), ("Upscale (4x)", "upsample_v5_4x")),
    "6": (("Upscale (Subtle)", "upsample_v6_2x_subtle"), ("Upscale (Creative)", "upsample_v6_2x_creative")),
    "6.1": (
        ("Upscale (Subtle)", "upsample_v6r1_2x_subtle"),
        ("Upscale (Creative)", "upsample_v6r1_2x_creative"),
    ),
    "7": (("Upscale (Subtle)", "upsample_v7_2x_subtle"), ("Upscale (Creative)", "upsample_v7_2x_creative")),
    "8": (),
}
_SPATIAL_FAMILIES: Final = frozenset({"5", "6", "6.1", "7"})
_ANIMATE_FAMILIES: Final = frozenset({"6", "6.1", "7", "8"})


def _vary_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::JOB::low_variation::1::{h}::SOLO", "🪄", "Vary (Subtle)"),
        _button(f"MJ::JOB::high_variation::1::{h}::SOLO", "🪄", "Vary (Strong)"),
    ]


def _zoom_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::Outpaint::50::1::{h}::SOLO", "🔍", "Zoom Out 2x"),
        _button(f"MJ::Outpaint::75::1::{h}::SOLO", "🔍", "Zoom Out 1.5x"),
        _button(f"MJ::CustomZoom::{h}", "🔍", "Custom Zoom"),
    ]


def _animate_buttons(h: str) -> list[Button]:
    return [
        _button(f"MJ::JOB::animate_high::1::{h}::SOLO", "🎞️", "Animate (High motion)"),
        _button(f"MJ::JOB::animate_low::1::{h}::SOLO", "🎞️", "Animate (Low motion)"),
    ]


def _single_buttons(task: SimTask) -> list[Button]:
    h, family = task.job_hash, task.family
    buttons = [
        _button(f"MJ::JOB::{fragment}::1::{h}::SOLO", "upscale_1", label)
        for label, fragment in _UPSCALE_FLAVOURS[family]
    ]
    buttons += _vary_buttons(h)
    if family in _SPATIAL_FAMILIES:
        buttons.append(_button(f"MJ::Inpaint::1::{h}::SOLO", "🖌️", "Vary (Region)"))
        buttons += _zoom_buttons(h)
        buttons += [
            _button(f"MJ::JOB::pan_{direction}::1::{h}::SOLO", emoji)
            for direction, emoji in (("left", "⬅️"), ("right", "➡️"), ("up", "⬆️"), ("down", "⬇️"))
        ]
    if family in _ANIMATE_FAMILIES:
        buttons += _animate_buttons(h)
    buttons.append(_button(f"MJ::BOOKMARK::{h}", "❤️"))
    return buttons


def _hd_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [*_vary_buttons(h), *_zoom_buttons(h), *_animate_buttons(h), _reroll_button(h)]


def _describe_buttons(_task: SimTask) -> list[Button]:
    return [
        *(_button(f"MJ::Job::PicReader::{n}", keycap(n)) for n in range(1, 5)),
        _button("MJ::Picread::Retry", "🔄"),
        _button("MJ::Job::PicReader::all", "🎉", "Imagine all"),
    ]


def _shorten_buttons(task: SimTask) -> list[Button]:
    return [
        *(_button(f"MJ::Job::PromptAnalyzer::{n}", keycap(n)) for n in range(1, 6)),
        _button(f"MJ::Job::PromptAnalyzerExtended::{task.job_hash}", "", "Show Details"),
    ]


def _video_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        *(_button(f"MJ::JOB::video_virtual_upscale::{n}::{h}", label=f"U{n}") for n in range(1, 5)),
        _reroll_button(h),
    ]


def _video_upscale_buttons(task: SimTask) -> list[Button]:
    h = task.job_hash
    return [
        _button(f"MJ::JOB::animate_high_extend::1::{h}", "🎞️", "Extend (High motion)"),
        _button(f"MJ::JOB::animate_low_extend::1::{h}", "🎞️", "Extend (Low motion)"),
    ]


def _no_buttons(_task: SimTask) -> list[Button]:
    return []


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What a kind of job produces."""

    buttons: Callable[[SimTask], list[Button]]
    picture: bool = True
    """Renders its own picture (final PNG, preview while running)."""
    text_result: bool = False
    """The result is text in finalPrompt (describe, shorten)."""
    video: bool = False
    image_urls: bool = False
    """Four `imageUrls` entries (edits; video thumbnails come with videoUrls)."""
    quadrant: bool = False
    """Made by a button, it shows one quadrant of its parent's picture (upscales)."""
    describes: bool = False
    """It describes a source image: imageUrl is that image, and the prompt its description once
    done; a retry describes the same image anew."""
    keeps_source: bool = False
    """Made by a button on a task of the same kind (a reroll), it keeps the parent's source."""
    animates: bool = False
    """Made by a button, its first frame is the parent's picture (Animate)."""
    base_image: bool = False
    """It shows its source image as baseImageUrl (edits)."""


KINDS: Final[dict[Kind, KindSpec]] = {
    "grid": KindSpec(_grid_buttons),
    "upscale": KindSpec(_single_buttons, quadrant=True),
    "upscale_hd": KindSpec(_hd_buttons, quadrant=True),
    "describe": KindSpec(_describe_buttons, picture=False, text_result=True, describes=True, keeps_source=True),
    "shorten": KindSpec(_shorten_buttons, picture=False, text_result=True),
    "video": KindSpec(_video_buttons, video=True, keeps_source=True, animates=True),
    "video_upscale": KindSpec(_video_upscale_buttons, video=True, quadrant=True),
    "edit": KindSpec(_no_buttons, image_urls=True, keeps_source=True, base_image=True),
    "swap": KindSpec(_no_buttons),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """How `/mj/submit/action` treats a customId (docs/upstream-api.md §1.3); first matching rule wins."""

    pattern: re.Pattern[str]
    action: str | None
    """The new task's action; None = reroll (depends on the parent)."""
    kind: Kind | None
    tag: str
    """Description suffix; `{n}` is the button's index."""
    modal: ModalNeed | None = None
    """Always answered with code 21 and a MODAL task needing this."""
    remixable: bool = False
    """Becomes MODAL when the request says `enableRemix: true`."""
    special: Literal["bookmark", "all", "prompt_line"] | None = None


RULES: Final[tuple[Rule, ...]] = (
    Rule(re.compile(r"^MJ::JOB::upsample::(?P<n>[1-4])::"), "UPSCALE", "upscale", "U{n}"),
    Rule(
        re.compile(r"^MJ::JOB::video_virtual_upscale(?:::(?P<n>[1-4]))?"),
        "UPSCALE",
        "video_upscale",
        "U{n}",
    ),
    Rule(
        re.compile(r"^MJ::JOB::variation::(?P<n>[1-4])::"),
        "VARIATION",
        "grid",
        "V{n}",
        remixable=True,
    ),
    Rule(re.compile(r"^MJ::JOB::reroll::"), None, None, "R", remixable=True),
    Rule(
        re.compile(r"^MJ::JOB::high_variation::"),
        "VARIATION",
        "grid",
        "Vary (Strong)",
        remixable=True,
    ),
    Rule(
        re.compile(r"^MJ::JOB::low_variation::"),
        "VARIATION",
        "grid",
        "Vary (Subtle)",
        remixable=True,
    ),
    Rule(re.compile(r"^MJ::Outpaint::"), "ZOOM", "grid", "Zoom Out"),
    Rule(re.compile(r"^MJ::JOB::pan_"), "PAN", "grid", "Pan", remixable=True),
    Rule(re.compile(r"^MJ::JOB::upsample_"), "UPSCALE_HD", "upscale_hd", "Upscale HD"),
    Rule(re.compile(r"^MJ::CustomZoom::"), "ZOOM", "grid", "Custom Zoom", modal="zoom"),
    Rule(re.compile(r"^MJ::Inpaint::"), "VARIATION", "grid", "Vary (Region)", modal="mask"),
    Rule(re.compile(r"^MJ::JOB::animate_"), "VIDEO", "video", "Animate", remixable=True),
    Rule(re.compile(r"MJ::Picread::Retry"), "DESCRIBE", "describe", "Describe retry"),
    Rule(re.compile(r"^MJ::Job::PicReader::all"), "IMAGINE", "grid", "Imagine all", special="all"),
    Rule(
        re.compile(r"^MJ::Job::PicReader::(?P<n>[1-4])$"),
        "IMAGINE",
        "grid",
        "PicReader {n}",
        modal="prompt",
        special="prompt_line",
    ),
    Rule(
        re.compile(r"^MJ::Job::PromptAnalyzer::(?P<n>[1-5])$"),
        "IMAGINE",
        "grid",
        "PromptAnalyzer {n}",
        modal="prompt",
        special="prompt_line",
    ),
    Rule(re.compile(r"^MJ::BOOKMARK::"), None, None, "Bookmark", special="bookmark"),
)

# Reroll repeats the parent's job (TA `SubmitAction`), except these. Every task with a reroll
# button has an action TA can reroll, so TA's `该任务不支持重新生成` cannot happen here.
REROLL_AS: Final[dict[str, str]] = {"UPSCALE": "IMAGINE", "SHOW": "IMAGINE"}
CHANGEABLE: Final = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND"})
NZ_ACTIONS: Final = frozenset({"IMAGINE", "UPSCALE", "VARIATION", "REROLL", "DESCRIBE", "BLEND"})
BLEND_RATIOS: Final = {"PORTRAIT": "2:3", "SQUARE": "1:1", "LANDSCAPE": "3:2"}


def buttons_of(task: SimTask) -> list[Button]:
    """The buttons of the finished task."""
    return KINDS[task.kind].buttons(task)


def rule_for(custom_id: str) -> tuple[Rule, re.Match[str]] | None:
    """The first rule matching a customId, with its match (for the button's index)."""
    for rule in RULES:
        match = rule.pattern.search(custom_id)
        if match is not None:
            return rule, match
    return None
