"""Checking a prompt's Midjourney parameters before a job is paid for.

Midjourney refuses a prompt with an unknown `--` parameter, a malformed `--ar` or a value out
of range, but only after the upstream accepted (and some charge for) the job, and its refusal
comes back in Discord's words, often through Chinese. `check_prompt` finds these mistakes first
and says how to fix them; nothing is sent.

What counts as a parameter is what Midjourney reads as one: a whitespace-separated token that
starts with `--` (or the `—` that phones make of it) followed by a letter. Its value is the
tokens up to the next parameter. So URLs (`https://a--b.png`), `::` weights, and a lone ` -- `
inside the text are text. Inside a permutation (`{...}`) a value stands for several prompts at
once, so only parameter names are checked there.

`PARAMETERS` is the one table of the parameters of current Midjourney versions (v5–v7, niji 5–6),
with their aliases and ranges.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

from mj_mcp.errors import InputError

__all__ = ["PARAMETERS", "Param", "Parsed", "check_prompt", "parameters_of"]

Kind = Literal["flag", "int", "number", "choice", "ratio", "text", "optional"]
"""How a parameter's value is read: none (`flag`), a whole number, a number, one of `choices`,
W:H (`ratio`), free text (`text`: `--no`, `--sref` URLs and codes), or an optional value
(`optional`: `--niji` alone or `--niji 6`, `--p` alone or with codes)."""


@dataclass(frozen=True, slots=True)
class Param:
    """One Midjourney parameter: its name, aliases and what values it takes."""

    name: str
    kind: Kind
    aliases: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def allows(self, value: str) -> bool:
        return value.lower() in self.choices


_VERSIONS: Final = ("1", "2", "3", "4", "5", "5.0", "5.1", "5.2", "6", "6.0", "6.1", "7")
_QUALITY_ANY: Final = (".25", "0.25", ".5", "0.5", "1", "2", "4")
_QUALITY_BY_VERSION: Final[dict[str, tuple[float, ...]]] = {
    "7": (1, 2, 4),
    "6.1": (0.25, 0.5, 1, 2),
    "6": (0.25, 0.5, 1),
    "6.0": (0.25, 0.5, 1),
    "5": (0.25, 0.5, 1),
    "5.0": (0.25, 0.5, 1),
    "5.1": (0.25, 0.5, 1),
    "5.2": (0.25, 0.5, 1),
}
"""`--quality` values each version takes (niji 5 and 6 as v5/v6: .25, .5, 1)."""

PARAMETERS: Final[tuple[Param, ...]] = (
    Param("aspect", "ratio", ("ar",)),
    Param("chaos", "int", ("c",), 0, 100),
    Param("stylize", "int", ("s",), 0, 1000),
    Param("weird", "int", ("w",), 0, 3000),
    Param("quality", "choice", ("q",), choices=_QUALITY_ANY),
    Param("zoom", "number", (), 1, 2),
    Param("iw", "number", (), 0, 3),
    Param("version", "choice", ("v",), choices=_VERSIONS),
    Param("niji", "optional", (), choices=("4", "5", "6")),
    Param("seed", "int", ("sameseed",), 0, 4_294_967_295),
    Param("stop", "int", (), 10, 100),
    Param("repeat", "int", ("r",), 1, 40),
    Param("cw", "int", (), 0, 100),
    Param("sw", "int", (), 0, 1000),
    Param("sv", "int", (), 1, 6),
    Param("exp", "int", (), 0, 100),
    Param("ow", "int", (), 1, 1000),
    Param("bs", "choice", (), choices=("1", "2", "4")),
    Param("motion", "choice", (), choices=("low", "high")),
    Param("no", "text"),
    Param("style", "text"),
    Param("sref", "text"),
    Param("cref", "text"),
    Param("oref", "text"),
    Param("end", "text"),
    Param("personalize", "optional", ("p", "profile")),
    *(
        Param(flag, "flag")
        for flag in (
            "tile",
            "raw",
            "draft",
            "relax",
            "fast",
            "turbo",
            "video",
            "loop",
            "public",
            "stealth",
            "hd",
            "test",
            "testp",
            "creative",
            "uplight",
            "upbeta",
            "upanime",
        )
    ),
)

_BY_NAME: Final[dict[str, Param]] = {n: p for p in PARAMETERS for n in (p.name, *p.aliases)}
_PARAMETER: Final = re.compile(r"(?:--|—)([A-Za-z][A-Za-z0-9_=.:-]*)")
_JOINED: Final = re.compile(r"([A-Za-z]+)(?:=(.+)|(\d[\d.:]*))")
"""`--s=250`, `--v7`: a known name with its value stuck to it."""
_RATIO: Final = re.compile(r"(\d+(?:\.\d+)?)\s*[:/xX×,;]\s*(\d+(?:\.\d+)?)")
_NOTHING_SENT: Final = "nothing was sent"


@dataclass(frozen=True, slots=True)
class Parsed:
    """One parameter as written: `name` lower-case as typed, its value (tokens joined by spaces)."""

    written: str
    name: str
    value: str
    permuted: bool
    """Inside a `{...}` permutation: the value stands for several, so it is not checked."""

    @property
    def param(self) -> Param | None:
        return _BY_NAME.get(self.name)


def parameters_of(prompt: str) -> list[Parsed]:
    """The prompt's Midjourney parameters in order (see the module docstring for what counts)."""
    found: list[Parsed] = []
    current: tuple[str, list[str], bool] | None = None
    depth = 0
    for token in prompt.split():
        inside = depth > 0 or "{" in token
        depth = max(0, depth + token.count("{") - token.count("}"))
        match = _PARAMETER.fullmatch(token.lstrip("{,").rstrip("},"))
        if match is not None:
            if current is not None:
                found.append(_parsed(*current))
            current = (match.group(1), [], inside)
        elif current is not None:
            written, values, permuted = current
            values.append(token)
            current = (written, values, permuted or inside)
    if current is not None:
        found.append(_parsed(*current))
    return found


def _parsed(written: str, values: list[str], permuted: bool) -> Parsed:
    return Parsed(written, written.lower(), " ".join(values), permuted)


def check_prompt(prompt: str) -> None:
    """Refuse (InputError, with the fix) a prompt Midjourney would refuse for its parameters."""
    parsed = parameters_of(prompt)
    for item in parsed:
        problem = _problem(item)
        if problem is not None:
            raise InputError(f"The prompt's parameter --{item.written} {problem[0]}; {_NOTHING_SENT}.", hint=problem[1])
    _check_pairs(parsed)


def _problem(item: Parsed) -> tuple[str, str] | None:
    """(what is wrong, the fix) for one parameter, or None."""
    param = item.param
    if param is None:
        return _unknown(item)
    if item.permuted:
        return None
    value = item.value
    if param.kind == "flag" or param.kind == "text":
        return None
    if param.kind == "optional":
        return None if not value or not param.choices or param.allows(value) else _choice_problem(item, param)
    if not value:
        return "needs a value", f"Write it as --{item.written} {_example(param)}, or leave it out."
    if param.kind == "ratio":
        return _ratio_problem(item)
    if " " in value:
        extra = value.split(" ", 1)[1]
        return (
            f"takes one value, but {extra!r} follows it",
            f"Put text before the parameters (Midjourney reads parameters at the end), e.g. "
            f"--{item.written} {value.split(' ', 1)[0]}.",
        )
    if param.kind == "choice":
        return None if param.allows(value) else _choice_problem(item, param)
    return _number_problem(item, param)


def _unknown(item: Parsed) -> tuple[str, str]:
    joined = _JOINED.fullmatch(item.written)
    if joined is not None and joined.group(1).lower() in _BY_NAME:
        name, value = joined.group(1), joined.group(2) or joined.group(3)
        return "runs its name and value together", f"Midjourney needs a space: --{name} {value}."
    close = difflib.get_close_matches(item.name, list(_BY_NAME), n=1, cutoff=0.6)
    if close:
        fix = f"Did you mean --{close[0]}? Fix the prompt and call again."
    else:
        names = ", ".join(f"--{p.name}" for p in PARAMETERS[:12])
        fix = f"Known parameters include {names}. Remove it, or put the text before the parameters without '--'."
    return "is not a Midjourney parameter", fix


def _example(param: Param) -> str:
    if param.choices:
        return param.choices[-1]
    if param.low is not None:
        return f"{param.low:g}"
    return "16:9"


def _choice_problem(item: Parsed, param: Param) -> tuple[str, str]:
    shown = ", ".join(dict.fromkeys(c.removeprefix("0") for c in param.choices))
    return f"does not take {item.value!r}", f"Use one of: {shown}, e.g. --{item.written} {param.choices[-1]}."


def _number_problem(item: Parsed, param: Param) -> tuple[str, str] | None:
    low, high = param.low, param.high
    # Every number parameter of the table has a range.
    assert low is not None
    assert high is not None
    span = f"{low:g} to {high:g}"
    try:
        number = float(item.value)
    except ValueError:
        number = math.nan
    if math.isnan(number) or math.isinf(number):
        return f"needs a number, not {item.value!r}", f"Use a number from {span}, e.g. --{item.written} {low:g}."
    if param.kind == "int" and not number.is_integer():
        return f"takes a whole number, not {item.value}", f"Use a whole number from {span}."
    if not low <= number <= high:
        nearest = min(max(number, low), high)
        return f"is {item.value}, outside {span}", f"Use a value from {span}, e.g. --{item.written} {nearest:g}."
    return None


def _ratio_problem(item: Parsed) -> tuple[str, str] | None:
    value = item.value
    if re.fullmatch(r"[1-9]\d*:[1-9]\d*", value):
        return None
    match = _RATIO.fullmatch(value) or _RATIO.search(value)
    if match is None:
        return f"is {value!r}, not a ratio W:H", f"Write it as whole numbers with a colon, e.g. --{item.written} 16:9."
    try:
        ratio = Fraction(match.group(1)) / Fraction(match.group(2))
    except ZeroDivisionError:
        ratio = Fraction(0)
    if ratio <= 0:
        return f"is {value!r}", f"Both sides must be above 0, e.g. --{item.written} 16:9."
    fixed = f"{ratio.numerator}:{ratio.denominator}"
    return f"is {value!r}, not W:H in whole numbers", f"Write it as --{item.written} {fixed}."


def _check_pairs(parsed: list[Parsed]) -> None:
    """Parameters that exclude each other, and values that depend on the version."""
    if any(item.permuted for item in parsed):
        return
    named = {item.param.name: item for item in parsed if item.param is not None}
    version, niji = named.get("version"), named.get("niji")
    if version is not None and niji is not None:
        both = f"--{version.written} {version.value} and --niji {niji.value}".strip()
        raise InputError(
            f"The prompt has both {both}; Midjourney takes one model; {_NOTHING_SENT}.",
            hint=f"Keep --{version.written} {version.value} for Midjourney or --niji {niji.value or '6'} for the anime "
            "model, not both.",
        )
    quality = named.get("quality")
    if version is not None and quality is not None:
        allowed = _QUALITY_BY_VERSION.get(version.value)
        if allowed is not None and float(quality.value) not in allowed:
            shown = ", ".join(f"{q:g}" for q in allowed)
            raise InputError(
                f"The prompt's --{quality.written} {quality.value} is not offered by version {version.value}; "
                f"{_NOTHING_SENT}.",
                hint=f"With --{version.written} {version.value} use --{quality.written} {shown.split(', ')[-1]} "
                f"(one of {shown}).",
            )
