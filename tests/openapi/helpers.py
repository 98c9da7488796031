"""What the client-generation tests share: the app's document and the blocks of docs/api.md
that a brand developer copies (the generator's settings, the scripts)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from discount_codes.app import create_app
from discount_codes.config import Settings

from ..conftest import ROOT
from ..docs import walkthrough

API_MD = ROOT / "docs" / "api.md"
PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document() -> dict[str, Any]:
    """The app's own OpenAPI document, as ``/openapi.json`` serves it."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(
            Settings(
                dev=True,
                data_dir=Path(data_dir),
                database_url="sqlite+aiosqlite:///unused.db",
                log_format="console",
            )
        )
        return app.openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation: (METHOD, path template, operation object)."""
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def docs_file(name: str) -> str:
    """The text of the ``file=NAME`` block of docs/api.md."""
    return walkthrough.parse(API_MD.read_text()).files[name].text


def docs_line(lang: str, starting: str) -> str:
    """The one line of a ``lang`` block of docs/api.md that starts with ``starting``."""
    lines = [
        line.strip()
        for block in walkthrough.blocks(API_MD.read_text())
        if block.lang == lang
        for line in block.text.splitlines()
        if line.strip().startswith(starting)
    ]
    assert len(lines) == 1, f"docs/api.md: {len(lines)} lines start with {starting!r}"
    return lines[0]
