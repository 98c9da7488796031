"""Scenario 6: redemptions through HTTP on PostgreSQL, 64 connections, 1 and 2 API
processes: ``POST /v1/brands/{brand}/codes/{code}/redemptions`` with the brand's ES256
token (ours in production mode), every request a different claimed code, loaded by wrk.

Reference (``benchmarks.reference.redeem_app``), taking turns with ours ``--runs`` times,
the same process count and wrk script: the same ES256 token verified with PyJWT, then
one round trip (a call of ``ref_redeem``) doing ours' work on the same tables: find the
code with its claim and live redemption, insert the redemption ``ON CONFLICT DO
NOTHING`` on the partial unique index, the outbox event, NOTIFY, a counter shard; its
pool the size of what ours may open.

Set-up is untimed: codes written by SQL (``seed_codes``), then every code marked claimed
with a claim row in one SQL statement. Each run's warm-up is followed by ``ANALYZE``, so
both apps are measured with statistics that know the redemptions table has rows (the
first run would otherwise plan its lookups for the empty table it started with).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.reference.redeem_app import REDEEM_FUNCTION
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import seed_codes
from benchmarks.scenarios.claims_ref import es256, prod_env, ref_env, start_reference
from benchmarks.services import Stack, query, wait_for_pg_connections
from benchmarks.window import Window
from discount_codes.config import Settings

if TYPE_CHECKING:
    from benchmarks.run import Run

CLIENTS = 64
THREADS = 2
TARGET_SHARE_OF_REFERENCE = 0.7
#: Connections one of our processes may open for a redemption (its SQLAlchemy pool:
#: ``db_pool_size`` plus as many overflow); the reference gets the same.
POOL = 2 * int(Settings.model_fields["db_pool_size"].default)

# wrk's Lua: each thread walks its own stride of the codes file, so no code is sent twice;
# ``done`` prints the figures as one JSON line.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  codes = {}
  for line in io.lines(args[1]) do codes[#codes + 1] = line end
  before, after, step = args[2], args[3], tonumber(args[5])
  headers = {["Content-Type"] = "application/json"}
  if args[4] ~= "" then headers["Authorization"] = "Bearer " .. args[4] end
  i = id + 1
end
function request()
  local code = codes[i] or "RAN0UT0F0C0DES"
  i = i + step
  return wrk.format("POST", before .. code .. after, headers,
    '{"order_id": "order-' .. code .. '"}')
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d,' ..
    ' "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def pg(run: Run, res: ScenarioResult) -> None:
    wrk.available()
    stack = run.stack("postgresql", "redemptions-pg")
    try:
        _redemptions(run, res, stack)
    finally:
        run.drop(stack)


def _codes_per_run(run: Run) -> int:
    return int(3000 * (run.cfg.claim_warmup_s + run.cfg.claim_duration_s)) + 2000


def _redemptions(run: Run, res: ScenarioResult, stack: Stack) -> None:
    cfg = run.cfg
    tokens = es256(run)
    query(stack, REDEEM_FUNCTION)
    api = stack.start_api(1, dev=False, **prod_env(tokens))
    brand = Brand(api.url, tokens)
    setups = [
        (kind, p, i)
        for i in range(cfg.runs)
        for p in cfg.claim_processes
        for kind in ("ours", "reference")
    ]
    campaigns = {s: brand.campaign(f"redemptions {s[0]} {s[1]}p #{s[2]}") for s in setups}
    stack.stop_api()
    seed_codes(stack, brand.brand_id, list(campaigns.values()), _codes_per_run(run))
    files = {s: _claim_all(stack, campaigns[s], s) for s in setups}
    token = tokens.brand(brand.brand_id)
    script = stack.workdir / "redeem.lua"
    script.write_text(WRK_SCRIPT)
    before, after = f"/v1/brands/{brand.brand_id}/codes/", "/redemptions"

    results: dict[tuple[str, int, int], dict[str, Any]] = {}
    for setup in setups:
        kind, processes, i = setup
        print(f"[bench]   redemptions run {i + 1}: {kind}, {processes} processes", flush=True)
        proc = None
        try:
            wait_for_pg_connections(min(CLIENTS, POOL * processes) + 3, 180.0)
            query(stack, "VACUUM (ANALYZE)")
            if kind == "ours":
                url = stack.start_api(processes, dev=False, **prod_env(tokens)).url
            else:
                env = ref_env(tokens, "es256") | {"REF_DSN": stack.raw_dsn, "REF_POOL": str(POOL)}
                proc, url = start_reference(
                    stack, f"redeem-ref-{processes}-{i}", "redeem_app", processes, **env
                )
            warm, measured = files[setup]
            _wrk(script, url, warm, before, after, token, cfg.claim_warmup_s)
            # Statistics that count the redemptions table's rows: the VACUUM above saw it
            # empty on the first run (ours'), and the plans cached in the warm-up for an
            # empty table scan it whole, a cost that grows with every redemption.
            query(stack, "ANALYZE")
            with Window(stack.database) as window:
                result = _wrk(script, url, measured, before, after, token, cfg.claim_duration_s)
            done = (result["requests"] - result["errors"]) if result.get("requests") else None
            result["window"] = res.note_window(
                f"{kind} {processes}p #{i + 1}", window.summary(done)
            )
            result.update(_integrity(stack, campaigns[setup]))
            results[setup] = result
        except Exception as exc:
            results[setup] = {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
        finally:
            stack.stop_api()
            if proc is not None:
                stack.stop(proc)
    _report(run, res, results)


def _claim_all(stack: Stack, campaign_id: str, setup: tuple[Any, ...]) -> tuple[Path, Path]:
    """Hand every code of the campaign out (claim rows, ``claimed_at``) and write the codes
    to two files: a short warm-up slice and the rest."""
    query(
        stack,
        """
        WITH taken AS (
          UPDATE codes SET claimed_at = now()
          WHERE campaign_id = $1 AND claimed_at IS NULL
          RETURNING id, brand_id, campaign_id, code
        )
        INSERT INTO claims (id, campaign_id, brand_id, user_id, code_id, code, claimed_at,
                            contact_email, contact_name, consent_given_at)
        SELECT gen_random_uuid()::text, campaign_id, brand_id, 'bench-shopper-' || id, id,
               code, now(), NULL, NULL, now()
        FROM taken
        RETURNING 1
        """,
        campaign_id,
    )
    query(stack, "ANALYZE codes")
    query(stack, "ANALYZE claims")
    codes = [
        r[0] for r in query(stack, "SELECT code FROM codes WHERE campaign_id = $1", campaign_id)
    ]
    random.shuffle(codes)
    cut = len(codes) // 5
    name = "codes-" + "-".join(map(str, setup))
    warm, measured = stack.workdir / f"{name}-warm.txt", stack.workdir / f"{name}.txt"
    warm.write_text("\n".join(codes[:cut]) + "\n")
    measured.write_text("\n".join(codes[cut:]) + "\n")
    return warm, measured


def _wrk(
    script: Path, url: str, codes: Path, before: str, after: str, token: str, seconds: float
) -> dict[str, Any]:
    argv = ["wrk", f"-t{THREADS}", f"-c{CLIENTS}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "10s", "-s", str(script), url, "--"]
    argv += [str(codes), before, after, token, str(THREADS)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no figures: {out.stdout[-500:]} {out.stderr[-500:]}")
    w = json.loads(match.group(1))
    elapsed = w["duration_us"] / 1e6
    ok = w["requests"] - w["non2xx"]
    return {
        "throughput": ok / elapsed if elapsed else None,
        "requests": w["requests"],
        "errors": w["non2xx"] + w["socket_errors"],
        "p50_ms": w["p50_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "mean_ms": w["mean_us"] / 1000,
        "elapsed_s": elapsed,
    }


def _integrity(stack: Stack, campaign_id: str) -> dict[str, int]:
    """Codes with two live redemptions, and redemptions without their event: both 0."""
    twice, rows, events = query(
        stack,
        """
        SELECT (SELECT count(*) - count(DISTINCT code_id) FROM redemptions
                WHERE campaign_id = $1 AND reversed_at IS NULL),
               (SELECT count(*) FROM redemptions WHERE campaign_id = $1),
               (SELECT count(*) FROM events
                WHERE campaign_id = $1 AND type = 'discount_code.redeemed')
        """,
        campaign_id,
    )[0]
    return {
        "redeemed_twice": int(twice),
        "redemptions": int(rows),
        "without_event": int(rows) - int(events),
    }


# --- the report ----------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _report(
    run: Run, res: ScenarioResult, results: dict[tuple[str, int, int], dict[str, Any]]
) -> None:
    runs = range(run.cfg.runs)
    ref_name = "fair reference + PyJWT ES256, one round trip"
    for processes in run.cfg.claim_processes:
        ours = [results[("ours", processes, i)] for i in runs]
        ref = [results[("reference", processes, i)] for i in runs]
        what = f"{CLIENTS} connections, {processes} API process{'es' if processes > 1 else ''}"
        res.add(
            Figure.of_runs(
                f"{what}: redemptions/s",
                [o.get("throughput") for o in ours],
                "redemptions/s",
                [r.get("throughput") for r in ref],
                ref_name,
                Target("ratio", ">=", TARGET_SHARE_OF_REFERENCE),
            )
        )
        res.add(
            Figure.of_runs(
                f"{what}: p99",
                [o.get("p99_ms") for o in ours],
                "ms",
                [r.get("p99_ms") for r in ref],
                ref_name,
            )
        )
        res.add(
            Figure.of_runs(
                f"{what}: PostgreSQL CPU per redemption (this database's backends)",
                [_us(o) for o in ours],
                "µs",
                [_us(r) for r in ref],
                ref_name,
            )
        )
    measured = [x for (kind, _, _), x in results.items() if kind == "ours" and "error" not in x]
    for key, label in (
        ("errors", "ours: errors (non-2xx + socket)"),
        ("redeemed_twice", "ours: codes with two live redemptions"),
        ("without_event", "ours: redemptions without their event"),
    ):
        res.add(
            Figure(
                f"{label} ({len(measured)} runs)",
                sum(x[key] for x in measured) if measured else None,
                "count",
                target=Target("value", "==", 0),
            )
        )
    rows = [
        [
            "discount-codes" if kind == "ours" else "reference",
            str(processes),
            str(i + 1),
            _rate(x.get("throughput")),
            _ms(x.get("p50_ms")),
            _ms(x.get("p99_ms")),
            str(x.get("errors", "–")),
            str(x.get("redeemed_twice", "–")),
            str(x.get("without_event", "–")),
            x.get("error", ""),
        ]
        for (kind, processes, i), x in results.items()
    ]
    res.tables.append(
        Table(
            f"Every run, in the order run (wrk -t{THREADS} -c{CLIENTS}, "
            f"{run.cfg.claim_duration_s:g} s measured after {run.cfg.claim_warmup_s:g} s "
            "warm-up; each request a different claimed code; latency in ms)",
            [
                "server",
                "processes",
                "run",
                "redemptions/s",
                "p50",
                "p99",
                "errors",
                "redeemed twice",
                "without event",
                "notes",
            ],
            rows,
        )
    )
    res.details.update(runs={f"{k}-{p}p-{i}": x for (k, p, i), x in results.items()})


def _us(x: dict[str, Any]) -> float | None:
    per_op = x.get("window", {}).get("pg_cpu_ms_per_op")
    return None if per_op is None else per_op * 1000
