"""Scenarios 4 and 5: the brand is notified.

4. Claim-to-webhook latency at a steady offered rate (open loop): a real receiver on
   127.0.0.1 records when each ``discount_code.claimed`` arrives; latency = arrival - the
   moment the claim's HTTP answer reached the client. Raw floor: signed POSTs sent straight
   to the same receiver at the same rate (arrival - send), the least any path can take.
5. Deliveries per second from 1 and 2 worker processes to a fast receiver, with 1 endpoint
   (sent in order, one at a time) and 8 endpoints. Raw: the same number of signed POSTs
   sent by httpx straight to the receiver, one stream per endpoint.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import plots
from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import give_codes
from benchmarks.services import Receiver, Stack
from benchmarks.stats import percentile

if TYPE_CHECKING:
    from benchmarks.run import Run

CLAIMED = "discount_code.claimed"


def _wait_delivered(
    receiver: Receiver, expected: int, timeout: float, path_prefix: str
) -> list[dict[str, Any]]:
    """Receiver records under ``path_prefix`` once ``expected`` distinct deliveries
    succeeded there (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in receiver.records() if r["path"].startswith(path_prefix)]
        delivered = {(r["path"], r["id"]) for r in records if r["status"] == 200}
        if len(delivered) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def _wait_claims(receiver: Receiver, claim_ids: set[str], timeout: float) -> list[dict[str, Any]]:
    """Every receiver record once each of ``claim_ids`` has arrived at ``/hooks``."""
    deadline = time.monotonic() + timeout
    while True:
        records = receiver.records()
        arrived = {r["claim_id"] for r in records if r["path"] == "/hooks" and r["claim_id"]}
        if claim_ids <= arrived or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def latency(run: Run, res: ScenarioResult) -> None:
    """At the offered rate; then, when claims were not answered at that rate, again at
    half the rate they were (or half the capacity measured by scenario 3 / a short probe,
    if lower): the first shows the brief's rate, the second the delivery path's own
    latency without claim queueing."""
    cfg = run.cfg
    duration = cfg.webhook_duration_s
    stack = run.stack("postgresql", "webhooks")
    try:
        api = stack.start_api(1)
        receiver = stack.start_receiver()
        brand = Brand(api.url, run.tokens)
        capacity = run.shared.get("claims_pg_1p_top") or _probe_capacity(run, stack, brand)
        # Registered after the probe, so the probe's events go to no endpoint.
        brand.webhook_endpoint(receiver.hook_url("hooks"), [CLAIMED])
        rates = [float(cfg.webhook_rate)]
        for stale in run.out_dir.glob("webhook_latency_*.png"):  # from an earlier run
            stale.unlink()
        with stack.running(stack.start_worker()):
            time.sleep(2.0)  # the worker has started, fanned out old events, and is idle
            while rates:
                rate = rates.pop(0)
                n = int(rate * duration)
                campaign_id = brand.campaign(f"webhook latency {rate:g}/s")
                give_codes(stack, brand, [campaign_id], n + 100)
                receiver.reset()
                floor = stack.child(
                    "posts_open",
                    {"url": receiver.hook_url("raw"), "rate": rate, "duration": duration},
                )
                time.sleep(1.0)
                sent = stack.child(
                    "claims_open",
                    {
                        "url": api.url,
                        "campaign_id": campaign_id,
                        "tokens_file": run.tokens_file(n),
                        "rate": rate,
                        "duration": duration,
                    },
                )
                answered = [r for r in sent["records"] if r["status"] == 201 and r["claim_id"]]
                records = _wait_claims(receiver, {a["claim_id"] for a in answered}, 60)
                first = rate == cfg.webhook_rate
                png = "webhook_latency.png" if first else f"webhook_latency_{rate:g}.png"
                achieved = _latency_report(
                    run, res, rate, duration, sent, answered, records, floor, capacity, png
                )
                if first and (achieved or 0) < 0.95 * rate:
                    rates.append(max(10.0, round(min(capacity, achieved or 0) / 2, -1)))
        res.details["claims_capacity"] = capacity
    finally:
        run.drop(stack)


def _probe_capacity(run: Run, stack: Stack, brand: Brand) -> float:
    """Claims/s at 64 clients, 3 s (when scenario 3 did not run before)."""
    campaign_id = brand.campaign("capacity probe")
    give_codes(stack, brand, [campaign_id], 10_000)
    assert stack.api is not None
    probe = stack.child(
        "claims_closed",
        {
            "url": stack.api.url,
            "campaign_id": campaign_id,
            "tokens_file": run.tokens_file(10_000),
            "concurrency": 64,
            "warmup": 0.5,
            "duration": 3,
        },
    )
    run.shared["claims_pg_1p_top"] = probe["throughput"]
    return float(probe["throughput"])


def _latency_report(
    run: Run,
    res: ScenarioResult,
    rate: float,
    duration: float,
    sent: dict[str, Any],
    answered: list[dict[str, Any]],
    records: list[dict[str, Any]],
    floor: dict[str, Any],
    capacity: float,
    png_name: str,
) -> float | None:
    """Adds the figures of one rate; returns the rate claims were answered at."""
    arrivals: dict[str, float] = {}
    for r in records:
        if r["path"] == "/hooks" and r["claim_id"] and r["claim_id"] not in arrivals:
            arrivals[r["claim_id"]] = r["at"]
    raw_arrivals = {r["id"]: r["at"] for r in records if r["path"] == "/raw"}
    raw_lat = [
        (raw_arrivals[i] - t) * 1000 for i, t in floor["sent_at"].items() if i in raw_arrivals
    ]
    start = sent["started_at"]
    points: list[tuple[float, float]] = []
    for a in answered:
        at = arrivals.get(a["claim_id"])
        if at is not None:
            points.append((a["answered_at"] - start, (at - a["answered_at"]) * 1000))
    lat = [p[1] for p in points]
    missing = len(answered) - len(points)
    http_errors = sum(1 for r in sent["records"] if r["status"] != 201)
    http_lat = [r["latency_ms"] for r in sent["records"] if r["status"] == 201]

    what = f"{rate:g} claims/s for {duration:g} s"
    floor_name = "signed POST straight to the receiver"
    res.add(
        Figure(
            f"{what}: webhook p50",
            percentile(lat, 50),
            "ms",
            percentile(raw_lat, 50),
            floor_name,
            Target("value", "<", 50),
        )
    )
    res.add(
        Figure(
            f"{what}: webhook p99",
            percentile(lat, 99),
            "ms",
            percentile(raw_lat, 99),
            floor_name,
            Target("value", "<", 250),
        )
    )
    res.add(
        Figure(f"{what}: webhook max", max(lat) if lat else None, "ms", max(raw_lat, default=None))
    )
    res.add(
        Figure(
            f"{what}: claims answered without a webhook (after 60 s)",
            missing,
            "count",
            target=Target("value", "==", 0),
        )
    )
    answers = sorted(r["answered_at"] for r in sent["records"] if r["status"] == 201)
    achieved = len(answers) / (answers[-1] - start) if len(answers) > 1 else None
    res.add(
        Figure(
            f"{what}: claims answered per second",
            achieved,
            "claims/s",
            target=Target("value", ">=", rate * 0.95),
            note=(
                "claims were answered slower than offered (closed loop, 64 clients, 1 API "
                f"process: {capacity:,.0f}/s), so a backlog grew and the latencies here "
                "include it"
                if (achieved or 0) < 0.95 * rate
                else ""
            ),
        )
    )
    res.add(Figure(f"{what}: claim HTTP p50", percentile(http_lat, 50), "ms"))
    res.add(Figure(f"{what}: claim HTTP p99", percentile(http_lat, 99), "ms"))
    kinds = Counter(
        r["error"].split(":")[0] if r.get("error") else str(r["status"])
        for r in sent["records"]
        if r["status"] != 201
    )
    res.add(
        Figure(
            f"{what}: claim HTTP errors",
            http_errors,
            "count",
            target=Target("value", "==", 0),
            note=", ".join(f"{k}×{v}" for k, v in kinds.items()),
        )
    )

    buckets = []
    last = int(max((p[0] for p in points), default=0))
    for second in range(last + 1):
        inside = [p[1] for p in points if second <= p[0] < second + 1]
        if inside:
            buckets.append(
                {
                    "second": second,
                    "n": len(inside),
                    "p50_ms": percentile(inside, 50),
                    "p99_ms": percentile(inside, 99),
                }
            )
    res.tables.append(
        Table(
            f"{what}: webhook latency over time (by second of the claim's answer)",
            ["second", "claims", "p50 ms", "p99 ms"],
            [
                [str(b["second"]), str(b["n"]), f"{b['p50_ms']:.1f}", f"{b['p99_ms']:.1f}"]
                for b in buckets
            ],
        )
    )
    png = Path(run.out_dir) / png_name
    run.out_dir.mkdir(parents=True, exist_ok=True)
    drawn = plots.latency_over_time(points, buckets, png, f"Claim to webhook, {what}")
    if drawn:
        res.details.setdefault("plots", []).append(drawn.name)
    res.details[f"rate_{rate:g}"] = {
        "floor_ms": sorted(raw_lat)[:: max(1, len(raw_lat) // 200)],
        "buckets": buckets,
        "sent": len(sent["records"]),
        "points": [(round(t, 3), round(ms, 2)) for t, ms in points],
    }
    return achieved


def deliveries(run: Run, res: ScenarioResult) -> None:
    cfg = run.cfg
    n = cfg.delivery_events
    stack = run.stack("postgresql", "deliveries")
    try:
        api = stack.start_api(1)
        receiver = stack.start_receiver()
        tokens_file = run.tokens_file(n)
        rows = []
        for endpoints, workers in cfg.delivery_setups:
            tag = f"e{endpoints}w{workers}"
            brand = Brand(api.url, run.tokens)
            campaign_id = brand.campaign(f"deliveries {tag}")
            give_codes(stack, brand, [campaign_id], n)
            for j in range(endpoints):
                brand.webhook_endpoint(receiver.hook_url(f"{tag}/{j}"), [CLAIMED])
            made = stack.child(
                "claims_closed",
                {
                    "url": api.url,
                    "campaign_id": campaign_id,
                    "tokens_file": tokens_file,
                    "concurrency": 32,
                    "warmup": 0,
                    "duration": 600,
                },
            )
            events = made["statuses"].get("201", 0)
            expected = events * endpoints
            procs = [stack.start_worker(f"w{i}") for i in range(workers)]
            try:
                got = _wait_delivered(receiver, expected, max(60.0, expected / 50), f"/{tag}/")
            finally:
                for p in procs:
                    stack.stop(p)
            ok = sorted(r["at"] for r in got if r["status"] == 200)
            rate = (len(ok) - 1) / (ok[-1] - ok[0]) if len(ok) > 1 else None
            raw = stack.child(
                "posts_closed",
                {
                    "urls": [receiver.hook_url(f"raw{tag}/{j}") for j in range(endpoints)],
                    "count": events,
                },
            )
            receiver.reset()
            what = f"{_plural(endpoints, 'endpoint')}, {_plural(workers, 'worker')}"
            res.add(
                Figure(
                    f"{what}: deliveries/s",
                    rate,
                    "deliveries/s",
                    raw["rate"],
                    f"httpx POSTs, {endpoints} stream(s)",
                )
            )
            rows.append(
                [
                    str(endpoints),
                    str(workers),
                    str(expected),
                    str(len(ok)),
                    "–" if rate is None else f"{rate:,.0f}",
                    f"{raw['rate']:,.0f}",
                ]
            )
        res.tables.append(
            Table(
                f"Deliveries ({n} claims each; rate from the first to the last arrival)",
                ["endpoints", "workers", "expected", "delivered", "deliveries/s", "raw POSTs/s"],
                rows,
            )
        )
        delivered_all = all(r[2] == r[3] for r in rows)
        res.add(
            Figure(
                "every delivery arrived",
                1 if delivered_all else 0,
                "count",
                target=Target("value", "==", 1),
            )
        )
    finally:
        run.drop(stack)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
