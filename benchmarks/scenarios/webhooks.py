"""Scenario 4: claim-to-webhook latency, open loop, ``--runs`` times.

Two API processes in production mode (ES256 tokens, as ``claims-ref``), each with its
worker in-process (the default deployment). The offered rate is half the measured claim
capacity: ``claims-ref``'s median when it ran in this run, else a closed-loop wrk probe of
these same processes. A real receiver on 127.0.0.1 verifies every call with the Standard
Webhooks library and records when each ``discount_code.claimed`` arrives; latency =
arrival - the moment the claim's HTTP answer reached the client. Floor: signed POSTs sent
straight to the same receiver at the same rate (arrival - send), the least any path can
take here. Each run then offers the same load to two ``--no-worker`` API processes beside
a worker process, for the claims' own p99 without a worker in the API processes.

Readiness is a condition, not a pause: before the measured runs a claim is made and its
webhook awaited, so the workers are started, listening and delivering. Before each run the
database's housekeeping is done untimed (``claims_ref.settle``: VACUUM, CHECKPOINT), so a
checkpoint left by the previous scenario (whose database was just dropped) does not land
in the first run's window.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import plots, wrk
from benchmarks.api import Brand
from benchmarks.es256 import Es256Tokens
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import seed_codes
from benchmarks.scenarios.claims_ref import es256, prod_env, settle
from benchmarks.services import Receiver, Stack
from benchmarks.stats import percentile
from benchmarks.window import Window

if TYPE_CHECKING:
    from benchmarks.run import Run

CLAIMED = "discount_code.claimed"
PROCESSES = 2
#: Issue 26's target for the webhook p99 at half the claim capacity.
P99_TARGET_MS = 250


def _wait_claims(receiver: Receiver, claim_ids: set[str], timeout: float) -> list[dict[str, Any]]:
    """Every receiver record once each of ``claim_ids`` has arrived at ``/hooks`` (or the
    timeout passed). Waits on the count (cheap for the receiver while webhooks still
    arrive), then reads the records."""
    deadline = time.monotonic() + timeout
    while True:
        receiver.wait_delivered("/hooks", len(claim_ids), deadline)
        records = receiver.records()
        arrived = {r["claim_id"] for r in records if r["path"] == "/hooks" and r["claim_id"]}
        if claim_ids <= arrived or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _claims_open(
    stack: Stack, tokens_file: Path, url: str, campaign_id: str, rate: float, duration: float
) -> dict[str, Any]:
    """Claims offered open loop by ``benchmarks.openloop`` (raw HTTP/1.1 on uvloop; an httpx
    client with hundreds of connections starves 2 cores once the server lags), each
    record as ``{claim_id, status, answered_at (wall clock), latency_ms (from its due
    time), error}``."""
    out = stack.child(
        "claims_openloop",
        {
            "url": url,
            "path": f"/v1/campaigns/{campaign_id}/claims",
            "tokens_file": str(tokens_file),
            "rate": rate,
            "duration": duration,
            "deadline_s": 60.0,
            "max_connections": 512,
        },
        timeout=duration + 180,
    )
    start = out["started_at"]
    records = []
    for due, status, latency_ms, _, text in out["records"]:
        records.append(
            {
                "claim_id": text if status == 201 else None,
                "status": status,
                "answered_at": None if latency_ms is None else start + due + latency_ms / 1000,
                "latency_ms": latency_ms,
                "error": None if status == 201 or status > 0 else (text or "hanging"),
            }
        )
    return {"records": records, "started_at": start, "sent": out["sent"]}


def _ready(receiver: Receiver, api_url: str, campaign: str, tokens: Es256Tokens) -> None:
    """A claim made and its webhook arrived: the workers deliver (a condition, no pause)."""
    import httpx

    token = tokens.shopper_tokens(1)[0]
    r = httpx.post(
        f"{api_url}/v1/campaigns/{campaign}/claims",
        json={"share_contact": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"readiness claim answered {r.status_code}: {r.text[:200]}")
    got = _wait_claims(receiver, {r.json()["id"]}, 60)
    if not any(x.get("claim_id") == r.json()["id"] for x in got):
        raise RuntimeError("the readiness claim's webhook did not arrive within 60 s")
    receiver.reset()


def _capacity(run: Run, api_url: str, path: str, tokens_file: Path) -> float:
    """Claims/s of these processes: claims-ref's median if it ran, else a wrk probe."""
    known = run.shared.get("claims_pg_capacity")
    if known:
        return float(known)
    cursor = wrk.Cursor(tokens_file)
    wrk.claims(api_url, path, cursor, threads=2, connections=64, duration_s=run.cfg.claim_warmup_s)
    probe = wrk.claims(
        api_url, path, cursor, threads=2, connections=64, duration_s=run.cfg.claim_duration_s
    )
    return float(probe["throughput"])


def latency(run: Run, res: ScenarioResult) -> None:
    wrk.available()
    cfg = run.cfg
    duration = cfg.webhook_duration_s
    tokens = es256(run)
    env = prod_env(tokens)
    stack = run.stack("postgresql", "webhooks")
    try:
        receiver = stack.start_receiver()
        api = stack.start_api(PROCESSES, dev=False, worker=True, **env)
        brand = Brand(api.url, tokens)
        _, secret = brand.webhook_endpoint_with_secret(receiver.hook_url("hooks"), [CLAIMED])
        receiver.verify_with("/hooks", secret)
        probe = brand.campaign("capacity probe")
        ready = [brand.campaign(f"readiness #{i}") for i in range(cfg.runs)]
        n_max = int(4000 * duration) + 2000
        campaigns = {
            (kind, i): brand.campaign(f"webhook latency {kind} #{i}")
            for i in range(cfg.runs)
            for kind in ("workers", "no-worker")
        }
        seed_codes(stack, brand.brand_id, [probe], 60_000)
        seed_codes(stack, brand.brand_id, ready, 10)
        seed_codes(stack, brand.brand_id, list(campaigns.values()), n_max)
        probe_tokens = tokens.write_lines(run.workdir / "webhook-probe-tokens.txt", 60_000)
        rate = 0.5 * _capacity(run, api.url, f"/v1/campaigns/{probe}/claims", probe_tokens)
        n = int(rate * duration)
        offer_tokens = run.workdir / f"webhook-offer-{n}.txt"
        offer_tokens.write_text("\n".join(tokens.shopper_tokens(n + 1)[1:]) + "\n")
        for stale in run.out_dir.glob("webhook_latency*.png"):  # from an earlier run
            stale.unlink()
        runs: list[dict[str, Any]] = []
        for i in range(cfg.runs):
            print(f"[bench]   webhook-latency run {i + 1} at {rate:,.0f} claims/s", flush=True)
            settle(stack)  # the previous scenario's or run's checkpoint and vacuum, untimed
            api = stack.start_api(PROCESSES, dev=False, worker=True, **env)
            _ready(receiver, api.url, ready[i], tokens)
            one = _one(run, res, stack, receiver, rate, duration, campaigns[("workers", i)], i)
            settle(stack)
            api = stack.start_api(PROCESSES, dev=False, worker=False, **env)
            with stack.running(stack.start_worker(**env)):
                sent = _claims_open(
                    stack, offer_tokens, api.url, campaigns[("no-worker", i)], rate, duration
                )
                # Their webhooks delivered before the worker stops: the next run starts
                # with nothing queued or leased.
                made = {r["claim_id"] for r in sent["records"] if r["claim_id"]}
                _wait_claims(receiver, made, 120)
            lat = [r["latency_ms"] for r in sent["records"] if r["status"] == 201]
            one["no_worker_http_p99"] = percentile(lat, 99)
            runs.append(one)
        _figures(res, runs, rate, duration)
    finally:
        run.drop(stack)


def _one(
    run: Run,
    res: ScenarioResult,
    stack: Stack,
    receiver: Receiver,
    rate: float,
    duration: float,
    campaign: str,
    i: int,
) -> dict[str, Any]:
    """One open-loop run with the workers in the API processes, and its floor."""
    assert stack.api is not None
    receiver.reset()
    floor = stack.child(
        "posts_open", {"url": receiver.hook_url("raw"), "rate": rate, "duration": duration}
    )
    n = int(rate * duration)
    tokens_file = run.workdir / f"webhook-offer-{n}.txt"
    with Window(stack.database) as window:
        sent = _claims_open(stack, tokens_file, stack.api.url, campaign, rate, duration)
    answered = [r for r in sent["records"] if r["status"] == 201 and r["claim_id"]]
    res.note_window(f"open loop with workers #{i + 1}", window.summary(len(answered)))
    records = _wait_claims(receiver, {a["claim_id"] for a in answered}, 60)
    arrivals: dict[str, float] = {}
    for r in records:
        if r["path"] == "/hooks" and r["claim_id"] and r["claim_id"] not in arrivals:
            arrivals[r["claim_id"]] = r["at"]
    raw_arrivals = {r["id"]: r["at"] for r in records if r["path"] == "/raw"}
    raw_lat = [
        (raw_arrivals[k] - t) * 1000 for k, t in floor["sent_at"].items() if k in raw_arrivals
    ]
    start = sent["started_at"]
    points = [
        (a["answered_at"] - start, (arrivals[a["claim_id"]] - a["answered_at"]) * 1000)
        for a in answered
        if a["claim_id"] in arrivals
    ]
    lat = [p[1] for p in points]
    hooks = [r for r in records if r["path"] == "/hooks"]
    last = max((r["at"] for r in hooks), default=None)
    answers = sorted(a["answered_at"] for a in answered)
    http_lat = [r["latency_ms"] for r in sent["records"] if r["status"] == 201]
    kinds = Counter(
        r["error"].split(":")[0] if r.get("error") else str(r["status"])
        for r in sent["records"]
        if r["status"] != 201
    )
    out = {
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else None,
        "floor_p50": percentile(raw_lat, 50),
        "floor_p99": percentile(raw_lat, 99),
        "last_after_offer_ms": None if last is None else max(last - start - duration, 0) * 1000,
        "unverified": sum(1 for r in hooks if r.get("verified") is not True),
        "duplicates": sum(c - 1 for c in Counter(r["claim_id"] for r in hooks).values() if c > 1),
        "missing": len(answered) - len(points),
        "achieved": len(answers) / (answers[-1] - start) if len(answers) > 1 else None,
        "http_p99": percentile(http_lat, 99),
        "http_errors": sum(kinds.values()),
        "http_error_kinds": dict(kinds),
    }
    if i == 0:
        _over_time(run, res, points, rate, duration)
    return out


def _over_time(
    run: Run, res: ScenarioResult, points: list[tuple[float, float]], rate: float, d: float
) -> None:
    buckets = []
    for second in range(int(max((p[0] for p in points), default=0)) + 1):
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
    what = f"{rate:,.0f} claims/s for {d:g} s, run 1"
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
    run.out_dir.mkdir(parents=True, exist_ok=True)
    drawn = plots.latency_over_time(
        points, buckets, Path(run.out_dir) / "webhook_latency.png", f"Claim to webhook, {what}"
    )
    if drawn:
        res.details.setdefault("plots", []).append(drawn.name)


def _figures(res: ScenarioResult, runs: list[dict[str, Any]], rate: float, d: float) -> None:
    what = f"{rate:,.0f} claims/s (half the claim capacity) for {d:g} s"
    floor = "signed POST straight to the receiver, same rate"

    def col(key: str) -> list[Any]:
        return [r.get(key) for r in runs]

    res.add(Figure.of_runs(f"{what}: webhook p50", col("p50"), "ms", col("floor_p50"), floor))
    res.add(
        Figure.of_runs(
            f"{what}: webhook p99",
            col("p99"),
            "ms",
            col("floor_p99"),
            floor,
            Target("value", "<=", P99_TARGET_MS),
        )
    )
    res.add(Figure.of_runs(f"{what}: webhook max", col("max"), "ms"))
    res.add(
        Figure.of_runs(
            f"{what}: last webhook after the offer ended",
            col("last_after_offer_ms"),
            "ms",
            target=Target("value", "<=", 2000),
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: claims answered per second",
            col("achieved"),
            "claims/s",
            target=Target("value", ">=", rate * 0.95),
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: claim HTTP p99, workers in the API processes",
            col("http_p99"),
            "ms",
            col("no_worker_http_p99"),
            "--no-worker APIs + a worker process",
            Target("ratio", "<=", 1.5),
        )
    )
    for key, label in (
        ("unverified", "webhooks not verified by the Standard Webhooks library"),
        ("duplicates", "claims delivered more than once"),
        ("missing", "claims answered without a webhook (after 60 s)"),
        ("http_errors", "claim HTTP errors"),
    ):
        res.add(
            Figure(
                f"{label} ({len(runs)} runs)",
                sum(r[key] for r in runs) if runs else None,
                "count",
                target=Target("value", "==", 0),
            )
        )
    res.details["runs"] = runs
