"""The README's one example runs as written against a live server, and its links resolve."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT, ServerFactory
from . import walkthrough

README = ROOT / "README.md"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_readme_example_gives_a_shopper_a_code(
    live_server: ServerFactory, data_dir: Path, tmp_path: Path
) -> None:
    text = README.read_text()
    example = text[text.index("## One example") :]
    code = next(b for b in walkthrough.blocks(example) if b.lang == "bash").text
    db = tmp_path / "readme.db"
    server = live_server(DISCOUNT_CODES_DATABASE_URL=f"sqlite+aiosqlite:///{db}")
    script = "set -euo pipefail\n" + code.replace("http://127.0.0.1:8000", server.url)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,  # the example calls .venv/bin/discount-codes
        env=walkthrough.environment(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # It prints the finished batch, then the shopper's claim (curl -s adds no newline).
    answers, rest, decoder = [], result.stdout.strip(), json.JSONDecoder()
    while rest:
        value, end = decoder.raw_decode(rest)
        answers.append(value)
        rest = rest[end:].strip()
    batch, claim = answers
    assert batch["status"] == "completed" and batch["generated"] == 1000, batch
    assert claim["shared_contact"] == {"email": "ann@example.com", "name": "Ann"}, claim
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", claim["code"]), claim


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_links_in_the_readme_and_docs_resolve() -> None:
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = doc.parent / target if target else doc
            where = f"{doc.relative_to(ROOT)} links to {target}#{anchor}"
            assert path.exists(), where
            if anchor and path.suffix == ".md":
                assert anchor in _anchors(path.read_text()), where
