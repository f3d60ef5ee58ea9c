"""Prompt and text helpers: what Midjourney makes of a prompt, and the texts it writes back.

Everything here is a pure function of its arguments (describe's and shorten's texts are
deterministic in their seed), so that replays and tests see the same words.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Final

__all__ = [
    "LONG_SIDE",
    "aspect_size",
    "describe_text",
    "digest",
    "keycap",
    "model_family",
    "normalize_prompt",
    "numbered_line",
    "prompt_mode",
    "shorten_text",
]

LONG_SIDE: Final = 1024
"""The long side of every picture, in pixels."""
_KEYCAP_ITEM: Final = re.compile(r"^(\d)\ufe0f\u20e3\s*(.+)$", re.MULTILINE)


def keycap(n: int) -> str:
    """The keycap emoji of a digit (1️⃣), as describe, shorten and their buttons number things."""
    return f"{n}\ufe0f\u20e3"


def model_family(prompt: str) -> str:
    """Which Midjourney version a prompt asks for; it decides the single-image buttons."""
    match = re.search(r"--(?:v|version)\s+(\d+(?:\.\d+)?)", prompt)
    if match:
        value = match.group(1)
        major = int(float(value))
        if major >= 8:
            return "8"
        if major == 6:
            return "6.1" if value.startswith("6.1") else "6"
        return {7: "7", 5: "5"}.get(major, "4")
    niji = re.search(r"--niji(?:\s+(\d+))?", prompt)
    if niji:
        return {"7": "7", "6": "6"}.get(niji.group(1) or "6", "5")
    return "7"


def normalize_prompt(prompt: str, mode: str | None) -> str:
    """The prompt as Midjourney echoes it: with a version, and the speed when one was chosen."""
    text = " ".join(prompt.split())
    if not re.search(r"--(?:v|version|niji)\b", text):
        text += " --v 7"
    if mode and not re.search(r"--(?:fast|relax|turbo)\b", text):
        text += f" --{mode.lower()}"
    return text.strip()


def prompt_mode(prompt: str) -> str | None:
    match = re.search(r"--(fast|relax|turbo)\b", prompt)
    return match.group(1).upper() if match else None


def aspect_size(prompt: str) -> tuple[int, int]:
    """Picture size for `--ar W:H` (long side 1024, ratio clamped to 1:4..4:1)."""
    match = re.search(r"--(?:ar|aspect)\s+(\d+)\s*:\s*(\d+)", prompt)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        return (LONG_SIDE, LONG_SIDE)
    ratio = min(4.0, max(0.25, int(match.group(1)) / int(match.group(2))))
    if ratio >= 1:
        return (LONG_SIDE, _even(LONG_SIDE / ratio))
    return (_even(LONG_SIDE * ratio), LONG_SIDE)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _ratio_text(size: tuple[int, int]) -> str:
    divisor = math.gcd(*size) or 1
    return f"{size[0] // divisor}:{size[1] // divisor}"


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


_SUBJECTS: Final = (
    "a lighthouse on a rocky coast",
    "a red fox in tall grass",
    "a rain-soaked city street at night",
    "a bowl of ripe peaches on a table",
    "an astronaut floating above the clouds",
    "a cozy reading nook with a cat",
    "a koi pond under autumn maples",
    "a vintage motorcycle in a workshop",
)
_STYLES: Final = (
    "soft watercolor",
    "cinematic photography",
    "isometric 3d render",
    "ukiyo-e woodblock print",
    "flat vector illustration",
    "thick impasto oil painting",
    "pastel anime style",
    "moody film noir",
)
_LIGHTS: Final = (
    "golden hour light",
    "overcast diffuse light",
    "neon rim lighting",
    "warm candlelight",
    "crisp morning sun",
    "dramatic chiaroscuro",
    "bioluminescent glow",
    "blue hour haze",
)


def describe_text(seed: str, size: tuple[int, int]) -> str:
    """Four Midjourney-style prompts, `1️⃣ …\\n\\n2️⃣ …`, deterministic in `seed`."""
    d = digest(seed)
    ratio = _ratio_text(size)
    return "\n\n".join(
        f"{keycap(i + 1)} {_SUBJECTS[d[i] % 8]}, {_STYLES[d[i + 4] % 8]}, {_LIGHTS[d[i + 8] % 8]} --ar {ratio}"
        for i in range(4)
    )


def shorten_text(prompt: str) -> str:
    """Shorten's markdown: important tokens, then five ever shorter prompts."""
    core = re.sub(r"--\w+(?:\s+[^\s-][^\s]*)?", " ", prompt)
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", core) or ["prompt"]
    important = list(dict.fromkeys(w.lower() for w in words if len(w) > 2))[:6] or [words[0].lower()]
    lines = [f"{keycap(i)} {' '.join(words[: max(1, math.ceil(len(words) * (6 - i) / 5))])}" for i in range(1, 6)]
    return "## Important tokens\n" + ", ".join(important) + "\n\n## Shortened prompts\n" + "\n\n".join(lines)


def numbered_line(text: str, n: int) -> str | None:
    for match in _KEYCAP_ITEM.finditer(text):
        if int(match.group(1)) == n:
            return match.group(2).strip()
    return None
