"""Runs a Markdown walk-through (docs/api.md) as a script and checks what each step printed.

The format, which api.md states in a comment at its top:

- every ```` ```bash ```` block runs, in order, in one bash with ``set -euo pipefail``, so
  variables set in one block are there in the next;
- a block tagged ``output`` (```` ```json output ````, ```` ```http output ````,
  ```` ```text output ````) after a bash block and before the next one is what that bash
  block prints: the JSON document, the ``curl -i`` answer, or the lines;
- a block tagged ``file=NAME`` (```` ```python file=receiver.py ````) is saved as NAME in
  the working folder before the run.

Comparisons allow what differs from run to run (ids, times, codes, secrets, tokens, ports,
durations, cursors) and nothing else: a field added, removed or changed in the API shows
up as a difference.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclass
class Block:
    lang: str
    tags: dict[str, str]
    text: str
    line: int  # of the opening fence, 1-based

    @property
    def is_output(self) -> bool:
        return "output" in self.tags


@dataclass
class Step:
    """A bash block, and what it is documented to print (if anything)."""

    number: int
    code: Block
    expected: Block | None = None
    output: str = ""


@dataclass
class Walkthrough:
    steps: list[Step]
    files: dict[str, Block] = field(default_factory=dict)


def _tags(info: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for word in info.split():
        key, _, value = word.partition("=")
        tags[key] = value
    return tags


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        found.append(
            Block(fence.group(1), _tags(fence.group(2)), "\n".join(body) + "\n", start + 1)
        )
        i += 1
    return found


def parse(markdown: str) -> Walkthrough:
    walk = Walkthrough(steps=[])
    for block in blocks(markdown):
        if "file" in block.tags:
            walk.files[block.tags["file"]] = block
        elif block.is_output:
            if not walk.steps or walk.steps[-1].expected is not None:
                raise ValueError(f"line {block.line}: an output block with no bash block before it")
            walk.steps[-1].expected = block
        elif block.lang == "bash":
            walk.steps.append(Step(len(walk.steps) + 1, block))
    return walk


def script(walk: Walkthrough, out_dir: Path) -> str:
    """One bash script: each block's output goes to ``out_dir/NN.txt``; ``.step`` names the
    block running, for the failure message."""
    parts = ["set -euo pipefail", "shopt -s inherit_errexit"]
    for step in walk.steps:
        parts.append(f"echo {step.number} > {out_dir}/.step")
        parts.append(f"{{\n{step.code.text}}} > {out_dir}/{step.number:02d}.txt 2>&1")
    parts.append(f"echo done > {out_dir}/.step")
    return "\n".join(parts) + "\n"


@dataclass
class Run:
    returncode: int
    failed_step: Step | None


def run(walk: Walkthrough, workdir: Path, env: Mapping[str, str], timeout: float) -> Run:
    """Run the walk-through in ``workdir``; every process it starts is stopped afterwards."""
    out_dir = workdir / ".out"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, block in walk.files.items():
        (workdir / name).write_text(block.text)
    path = workdir / ".walkthrough.sh"
    path.write_text(script(walk, out_dir))
    process = subprocess.Popen(
        ["bash", str(path)],
        cwd=workdir,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: background receivers included
    )
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        returncode = -1
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(5)
    for step in walk.steps:
        out = out_dir / f"{step.number:02d}.txt"
        step.output = out.read_text(errors="replace") if out.exists() else ""
    marker = (out_dir / ".step").read_text().strip() if (out_dir / ".step").exists() else "1"
    failed = None
    if returncode != 0:
        failed = walk.steps[int(marker) - 1] if marker.isdigit() else walk.steps[-1]
    return Run(returncode, failed)


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    """What a reader's shell has: this .venv's ``discount-codes`` and ``python3`` first on
    PATH, and the data folder holding the dev key the server trusts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOUNT_CODES_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DISCOUNT_CODES_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


# --- comparing outputs -----------------------------------------------------------------------

_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "<token>"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "<secret>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (
        re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"),
        "<time>",
    ),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    # A generated code as shown: optional prefix, then groups of four Crockford symbols.
    (
        re.compile(
            r"(?<![A-Za-z0-9-])(?:[A-Z0-9]{1,12}-)?(?:[0-9A-Z]{4}-){1,5}[0-9A-Z]{1,4}(?![A-Za-z0-9-])"
        ),
        "<code>",
    ),
]
_VOLATILE_KEYS = {"duration_ms", "next_cursor"}


def normalise_text(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text


def normalise(value: Any, key: str | None = None) -> Any:
    if key in _VOLATILE_KEYS and value is not None:
        return f"<{key}>"
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return normalise_text(value)
    return value


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: str


def parse_http(text: str) -> HttpAnswer:
    text = text.replace("\r\n", "\n").lstrip()
    head, _, body = text.partition("\n\n")
    lines = head.splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {text[:200]!r}")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpAnswer(status, headers, body.strip())


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what} is not JSON ({exc}):\n{text}") from None


def differences(expected: Block, actual: str) -> list[str]:
    """What differs between a documented output and what the step printed (empty: same)."""
    kind = expected.lang
    if kind == "json":
        want = normalise(_json(expected.text, "the documented output"))
        got = normalise(_json(actual.strip(), "the output"))
        return [] if want == got else [_diff_json(want, got)]
    if kind == "http":
        want_http, got_http = parse_http(expected.text), parse_http(actual)
        problems = []
        if want_http.status != got_http.status:
            problems.append(f"status {got_http.status}, documented {want_http.status}")
        for name, value in want_http.headers.items():
            got_value = got_http.headers.get(name)
            if got_value is None:
                problems.append(f"no {name} header")
            elif normalise_text(got_value) != normalise_text(value):
                problems.append(f"{name}: {got_value!r}, documented {value!r}")
        if want_http.body or got_http.body:
            want = normalise(_json(want_http.body, "the documented body"))
            got = normalise(_json(got_http.body, "the body"))
            if want != got:
                problems.append(_diff_json(want, got))
        return problems
    want_lines = [normalise_text(x.rstrip()) for x in expected.text.strip().splitlines()]
    got_lines = [normalise_text(x.rstrip()) for x in actual.strip().splitlines()]
    if want_lines == got_lines:
        return []
    return [
        "lines differ:\n--- documented\n"
        + "\n".join(want_lines)
        + "\n--- printed\n"
        + "\n".join(got_lines)
    ]


def _diff_json(want: Any, got: Any) -> str:
    return (
        "JSON differs (after normalising ids, times, codes, secrets):\n--- documented\n"
        + json.dumps(want, indent=2, sort_keys=True)
        + "\n--- printed\n"
        + json.dumps(got, indent=2, sort_keys=True)
    )
