"""Every Mermaid diagram in docs/*.md renders in headless Chromium with the pinned mermaid
package, and docs/img/ holds an up-to-date image of each (docs/tools/render.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ..conftest import REQUIRE_SERVICES, ROOT

RENDER = ROOT / "docs" / "tools" / "render.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_render", RENDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


render = _load()


def _need_browser_and_npm() -> None:
    missing = []
    if not Path(render.CHROMIUM).exists():
        missing.append("Debian's chromium (.ci/run installs it)")
    if not render.MERMAID_JS.exists() and shutil.which("npm") is None:
        missing.append("npm (to install mermaid from docs/tools/package-lock.json)")
    if missing:
        message = "missing: " + ", ".join(missing)
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def test_every_diagram_is_named_and_its_image_is_current() -> None:
    diagrams = render.find_diagrams()
    names = {d.name for d in diagrams}
    assert {
        "architecture",
        "data-model",
        "generate-codes",
        "claim-code",
        "notify-brand",
        "redeem-code",
    } <= names
    stale = [
        f"{d.where} ({d.name})"
        for d in diagrams
        if render.recorded_hash(render.IMG / f"{d.name}.svg") != d.sha256
        or not (render.IMG / f"{d.name}.png").exists()
    ]
    assert not stale, (
        "images out of date, run `.venv/bin/python docs/tools/render.py`: " + ", ".join(stale)
    )
    linked = (ROOT / "docs" / "design.md").read_text()
    for d in diagrams:
        if d.path.name == "design.md":
            assert f"img/{d.name}.svg" in linked, f"design.md does not link img/{d.name}.svg"


@pytest.mark.browser
def test_every_mermaid_block_renders() -> None:
    _need_browser_and_npm()
    diagrams = render.find_diagrams()
    rendered = render.render(diagrams)  # raises DiagramError naming file:line on a syntax error
    assert [r.diagram.name for r in rendered] == [d.name for d in diagrams]
    for r in rendered:
        assert r.svg.startswith("<svg") and "</svg>" in r.svg, r.diagram.where
        assert "Syntax error" not in r.svg, r.diagram.where
        assert r.png[:8] == b"\x89PNG\r\n\x1a\n" and len(r.png) > 5_000, r.diagram.where


@pytest.mark.browser
def test_a_syntax_error_fails_with_its_place(tmp_path: Path) -> None:
    _need_browser_and_npm()
    doc = tmp_path / "broken.md"
    doc.write_text(
        "# Broken\n\n<!-- diagram: broken -->\n```mermaid\nsequenceDiagram\n"
        "    A->>B: fine\n    A-->>>: not an arrow\n```\n"
    )
    diagrams = render.find_diagrams([doc])
    with pytest.raises(render.DiagramError, match=r"broken\.md:4: diagram 'broken'"):
        render.render(diagrams)


def test_an_unnamed_diagram_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "unnamed.md"
    doc.write_text("# Unnamed\n\n```mermaid\nflowchart LR\n  a --> b\n```\n")
    with pytest.raises(render.DiagramError, match="diagram: NAME"):
        render.find_diagrams([doc])
