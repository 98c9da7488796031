"""Render every Mermaid diagram of docs/*.md in headless Chromium, and write docs/img/.

    .venv/bin/python docs/tools/render.py           # regenerate docs/img/<name>.svg and .png
    .venv/bin/python docs/tools/render.py --check   # render only: fail on a syntax error

A diagram is a ```mermaid block with its name on the line before it:

    <!-- diagram: architecture -->
    ```mermaid
    flowchart LR
      ...
    ```

The renderer is the npm package ``mermaid`` (pinned in docs/tools/package-lock.json,
installed with ``npm ci`` the first time), loaded into Debian's Chromium through
Playwright: no browser download, no CDN. Labels are drawn as SVG text, not HTML, so the
SVGs show in any viewer. Each SVG starts with a comment holding the SHA-256 of its
Mermaid source, so a test can tell an image that no longer matches its diagram.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
DOCS = TOOLS.parent
IMG = DOCS / "img"
MERMAID_JS = TOOLS / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
_NAME = re.compile(r"^<!--\s*diagram:\s*([a-z0-9][a-z0-9-]*)\s*-->$")
_HASH = re.compile(r"source sha256 ([0-9a-f]{64})")
MERMAID_CONFIG = {
    "startOnLoad": False,
    "securityLevel": "strict",
    "theme": "default",
    "htmlLabels": False,
    # Natural size, not "100% of the container": the images are viewed on their own.
    "flowchart": {"htmlLabels": False, "useMaxWidth": False},
    "sequence": {"useMaxWidth": False},
    "er": {"useMaxWidth": False},
    "state": {"useMaxWidth": False},
}


class DiagramError(Exception):
    """A diagram that is unnamed, named twice, or that Mermaid cannot parse."""


@dataclass(frozen=True)
class Diagram:
    name: str
    source: str
    path: Path
    line: int  # of the opening fence, 1-based

    @property
    def where(self) -> str:
        path = (
            self.path.relative_to(DOCS.parent)
            if self.path.is_relative_to(DOCS.parent)
            else self.path
        )
        return f"{path}:{self.line}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()


@dataclass(frozen=True)
class Rendered:
    diagram: Diagram
    svg: str
    png: bytes


def find_diagrams(paths: Sequence[Path] | None = None) -> list[Diagram]:
    """Every ```mermaid block of the given Markdown files (default: docs/*.md), in order."""
    found: list[Diagram] = []
    for path in paths if paths is not None else sorted(DOCS.glob("*.md")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() != "```mermaid":
                i += 1
                continue
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise DiagramError(f"{path}:{start + 1}: the mermaid block is never closed")
            previous = next(
                (lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), ""
            )
            named = _NAME.match(previous)
            diagram = Diagram(
                named.group(1) if named else "", "\n".join(body) + "\n", path, start + 1
            )
            if not named:
                raise DiagramError(
                    f"{diagram.where}: put <!-- diagram: NAME --> on the line before"
                )
            found.append(diagram)
            i += 1
    seen: dict[str, Diagram] = {}
    for d in found:
        if d.name in seen:
            raise DiagramError(
                f"{d.where}: diagram name {d.name!r} is used at {seen[d.name].where}"
            )
        seen[d.name] = d
    return found


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_mermaid() -> Path:
    """The mermaid bundle, installed from the lock file with ``npm ci`` when missing
    (under a file lock, so parallel test runs do not install over each other)."""
    if MERMAID_JS.exists():
        return MERMAID_JS
    npm = shutil.which("npm")
    if npm is None:
        raise DiagramError("npm is needed once to install mermaid into docs/tools/node_modules")
    with _lock(TOOLS / ".npm-install.lock"):
        if not MERMAID_JS.exists():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=TOOLS,
                check=True,
                timeout=600,
            )
    if not MERMAID_JS.exists():
        raise DiagramError(f"npm ci did not install {MERMAID_JS}")
    return MERMAID_JS


_RENDER_JS = """
async ([id, source]) => {
  await mermaid.parse(source);  // throws with Mermaid's message on a syntax error
  const { svg } = await mermaid.render(id, source);
  const holder = document.getElementById("holder");
  holder.innerHTML = svg;
  return svg;
}
"""


def render(diagrams: Sequence[Diagram]) -> list[Rendered]:
    """Render each diagram in one headless Chromium; raise DiagramError on the first failure."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise DiagramError(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    bundle = ensure_mermaid()
    out: list[Rendered] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 2400, "height": 1200}, device_scale_factor=2)
            page.set_content(
                '<!doctype html><html><body style="margin:0;background:white">'
                '<div id="holder" style="display:inline-block;padding:16px;background:white">'
                "</div></body></html>"
            )
            page.add_script_tag(path=str(bundle))
            page.evaluate("config => mermaid.initialize(config)", MERMAID_CONFIG)
            for d in diagrams:
                try:
                    svg = page.evaluate(_RENDER_JS, [f"diagram-{d.name}", d.source])
                except PlaywrightError as exc:
                    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
                    message = "\n".join(lines[:6]).removeprefix("Page.evaluate: ")
                    raise DiagramError(f"{d.where}: diagram {d.name!r}: {message}") from None
                png = page.locator("#holder").screenshot(type="png")
                out.append(Rendered(d, svg, png))
        finally:
            browser.close()
    return out


def svg_file(r: Rendered) -> str:
    header = (
        f"<!-- Generated by docs/tools/render.py from {r.diagram.where} "
        f"(diagram {r.diagram.name!r}); source sha256 {r.diagram.sha256}. "
        "Edit the Markdown, then rerun the script. -->\n"
    )
    return header + r.svg + "\n"


def recorded_hash(svg_path: Path) -> str | None:
    """The source hash an image was made from, or None if it has none."""
    if not svg_path.exists():
        return None
    found = _HASH.search(svg_path.read_text()[:1000])
    return found.group(1) if found else None


def write_images(rendered: Sequence[Rendered]) -> list[Path]:
    IMG.mkdir(exist_ok=True)
    written = []
    for r in rendered:
        svg = IMG / f"{r.diagram.name}.svg"
        png = IMG / f"{r.diagram.name}.png"
        svg.write_text(svg_file(r))
        png.write_bytes(r.png)
        written += [svg, png]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="render only, write nothing")
    parser.add_argument("files", nargs="*", type=Path, help="Markdown files (default docs/*.md)")
    args = parser.parse_args(argv)
    try:
        diagrams = find_diagrams([f.resolve() for f in args.files] or None)
        rendered = render(diagrams)
    except DiagramError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(rendered)} diagrams render")
        return 0
    for path in write_images(rendered):
        print(path.relative_to(DOCS.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
