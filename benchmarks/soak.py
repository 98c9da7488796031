"""Soak: ``python -m benchmarks.soak [--minutes 10]`` (``make soak``).

Mixed traffic on a fresh PostgreSQL database for N minutes (claims at a steady rate, code
generation, listings, CSV exports, a few repeated claims), with the worker killed by
SIGKILL and restarted every minute and a webhook receiver failing 20% of calls. Then,
with a bounded wait for the outbox to drain, it checks what a user would notice:

- no code handed out twice (in the database, and in the answers the clients got);
- every claim's ``discount_code.claimed`` event delivered (after retries);
- no code batch left unfinished;
- API and worker memory flat (first-minute vs last-minute RSS).

The receiver fails the first delivery of 25% of events and accepts every retry: 20% of
all calls fail, and every event gets through on its first retry (~5 s), so the drain is
bounded by the retry schedule's first step rather than its 5-minute second step.

Writes benchmarks/results/soak.md, soak.json and soak_rss.png. Stops by itself; all
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import plots, report
from benchmarks.api import Brand, Tokens
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.services import NotRun, RssSampler, Stack, query

RESULTS = Path(__file__).resolve().parent / "results"
MB = 2**20
FAIL_FIRST_RATE = 0.25  # -> 20% of all calls fail (0.25 / 1.25)
CLAIMED = "discount_code.claimed"


# --- the load generator (runs in a child process) -------------------------------------------


async def mix(spec: dict[str, Any]) -> dict[str, Any]:
    """Claims at ``claim_rate``/s (open loop), a share of them repeated by the same user;
    a code batch every ``batch_every_s``; listings at ``list_rate``/s; a CSV export every
    ``export_every_s``. For ``duration`` seconds."""
    url, duration = spec["url"], spec["duration"]
    campaigns: list[str] = spec["campaign_ids"]
    with open(spec["tokens_file"]) as fh:
        tokens: list[str] = json.load(fh)
    brand_auth = {"Authorization": f"Bearer {spec['brand_token']}"}
    rng = random.Random(7)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    claims: list[dict[str, Any]] = []
    done_claims: list[tuple[int, str, str]] = []  # (user index, campaign, code)
    batches: list[str] = []
    exports: list[dict[str, Any]] = []
    end = time.monotonic() + duration
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)

    def note(kind: str, status: int | str, detail: str = "") -> None:
        counts[f"{kind} {status}"] += 1
        if (not isinstance(status, int) or status >= 500) and len(errors) < 50:
            errors.append(f"{kind}: {status} {detail}"[:300])

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:

        async def claim(i: int) -> None:
            campaign = campaigns[i % len(campaigns)]
            repeat = done_claims and rng.random() < spec["repeat_share"]
            user, expect = (i, None)
            if repeat:
                user, campaign, expect = rng.choice(done_claims)
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            try:
                r = await c.post(
                    f"/v1/campaigns/{campaign}/claims",
                    json={"share_contact": True},
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                note("claim", type(exc).__name__, str(exc))
                return
            note("claim", r.status_code, r.text[:200])
            if r.status_code in (200, 201):
                body = r.json()
                claims.append(
                    {
                        "user": user,
                        "campaign": campaign,
                        "status": r.status_code,
                        "code": body["code"],
                        "claim_id": body["id"],
                        "expected_code": expect,
                    }
                )
                if r.status_code == 201:
                    done_claims.append((user, campaign, body["code"]))

        async def claims_loop() -> None:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            i = 0
            while time.monotonic() < end and i < len(tokens):
                delay = start + i / spec["claim_rate"] - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(claim(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            await asyncio.gather(*tasks)

        async def batches_loop() -> None:
            while time.monotonic() < end - 5:
                await asyncio.sleep(spec["batch_every_s"])
                campaign = rng.choice(campaigns)
                try:
                    r = await c.post(
                        f"/v1/campaigns/{campaign}/code-batches",
                        json={"count": spec["batch_count"]},
                        headers=brand_auth,
                    )
                except httpx.HTTPError as exc:
                    note("batch", type(exc).__name__, str(exc))
                    continue
                note("batch", r.status_code, r.text[:200])
                if r.status_code in (201, 202):
                    batches.append(r.json()["id"])

        async def listing_loop() -> None:
            while time.monotonic() < end:
                await asyncio.sleep(1 / spec["list_rate"])
                which = rng.randrange(3)
                try:
                    if which == 0:
                        campaign = rng.choice(campaigns)
                        r = await c.get(
                            f"/v1/campaigns/{campaign}/codes",
                            params={"limit": 100, "status": rng.choice(["available", "claimed"])},
                            headers=brand_auth,
                        )
                    elif which == 1 and done_claims:
                        user = rng.choice(done_claims)[0]
                        r = await c.get(
                            "/v1/me/claims", headers={"Authorization": f"Bearer {tokens[user]}"}
                        )
                    else:
                        r = await c.get(
                            f"/v1/brands/{spec['brand_id']}/campaigns", headers=brand_auth
                        )
                except httpx.HTTPError as exc:
                    note("list", type(exc).__name__, str(exc))
                    continue
                note("list", r.status_code, r.text[:200])

        async def exports_loop() -> None:
            while time.monotonic() < end - 5:
                await asyncio.sleep(spec["export_every_s"])
                campaign = rng.choice(campaigns)
                started = time.monotonic()
                rows = 0
                try:
                    async with c.stream(
                        "GET", f"/v1/campaigns/{campaign}/codes.csv", headers=brand_auth
                    ) as r:
                        async for chunk in r.aiter_raw():
                            rows += chunk.count(b"\n")
                        status = r.status_code
                except httpx.HTTPError as exc:
                    note("export", type(exc).__name__, str(exc))
                    continue
                note("export", status)
                exports.append({"rows": rows - 1, "seconds": time.monotonic() - started})

        await asyncio.gather(claims_loop(), batches_loop(), listing_loop(), exports_loop())
    return {
        "counts": dict(counts),
        "errors": errors,
        "claims": claims,
        "batches": batches,
        "exports": exports,
    }


# --- the harness ------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _window(series: list[tuple[float, int]], start: float, end: float) -> list[float]:
    return [rss / MB for t, rss in series if start <= t < end]


def _drain(stack: Stack, receiver_ids: Any, timeout: float) -> tuple[set[str], set[str], int]:
    """Wait (bounded) until every claim's event has been delivered and no delivery is
    pending; (claim ids in the database, claim ids delivered, deliveries still pending)."""
    deadline = time.monotonic() + timeout
    while True:
        claim_ids = {r[0] for r in query(stack, "SELECT id FROM claims")}
        delivered = receiver_ids()
        pending = query(stack, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        left = int(pending[0][0])
        if (claim_ids <= delivered and left == 0) or time.monotonic() > deadline:
            return claim_ids, delivered, left
        time.sleep(2)


def soak(minutes: float, claim_rate: float, out_dir: Path, keep: bool) -> ScenarioResult:
    res = ScenarioResult("soak", f"Soak: {minutes:g} minutes of mixed traffic")
    duration = minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="dc-soak-"))
    (workdir / "data").mkdir()
    tokens = Tokens(workdir / "data")
    with RssSampler(interval=1.0) as sampler:
        stack = Stack("postgresql", workdir / "soak", "soak", sampler, workdir / "data")
        stack.extra_env["DISCOUNT_CODES_BATCH_LEASE_SECONDS"] = "15"
        try:
            stack.create()
            _soak(stack, tokens, res, duration, claim_rate, out_dir)
        except NotRun as exc:
            res.status = f"not run: {exc}"
        except Exception as exc:
            res.status = f"failed: {type(exc).__name__}: {exc}"
            res.details["traceback"] = traceback.format_exc()
        finally:
            stack.destroy()
    if keep:
        res.details["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return res


def _soak(
    stack: Stack,
    tokens: Tokens,
    res: ScenarioResult,
    duration: float,
    claim_rate: float,
    out_dir: Path,
) -> None:
    started = time.monotonic()
    api = stack.start_api(1)
    receiver = stack.start_receiver(fail_first_rate=FAIL_FIRST_RATE)
    worker = stack.start_worker()
    brand = Brand(api.url, tokens)
    brand.webhook_endpoint(receiver.hook_url("hooks"))  # every event type
    campaigns = [brand.campaign(f"soak {i}") for i in range(3)]
    for campaign_id in campaigns:
        brand.codes(campaign_id, 20_000)
    n_tokens = int(claim_rate * duration * 1.05) + 100
    tokens_file = stack.workdir / "tokens.json"
    tokens.write(tokens_file, n_tokens)

    sampler = stack.sampler
    t0 = time.time()
    load = stack.start_child(
        "mix",
        {
            "url": api.url,
            "brand_id": brand.brand_id,
            "brand_token": tokens.brand(brand.brand_id),
            "campaign_ids": campaigns,
            "tokens_file": str(tokens_file),
            "duration": duration,
            "claim_rate": claim_rate,
            "repeat_share": 0.05,
            "batch_every_s": 45,
            "batch_count": 20_000,
            "list_rate": 5,
            "export_every_s": 30,
        },
    )
    kills = 0
    next_kill = time.monotonic() + 60
    while load.proc.alive():
        time.sleep(0.5)
        if time.monotonic() >= next_kill and time.monotonic() < started + duration + 60:
            stack.stop(worker, signal.SIGKILL)
            kills += 1
            worker = stack.start_worker()
            next_kill += 60
        if not api.proc.alive():
            raise RuntimeError(f"the API process died: {api.proc.tail(800)}")
    t_end = time.time()
    traffic = stack.finish_child(load, timeout=120)

    def delivered_claim_ids() -> set[str]:
        return {
            r["claim_id"]
            for r in receiver.records()
            if r["status"] == 200 and r["type"] == CLAIMED and r["claim_id"]
        }

    drain_started = time.monotonic()
    claim_ids, delivered, pending = _drain(
        stack, delivered_claim_ids, timeout=max(180, duration / 2)
    )
    drain_s = time.monotonic() - drain_started
    calls = receiver.count()
    stack.stop(worker)

    _report(stack, res, traffic, claim_ids, delivered, pending, calls, kills, drain_s)
    res.details["timeline"] = {"traffic_start": t0, "traffic_end": t_end}
    api_series = sampler.series.get(api.proc.name, [])
    worker_series = sampler.series.get("soak-worker", [])
    _memory(res, api_series, worker_series, t0, t_end)
    png = out_dir / "soak_rss.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = plots.rss_over_time(
        {
            "API process": [((t - t0) / 60, rss / MB) for t, rss in api_series],
            "worker (restarted every minute)": [
                ((t - t0) / 60, rss / MB) for t, rss in worker_series
            ],
        },
        png,
        "Soak: resident memory",
    )
    res.details["plots"] = [drawn.name] if drawn else []
    res.elapsed_s = time.monotonic() - started


def _is_error(key: str) -> bool:
    """``"claim 201"`` is an answer; ``"claim 503"`` or ``"claim ReadTimeout"`` is not."""
    status = key.split(" ", 1)[1]
    return not status.isdigit() or int(status) >= 500


def _report(
    stack: Stack,
    res: ScenarioResult,
    traffic: dict[str, Any],
    claim_ids: set[str],
    delivered: set[str],
    pending: int,
    calls: dict[str, int],
    kills: int,
    drain_s: float,
) -> None:
    twice_db = query(stack, "SELECT count(*) - count(DISTINCT code_id) FROM claims")[0][0]
    per_user = query(
        stack,
        "SELECT count(*) FROM (SELECT campaign_id, user_id FROM claims "
        "GROUP BY 1, 2 HAVING count(*) > 1) AS t",
    )[0][0]
    orphans = query(
        stack,
        "SELECT (SELECT count(*) FROM codes WHERE claimed_at IS NOT NULL) - "
        "(SELECT count(*) FROM claims)",
    )[0][0]
    holders: dict[tuple[str, str], set[int]] = {}
    wrong_repeat = 0
    for c in traffic["claims"]:
        holders.setdefault((c["campaign"], c["code"]), set()).add(c["user"])
        if c["expected_code"] is not None and c["code"] != c["expected_code"]:
            wrong_repeat += 1
    twice_seen = sum(1 for users in holders.values() if len(users) > 1)
    unfinished = query(
        stack, "SELECT count(*) FROM code_batches WHERE status NOT IN ('completed')"
    )[0][0]
    counts: dict[str, int] = traffic["counts"]
    server_errors = sum(v for k, v in counts.items() if _is_error(k))
    missing = claim_ids - delivered
    zero = Target("value", "==", 0)
    res.add(
        Figure(
            "claims made (201)", sum(1 for c in traffic["claims"] if c["status"] == 201), "count"
        )
    )
    res.add(Figure("codes handed out twice (database)", twice_db, "count", target=zero))
    res.add(
        Figure("codes handed out twice (answers clients got)", twice_seen, "count", target=zero)
    )
    res.add(Figure("users holding two codes of one campaign", per_user, "count", target=zero))
    res.add(
        Figure("repeated claims answered with another code", wrong_repeat, "count", target=zero)
    )
    res.add(Figure("codes marked claimed without a claim", orphans, "count", target=zero))
    res.add(
        Figure(
            "claims whose event was not delivered",
            len(missing),
            "count",
            target=zero,
            note=f"drain took {drain_s:.0f} s",
        )
    )
    res.add(Figure("deliveries still pending at the end", pending, "count", target=zero))
    res.add(Figure("code batches not completed", unfinished, "count", target=zero))
    res.add(Figure("HTTP 5xx and transport errors", server_errors, "count", target=zero))
    res.add(Figure("worker SIGKILLs", kills, "count"))
    res.add(
        Figure(
            "receiver calls failed on purpose",
            calls["failed"],
            "count",
            note=f"{calls['failed'] / max(calls['calls'], 1):.0%} of {calls['calls']} calls",
        )
    )
    res.tables.append(
        Table(
            "Requests by kind and answer",
            ["request", "count"],
            [[k, str(v)] for k, v in sorted(counts.items())],
        )
    )
    if traffic["exports"]:
        rows = [
            [str(i + 1), f"{e['rows']:,}", f"{e['seconds']:.2f} s"]
            for i, e in enumerate(traffic["exports"])
        ]
        res.tables.append(Table("Exports during the soak", ["#", "rows", "time"], rows))
    res.details.update(
        errors=traffic["errors"],
        missing_claim_ids=sorted(missing)[:50],
        batches=len(traffic["batches"]),
        receiver=calls,
    )


def _memory(
    res: ScenarioResult,
    api: list[tuple[float, int]],
    worker: list[tuple[float, int]],
    t0: float,
    t_end: float,
) -> None:
    for name, series in (("API process", api), ("worker process", worker)):
        first = _mean(_window(series, t0, t0 + 60))
        last = _mean(_window(series, t_end - 60, t_end))
        res.add(
            Figure(
                f"{name} RSS, mean of the last minute",
                last,
                "MB",
                first,
                "mean of the first minute",
                Target("ratio", "<=", 1.2),
            )
        )
    res.details["rss_mb"] = {
        "api": [(round(t - t0, 1), round(r / MB, 1)) for t, r in api],
        "worker": [(round(t - t0, 1), round(r / MB, 1)) for t, r in worker],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description="Soak: mixed traffic, crashes, checks."
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--claim-rate", type=float, default=30.0, help="claims per second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = round(os.getloadavg()[0], 2)
    res = soak(args.minutes, args.claim_rate, args.out, args.keep_workdir)
    res.details["load_avg_1min"] = {"start": load_start, "end": round(os.getloadavg()[0], 2)}
    meta = {
        "started_at": started_at,
        "mode": f"soak {args.minutes:g} min, {args.claim_rate:g} claims/s",
        "command": "python -m benchmarks.soak --minutes " + f"{args.minutes:g}",
        "scenarios": ["soak"],
    }
    md, js = report.write(args.out, "soak", "discount-codes soak", [res], meta)
    print(f"[soak] {res.status}; wrote {md} and {js}")
    for f in res.figures:
        met = "" if f.met is None else (" [met]" if f.met else " [NOT MET]")
        print(f"    {f.name}: {report.fmt(f.value, f.unit)}{met}")
    return 0 if res.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
