"""``python -m benchmarks.quote [--check]``: the docs' figures, regenerated from the results
file.

docs/design.md (8.3) and README.md quote no measured figure of their own: each carries,
between ``<!-- results:begin -->`` and ``<!-- results:end -->``, the date and command of
the whole run that wrote benchmarks/results/results.json and its targets at a glance
(design.md every target; README the performance targets, the checks that must count 0
only when one is not). A whole run (``python -m benchmarks``) rewrites both blocks itself;
this command does it from the committed results.json, and ``--check`` only says whether
they differ from it (exit 1), as tests/foundation/test_docs_quote_results.py does.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.report import Figure, ScenarioResult

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = ROOT / "benchmarks" / "results" / "results.json"
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
WHOLE_RUN = "python -m benchmarks"


def _every(f: Figure) -> bool:
    return True


def _performance(f: Figure) -> bool:
    """A performance target, or a check that must count 0 and does not."""
    return not report.is_check(f) or f.met is not True


@dataclass(frozen=True)
class Doc:
    path: Path
    keep: Callable[[Figure], bool]


DOCS = (Doc(ROOT / "docs" / "design.md", _every), Doc(ROOT / "README.md", _performance))


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return stamp


def _run_line(meta: dict[str, Any], results_md: str) -> str:
    command = meta.get("command", "?")
    said = f"`make bench` (`{command}`)" if command == WHOLE_RUN else f"`{command}`"
    mode = meta.get("mode", "full")
    return (
        f"Run of {_when(meta.get('started_at', '?'))}, {said}"
        + ("" if mode == "full" else f" (a {mode} run)")
        + f": {meta.get('runs', 1)} runs of every measurement, ours and its reference taking "
        f"turns, on {meta.get('machine', {}).get('cpus', '?')} CPUs. Every figure is the "
        "median of the runs with their range (min-max); every ratio is ours / reference in "
        "the figure's unit, the median of the runs' own ratios. Every table, every run and "
        f"the plots: [benchmarks/results/results.md]({results_md})."
    )


def block(doc: Doc, meta: dict[str, Any], results: list[ScenarioResult]) -> str:
    """The text from ``BEGIN`` to ``END`` inclusive that ``doc`` carries for this run."""
    results_md = os.path.relpath(RESULTS_JSON.with_suffix(".md"), doc.path.parent)
    lines = [
        BEGIN,
        "<!-- Generated from benchmarks/results/results.json by `python -m benchmarks.quote` "
        "(and by every whole run of `python -m benchmarks`): do not edit by hand. -->",
        "",
        _run_line(meta, Path(results_md).as_posix()),
        "",
        "**Every target at a glance**: " + report.tally(results),
        "",
        *report.at_a_glance(results, doc.keep),
    ]
    if doc.keep is not _every:
        hidden = [f for r in results for f in r.figures if f.target is not None and not doc.keep(f)]
        lines += [
            "",
            f"Not shown: {len(hidden)} checks that must count 0 (errors, claims or events "
            "lost, duplicated or unverified, codes handed out twice), all at 0; every "
            "target in one table: [docs/design.md 8.3]"
            f"({Path(os.path.relpath(DOCS[0].path, doc.path.parent)).as_posix()}#83-measured).",
        ]
    lines += ["", END]
    return "\n".join(lines)


def current(text: str, where: str) -> tuple[int, int]:
    """Where the generated block of ``text`` starts and ends (after ``END``)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{where}: expected one {BEGIN} ... {END} block")
    return start, end + len(END)


def rendered(doc: Doc, results_json: Path = RESULTS_JSON) -> tuple[str, str]:
    """The doc's text as it is, and as it would be with its block rendered from the file."""
    meta, results = report.load(results_json)
    text = doc.path.read_text()
    start, end = current(text, str(doc.path))
    return text, text[:start] + block(doc, meta, results) + text[end:]


def refresh(results_json: Path = RESULTS_JSON, docs: tuple[Doc, ...] = DOCS) -> list[Path]:
    """Rewrite every doc's block from ``results_json``; the docs that changed."""
    changed = []
    for doc in docs:
        text, new = rendered(doc, results_json)
        if new != text:
            doc.path.write_text(new)
            changed.append(doc.path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quote",
        description="Regenerate the results blocks of docs/design.md and README.md from "
        "benchmarks/results/results.json.",
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a block differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = [d.path for d in DOCS if len(set(rendered(d))) > 1]
        for path in stale:
            print(f"{path.relative_to(ROOT)}: differs from {RESULTS_JSON.relative_to(ROOT)}")
        return 1 if stale else 0
    for path in refresh():
        print(f"rewrote the results block of {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
