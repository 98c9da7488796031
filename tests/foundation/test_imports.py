"""The house plan, checked from the source: no import cycle anywhere in ``src/`` (counting
imports inside functions, which only postpone a cycle to the first call), features never
import each other both ways, ``kit/`` imports no feature, no feature module names a
database (every difference is a member of ``kit.dialect.Dialect``; only ``kit/dialect.py``,
``db.py``, ``sqlite.py``, the migrations and ``models.py``'s column types may), and within
a feature only its repository asks the dialect object (services and jobs call the
repository).

The graph is read with ``ast`` (nothing is imported), so a cycle is caught even in a
module no test imports."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

from ..conftest import ROOT

SRC = ROOT / "src"
PACKAGE = "discount_codes"
#: The feature folders: each may build on others, never in both directions.
FEATURES = ("campaign", "claim", "codes", "console", "outbox", "redemption", "webhook")

Graph = dict[str, set[str]]


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``module`` imports, anywhere in its body. ``from a
    import b`` counts as ``a.b`` when that is a module, else as ``a``; importing ``a.b.c``
    also runs ``a`` and ``a.b``, so those count too."""
    found: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                origin = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
            targets = [t if t in known else origin for t in targets]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in known and name != module:
                    found.add(name)
    return found


def import_graph(src: Path, package: str) -> Graph:
    files = sorted((src / package).rglob("*.py"))
    known = {module_name(f, src) for f in files}
    graph: Graph = {}
    for f in files:
        name = module_name(f, src)
        tree = ast.parse(f.read_text(), filename=str(f))
        graph[name] = imported_modules(tree, name, f.name == "__init__.py", known)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def a_path(graph: Graph, start: str, goal: str) -> list[str]:
    """One import chain from ``start`` to ``goal`` (to name a cycle's edges)."""
    seen = {start}
    queue = [[start]]
    while queue:
        path = queue.pop(0)
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                queue.append([*path, nxt])
    return []


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None  # discount_codes.<folder>.<module>


def folder_edges(graph: Graph) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importing folder, imported folder) -> the module imports behind it."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for source, targets in graph.items():
        for target in targets:
            a, b = folder(source), folder(target)
            if a and b and a != b:
                edges.setdefault((a, b), []).append((source, target))
    return edges


def mutual(edges: dict[tuple[str, str], list[tuple[str, str]]], names: Iterable[str]) -> list[str]:
    wanted = set(names)
    return [
        f"{a} <-> {b}: {edges[a, b][0][0]} -> {edges[a, b][0][1]}, "
        f"{edges[b, a][0][0]} -> {edges[b, a][0][1]}"
        for a, b in sorted(edges)
        if a < b and (b, a) in edges and a in wanted and b in wanted
    ]


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(SRC, PACKAGE)


def test_the_graph_sees_every_module_and_local_imports(graph: Graph) -> None:
    assert len(graph) == len(list((SRC / PACKAGE).rglob("*.py")))
    # worker.py gathers the features' jobs; cli.py imports the service layer in functions.
    assert "discount_codes.codes.jobs" in graph["discount_codes.worker"]
    assert "discount_codes.worker" in graph["discount_codes.cli"]


def test_no_import_cycle_in_src(graph: Graph) -> None:
    found = cycles(graph)
    described = [" -> ".join(a_path(graph, c[0], c[0]) or c) for c in found]
    assert not found, "import cycles:\n" + "\n".join(described)


def test_features_never_import_each_other_both_ways(graph: Graph) -> None:
    edges = folder_edges(graph)
    assert not mutual(edges, FEATURES), "features importing each other:\n" + "\n".join(
        mutual(edges, FEATURES)
    )
    assert ("outbox", "webhook") not in edges or ("webhook", "outbox") not in edges


def test_kit_imports_no_feature(graph: Graph) -> None:
    bad = sorted(
        f"{s} -> {t}"
        for (a, b), pairs in folder_edges(graph).items()
        if a == "kit"
        for s, t in pairs
        if b in FEATURES
    )
    assert not bad, "kit/ is below the features:\n" + "\n".join(bad)


def test_only_the_demo_runs_the_shipped_receiver(graph: Graph) -> None:
    """``webhook/receiver.py`` is the demo's brand-side tool: the service never imports it."""
    importers = {m for m, targets in graph.items() if "discount_codes.webhook.receiver" in targets}
    assert importers <= {"discount_codes.demo", "discount_codes.demo_story"}, importers


def dialect_mentions(tree: ast.AST) -> list[str]:
    """Where code decides on the database: a ``dialect`` / ``is_sqlite`` / ``is_postgres``
    name or attribute, ``Dialect``, a dialect's name as a string, sqlstate 23505, an
    import from ``sqlalchemy.dialects``. Prose (docstrings) does not count."""
    names = {"dialect", "Dialect", "is_sqlite", "is_postgres"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in names:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in {"postgresql", "sqlite", "23505"} or node.value.startswith(
                ("postgresql+", "sqlite+")
            ):
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").startswith("sqlalchemy.dialects"):
                found.append(f"line {node.lineno}: from {node.module}")
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name in names]
    return found


def database_names(tree: ast.AST) -> list[str]:
    """Where code names the database it runs on instead of asking the dialect object for a
    capability: ``is_sqlite`` / ``is_postgres``, ``Dialect.POSTGRESQL`` / ``SQLITE``, a
    dialect's ``.name``, a dialect's name as a string, sqlstate 23505, an import from
    ``sqlalchemy.dialects``. Prose (docstrings) does not count."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in {"is_sqlite", "is_postgres"}:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute):
            if node.attr in {"is_sqlite", "is_postgres", "POSTGRESQL", "SQLITE"}:
                found.append(f"line {node.lineno}: .{node.attr}")
            elif node.attr == "name" and "dialect" in ast.unparse(node.value).lower():
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in {"postgresql", "sqlite", "23505"} or node.value.startswith(
                ("postgresql+", "sqlite+")
            ):
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sqlalchemy.dialects"
        ):
            found.append(f"line {node.lineno}: from {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("sqlalchemy.dialects")
            ]
    return found


def feature_modules() -> list[tuple[str, ast.AST]]:
    return [
        (module_name(path, SRC), ast.parse(path.read_text()))
        for path in sorted((SRC / PACKAGE).rglob("*.py"))
        if folder(module_name(path, SRC)) in FEATURES
    ]


def test_no_feature_module_names_a_database() -> None:
    """No exception, repositories included: a difference is a member of ``Dialect``."""
    offenders = {name: found for name, tree in feature_modules() if (found := database_names(tree))}
    assert not offenders, f"feature modules naming a database: {offenders}"


def test_only_repositories_ask_the_dialect() -> None:
    offenders = {
        name: found
        for name, tree in feature_modules()
        # A repository split by concern is a package, or modules named ``*_repository``.
        if not (name.endswith("repository") or ".repository." in name)
        and (found := dialect_mentions(tree))
    }
    assert not offenders, f"services and jobs asking the dialect: {offenders}"


# --- the checks themselves fail on a bad tree ----------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, body in files.items():
        path = tmp_path / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return tmp_path


def test_a_cycle_through_a_function_local_import_is_found(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "worker.py": "def jobs():\n    from pkg.codes.jobs import run\n    return [run]\n",
            "codes/__init__.py": "",
            "codes/jobs.py": "from pkg.worker import jobs\n",
            "fine.py": "import pkg.codes\n",
        },
    )
    found = cycles(import_graph(src, "pkg"))
    assert found == [["pkg.codes.jobs", "pkg.worker"]]


def test_a_relative_import_and_a_feature_pair_are_found(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "outbox/__init__.py": "",
            "outbox/relay.py": "from ..webhook import signing\n",
            "webhook/__init__.py": "",
            "webhook/signing.py": "X = 1\n",
            "webhook/dispatcher.py": "from pkg.outbox.relay import run\n",
        },
    )
    graph = import_graph(src, "pkg")
    assert "pkg.webhook.signing" in graph["pkg.outbox.relay"]
    assert cycles(graph) == []  # no module cycle, yet the two folders lean on each other
    assert mutual(folder_edges(graph), ["outbox", "webhook"]) == [
        "outbox <-> webhook: pkg.outbox.relay -> pkg.webhook.signing, "
        "pkg.webhook.dispatcher -> pkg.outbox.relay"
    ]


def test_the_idioms_of_naming_a_database_are_seen() -> None:
    source = """
\"\"\"On PostgreSQL, COPY; on SQLite, executemany (prose is fine).\"\"\"
from sqlalchemy.dialects import postgresql
import sqlalchemy.dialects.sqlite
a = conn.dialect.name == "postgresql"
b = db.is_sqlite
c = is_postgres(conn)
d = url.startswith("sqlite+aiosqlite")
e = getattr(exc, "sqlstate", None) == "23505"
f = db.dialect is Dialect.SQLITE
g = Dialect.of(conn).copies and db.dialect.insert(table)
h = telemetry.db_span(db.dialect.value, statement)
"""
    names = database_names(ast.parse(source))
    assert sorted(m.split(": ", 1)[1] for m in names) == sorted(
        [
            "from sqlalchemy.dialects",
            "import sqlalchemy.dialects.sqlite",
            "conn.dialect.name",
            "'postgresql'",
            ".is_sqlite",
            "is_postgres",
            "'sqlite+aiosqlite'",
            "'23505'",
            ".SQLITE",
        ]
    )


def test_the_idioms_of_asking_the_dialect_are_seen() -> None:
    source = """
\"\"\"On PostgreSQL, COPY; on SQLite, executemany (prose is fine).\"\"\"
from sqlalchemy.dialects import postgresql
from discount_codes.kit.dialect import Dialect, bucket_start
a = conn.dialect.name == "postgresql"
b = db.is_sqlite
c = is_postgres(conn)
d = url.startswith("sqlite+aiosqlite")
e = getattr(exc, "sqlstate", None) == "23505"
f = bucket_start("hour", column)
"""
    mentions = dialect_mentions(ast.parse(source))
    assert sorted(m.split(": ", 1)[1] for m in mentions) == sorted(
        [
            "from sqlalchemy.dialects",
            "import Dialect",
            ".dialect",
            "'postgresql'",
            ".is_sqlite",
            "is_postgres",
            "'sqlite+aiosqlite'",
            "'23505'",
        ]
    )
