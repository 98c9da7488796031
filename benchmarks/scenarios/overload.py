"""Scenario ``claims-open``: twice the measured capacity, offered open loop for 30 s.

``discount-codes serve --workers 2`` in production mode on PostgreSQL, with
``DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT`` set (contract v1.1: beyond that many requests in
flight per process, answer ``503`` with ``Retry-After`` at once). Capacity: a 5 s closed
loop, ``wrk -t2 -c64``. Then ``benchmarks.openloop`` offers twice that, a new shopper per
request, latency counted from each request's due time; a request without an answer 10 s
after it was due is hanging. Afterwards, in SQL: every claim answered ``201`` is committed,
and no code went to two claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import give_codes, integrity
from benchmarks.scenarios.claims_ref import es256, prod_env
from benchmarks.services import query, wait_for_pg_connections
from benchmarks.stats import percentile

if TYPE_CHECKING:
    from benchmarks.run import Run

#: The setting the service reads (``Settings.max_requests_in_flight``, contract v1.1).
IN_FLIGHT_SETTING = "DISCOUNT_CODES_MAX_REQUESTS_IN_FLIGHT"
IN_FLIGHT = 64
PROCESSES = 2
OVERLOAD = 2.0
P99_LIMIT_MS = 1000
DEADLINE_S = 10.0


def scenario(run: Run, res: ScenarioResult) -> None:
    wrk.available()
    quick = run.cfg.quick
    probe_s, duration = (2.0, 5.0) if quick else (5.0, 30.0)
    tokens = es256(run)
    stack = run.stack("postgresql", "claims-open")
    try:
        env = prod_env(tokens, **{IN_FLIGHT_SETTING: str(IN_FLIGHT)})
        api = stack.start_api(1, dev=False, **env)
        brand = Brand(api.url, tokens)
        probe_campaign = brand.campaign("capacity probe")
        give_codes(stack, brand, [probe_campaign], 20_000)
        wait_for_pg_connections(20 * PROCESSES + 3, 120)
        api = stack.start_api(PROCESSES, dev=False, **env)
        probe_path = f"/v1/campaigns/{probe_campaign}/claims"
        probe_tokens = wrk.Cursor(run.workdir / "open-probe-tokens.txt")
        tokens.write_lines(probe_tokens.tokens_file, 20_000)
        wrk.claims(api.url, probe_path, probe_tokens, threads=2, connections=64, duration_s=1)
        probe = wrk.claims(
            api.url, probe_path, probe_tokens, threads=2, connections=64, duration_s=probe_s
        )
        capacity = probe["throughput"]
        if capacity <= 0:
            raise RuntimeError(f"the capacity probe got no 201: {probe['statuses']}")
        rate = OVERLOAD * capacity
        n = int(rate * duration)
        stack.stop_api()

        api = stack.start_api(1, dev=False, **env)
        brand = Brand(api.url, tokens, brand.brand_id)
        campaign = brand.campaign("open loop")
        give_codes(stack, brand, [campaign], n + 1000)  # every request could get a code
        open_tokens = run.workdir / f"open-tokens-{n}.txt"
        tokens.write_lines(open_tokens, n)
        api = stack.start_api(PROCESSES, dev=False, **env)
        out = stack.child(
            "claims_openloop",
            {
                "url": api.url,
                "path": f"/v1/campaigns/{campaign}/claims",
                "tokens_file": str(open_tokens),
                "rate": rate,
                "duration": duration,
                "deadline_s": DEADLINE_S,
                "max_connections": 512,
            },
            timeout=duration + DEADLINE_S + 120,
        )
        stack.stop_api()
        checks = _checks(stack, campaign, out["records"])
    finally:
        run.drop(stack)
    _report(res, capacity, probe, out, checks)


def _checks(stack: Any, campaign: str, records: list[list[Any]]) -> dict[str, Any]:
    created = {r[4] for r in records if r[1] == 201}
    stored = {
        row[0] for row in query(stack, "SELECT id FROM claims WHERE campaign_id = $1", campaign)
    }
    twice, orphans = integrity(stack, campaign)
    return {
        "answered_201": len(created),
        "committed_of_201": len(created & stored),
        "claims_stored": len(stored),
        "stored_without_201": len(stored - created),
        "handed_twice": twice,
        "claimed_without_claim": orphans,
    }


def _report(
    res: ScenarioResult,
    capacity: float,
    probe: dict[str, Any],
    out: dict[str, Any],
    checks: dict[str, Any],
) -> None:
    records = out["records"]
    by_status: dict[str, int] = {}
    for r in records:
        key = {0: "transport error", -1: "hanging"}.get(r[1], str(r[1]))
        by_status[key] = by_status.get(key, 0) + 1
    ok_lat = [r[2] for r in records if r[1] == 201]
    shed = [r for r in records if r[1] == 503]
    shed_with_retry = sum(1 for r in shed if r[3])
    lat_503 = [r[2] for r in shed]
    hanging = by_status.get("hanging", 0)
    what = (
        f"{out['rate']:,.0f} claims/s offered ({OVERLOAD:g}x capacity) for {out['duration_s']:g} s"
    )
    res.add(Figure("capacity (closed loop, wrk -c64)", capacity, "claims/s"))
    res.add(
        Figure(
            f"{what}: p99 of answered claims (201)",
            percentile(ok_lat, 99),
            "ms",
            target=Target("value", "<=", P99_LIMIT_MS),
        )
    )
    res.add(Figure(f"{what}: claims answered 201", len(ok_lat), "count"))
    res.add(
        Figure(
            "503 answers with Retry-After",
            shed_with_retry,
            "count",
            note=f"{len(shed) - shed_with_retry} without it",
        )
    )
    res.add(
        Figure(
            f"hanging (no answer within {DEADLINE_S:g} s of the due time)",
            hanging,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            "answered 201 but not committed",
            checks["answered_201"] - checks["committed_of_201"],
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            "codes handed out twice",
            checks["handed_twice"],
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.tables.append(
        Table(
            "Open loop: every answer (latency from the request's due time, ms)",
            ["what", "count", "p50", "p99"],
            [
                ["sent", str(out["sent"]), "", ""],
                *(
                    [
                        k,
                        str(v),
                        _ms(percentile(_latencies(records, k), 50)),
                        _ms(percentile(_latencies(records, k), 99)),
                    ]
                    for k, v in sorted(by_status.items())
                ),
                ["503 with Retry-After", str(shed_with_retry), _ms(percentile(lat_503, 50)), ""],
                [
                    "claims stored / of them answered 201",
                    f"{checks['claims_stored']} / {checks['committed_of_201']}",
                    "",
                    "",
                ],
                [
                    "generator: sends late / p99 lag ms",
                    f"{out['sends_late']} / {_ms(out['send_lag_p99_ms'])}",
                    "",
                    "",
                ],
            ],
        )
    )
    res.details.update(
        capacity_probe=probe,
        statuses=by_status,
        checks=checks,
        generator={k: v for k, v in out.items() if k != "records"},
        in_flight_setting=f"{IN_FLIGHT_SETTING}={IN_FLIGHT}",
    )


def _latencies(records: list[list[Any]], key: str) -> list[float]:
    """Latencies of the answers of one kind (a hanging request has none)."""
    return [r[2] for r in records if _key(r) == key and r[2] is not None]


def _key(r: list[Any]) -> str:
    return {0: "transport error", -1: "hanging"}.get(r[1], str(r[1]))


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"
