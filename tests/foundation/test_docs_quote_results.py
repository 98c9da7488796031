"""The docs quote only the results file: the blocks of docs/design.md (8.3) and README.md
are what ``python -m benchmarks.quote`` renders from the committed
benchmarks/results/results.json, so a figure in them cannot drift from the run that
measured it, and a new whole run's figures replace the old ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from benchmarks import quote, report

from ..conftest import ROOT


@pytest.mark.parametrize("doc", quote.DOCS, ids=lambda d: d.path.name)
def test_the_results_block_is_the_one_rendered_from_the_results_file(doc: quote.Doc) -> None:
    text, rendered = quote.rendered(doc)
    assert text == rendered, (
        f"{doc.path.relative_to(ROOT)} quotes figures that are not those of "
        "benchmarks/results/results.json: run `python -m benchmarks.quote`"
    )


def test_design_8_3_quotes_no_figure_outside_the_block() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("### 8.3 Measured") : design.index("### 8.4")]
    start, end = quote.current(section, "design.md 8.3")
    prose = section[:start] + section[end:]
    figures = re.findall(r"\d[\d,.]*\s*(?:x\b|ms\b|µs\b|us\b|/s\b|[a-z]+/s\b|MB\b)", prose)
    assert not figures, f"design.md 8.3 quotes figures outside the generated block: {figures}"


def test_a_new_run_replaces_the_figures_and_leaves_the_prose(tmp_path: Path) -> None:
    payload = json.loads(quote.RESULTS_JSON.read_text())
    payload["meta"]["started_at"] = "2031-01-02T03:04:05+00:00"
    claims = next(s for s in payload["scenarios"] if s["key"] == "claims-ref")
    figure = claims["figures"][0]
    old = report.with_span(figure["value"], figure["unit"], tuple(figure["span"]))
    figure.update(value=4321.0, span=[4300.0, 4400.0])
    results = tmp_path / "results.json"
    results.write_text(json.dumps(payload))
    doc = quote.Doc(tmp_path / "design.md", quote.DOCS[0].keep)
    before = quote.DOCS[0].path.read_text()
    doc.path.write_text(before)

    assert quote.refresh(results, (doc,)) == [doc.path]

    after = doc.path.read_text()
    assert "Run of 2031-01-02 03:04 UTC, `make bench` (`python -m benchmarks`)" in after
    assert "4,321 claims/s (4,300-4,400)" in after and old not in after
    (b0, b1), (a0, a1) = quote.current(before, "before"), quote.current(after, "after")
    assert (before[:b0], before[b1:]) == (after[:a0], after[a1:])
    assert quote.refresh(results, (doc,)) == []  # a second time changes nothing


def test_a_doc_without_its_markers_is_refused_by_name(tmp_path: Path) -> None:
    doc = quote.Doc(tmp_path / "notes.md", quote.DOCS[0].keep)
    doc.path.write_text("# Notes\n\nNo block here.\n")
    with pytest.raises(ValueError, match=r"notes\.md: expected one <!-- results:begin -->"):
        quote.refresh(quote.RESULTS_JSON, (doc,))
    assert doc.path.read_text() == "# Notes\n\nNo block here.\n"
