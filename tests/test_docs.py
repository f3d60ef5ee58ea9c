"""The repository's own text points only at things the repository has.

A clone must be enough to follow every reference: each repository file the code and docs name
exists, nothing points at documents kept outside the repository, and each citation of
`docs/upstream-api.md` names the file and a section heading that the file has. The README's
Development section draws the package as it is: its module list names every module, and its
dependency drawing every module, with arrows only where imports really go.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_DOC = "docs/upstream-api.md"
THIS_FILE = Path(__file__).resolve()


def _texts() -> dict[str, str]:
    """The repository's own text: code, tests and docs, by path relative to the root.

    This file is left out: its patterns name the very things it looks for.
    """
    paths = [
        *ROOT.glob("mj_mcp/**/*.py"),
        *ROOT.glob("tests/*.py"),
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("benchmarks/*.md"),
        *ROOT.glob("docs/*.md"),
        *(ROOT / name for name in ("README.md", "SECURITY.md", "CHANGELOG.md")),
    ]
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(set(paths))
        if path.is_file() and path.resolve() != THIS_FILE
    }


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _line_text(text: str, position: int) -> str:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return text[start : end if end >= 0 else len(text)].strip()


# A repository path: a file in a known top-level folder, or a top-level document. The look-behind
# skips paths inside other repositories (`owner/repo/docs/x.md`) and URLs.
_REPO_PATH = re.compile(
    r"(?<![\w./-])"
    r"((?:docs|benchmarks|tests|examples|mj_mcp)/[\w./-]*[\w/]"
    r"|README\.md|SECURITY\.md|CHANGELOG\.md|LICENSE)"
    r"(?![\w-])"
)
_OUTSIDE = re.compile(r"(?:\.\./)+shared\b|\bshared/docs\b")

_CITATION = re.compile(re.escape(UPSTREAM_DOC) + r"((?:[\s,#]*(?:and\s+|or\s+)?§\s*\d+(?:\.\d+)*)+)")
_SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)")
_QUOTED = re.compile(re.escape(UPSTREAM_DOC) + r'\s+"([^"]+)"')
_HEADING = re.compile(r"^#{2,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def _headings() -> set[str]:
    return set(_HEADING.findall((ROOT / UPSTREAM_DOC).read_text(encoding="utf-8")))


def test_every_repository_file_that_is_named_exists() -> None:
    missing = [
        f"{name}:{_line(text, match.start())}: {match.group(1)}"
        for name, text in _texts().items()
        for match in _REPO_PATH.finditer(text)
        if not (ROOT / match.group(1).rstrip("/")).exists()
    ]
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


_MODULE = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*\.py)\b")
_MODULE_HOMES = ("mj_mcp", "tests", "benchmarks", "examples")


def test_every_module_the_prose_docs_name_exists() -> None:
    """README.md and SECURITY.md name modules by file name alone (`images.py`); a renamed or split
    module must take its mentions along."""
    known = {path.name for home in _MODULE_HOMES for path in (ROOT / home).rglob("*.py")}
    gone = [
        f"{name}:{_line(text, match.start())}: {match.group(1)}"
        for name in ("README.md", "SECURITY.md")
        for text in [(ROOT / name).read_text(encoding="utf-8")]
        for match in _MODULE.finditer(text)
        if match.group(1) not in known
    ]
    assert not gone, "modules named in the docs that do not exist:\n" + "\n".join(gone)


def test_nothing_points_outside_the_repository() -> None:
    outside = [
        f"{name}:{_line(text, match.start())}: {match.group(0)}"
        for name, text in _texts().items()
        for match in _OUTSIDE.finditer(text)
    ]
    assert not outside, "references to documents outside the repository:\n" + "\n".join(outside)


def test_every_upstream_doc_citation_names_an_existing_section() -> None:
    headings = _headings()
    texts = _texts()
    wrong = [
        f"{name}:{_line(text, match.start())}: §{section}"
        for name, text in texts.items()
        for match in _CITATION.finditer(text)
        for section in _SECTION.findall(match.group(1))
        if section not in headings
    ]
    # The page's own cross-references ("see §8.2") must land too.
    own = texts[UPSTREAM_DOC]
    wrong += [
        f"{UPSTREAM_DOC}:{_line(own, match.start())}: §{match.group(1)}"
        for match in _SECTION.finditer(own)
        if match.group(1) not in headings
    ]
    assert not wrong, "citations of sections that docs/upstream-api.md does not have:\n" + "\n".join(wrong)


def test_quoted_names_cited_from_the_upstream_doc_appear_in_it() -> None:
    doc = (ROOT / UPSTREAM_DOC).read_text(encoding="utf-8")
    absent = [
        f"{name}:{_line(text, match.start())}: {match.group(1)!r}"
        for name, text in _texts().items()
        for match in _QUOTED.finditer(text)
        if match.group(1) not in doc
    ]
    assert not absent, "names cited from docs/upstream-api.md that it does not contain:\n" + "\n".join(absent)


def test_every_section_citation_names_the_document() -> None:
    """A bare "docs §3" or "of §7" leaves the reader guessing which document is meant."""
    bare: list[str] = []
    for name, text in _texts().items():
        if name == UPSTREAM_DOC:
            continue  # the page's own "§N" are cross-references within it
        cited = {m.start() for c in _CITATION.finditer(text) for m in _SECTION.finditer(text, c.start(), c.end())}
        bare += [
            f"{name}:{_line(text, match.start())}: {_line_text(text, match.start())}"
            for match in _SECTION.finditer(text)
            if match.start() not in cited
        ]
    assert not bare, f"section citations that do not name {UPSTREAM_DOC}:\n" + "\n".join(bare)


def test_the_upstream_doc_keeps_the_sections_the_code_was_written_against() -> None:
    """Sections 1–7 keep their numbers and meaning; removing one would silently orphan citations."""
    headings = _headings()
    expected = {"0", "1", "1.1", "1.3", "2", "2.1", "2.4", "2.6", "3", "4", "4.1", "4.3", "5", "6", "7", "8"}
    assert expected <= headings, sorted(expected - headings)


def test_the_license_is_the_one_the_package_declares() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "MIT"' in pyproject
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


# The README's Development section: its first code block is the dependency drawing, its second
# the module list.
PACKAGE = ROOT / "mj_mcp"
_NAMED_ONE_BY_ONE = {"server"}
"""Subpackages whose modules the module list names one by one; the others (the simulator) it
names as a whole."""
_ARROW = re.compile(r"\s*(─►|┈►)\s*")
_ASIDE = re.compile(r"\s*\([^)]*\)")
_COLUMNS = re.compile(r"\s{3,}")
_LISTED_PY = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*\.py)\b")


def _development_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Development\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end >= 0 else len(readme)]
    return re.findall(r"^```\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)


def _subpackages() -> list[str]:
    return sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def _list_entries() -> list[str]:
    """The module list, one entry per module or group: an entry's lines after its first are indented deeper."""
    entries: list[str] = []
    for line in _development_blocks()[1].splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            entries.append(line.strip())
        elif line.strip():
            entries[-1] += " " + line.strip()
    return entries


def _listed() -> tuple[set[str], set[str]]:
    """The module files (relative to mj_mcp/) and the subpackages the module list names."""
    files: set[str] = set()
    packages: set[str] = set()
    for entry in _list_entries():
        head = entry.split()[0]
        home = head[:-1] if head.endswith("/") else ""
        if home:
            packages.add(home)
        files.update(f"{home}/{name}" if home else name for name in _LISTED_PY.findall(entry))
    return files, packages


def test_the_module_list_names_every_module_and_only_modules_that_exist() -> None:
    files, packages = _listed()
    subpackages = _subpackages()
    modules = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    unnamed = sorted(
        module
        for module in modules
        if module not in files and module.split("/")[0] not in set(subpackages) - _NAMED_ONE_BY_ONE
    )
    assert not unnamed, f"modules the README's module list (Development) does not name: {unnamed}"
    assert set(subpackages) <= packages, f"packages it does not name: {sorted(set(subpackages) - packages)}"
    gone = sorted((files - modules) | {f"{p}/" for p in packages - set(subpackages)})
    assert not gone, f"the README's module list (Development) names what does not exist: {gone}"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """What a module imports when it is loaded, and what its functions import when they run.

    Imports under `if TYPE_CHECKING:` are left out: they never run.
    """
    loaded: set[str] = set()
    deferred: set[str] = set()

    def visit(node: ast.AST, into: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                into.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module is not None:
                into.add(child.module)
                into.update(f"{child.module}.{alias.name}" for alias in child.names)  # `from mj_mcp import x`
            in_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, deferred if in_function else into)

    visit(ast.parse(path.read_text(encoding="utf-8")), loaded)
    return loaded, deferred


def _node(name: str) -> tuple[str, list[Path]]:
    """A name in the drawing: its dotted module name and its files (all of them for `package/`)."""
    if name.endswith("/"):
        return f"mj_mcp.{name[:-1]}", sorted((PACKAGE / name[:-1]).rglob("*.py"))
    for path in (PACKAGE / f"{name}.py", PACKAGE / "server" / f"{name}.py"):
        if path.is_file():
            relative = path.relative_to(PACKAGE).with_suffix("").as_posix().removesuffix("/__init__")
            return "mj_mcp." + relative.replace("/", "."), [path]
    raise AssertionError(f"the README's dependency drawing names {name!r}, which is not a module")


def _drawn_arrows() -> list[tuple[str, str, str]]:
    """(importer, arrow, imported) for every arrow of the drawing; `a, b ─► c ─► d` is a→c, b→c, c→d."""
    lines: list[str] = []
    for line in _development_blocks()[0].splitlines():
        if lines and lines[-1].endswith(","):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.strip())
    arrows: list[tuple[str, str, str]] = []
    for column in (c for line in lines for c in _COLUMNS.split(line)):
        parts = _ARROW.split(_ASIDE.sub("", column))
        groups = [[name.strip() for name in part.split(",")] for part in parts[::2]]
        for left, arrow, right in zip(groups, parts[1::2], groups[1:], strict=False):
            arrows += [(a, arrow, b) for a in left for b in right]
    return arrows


def test_every_arrow_of_the_dependency_drawing_is_a_real_import() -> None:
    imports = {path: _imports(path) for path in PACKAGE.rglob("*.py")}
    false: list[str] = []
    for importer, arrow, imported in _drawn_arrows():
        target, _ = _node(imported)
        found = [imports[path][arrow == "┈►"] for path in _node(importer)[1]]
        if not any(name == target or name.startswith(target + ".") for names in found for name in names):
            kind = "inside a function" if arrow == "┈►" else "when it is loaded"
            false.append(f"{importer} {arrow} {imported}: no such import {kind}")
    assert not false, "the README's dependency drawing (Development) is wrong:\n" + "\n".join(false)


def test_the_dependency_drawing_shows_every_module() -> None:
    drawn = set(re.findall(r"[\w/]+", _development_blocks()[0]))
    modules = [*PACKAGE.glob("*.py"), *(PACKAGE / "server").glob("*.py")]
    wanted = {f"{p}/" for p in _subpackages()} | {
        path.relative_to(PACKAGE).with_suffix("").as_posix() if path.stem == "__init__" else path.stem
        for path in modules
        if path != PACKAGE / "__init__.py"  # the version, which a few modules read
    }
    missing = sorted(wanted - drawn)
    assert not missing, f"modules the README's dependency drawing (Development) leaves out: {missing}"
    assert len(_drawn_arrows()) > 100  # a guard on the guard: the drawing was found and read
