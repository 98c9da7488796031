"""The suite's own layout, checked from the source: no module under ``tests/`` imports a
test module. Importing one runs its module body a second time under another name and
couples two test files, so a helper moved or renamed in one breaks the other; what
several modules share lives in a ``helpers.py`` (functions) or a ``conftest.py``
(fixtures). Read with ``ast``, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

from ..conftest import ROOT

TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, source: str) -> set[str]:
    """Every dotted name the module imports, anywhere in its body, made absolute: ``from
    .a import b`` gives both ``pkg.a`` and ``pkg.a.b``, since ``b`` may be a module."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def all_test_modules() -> set[str]:
    """Every test module under ``tests/``, by its dotted name."""
    return {module_name(p) for p in TESTS.rglob("test_*.py")}


def test_no_module_under_tests_imports_a_test_module() -> None:
    tests = all_test_modules()
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        hits = sorted(imported_names(path, path.read_text()) & tests)
        if hits:
            offenders[str(path.relative_to(ROOT))] = hits
    assert not offenders, (
        f"test modules imported (move what they share to helpers.py or conftest.py): {offenders}"
    )


def test_the_check_sees_relative_absolute_and_nested_imports() -> None:
    """The check above passes on an empty finding, so it is shown to find each form, and
    to let helpers and conftest through."""
    here = TESTS / "console" / "test_till_browser.py"
    source = (
        "from .test_console_browser import accept\n"
        "from . import test_console_round_2\n"
        "from ..webhook.test_delivery import x\n"
        "import tests.claim.test_claim_route\n"
        "def f():\n"
        "    from tests.outbox import test_feed\n"
        "from .helpers import watched\n"
        "from ..conftest import poll\n"
        "from .conftest import sign_in\n"
    )
    assert imported_names(here, source) & all_test_modules() == {
        "tests.console.test_console_browser",
        "tests.console.test_console_round_2",
        "tests.webhook.test_delivery",
        "tests.claim.test_claim_route",
        "tests.outbox.test_feed",
    }
