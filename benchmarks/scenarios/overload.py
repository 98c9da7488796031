"""Scenario ``claims-open``: twice the measured capacity, offered open loop (30 s), ``--runs``
times.

``discount-codes serve --workers 2`` in production mode on PostgreSQL (ES256), with
``DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT`` set (beyond that many requests in flight per
process, answer ``503`` with ``Retry-After`` at once). Each run: the closed-loop capacity
(``wrk -t2 -c64`` for ``--seconds``, after a warm-up) on a campaign of its own, then
``benchmarks.openloop`` offers twice that to a fresh campaign, a new shopper per request,
latency counted from each request's due time; a request without an answer 10 s after it
was due is hanging. The figure that matters: claims answered 201 per second of the offer
against the closed-loop capacity of the same run (a 503 should cost next to nothing), and
the p99 of those 201s. Afterwards, in SQL: every claim answered ``201`` is committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import integrity, seed_codes
from benchmarks.scenarios.claims_ref import POOL, es256, prod_env
from benchmarks.services import Stack, query, wait_for_pg_connections
from benchmarks.stats import percentile
from benchmarks.window import Window

if TYPE_CHECKING:
    from benchmarks.run import Run

#: The setting the service reads (``Settings.max_requests_in_flight``, contract v1.1).
IN_FLIGHT_SETTING = "DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT"
IN_FLIGHT = 64
PROCESSES = 2
OVERLOAD = 2.0
DEADLINE_S = 10.0
# Issue 26's targets.
GOODPUT_SHARE = 0.85
P99_LIMIT_MS = 500
#: Claims/s ours could reach here at most, to size the campaigns.
CEILING = 4000


def scenario(run: Run, res: ScenarioResult) -> None:
    wrk.available()
    cfg = run.cfg
    tokens = es256(run)
    env = prod_env(tokens, **{IN_FLIGHT_SETTING: str(IN_FLIGHT)})
    stack = run.stack("postgresql", "claims-open")
    runs: list[dict[str, Any]] = []
    try:
        api = stack.start_api(1, dev=False, **env)
        brand = Brand(api.url, tokens)
        probe_codes = int(CEILING * (cfg.claim_warmup_s + cfg.claim_duration_s)) + 2000
        open_codes = int(OVERLOAD * CEILING * cfg.open_duration_s) + 2000
        probes = [brand.campaign(f"capacity probe #{i}") for i in range(cfg.runs)]
        offers = [brand.campaign(f"open loop #{i}") for i in range(cfg.runs)]
        stack.stop_api()
        seed_codes(stack, brand.brand_id, probes, probe_codes)
        seed_codes(stack, brand.brand_id, offers, open_codes)
        probe_tokens = tokens.write_lines(
            run.workdir / f"open-probe-{probe_codes}.txt", probe_codes
        )
        open_tokens = tokens.write_lines(run.workdir / f"open-offer-{open_codes}.txt", open_codes)
        for i in range(cfg.runs):
            print(f"[bench]   claims-open run {i + 1}", flush=True)
            try:
                wait_for_pg_connections(POOL * PROCESSES + 3, 120)
                runs.append(
                    _one(run, res, stack, env, probes[i], offers[i], probe_tokens, open_tokens, i)
                )
            except Exception as exc:
                runs.append({"error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
            finally:
                stack.stop_api()
    finally:
        run.drop(stack)
    _report(run, res, runs)


def _one(
    run: Run,
    res: ScenarioResult,
    stack: Stack,
    env: dict[str, str],
    probe_campaign: str,
    offer_campaign: str,
    probe_tokens: Any,
    open_tokens: Any,
    i: int,
) -> dict[str, Any]:
    cfg = run.cfg
    api = stack.start_api(PROCESSES, dev=False, **env)
    path = f"/v1/campaigns/{probe_campaign}/claims"
    cursor = wrk.Cursor(probe_tokens)
    wrk.claims(api.url, path, cursor, threads=2, connections=64, duration_s=cfg.claim_warmup_s)
    with Window(stack.database) as window:
        probe = wrk.claims(
            api.url, path, cursor, threads=2, connections=64, duration_s=cfg.claim_duration_s
        )
    res.note_window(f"capacity probe #{i + 1}", window.summary(probe["statuses"].get("201")))
    capacity = probe["throughput"]
    if capacity <= 0:
        raise RuntimeError(f"the capacity probe got no 201: {probe['statuses']}")
    rate = OVERLOAD * capacity
    with Window(stack.database) as window:
        out = stack.child(
            "claims_openloop",
            {
                "url": api.url,
                "path": f"/v1/campaigns/{offer_campaign}/claims",
                "tokens_file": str(open_tokens),
                "rate": rate,
                "duration": cfg.open_duration_s,
                "deadline_s": DEADLINE_S,
                "max_connections": 512,
            },
            timeout=cfg.open_duration_s + DEADLINE_S + 120,
        )
    stack.stop_api()
    records = out.pop("records")
    ok = [r for r in records if r[1] == 201]
    res.note_window(f"open loop #{i + 1}", window.summary(len(ok)))
    created = {r[4] for r in ok}
    stored = {
        row[0]
        for row in query(stack, "SELECT id FROM claims WHERE campaign_id = $1", offer_campaign)
    }
    statuses: dict[str, int] = {}
    for r in records:
        key = {0: "transport error", -1: "hanging"}.get(r[1], str(r[1]))
        statuses[key] = statuses.get(key, 0) + 1
    shed = [r for r in records if r[1] == 503]
    # Answered inside the offer's window: a backlog answered after it is not throughput.
    in_window = [r for r in ok if r[0] + r[2] / 1000 <= cfg.open_duration_s]
    return {
        "capacity": capacity,
        "offered": rate,
        "goodput": len(in_window) / cfg.open_duration_s,
        "answered_201_total": len(ok),
        "p99_201_ms": percentile([r[2] for r in ok], 99),
        "p50_201_ms": percentile([r[2] for r in ok], 50),
        "p99_503_ms": percentile([r[2] for r in shed], 99),
        "hanging": statuses.get("hanging", 0),
        "statuses": statuses,
        "shed_without_retry_after": sum(1 for r in shed if not r[3]),
        "answered_201_not_committed": len(created - stored),
        "claimed_without_claim": integrity(stack, offer_campaign)[1],
        "generator": out,
    }


def _report(run: Run, res: ScenarioResult, runs: list[dict[str, Any]]) -> None:
    d = run.cfg.open_duration_s
    what = f"{OVERLOAD:g}x the capacity offered for {d:g} s"
    ok = [r for r in runs if "error" not in r]
    res.add(
        Figure.of_runs(
            f"{what}: claims answered 201 per second (answers inside the window)",
            [r.get("goodput") for r in runs],
            "claims/s",
            [r.get("capacity") for r in runs],
            "closed-loop capacity of the same run (wrk -c64)",
            Target("ratio", ">=", GOODPUT_SHARE),
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: p99 of the 201s (from the due time)",
            [r.get("p99_201_ms") for r in runs],
            "ms",
            target=Target("value", "<=", P99_LIMIT_MS),
        )
    )
    for key, label in (
        ("hanging", f"hanging (no answer within {DEADLINE_S:g} s of the due time)"),
        ("answered_201_not_committed", "answered 201 but not committed"),
        ("shed_without_retry_after", "503 without Retry-After"),
        ("claimed_without_claim", "codes marked claimed without a claim"),
    ):
        res.add(
            Figure(
                f"{label} ({len(ok)} runs)",
                sum(r[key] for r in ok) if ok else None,
                "count",
                target=Target("value", "==", 0),
            )
        )
    rows = []
    for i, r in enumerate(runs):
        if "error" in r:
            rows.append([str(i + 1), "–", "–", "–", "–", "–", "–", "–", r["error"]])
            continue
        rows.append(
            [
                str(i + 1),
                f"{r['capacity']:,.0f}",
                f"{r['offered']:,.0f}",
                f"{r['goodput']:,.0f}",
                _ms(r["p50_201_ms"]),
                _ms(r["p99_201_ms"]),
                _ms(r["p99_503_ms"]),
                f"{r['generator'].get('client_cpu_pct', '–')} %",
                ", ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items())),
            ]
        )
    res.tables.append(
        Table(
            "Every run (claims/s; latency in ms from the request's due time)",
            [
                "run",
                "capacity",
                "offered",
                "201/s",
                "201 p50",
                "201 p99",
                "503 p99",
                "open-loop client's CPU (of one core)",
                "answers",
            ],
            rows,
        )
    )
    res.details.update(runs=runs, in_flight_setting=f"{IN_FLIGHT_SETTING}={IN_FLIGHT}")


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"
