"""Scenarios ``isolation-webhooks`` and ``isolation-generation``: issue 23's figures for the
worker's side, one brand's slow endpoint or big batches against another brand's, on
PostgreSQL with 2 API processes and their workers in-process (the default deployment),
production mode (ES256), ``--runs`` times each.

``isolation-webhooks``: two receivers on 127.0.0.1 (``benchmarks.receiver``, verifying
every call with the Standard Webhooks library), brand A's answering every call 3 s after
it arrived, brand B's at once. Both brands' shoppers claim at 20/s, open loop, for
``isolation_hooks_s``. B's latency = its receiver's arrival of ``discount_code.claimed``
- the claim's answer at the client. A's events are awaited (with a deadline) until each
of A's claims has been answered ``200`` by A's receiver: none may be lost.

``isolation-generation``: brand B asks for ``isolation_small`` codes (above
``INLINE_BATCH_LIMIT``: a ``202`` batch), alone, then after brand A queued 3 batches of
``isolation_big``; B's time from its ``POST`` to the batch seen completed (polled every
50 ms), the two taking turns in every run. A's batches are awaited before the next run.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.api import Brand
from benchmarks.es256 import Es256Tokens
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import seed_codes
from benchmarks.scenarios.claims_ref import POOL, es256, prod_env
from benchmarks.scenarios.isolation import (
    B_RATE,
    DEADLINE_S,
    SPAWN_S,
    answers,
    openloop_spec,
    token_files,
)
from benchmarks.services import Receiver, Stack, wait_for_pg_connections
from benchmarks.stats import percentile
from benchmarks.window import Window

if TYPE_CHECKING:
    from benchmarks.run import Run

CLAIMED = "discount_code.claimed"
PROCESSES = 2
SLOW_S = 3.0
# Issue 23's targets.
B_HOOK_P99_TARGET_MS = 1000
GENERATION_RATIO = 1.5


def _first_arrivals(receiver: Receiver, *, answered: bool = False) -> dict[str, float]:
    """Claim id -> when its event first arrived at ``/hooks`` (with ``answered``: only
    calls the receiver has answered ``200``)."""
    out: dict[str, float] = {}
    for r in receiver.records():
        if r["path"] != "/hooks" or not r["claim_id"] or r["claim_id"] in out:
            continue
        if not answered or r["status"] == 200:
            out[r["claim_id"]] = r["at"]
    return out


def _wait(receiver: Receiver, ids: set[str], timeout: float, *, answered: bool) -> dict[str, float]:
    """The arrivals once every one of ``ids`` is there, or what came by the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = _first_arrivals(receiver, answered=answered)
        if ids <= got.keys() or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _ready(receiver: Receiver, url: str, campaign: str, token: str) -> None:
    """One claim made and its event answered by the receiver: the workers deliver."""
    r = httpx.post(
        f"{url}/v1/campaigns/{campaign}/claims",
        json={"share_contact": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"readiness claim answered {r.status_code}: {r.text[:200]}")
    if r.json()["id"] not in _wait(receiver, {r.json()["id"]}, 60, answered=True):
        raise RuntimeError("the readiness claim's webhook was not answered within 60 s")


def webhooks(run: Run, res: ScenarioResult) -> None:
    cfg = run.cfg
    seconds = cfg.isolation_hooks_s
    tokens = es256(run)
    env = prod_env(tokens)
    n = int(B_RATE * seconds)
    a_file, b_file = token_files(run, tokens, n + 10, n + 10)
    stack = run.stack("postgresql", "isolation-hooks")
    runs: list[dict[str, Any]] = []
    try:
        slow = stack.start_receiver(delay_s=SLOW_S)
        fast = stack.start_receiver()
        wait_for_pg_connections(POOL * PROCESSES + 3, 120)
        api = stack.start_api(PROCESSES, dev=False, worker=True, **env)
        brand_a, brand_b = Brand(api.url, tokens), Brand(api.url, tokens)
        for brand, receiver in ((brand_a, slow), (brand_b, fast)):
            _, secret = brand.webhook_endpoint_with_secret(receiver.hook_url("hooks"), [CLAIMED])
            receiver.verify_with("/hooks", secret)
        campaigns = {
            (who, i): brand.campaign(f"{who} #{i}")
            for i in range(cfg.runs)
            for who, brand in (("A", brand_a), ("B", brand_b))
        }
        ready = {"A": brand_a.campaign("A ready"), "B": brand_b.campaign("B ready")}
        seed_codes(stack, brand_a.brand_id, [ready["A"]], 10)
        seed_codes(stack, brand_b.brand_id, [ready["B"]], 10)
        for who, brand in (("A", brand_a), ("B", brand_b)):
            mine = [c for (w, _), c in campaigns.items() if w == who]
            seed_codes(stack, brand.brand_id, mine, n + 100)
        extra = tokens.shopper_tokens(1)[0]  # the readiness shopper (one claim per campaign)
        _ready(slow, api.url, ready["A"], extra)
        _ready(fast, api.url, ready["B"], extra)
        for i in range(cfg.runs):
            print(f"[bench]   isolation webhooks run {i + 1}", flush=True)
            try:
                one = _hooks_one(stack, api.url, slow, fast, campaigns, a_file, b_file, i, seconds)
                res.note_window(f"both brands claiming #{i + 1}", one.pop("window"))
                runs.append(one)
            except Exception as exc:
                runs.append({"error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
    finally:
        run.drop(stack)
    _hooks_report(res, runs, seconds)


def _hooks_one(
    stack: Stack,
    url: str,
    slow: Receiver,
    fast: Receiver,
    campaigns: dict[tuple[str, int], str],
    a_file: Any,
    b_file: Any,
    i: int,
    seconds: float,
) -> dict[str, Any]:
    slow.reset()
    fast.reset()
    start_at = time.time() + SPAWN_S
    children = {
        who: stack.start_child(
            "claims_openloop", openloop_spec(url, campaigns[(who, i)], f, seconds, start_at)
        )
        for who, f in (("A", a_file), ("B", b_file))
    }
    db = stack.database
    try:
        time.sleep(max(0.0, start_at - time.time()))  # the offers' scheduled start
        with Window(db) as window:
            out = {
                who: stack.finish_child(c, timeout=seconds + DEADLINE_S + 120)
                for who, c in children.items()
            }
    finally:
        for c in children.values():
            if c.proc.alive():
                stack.stop(c.proc)
    made: dict[str, dict[str, float]] = {}  # brand -> claim id -> answered at (wall clock)
    for who, o in out.items():
        made[who] = {
            r[4]: o["started_at"] + r[0] + r[2] / 1000 for r in o["records"] if r[1] == 201
        }
    b_arrived = _wait(fast, set(made["B"]), 60, answered=False)
    # A's endpoint takes SLOW_S a call: allow for its events one at a time, and more.
    a_deadline = 120 + len(made["A"]) * SLOW_S / 4
    a_done = _wait(slow, set(made["A"]), a_deadline, answered=True)
    b_lat = [(b_arrived[k] - t) * 1000 for k, t in made["B"].items() if k in b_arrived]
    a_lat = [(a_done[k] - t) * 1000 for k, t in made["A"].items() if k in a_done]
    a_calls = Counter(r["claim_id"] for r in slow.records() if r["claim_id"] in made["A"])
    ends = out["A"]["started_at"] + seconds
    return {
        "b_claims": len(made["B"]),
        "b_p50_ms": percentile(b_lat, 50),
        "b_p99_ms": percentile(b_lat, 99),
        "b_max_ms": max(b_lat) if b_lat else None,
        "b_missing": len(made["B"]) - len(b_lat),
        "a_claims": len(made["A"]),
        "a_delivered": len(a_lat),
        "a_lost": len(made["A"]) - len(a_lat),
        "a_deadline_s": a_deadline,
        "a_p50_ms": percentile(a_lat, 50),
        "a_last_after_offer_s": max(a_done.values()) - ends if a_done else None,
        "a_calls_more_than_once": sum(1 for c in a_calls.values() if c > 1),
        "unverified": sum(
            1 for rc in (slow, fast) for r in rc.records() if r.get("verified") is not True
        ),
        "answers": {who: answers(o["records"]) for who, o in out.items()},
        "window": window.summary(len(made["A"]) + len(made["B"])),
    }


def _hooks_report(res: ScenarioResult, runs: list[dict[str, Any]], seconds: float) -> None:
    what = (
        f"both brands claim {B_RATE:g}/s for {seconds:g} s, A's endpoint answers after {SLOW_S:g} s"
    )

    def col(key: str) -> list[Any]:
        return [r.get(key) for r in runs]

    res.add(
        Figure.of_runs(
            f"{what}: B's claim -> webhook p99",
            col("b_p99_ms"),
            "ms",
            target=Target("value", "<=", B_HOOK_P99_TARGET_MS),
        )
    )
    res.add(Figure.of_runs(f"{what}: B's claim -> webhook p50", col("b_p50_ms"), "ms"))
    res.add(
        Figure.of_runs(
            f"{what}: A's claim -> webhook arrival p50 (calls answered 200)", col("a_p50_ms"), "ms"
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: A's last event arrived after the offer ended",
            col("a_last_after_offer_s"),
            "s",
        )
    )
    ok = [r for r in runs if "error" not in r]
    for key, label in (
        ("a_lost", "A's claims whose event was not answered by the deadline"),
        ("b_missing", "B's claims without their event after 60 s"),
        ("unverified", "calls not verified by the Standard Webhooks library"),
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
            rows.append([str(i + 1), *(["–"] * 5), r["error"]])
            continue
        rows.append(
            [
                str(i + 1),
                str(r["b_claims"]),
                f"{r['b_p99_ms']:.0f}" if r["b_p99_ms"] is not None else "–",
                f"{r['a_delivered']}/{r['a_claims']}",
                f"{r['a_last_after_offer_s']:.1f}"
                if r["a_last_after_offer_s"] is not None
                else "–",
                str(r["a_calls_more_than_once"]),
                "; ".join(
                    f"{who}: " + ", ".join(f"{k}×{v}" for k, v in sorted(a.items()))
                    for who, a in r["answers"].items()
                ),
            ]
        )
    res.tables.append(
        Table(
            "Every run",
            [
                "run",
                "B claims",
                "B webhook p99 ms",
                "A answered / claims",
                "A's last arrived after offer s",
                "A's events sent twice",
                "claim answers",
            ],
            rows,
        )
    )
    res.details["runs"] = runs


def generation(run: Run, res: ScenarioResult) -> None:
    cfg = run.cfg
    big, small = cfg.isolation_big, cfg.isolation_small
    tokens: Es256Tokens = es256(run)
    stack = run.stack("postgresql", "isolation-gen")
    runs: list[dict[str, Any]] = []
    timeout = max(300.0, 3 * 3 * big / 1000)
    try:
        wait_for_pg_connections(POOL * PROCESSES + 3, 120)
        api = stack.start_api(PROCESSES, dev=False, worker=True, **prod_env(tokens))
        brand_a, brand_b = Brand(api.url, tokens), Brand(api.url, tokens)
        for i in range(cfg.runs):
            print(f"[bench]   isolation generation run {i + 1}", flush=True)
            try:
                runs.append(_gen_one(res, stack, brand_a, brand_b, big, small, timeout, i))
            except Exception as exc:
                runs.append({"error": f"{type(exc).__name__}: {str(exc)[-300:]}"})
    finally:
        run.drop(stack)
    _gen_report(res, runs, big, small)


def _timed_batch(brand: Brand, campaign: str, n: int, timeout: float) -> tuple[float, int]:
    """Seconds from the ``POST`` to the batch seen completed, and the codes it made."""
    started = time.monotonic()
    status, body = brand.start_batch(campaign, n)
    if status != 202:
        raise RuntimeError(f"expected a 202 batch for {n:,} codes, got {status}")
    batch, done_at = brand.wait_batch(body["id"], timeout=timeout)
    return done_at - started, int(batch["generated"])


def _gen_one(
    res: ScenarioResult,
    stack: Stack,
    brand_a: Brand,
    brand_b: Brand,
    big: int,
    small: int,
    timeout: float,
    i: int,
) -> dict[str, Any]:
    alone_campaign = brand_b.campaign(f"B alone #{i}")
    with Window(stack.database) as window:
        alone, alone_made = _timed_batch(brand_b, alone_campaign, small, timeout)
    res.note_window(f"B alone #{i + 1}", window.summary(small))
    a_campaigns = [brand_a.campaign(f"A's launch #{i}.{k}") for k in range(3)]
    b_campaign = brand_b.campaign(f"B behind A #{i}")
    with Window(stack.database) as window:
        a_started = time.monotonic()
        a_batches = []
        for c in a_campaigns:
            status, body = brand_a.start_batch(c, big)
            if status != 202:
                raise RuntimeError(f"expected a 202 batch for {big:,} codes, got {status}")
            a_batches.append(body["id"])
        contended, contended_made = _timed_batch(brand_b, b_campaign, small, timeout)
    res.note_window(f"B behind A #{i + 1}", window.summary(small))
    a_made = 0
    for batch_id in a_batches:  # all of A's done before the next run's "alone"
        batch, done_at = brand_a.wait_batch(batch_id, timeout=timeout, poll=0.2)
        a_made += int(batch["generated"])
    return {
        "alone_s": alone,
        "contended_s": contended,
        "ratio": contended / alone if alone else None,
        "a_all_done_s": done_at - a_started,
        "short": (small - alone_made) + (small - contended_made) + (3 * big - a_made),
    }


def _gen_report(res: ScenarioResult, runs: list[dict[str, Any]], big: int, small: int) -> None:
    what = f"B's {small:,} codes"
    res.add(
        Figure.of_runs(
            f"{what}: POST -> completed, after A queued 3 x {big:,}",
            [r.get("contended_s") for r in runs],
            "s",
            [r.get("alone_s") for r in runs],
            f"{what} alone, the same run",
            Target("ratio", "<=", GENERATION_RATIO),
        )
    )
    res.add(
        Figure.of_runs(
            f"A's 3 x {big:,}: first POST -> all completed",
            [r.get("a_all_done_s") for r in runs],
            "s",
        )
    )
    ok = [r for r in runs if "error" not in r]
    res.add(
        Figure(
            f"codes made short of those requested ({len(ok)} runs)",
            sum(r["short"] for r in ok) if ok else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.tables.append(
        Table(
            "Every run, in the order run (B alone, then B behind A)",
            ["run", "B alone", "B behind A", "ratio", "A's all done"],
            [
                [str(i + 1), "–", "–", "–", r["error"]]
                if "error" in r
                else [
                    str(i + 1),
                    f"{r['alone_s']:.2f} s",
                    f"{r['contended_s']:.2f} s",
                    f"{r['ratio']:.2f}x",
                    f"{r['a_all_done_s']:.1f} s",
                ]
                for i, r in enumerate(runs)
            ],
        )
    )
    res.details["runs"] = runs
