"""``python -m benchmarks [--runs N] [--seconds S] [--quick] [--only SCENARIO ...]``: start
the services, run the scenarios, write benchmarks/results/results.md and results.json (and
PNG plots).

Every measurement runs ``--runs`` times (3 by default), ours and its reference taking
turns, and every figure is the median with its range. A whole run (no ``--only``, no
``--quick``) replaces benchmarks/results/ whole, so its files carry one date, and rewrites
the blocks of docs/design.md and README.md that quote them (``benchmarks.quote``); a
partial or quick run writes elsewhere (``results/partial``, ``results/quick``) and never
mixes into them.

A scenario that cannot run (a route missing, a service failing) is recorded as
``not run: <why>`` or ``failed: <why>``; the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import quote, report
from benchmarks.api import Tokens
from benchmarks.report import ScenarioResult
from benchmarks.services import NotRun, RssSampler, Stack

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Config:
    quick: bool
    generate_pg: int
    generate_sqlite: int
    raw_repeats: int
    claim_clients: tuple[int, ...]
    claim_processes: tuple[int, ...]
    claim_warmup_s: float
    claim_duration_s: float
    claim_codes: int  # per campaign, through the API
    raw_claim_codes_pg: int
    raw_claim_codes_sqlite: int
    webhook_rate: float
    webhook_duration_s: float
    delivery_events: int
    #: Deliveries a run of the deliveries scenario sends at least (more events where there
    #: are fewer endpoints): its rate is of seconds of sending, not of a start-up.
    delivery_sent: int
    delivery_setups: tuple[tuple[int, int], ...]  # (endpoints, workers)
    relay_events: int
    runs: int = 3
    #: Seconds of the open-loop overload (twice the capacity offered).
    open_duration_s: float = 30.0
    #: Issue 23 (isolation between brands): seconds of brand A's flood and of the slow
    #: endpoint's claims; the codes of each of brand A's 3 batches and of brand B's one.
    isolation_flood_s: float = 15.0
    isolation_hooks_s: float = 10.0
    isolation_big: int = 300_000
    isolation_small: int = 20_000


FULL = Config(
    quick=False,
    generate_pg=1_000_000,
    generate_sqlite=1_000_000,
    raw_repeats=2,
    claim_clients=(1, 8, 32, 64),
    claim_processes=(1, 2),
    claim_warmup_s=2.0,
    claim_duration_s=10.0,
    claim_codes=30_000,
    raw_claim_codes_pg=50_000,
    raw_claim_codes_sqlite=200_000,
    webhook_rate=200,
    webhook_duration_s=20,
    delivery_events=2000,
    delivery_sent=10_000,
    delivery_setups=((1, 1), (1, 2), (8, 1), (8, 2)),
    relay_events=20_000,
)
QUICK = Config(
    quick=True,
    generate_pg=100_000,
    generate_sqlite=100_000,
    raw_repeats=1,
    claim_clients=(64,),
    claim_processes=(1, 2),
    claim_warmup_s=0.5,
    claim_duration_s=2.0,
    claim_codes=5_000,
    raw_claim_codes_pg=12_000,
    raw_claim_codes_sqlite=40_000,
    webhook_rate=200,
    webhook_duration_s=3,
    delivery_events=200,
    delivery_sent=400,
    delivery_setups=((1, 1), (1, 2)),
    relay_events=3000,
    open_duration_s=5.0,
    isolation_flood_s=5.0,
    isolation_hooks_s=3.0,
    isolation_big=30_000,
    isolation_small=12_000,
)


@dataclass
class Run:
    """What the scenarios of one run share: settings, a work folder, the data folder (one
    dev signing key for every server), tokens, a memory sampler, and the stacks to stop."""

    cfg: Config
    workdir: Path
    out_dir: Path
    sampler: RssSampler
    tokens: Tokens
    stacks: list[Stack] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)

    def stack(self, backend: str, label: str) -> Stack:
        stack = Stack(
            backend=backend,
            workdir=self.workdir / label,
            label=label,
            sampler=self.sampler,
            data_dir=self.workdir / "data",
        )
        self.stacks.append(stack)
        return stack.create()

    def drop(self, stack: Stack) -> None:
        stack.destroy()
        if stack in self.stacks:
            self.stacks.remove(stack)

    def tokens_file(self, n: int) -> str:
        """A file of ``n`` distinct shoppers' tokens for the load generators."""
        path = self.workdir / f"tokens-{n}.json"
        if not path.exists():
            self.tokens.write(path, n)
        return str(path)

    def close(self) -> None:
        for stack in reversed(self.stacks):
            stack.destroy()
        self.stacks.clear()


Scenario = Callable[[Run, ScenarioResult], None]


def scenarios() -> dict[str, tuple[str, Scenario]]:
    from benchmarks.scenarios import (
        claims_ref,
        deliveries,
        export,
        generation,
        isolation,
        isolation_work,
        overload,
        redemptions,
        webhooks,
    )

    return {
        "generation-pg": ("1. Code generation through the API, PostgreSQL", generation.pg),
        "generation-sqlite": ("1b. Code generation through the API, SQLite", generation.sqlite),
        "export": ("2. CSV export of the generated codes, PostgreSQL", export.pg),
        "claims-ref": (
            "3. Claims beside fair reference apps (wrk, ES256, one round trip, same pool)",
            claims_ref.scenario,
        ),
        "claims-open": (
            "3d. Claims offered open loop at twice the capacity (shedding), PostgreSQL",
            overload.scenario,
        ),
        "webhook-latency": ("4. Claim-to-webhook latency, PostgreSQL", webhooks.latency),
        "deliveries": ("5. Webhook deliveries per second, PostgreSQL", deliveries.deliveries),
        "redemptions-pg": ("6. Redemptions through HTTP, PostgreSQL", redemptions.pg),
        "relay": ("7. Broker relay, PostgreSQL to RabbitMQ", deliveries.relay),
        "isolation-flood-pg": (
            "8. Isolation: brand A floods, brand B's shoppers at 20/s, PostgreSQL, 2 processes",
            isolation.flood_pg,
        ),
        "isolation-flood-sqlite": (
            "8b. Isolation: brand A floods, brand B's shoppers at 20/s, SQLite, 1 process",
            isolation.flood_sqlite,
        ),
        "isolation-webhooks": (
            "8c. Isolation: brand A's endpoint answers after 3 s, brand B's webhooks, PostgreSQL",
            isolation_work.webhooks,
        ),
        "isolation-generation": (
            "8d. Isolation: brand B's batch behind brand A's three big ones, PostgreSQL",
            isolation_work.generation,
        ),
    }


def run_one(run: Run, key: str, title: str, fn: Scenario) -> ScenarioResult:
    res = ScenarioResult(key, title)
    started = time.monotonic()
    print(f"[bench] {key}: running", flush=True)
    try:
        fn(run, res)
    except NotRun as exc:
        res.status = f"not run: {exc}"
    except Exception as exc:
        res.status = f"failed: {type(exc).__name__}: {exc}"
        res.details["traceback"] = traceback.format_exc()
    res.elapsed_s = time.monotonic() - started
    print(f"[bench] {key}: {res.status} ({res.elapsed_s:.0f} s)", flush=True)
    for f in res.figures:
        ratio = f" ratio {f.ratio:.2f}x" if f.ratio is not None else ""
        met = "" if f.met is None else (" [met]" if f.met else " [NOT MET]")
        value = report.with_span(f.value, f.unit, f.span)
        print(f"    {f.name}: {value}{ratio}{met}", flush=True)
    return res


def select(all_keys: list[str], only: list[str]) -> list[str]:
    if not only:
        return all_keys
    wanted = [
        k for k in all_keys if any(k == o or k.startswith(o + "-") or k.startswith(o) for o in only)
    ]
    unknown = [o for o in only if not any(k.startswith(o) for k in all_keys)]
    if unknown:
        raise SystemExit(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(all_keys)}"
        )
    return wanted


#: What a whole run writes; removed first so that no file of an earlier day stays beside it.
_OUTPUTS = ("results.md", "results.json", "*.png")


def _clear(out: Path) -> None:
    for pattern in _OUTPUTS:
        for stale in out.glob(pattern):
            if not stale.name.startswith("soak"):
                stale.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the benchmarks beside their fair references; see benchmarks/README.md.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller figures, a smoke run")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs of every measurement (default 3; median)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="measured seconds of every timed run (default 10; open loop 30)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help="run only this scenario (or prefix: generation, claims); repeatable",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where results go (default benchmarks/results for a whole run; "
        "benchmarks/results/quick with --quick, benchmarks/results/partial with --only or "
        "--seconds, so neither mixes into the whole run's files)",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and SQLite files")
    args = parser.parse_args(argv)

    table = scenarios()
    keys = select(list(table), args.only)
    cfg = QUICK if args.quick else FULL
    if args.runs is not None:
        cfg = dataclasses.replace(cfg, runs=max(1, args.runs))
    elif cfg.quick:
        cfg = dataclasses.replace(cfg, runs=1)
    if args.seconds is not None:
        s = max(1.0, args.seconds)
        cfg = dataclasses.replace(
            cfg,
            claim_duration_s=s,
            claim_warmup_s=min(cfg.claim_warmup_s, max(0.5, s / 4)),
            webhook_duration_s=s,
            open_duration_s=s,
            isolation_flood_s=s,
            isolation_hooks_s=s,
        )
    whole = not (args.quick or args.only or args.seconds is not None)
    if args.out is None:
        args.out = RESULTS if whole else RESULTS / ("quick" if args.quick else "partial")
    if whole:
        _clear(args.out)
    workdir = Path(tempfile.mkdtemp(prefix="dc-bench-"))
    (workdir / "data").mkdir()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    command = "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:])
    results: list[ScenarioResult] = []
    with RssSampler() as sampler:
        run = Run(cfg, workdir, args.out, sampler, Tokens(workdir / "data"))
        try:
            for key in keys:
                title, fn = table[key]
                results.append(run_one(run, key, title, fn))
        finally:
            run.close()
    meta = {
        "started_at": started_at,
        "mode": "quick" if cfg.quick else ("full" if whole else "partial"),
        "command": command.strip(),
        "scenarios": keys,
        "runs": cfg.runs,
        "seconds": cfg.claim_duration_s,
        "workdir": str(workdir) if args.keep_workdir else None,
    }
    md, js = report.write(args.out, "results", "discount-codes benchmarks", results, meta)
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"[bench] logs and files kept in {workdir}")
    print(f"[bench] wrote {md} and {js}")
    if whole and args.out.resolve() == RESULTS:
        try:
            for doc in quote.refresh():
                print(f"[bench] rewrote the results block of {doc}")
        except ValueError as exc:
            print(f"[bench] docs not rewritten: {exc}")
    return 0
