"""Dependencies point one way: from the entry points (cli, demo, transports) through the MCP adapter
(`mj_mcp.server`) down to the core. Only the adapter and the entry points import `mcp`; no core
module imports the adapter (read from the source, imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mj_mcp"
TOP = {"cli.py", "demo.py", "transports.py", "__main__.py"}
"""The entry points: they compose the adapter and the core, so they may import both."""
UPPER = [["mj_mcp", "server"], ["mj_mcp", "cli"], ["mj_mcp", "demo"], ["mj_mcp", "transports"]]


def core_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "server" and str(path.relative_to(PACKAGE)) not in TOP
    )


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_core_module_imports_mcp_or_the_adapter(path: Path) -> None:
    upward = {name for name in imported(path) if name.split(".")[0] == "mcp" or name.split(".")[:2] in UPPER}
    assert not upward, f"{path.name} imports {sorted(upward)}: the dependency would point up"


def test_the_core_is_most_of_the_package() -> None:
    # A guard on the guard: the walk above finds the core modules (models, client, jobs, simulator …).
    found = {str(p.relative_to(PACKAGE)) for p in core_modules()}
    assert {"models.py", "client.py", "jobs.py", "taskstore.py", "redistasks.py", "simulator/core.py"} <= found
