"""benchmarks/bench.py rewrites docs/benchmarks.md from its template, and keeps the sections that
other scripts write there (benchmarks/hosting.py's, between the hosting markers)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench import keep_sections

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- hosting:start -->", "<!-- hosting:end -->"


def filled_template() -> str:
    template = (ROOT / "benchmarks" / "benchmarks_template.md").read_text()
    return template.format(date="now", machine="here", command="bench", table="| t |", notes="- n")


def test_a_bench_run_keeps_the_hosting_section_the_doc_has() -> None:
    filled = filled_template()
    assert START in filled and END in filled  # the template carries the block
    doc = "old\n" + START + "\nmeasured by hosting.py {not a field}\n" + END + "\n"
    kept = keep_sections(doc, filled)
    assert kept.startswith(filled[: filled.index(START)])
    assert kept[kept.index(START) :] == doc[doc.index(START) :]
    without = filled[: filled.index(START)]
    assert keep_sections(doc, without).endswith(doc[doc.index(START) :])  # appended when missing
    assert keep_sections("no sections yet", filled) == filled
