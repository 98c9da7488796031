"""Where a claim's time goes: py-spy on one API process under claims.

``python -m benchmarks.profile_claims [--label before|after] [--seconds 15]``

One ``discount-codes serve`` process in production mode (ES256 tokens from a key made for
the run, ``DISCOUNT_CODES_AUTH_PUBLIC_KEY_FILE``, log level INFO so the access line is
written, to a file) on a fresh PostgreSQL database; wrk with 16 connections of claims, each
by a distinct shopper; ``py-spy record --format raw`` of the process for ``--seconds``
after a 2 s warm-up. Writes ``benchmarks/results/profile-<label>.txt`` (the folded stacks,
``frame;frame;... count``) and the breakdown into ``benchmarks/results/profile.md`` (one
section per label; a new run replaces its own label's section and keeps the others).

Samples are of the busy process only (py-spy leaves out idle threads, so a loop waiting in
epoll is not counted): percentages are of busy time. Each stack goes to the first category
of ``CATEGORIES`` that one of its frames matches, so a token verified inside FastAPI's
dependency resolution counts as token verification, not as routing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.es256 import Es256Tokens
from benchmarks.scenarios import give_codes
from benchmarks.services import RssSampler, Stack, query

RESULTS = Path(__file__).resolve().parent / "results"

# Two kinds of category. ANCHORS: a stack with any frame matching goes there (the first
# that matches, in this order), so a token verified inside FastAPI's dependency resolution
# counts as token verification, not as routing. LEAF: a stack no anchor took goes by its
# innermost frame of a known package (a response written by uvicorn under FastAPI's
# routing is uvicorn's time). Frames look like "function (package/module.py:line)".
# SQLAlchemy's async layer runs its sync code in greenlets: py-spy shows those stacks
# cut at the greenlet (rooted at e.g. "Connection.execute (sqlalchemy/engine/base.py)");
# on the claim path every statement executed is one of the claim's.
ANCHORS: list[tuple[str, str]] = [
    (
        "token verification (PyJWT + ECDSA, claims checks)",
        r"discount_codes/auth\.py|\(jwt/|\(cryptography/",
    ),
    ("metrics (prometheus_client)", r"\(prometheus_client/"),
    (
        "access log line + redaction (structlog, logging, JSON render)",
        r"discount_codes/logs\.py|\(structlog/|\(logging/|RequestContextMiddleware\._observe",
    ),
    (
        "pool pre-ping: BEGIN; ';'; ROLLBACK on every checkout (3 round trips)",
        r"_async_ping|do_ping|_do_ping",
    ),
    ("pool checkout/checkin/reset (without the ping)", r"\(sqlalchemy/pool/"),
    (
        "transaction BEGIN and COMMIT (SQLAlchemy + asyncpg round trips)",
        r"_start_transaction|AsyncSession\.commit|Session\.commit|Transaction\.__commit",
    ),
    (
        "the claim SQL (claim/repository.py statements: SQLAlchemy Core + asyncpg)",
        r"discount_codes/claim/repository\.py|^Connection\.execute \(sqlalchemy/engine/base\.py",
    ),
    (
        "SQLAlchemy session/connection (AsyncSession, connection(), close, greenlet)",
        r"\(sqlalchemy/|\(greenlet/|discount_codes/db\.py",
    ),
]
LEAF: list[tuple[str, str]] = [
    (
        "FastAPI/Starlette routing, dependency resolution, pydantic (in and out)",
        r"\(fastapi/|\(starlette/|\(pydantic|\(anyio/|discount_codes/claim/|"
        r"discount_codes/problems|discount_codes/app\.py",
    ),
    ("the edge (request id, body, admission)", r"discount_codes/edge/"),
    ("uvicorn + httptools (HTTP parsing, writing answers)", r"\(uvicorn/|\(httptools/"),
    ("event loop (uvloop/asyncio callbacks, no Python frame above)", r"\(asyncio/|uvloop"),
]
CATEGORIES = ANCHORS + LEAF
NATIVE = "no Python frame (native code: GC, greenlet switch...)"
# Within a category, where its stacks' innermost frame is (first match; the rest last).
SPLITS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    "the claim SQL": [
        ("asyncpg (driver, protocol, socket writes)", re.compile(r"\(asyncpg/")),
        ("SQLAlchemy Core (compile, execute, rows)", re.compile(r"\(sqlalchemy/")),
        ("claim/repository.py itself and the rest", re.compile(r"")),
    ],
    "FastAPI/Star": [
        ("route matching (nested routers)", re.compile(r"[Mm]atch|_IncludedRouter|Route")),
        ("dependency resolution", re.compile(r"\(fastapi/dependencies/|solve_dep")),
        ("pydantic validation/serialisation", re.compile(r"\(pydantic")),
        ("claim endpoint/service code", re.compile(r"discount_codes/")),
        ("the rest of FastAPI/Starlette/anyio", re.compile(r"")),
    ],
}
_ANCHORS = [(name, re.compile(p)) for name, p in ANCHORS]
_LEAF = [(name, re.compile(p)) for name, p in LEAF]


def classify(frames: list[str]) -> str:
    if not any(frames):
        return NATIVE
    for name, rx in _ANCHORS:
        if any(rx.search(f) for f in frames):
            return name
    for frame in reversed(frames):
        for name, rx in _LEAF:
            if rx.search(frame):
                return name
    return "other"


def parse_raw(text: str) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        head, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks[tuple(head.split(";"))] += int(count)
    return stacks


def breakdown(
    stacks: Counter[tuple[str, ...]],
) -> tuple[Counter[str], Counter[tuple[str, str]], int]:
    by_category: Counter[str] = Counter()
    parts: Counter[tuple[str, str]] = Counter()  # (category, part) by the leaf frame
    for frames, n in stacks.items():
        category = classify(list(frames))
        by_category[category] += n
        leaf = frames[-1] if frames else ""
        split = next((v for k, v in SPLITS.items() if category.startswith(k)), [])
        for part, rx in split:
            if rx.search(leaf):
                parts[(category, part)] += n
                break
    return by_category, parts, sum(stacks.values())


def table(label: str, stacks: Counter[tuple[str, ...]], meta: dict[str, str]) -> str:
    by_category, parts, total = breakdown(stacks)
    lines = [
        f"## {label}",
        "",
        *(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "| where the busy time goes | samples | % of busy time |",
        "| --- | --- | --- |",
    ]
    order = [name for name, _ in CATEGORIES] + [NATIVE, "other"]
    for name in order:
        n = by_category.get(name, 0)
        if n:
            lines.append(f"| {name} | {n:,} | {100 * n / total:.1f}% |")
            for (category, part), m in parts.most_common():
                if category == name:
                    share = f"{100 * m / total:.1f}%"
                    lines.append(f"| &nbsp;&nbsp;of which {part} | {m:,} | {share} |")
    lines.append(f"| **busy samples** | {total:,} | 100% |")
    lines.append("")
    return "\n".join(lines)


def write_section(path: Path, label: str, section: str) -> None:
    """profile.md keeps one section per label; this run's replaces its own."""
    intro = (
        "# Claim path profile\n\n"
        "`python -m benchmarks.profile_claims --label LABEL` (see its docstring): one API "
        "process in production mode (ES256 tokens, access log at INFO), PostgreSQL (or "
        "SQLite where the command says `--database sqlite`), wrk "
        "with 16 connections of claims by distinct shoppers, py-spy for 15 s after a "
        "2 s warm-up. Percentages are of the process's busy samples (idle time in the "
        "event loop is not sampled). A stack counts in the first category (top to "
        "bottom) that one of its frames matches; folded stacks in "
        "`profile-LABEL.txt`.\n\n"
    )
    sections: dict[str, str] = {}
    if path.exists():
        text = path.read_text()
        for part in re.split(r"(?m)^(?=## )", text)[1:]:
            name = part.splitlines()[0].removeprefix("## ").strip()
            sections[name] = part.rstrip() + "\n"
    sections[label] = section.rstrip() + "\n"
    order = sorted(sections, key=lambda k: (k != "before", k))
    path.write_text(intro + "\n".join(sections[k] for k in order))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_claims")
    parser.add_argument("--label", default="before", help="section name (before, after, ...)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--database",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="the store (the label should say which: e.g. --label sqlite-after)",
    )
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -r requirements.lock")
    wrk.available()

    workdir = Path(tempfile.mkdtemp(prefix="dc-profile-"))
    warmup = 2.0
    with RssSampler() as sampler:
        stack = Stack(args.database, workdir / "db", "profile", sampler, workdir / "data")
        try:
            stack.create()
            tokens = Es256Tokens(workdir / "data")
            env = {"DISCOUNT_CODES_LOG_LEVEL": "INFO", **tokens.server_env()}
            api = stack.start_api(1, dev=False, **env)
            brand = Brand(api.url, tokens)
            campaign = brand.campaign("profile")
            give_codes(stack, brand, [campaign], 150_000)
            cursor = wrk.Cursor(tokens.write_lines(workdir / "tokens.txt", 150_000))
            raw_path = workdir / "profile.raw"
            load = subprocess.Popen(
                [
                    *(sys.executable, "-c", _WRK_CHILD, api.url, campaign),
                    *(str(cursor.tokens_file), str(args.connections)),
                    str(warmup + args.seconds + 1),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(warmup)  # a benchmark's warm-up, not a condition being waited for
            started = datetime.now(UTC).isoformat(timespec="seconds")
            load_avg = os.getloadavg()[0]
            server = psutil.Process(api.proc.pid)
            cpu_before = sum(server.cpu_times()[:2])
            subprocess.run(
                [
                    *(py_spy, "record", "--pid", str(api.proc.pid)),
                    *("--duration", str(int(args.seconds)), "--rate", str(args.rate)),
                    *("--format", "raw", "--nolineno", "--output", str(raw_path)),
                ],
                check=True,
                capture_output=True,
            )
            cpu_s = sum(server.cpu_times()[:2]) - cpu_before
            out, _ = load.communicate(timeout=120)
            result = json.loads(out.strip().splitlines()[-1])
            twice = query(
                stack,
                "SELECT count(*) - count(DISTINCT code_id) FROM claims WHERE campaign_id = $1",
                campaign,
            )[0][0]
        finally:
            stack.destroy()
    raw_text = raw_path.read_text()
    stacks = parse_raw(raw_text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"profile-{args.label}.txt").write_text(raw_text)
    meta = {
        "run": f"{started} UTC, load average (1 min) at start {load_avg:.2f}",
        "command": f"`python -m benchmarks.profile_claims --label {args.label}"
        + ("`" if args.database == "postgresql" else f" --database {args.database}`"),
        "load": f"wrk -t2 -c{args.connections}, claims by distinct shoppers (ES256)",
        "claims/s during the run (under py-spy)": f"{result['throughput']:,.0f}",
        "p50 / p99": f"{result['p50_ms']:.1f} ms / {result['p99_ms']:.1f} ms",
        "errors (non-201 + socket)": str(result["errors"]),
        "codes handed out twice": str(twice),
        "server CPU while sampled (user + system)": (
            f"{cpu_s:.1f} s of {args.seconds:g} s, about "
            f"{1000 * cpu_s / max(1.0, result['throughput'] * args.seconds):.2f} ms per claim"
        ),
        "note": "py-spy counts a thread waiting for a CPU as busy: on a loaded machine "
        "(load average above ~4 on 2 cores) system calls (socket writes) weigh more; "
        "compare labels run at similar load",
    }
    write_section(args.out / "profile.md", args.label, table(args.label, stacks, meta))
    print((args.out / "profile.md").read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


# The load runs in a process of its own (wrk itself is C; this only waits for it).
_WRK_CHILD = """
import json, sys
from pathlib import Path
import psutil

from benchmarks import wrk
url, campaign, tokens, connections, seconds = sys.argv[1:]
r = wrk.claims(url, f"/v1/campaigns/{campaign}/claims", wrk.Cursor(Path(tokens)),
               threads=2, connections=int(connections), duration_s=float(seconds))
print(json.dumps(r))
"""


if __name__ == "__main__":
    raise SystemExit(main())
