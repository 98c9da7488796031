"""Scenarios ``isolation-*``: issue 23's figures, one brand's launch against another brand's
shoppers on one server, ``--runs`` times each (medians with their ranges).

``isolation-flood-pg`` / ``isolation-flood-sqlite``: ``discount-codes serve`` in
production mode (ES256 tokens) with its defaults (``MAX_REQUESTS_IN_FLIGHT`` 128,
``TENANT_IN_FLIGHT_SHARE`` 0.5, workers in the API processes), 2 processes on PostgreSQL
and 1 on SQLite. Brand A floods a campaign of its own with ``wrk`` (512 connections, a new
shopper per request, ``benchmarks/claims.lua``) for ``isolation_flood_s``; brand B's
shoppers claim on B's campaign at a steady 20/s, open loop (``benchmarks.openloop``: each
request due at a fixed time, latency from that time, distinct shoppers), starting a
little after the flood and ending before it. Figures: B's share of ``201`` answers and
B's p99, and what A got. The API is restarted for every run, so no run inherits another's
verified-token cache.

The slow-endpoint and generation parts are in ``isolation_work``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.es256 import Es256Tokens
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import seed_codes
from benchmarks.scenarios.claims_ref import POOL, es256, prod_env
from benchmarks.services import Stack, query, wait_for_pg_connections
from benchmarks.stats import percentile
from benchmarks.window import Window

if TYPE_CHECKING:
    from benchmarks.run import Run

FLOOD_CONNECTIONS = 512
#: Brand B's steady offer (claims/s), in the flood and in the slow-endpoint part.
B_RATE = 20.0
#: B's offer starts this long after the flood and ends this long before it (at most a
#: fifth of the flood each).
LEAD_S = 1.5
#: Time allowed for a load generator's process to start before its offer is due.
SPAWN_S = 3.0
#: A request of B's without an answer this long after it was due is hanging.
DEADLINE_S = 10.0
B_CONNECTIONS = 64
#: Requests/s brand A's wrk could send at most here (503s are cheap), to size its token
#: file; past it wrk wraps round to shoppers it already sent (counted as ``wrapped``).
A_REQUEST_CEILING = 6000
#: Claims/s the service could answer 201 at most here, to size A's campaign.
CLAIM_CEILING = {"postgresql": 4000, "sqlite": 9000}
PROCESSES = {"postgresql": 2, "sqlite": 1}
# Issue 23's targets.
B_SHARE_TARGET_PCT = 99.0
B_P99_TARGET_MS = 500


def flood_pg(run: Run, res: ScenarioResult) -> None:
    _flood(run, res, "postgresql")


def flood_sqlite(run: Run, res: ScenarioResult) -> None:
    _flood(run, res, "sqlite")


def token_files(run: Run, tokens: Es256Tokens, a: int, b: int) -> tuple[Path, Path]:
    """Two files of distinct shoppers, one token a line: ``a`` for brand A, then ``b``
    others for brand B (so no token of B's was verified, and cached, in A's traffic)."""
    a_path = run.workdir / f"isolation-a-{a}.txt"
    b_path = run.workdir / f"isolation-b-{a}-{b}.txt"
    every = tokens.shopper_tokens(a + b)
    if not a_path.exists():
        a_path.write_text("\n".join(every[:a]) + "\n")
    if not b_path.exists():
        b_path.write_text("\n".join(every[a : a + b]) + "\n")
    return a_path, b_path


def openloop_spec(
    url: str, campaign: str, tokens_file: Path, seconds: float, start_at: float
) -> dict[str, Any]:
    """A brand's shoppers at ``B_RATE``/s, due from ``start_at`` (wall clock) on."""
    return {
        "url": url,
        "path": f"/v1/campaigns/{campaign}/claims",
        "tokens_file": str(tokens_file),
        "rate": B_RATE,
        "duration": seconds,
        "deadline_s": DEADLINE_S,
        "max_connections": B_CONNECTIONS,
        "start_at": start_at,
    }


def answers(records: list[list[Any]]) -> dict[str, int]:
    """Open-loop records counted by answer: status, ``transport error`` or ``hanging``."""
    counts = Counter({0: "transport error", -1: "hanging"}.get(r[1], str(r[1])) for r in records)
    return dict(counts)


def shed_by_brand(url: str, names: dict[str, str]) -> dict[str, float]:
    """The service's own count of requests shed since it started, by brand and reason
    (``http_requests_shed_total``; brands named by ``names``, others as labelled): tells
    a 503 of admission from one of the database pool's turn."""
    import httpx

    out: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if not line.startswith("http_requests_shed_total{"):
            continue
        labels, _, value = line.partition("} ")
        pairs = dict(
            part.split("=", 1) for part in labels.split("{", 1)[1].split(",") if "=" in part
        )
        brand = pairs.get("brand", '""').strip('"')
        key = f"{names.get(brand, brand)} {pairs.get('reason', '').strip(chr(34))}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _flood(run: Run, res: ScenarioResult, backend: str) -> None:
    wrk.available()
    cfg = run.cfg
    flood_s = cfg.isolation_flood_s
    lead = min(LEAD_S, flood_s / 5)
    b_seconds = flood_s - 2 * lead
    tokens = es256(run)
    env = prod_env(tokens)
    processes = PROCESSES[backend]
    stack = run.stack(backend, f"isolation-flood-{backend[:2]}")
    a_codes = int(CLAIM_CEILING[backend] * flood_s) + 2000
    b_codes = int(B_RATE * b_seconds) + 100
    a_file, b_file = token_files(
        run, tokens, int(A_REQUEST_CEILING * flood_s), int(B_RATE * b_seconds) + 10
    )
    runs: list[dict[str, Any]] = []
    try:
        api = stack.start_api(processes, dev=False, worker=True, **env)
        brand_a, brand_b = Brand(api.url, tokens), Brand(api.url, tokens)
        a_campaigns = [brand_a.campaign(f"A's launch #{i}") for i in range(cfg.runs)]
        b_campaigns = [brand_b.campaign(f"B's steady shoppers #{i}") for i in range(cfg.runs)]
        stack.stop_api()
        seed_codes(stack, brand_a.brand_id, a_campaigns, a_codes)
        seed_codes(stack, brand_b.brand_id, b_campaigns, b_codes)
        for i in range(cfg.runs):
            print(f"[bench]   isolation flood ({backend}) run {i + 1}", flush=True)
            try:
                if backend == "postgresql":
                    wait_for_pg_connections(POOL * processes + 3, 120)
                api = stack.start_api(processes, dev=False, worker=True, **env)
                one = _flood_one(
                    stack, api.url, a_campaigns[i], b_campaigns[i], a_file, b_file, flood_s, lead
                )
                one["shed"] = shed_by_brand(api.url, {brand_a.brand_id: "A", brand_b.brand_id: "B"})
                res.note_window(f"flood #{i + 1}", one.pop("window"))
                runs.append(one)
            except Exception as exc:
                runs.append({"error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
            finally:
                stack.stop_api()
    finally:
        run.drop(stack)
    _flood_report(res, runs, backend, flood_s, b_seconds)


def _flood_one(
    stack: Stack,
    url: str,
    a_campaign: str,
    b_campaign: str,
    a_file: Path,
    b_file: Path,
    flood_s: float,
    lead: float,
) -> dict[str, Any]:
    b_seconds = flood_s - 2 * lead
    flood_at = time.time() + SPAWN_S
    child = stack.start_child(
        "claims_openloop", openloop_spec(url, b_campaign, b_file, b_seconds, flood_at + lead)
    )
    db = stack.database if stack.backend == "postgresql" else None
    try:
        time.sleep(max(0.0, flood_at - time.time()))  # the flood's scheduled start
        with Window(db) as window:
            flood_started = time.time()
            flood = wrk.claims(
                url,
                f"/v1/campaigns/{a_campaign}/claims",
                wrk.Cursor(a_file),
                threads=2,
                connections=FLOOD_CONNECTIONS,
                duration_s=flood_s,
            )
            flood_ended = time.time()
            b = stack.finish_child(child, timeout=b_seconds + DEADLINE_S + 120)
    finally:
        if child.proc.alive():
            stack.stop(child.proc)
    records = b.pop("records")
    ok = [r for r in records if r[1] == 201]
    # Every request of B's counts: a hanging one at the deadline, an error at its time.
    latencies = [DEADLINE_S * 1000 if r[2] is None else r[2] for r in records]
    stored = {
        row[0] for row in query(stack, "SELECT id FROM claims WHERE campaign_id = $1", b_campaign)
    }
    a_statuses: dict[str, int] = flood["statuses"]
    seconds = flood["duration_us"] / 1e6
    b_start = float(b["started_at"])
    return {
        "b_sent": len(records),
        "b_201": len(ok),
        "b_share_pct": round(100 * len(ok) / len(records), 2) if records else None,
        "b_p99_ms": percentile(latencies, 99),
        "b_p50_ms": percentile(latencies, 50),
        "b_p99_201_ms": percentile([r[2] for r in ok], 99),
        "b_answers": answers(records),
        "b_201_not_committed": len({r[4] for r in ok} - stored),
        "b_inside_flood": flood_started <= b_start and b_start + b_seconds <= flood_ended,
        "b_started_late_s": round(max(0.0, b_start - (flood_at + lead)), 3),
        # B's generator shares the machine with wrk: sends it made late say it was starved.
        "b_sends_late": b["sends_late"],
        "b_send_lag_p99_ms": b["send_lag_p99_ms"],
        "a_requests": flood["requests"],
        "a_201": a_statuses.get("201", 0),
        "a_503": a_statuses.get("503", 0),
        "a_201_per_s": a_statuses.get("201", 0) / seconds if seconds else None,
        "a_requests_per_s": flood["requests"] / seconds if seconds else None,
        "a_statuses": a_statuses,
        "a_socket_errors": flood["socket_errors"],
        "a_wrapped": flood["wrapped"],
        "window": window.summary(len(ok) + a_statuses.get("201", 0)),
    }


def _flood_report(
    res: ScenarioResult, runs: list[dict[str, Any]], backend: str, flood_s: float, b_s: float
) -> None:
    n = PROCESSES[backend]
    what = (
        f"A floods ({FLOOD_CONNECTIONS} connections, {flood_s:g} s), B claims "
        f"{B_RATE:g}/s for {b_s:g} s ({n} process{'es' if n > 1 else ''})"
    )

    def col(key: str) -> list[Any]:
        return [r.get(key) for r in runs]

    res.add(
        Figure.of_runs(
            f"{what}: B's claims answered 201",
            col("b_share_pct"),
            "%",
            target=Target("value", ">=", B_SHARE_TARGET_PCT),
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: B's p99, every request from its due time (hanging = {DEADLINE_S:g} s)",
            col("b_p99_ms"),
            "ms",
            target=Target("value", "<=", B_P99_TARGET_MS),
        )
    )
    res.add(Figure.of_runs(f"{what}: B's p50", col("b_p50_ms"), "ms"))
    res.add(Figure.of_runs(f"{what}: A's 201 answers", col("a_201"), "count"))
    res.add(Figure.of_runs(f"{what}: A's 503 answers", col("a_503"), "count"))
    res.add(
        Figure.of_runs(
            f"{what}: A's requests answered per second", col("a_requests_per_s"), "req/s"
        )
    )
    ok = [r for r in runs if "error" not in r]
    res.add(
        Figure(
            f"B answered 201 but not committed ({len(ok)} runs)",
            sum(r["b_201_not_committed"] for r in ok) if ok else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            f"runs whose B offer was not wholly inside A's flood ({len(ok)} runs)",
            sum(not r["b_inside_flood"] for r in ok) if ok else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    rows = []
    for i, r in enumerate(runs):
        if "error" in r:
            rows.append([str(i + 1), *(["–"] * 7), r["error"]])
            continue
        sock = sum(r["a_socket_errors"].values())
        rows.append(
            [
                str(i + 1),
                f"{r['b_201']}/{r['b_sent']}",
                _ms(r["b_p50_ms"]),
                _ms(r["b_p99_ms"]),
                ", ".join(f"{k}×{v}" for k, v in sorted(r["b_answers"].items())),
                f"{r['a_201']:,} / {r['a_503']:,}",
                f"{r['a_requests_per_s']:,.0f}",
                ", ".join(f"{k}×{v}" for k, v in sorted(r["a_statuses"].items()))
                + (f"; socket errors {sock}" if sock else "")
                + (f"; {r['a_wrapped']} reused shoppers" if r["a_wrapped"] else ""),
                ", ".join(f"{k}×{v:,.0f}" for k, v in sorted(r.get("shed", {}).items())),
            ]
        )
    res.tables.append(
        Table(
            "Every run (B's latency in ms from each request's due time)",
            [
                "run",
                "B 201",
                "B p50",
                "B p99",
                "B answers",
                "A 201 / 503",
                "A req/s",
                "A answers",
                "shed by admission (brand reason; other: brand not learned yet)",
            ],
            rows,
        )
    )
    res.details.update(runs=runs, backend=backend, processes=n)


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"
