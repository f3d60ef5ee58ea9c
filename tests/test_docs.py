"""The repository's own text points only at things the repository has.

A clone must be enough to follow every reference: each repository file the code and docs name
exists, nothing points at documents kept outside the repository, and each citation of
`docs/upstream-api.md` names the file and a section heading that the file has.
"""

from __future__ import annotations

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
