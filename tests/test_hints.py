"""Every tool that a message or hint tells the model to use exists.

Errors, hints and results name tools in prose ("call get_task with taskId=...", "use change
(...)", "`modal`"). Renaming a tool would silently turn those into advice to call nothing; this
test reads every string constant in mj_mcp/ (docstrings aside) and checks each tool-looking word
against `TOOLS`.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mj_mcp.server import TOOLS

PACKAGE = Path(__file__).resolve().parents[1] / "mj_mcp"
TOOL_NAMES = frozenset(spec.name for spec in TOOLS)
ARGUMENT_NAMES = frozenset(
    field.alias or name
    for spec in TOOLS
    for model in (spec.request, spec.controls)
    for name, field in model.model_fields.items()
)

SNAKE_CASE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
"""snake_case words: in this code's prose these are tool names (arguments are camelCase)."""
INVOKED = re.compile(
    r"(?:\b[Cc]all(?:ing)?|\b[Uu]se|Next:)\s+(?:the\s+)?([a-z][a-z0-9_]*)(?=\s+(?:with|tool|again|\())"
)
"""A word used the way a tool is: "call X with", "use X (", "Next: X with", "calling X again"."""
BACKTICKED = re.compile(r"`([a-z][a-z0-9_]*)`")
"""`x` in a message names a tool or an argument."""
GENERIC = frozenset({"again", "another", "back", "one", "tool"})
"""Words in invocation position that are not names: "call again", "call back (notifyHook)", "use
another tool", "use one with"."""


@functools.cache
def message_strings() -> tuple[tuple[str, str], ...]:
    """(file, text) of every string constant in the package that is not a (attribute) docstring.

    The simulator's strings are what an upstream says, not our advice, so it is left out. Read
    once: parsing the whole package is most of these tests' time."""
    return tuple(_message_strings())


def _message_strings() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("simulator"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        documentation = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
                yield relative, node.value


def mentioned_tools(text: str) -> set[str]:
    if " " not in text:
        return set()  # an identifier (a field name for getattr, a dict key), not prose
    words = set(SNAKE_CASE.findall(text))
    words |= {word for word in INVOKED.findall(text) if word not in GENERIC}
    words |= {word for word in BACKTICKED.findall(text) if word not in ARGUMENT_NAMES}
    return words


def test_every_tool_named_in_a_message_exists() -> None:
    unknown = sorted(
        f"{where}: {word!r} in {text[:80]!r}"
        for where, text in message_strings()
        for word in mentioned_tools(text)
        if word not in TOOL_NAMES
    )
    assert not unknown, "\n".join(unknown)


def test_the_scan_finds_the_tools_the_hints_name() -> None:
    named = {word for _, text in message_strings() for word in mentioned_tools(text)}
    # If the scan stopped seeing these, the test above would pass without checking anything.
    assert {"get_task", "list_tasks", "recent_tasks", "modal", "imagine", "change", "simple_change"} <= named


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('This needs one more step: call modal with taskId="1"', {"modal"}),
        ("For a grid, use change (taskId=1, action UPSCALE) or simple_change.", {"change", "simple_change"}),
        ("Next: imagine with one of these prompts, or action with taskId", {"imagine"}),
        ("Start with `imagine`; change grid image `index` (1-4).", {"imagine"}),
        ("Check MJ_BASE_URL, then call again, or use another tool.", set()),
        ("notify_hook", set()),
    ],
)
def test_what_counts_as_naming_a_tool(text: str, expected: set[str]) -> None:
    assert mentioned_tools(text) == expected
