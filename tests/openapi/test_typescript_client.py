"""A brand developer generates TypeScript types from ``/openapi.json`` with
openapi-typescript and calls the API through openapi-fetch: docs/api.md's script
type-checks under ``tsc --strict`` (misuses do not), and compiled, it runs the brand's
walk-through against a live server, the refused claim read as a typed ``Problem``.

The npm packages are pinned in tests/openapi/ts/package-lock.json; ``npm ci`` installs
them there the first time (then offline)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import REQUIRE_SERVICES, ROOT, ServerFactory, Tokens
from .helpers import docs_file, docs_line, document

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
TS = ROOT / "tests" / "openapi" / "ts"
INSTALLED = TS / "node_modules" / ".package-lock.json"
#: The first test also waits for ``npm ci`` (up to 600 s below).
pytestmark = pytest.mark.timeout(900)

#: Misuses of the generated types; each line marked ``// error`` must fail to compile.
WRONG_TS = """\
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });
declare const problem: components["schemas"]["Problem"];
export const slug: number = problem.type; // error: a string
export const where = problem.errors?.[0]?.location; // error: FieldError has loc
const refused = await api.POST("/v1/campaigns/{campaign_id}/claims", {
  params: { path: { campaign_id: "c" } },
  body: { share_contact: "yes" }, // error: a boolean
});
export const field: string | undefined = refused.error?.nonsense; // error: not in Problem
export const ok: string | undefined = refused.error?.detail;
await api.GET("/v1/no-such-route"); // error: no such path
"""


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed() -> bool:
    lock = TS / "package-lock.json"
    return INSTALLED.exists() and INSTALLED.stat().st_mtime >= lock.stat().st_mtime


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/openapi/ts/node_modules, from the lock file (under a file lock: parallel runs)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        message = "node and npm are needed for the TypeScript client check"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with _lock(TS / ".npm-install.lock"):
        if not _installed():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                cwd=TS,
                check=True,
                timeout=600,
            )
    assert _installed(), "npm ci did not install tests/openapi/ts"
    return TS / "node_modules"


def _workdir(tmp_path: Path, node_modules: Path) -> Path:
    """A project folder as a developer has it: package.json, tsconfig, node_modules."""
    work = tmp_path / "ts"
    work.mkdir()
    (work / "node_modules").symlink_to(node_modules)
    (work / "package.json").write_text('{"private": true, "type": "module"}\n')
    shutil.copy(TS / "tsconfig.json", work / "tsconfig.json")
    return work


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{cwd / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _tsc(work: Path, *names: str, emit: bool) -> subprocess.CompletedProcess[str]:
    """One compiler run over ``names`` (its start and the check of the libraries' types
    are most of its time)."""
    config = {"extends": "./tsconfig.json", "files": list(names)}
    (work / f"tsconfig.{names[0]}.json").write_text(json.dumps(config))
    args = ["tsc", "-p", f"tsconfig.{names[0]}.json"]
    return _run(args if emit else [*args, "--noEmit"], work)


def _types_from_file(work: Path) -> None:
    (work / "openapi.json").write_text(json.dumps(document()))
    flags = ["--default-non-nullable", "false", "-o", "schema.d.ts"]
    generated = _run(["openapi-typescript", "openapi.json", *flags], work)
    assert generated.returncode == 0, generated.stdout + generated.stderr


@pytest.mark.slow  # npm's TypeScript compiler: 10-20 s
def test_the_docs_script_type_checks_and_misuses_do_not(tmp_path: Path, node_modules: Path) -> None:
    work = _workdir(tmp_path, node_modules)
    _types_from_file(work)
    (work / "brand.ts").write_text(docs_file("brand.ts"))
    (work / "wrong.ts").write_text(WRONG_TS)
    # Both in one run: brand.ts has no error, and wrong.ts fails on each marked line only.
    checked = _tsc(work, "brand.ts", "wrong.ts", emit=False)
    assert checked.returncode != 0
    failing = {
        (f, int(n)) for f, n in re.findall(r"^(\S+)\((\d+),\d+\): error", checked.stdout, re.M)
    }
    marked = {n for n, line in enumerate(WRONG_TS.splitlines(), 1) if "// error" in line}
    assert failing == {("wrong.ts", n) for n in marked}, checked.stdout + checked.stderr


@SQLITE
def test_the_docs_script_compiled_runs_the_brand_walkthrough_against_a_live_server(
    live_server: ServerFactory, tokens: Tokens, tmp_path: Path, node_modules: Path
) -> None:
    server = live_server(DISCOUNT_CODES_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ts.db'}")
    work = _workdir(tmp_path, node_modules)
    # The generation command exactly as docs/api.md gives it, against the served document.
    command = docs_line("sh", "npx openapi-typescript")
    generated = _run(["bash", "-c", command], work, BASE=server.url)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    (work / "brand.ts").write_text(docs_file("brand.ts"))
    compiled = _tsc(work, "brand.ts", emit=True)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    ran = _run(
        ["node", "out/brand.js"],
        work,
        BASE=server.url,
        BRAND_TOKEN=tokens.token("staff-1", brands=["demo-brand"]),
        SHOPPER_TOKEN=tokens.token("shopper-1", email="ann@example.com", name="Ann Example"),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:4] == [
        "campaign Typed active",
        "batch completed 3",
        "refused 422 /problems/consent-required",
        lines[3],
    ]
    claimed = re.fullmatch(r"claimed ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", lines[3])
    assert claimed, lines
    assert lines[4:] == [f"event discount_code.claimed {claimed.group(1)}"]
