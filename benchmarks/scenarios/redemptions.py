"""Scenario 6: redemptions through HTTP on PostgreSQL, 64 connections, 1 and 2 API
processes: ``POST /v1/brands/{brand}/codes/{code}/redemptions`` with a brand token, every
request a different claimed code (a code is redeemed once), loaded with ``wrk``.

Reference, measured in the same run with the same ``wrk`` script: a minimal FastAPI +
asyncpg app (:func:`reference_app`, served by uvicorn with uvloop and httptools, the same
process count) doing the same transaction on the same tables with no auth, validation or
logging: find the code with its claim and live redemption, insert the redemption
``ON CONFLICT DO NOTHING`` on the partial unique index, insert the outbox event, NOTIFY,
add to a counter shard, commit. Its ratio says what our layers cost, as the claims
scenario's minimal-app figures do.

Set-up is untimed: codes are generated through the API, then every code is marked claimed
with a claim row in one SQL statement (claiming 160k codes through HTTP would take longer
than every measurement together, and is the claims scenario's subject).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from fastapi import FastAPI, Response
from pydantic import BaseModel

from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import give_codes
from benchmarks.services import (
    NotRun,
    Stack,
    _wait_ready,
    free_port,
    query,
    wait_for_pg_connections,
)

if TYPE_CHECKING:
    from benchmarks.run import Run

CLIENTS = 64
THREADS = 2
TARGET_SHARE_OF_REFERENCE = 0.5
#: Connections one process may open: the service's pool (DB_POOL_SIZE, default 10) plus as
#: many overflow; the reference gets the same.
POOL = 20

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
    if shutil.which("wrk") is None:
        raise NotRun("wrk is not installed (apt-get install -y wrk)")
    stack = run.stack("postgresql", "redemptions-pg")
    try:
        _redemptions(run, res, stack)
    finally:
        run.drop(stack)


def _codes_per_run(run: Run) -> int:
    return 8_000 if run.cfg.quick else 40_000


def _redemptions(run: Run, res: ScenarioResult, stack: Stack) -> None:
    cfg = run.cfg
    api = stack.start_api(1)
    brand = Brand(api.url, run.tokens)
    setups = [(kind, p) for kind in ("ours", "reference") for p in cfg.claim_processes]
    campaigns = {s: brand.campaign(f"redemptions {s[0]} {s[1]}p") for s in setups}
    give_codes(stack, brand, list(campaigns.values()), _codes_per_run(run))
    stack.stop_api()
    files = {s: _claim_all(stack, campaigns[s], s) for s in setups}
    token = run.tokens.brand(brand.brand_id)
    script = stack.workdir / "redeem.lua"
    script.write_text(WRK_SCRIPT)

    results: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, processes in setups:
        setup = (kind, processes)
        try:
            # A request holds at most one connection: 64 clients need at most 64 of them.
            wait_for_pg_connections(
                min(CLIENTS, POOL * processes) + 3, 30.0 if cfg.quick else 180.0
            )
            if kind == "ours":
                url = stack.start_api(processes).url
                before, after, auth = f"/v1/brands/{brand.brand_id}/codes/", "/redemptions", token
            else:
                stack.stop_api()
                url = _start_reference(stack, processes, brand.brand_id)
                before, after, auth = "/redeem/", "", ""
            warm, measured = files[setup]
            _wrk(script, url, warm, before, after, auth, cfg.claim_warmup_s)
            result = _wrk(script, url, measured, before, after, auth, cfg.claim_duration_s)
            result.update(_integrity(stack, campaigns[setup]))
            results[setup] = result
        except Exception as exc:
            results[setup] = {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
        finally:
            _stop_reference(stack)
    stack.stop_api()
    _report(run, res, results)


def _claim_all(stack: Stack, campaign_id: str, setup: tuple[str, int]) -> tuple[Path, Path]:
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
    name = f"codes-{setup[0]}-{setup[1]}p"
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


# --- the minimal reference app -----------------------------------------------------------


def _start_reference(stack: Stack, processes: int, brand_id: str) -> str:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{__name__}:reference_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(processes)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    argv += ["warning"]
    proc = stack.spawn(
        f"{stack.label}-reference{processes}",
        argv,
        BENCH_REFERENCE_DSN=stack.raw_dsn,
        BENCH_REFERENCE_BRAND=brand_id,
    )
    _REFERENCE_PROCS.append(proc)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return url


_REFERENCE_PROCS: list[Any] = []


def _stop_reference(stack: Stack) -> None:
    while _REFERENCE_PROCS:
        stack.stop(_REFERENCE_PROCS.pop())


_LOOKUP = """
SELECT c.id, c.campaign_id, cl.id AS claim_id, cl.user_id, c.code, r.id AS live_id
FROM codes c
JOIN claims cl ON cl.code_id = c.id
LEFT JOIN redemptions r ON r.code_id = c.id AND r.reversed_at IS NULL
WHERE c.brand_id = $1 AND c.code = $2
"""
_INSERT = """
INSERT INTO redemptions (id, brand_id, campaign_id, code_id, claim_id, user_id, code,
                         order_id, redeemed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (code_id) WHERE reversed_at IS NULL DO NOTHING
RETURNING id
"""
_EVENT = """
INSERT INTO events (id, type, brand_id, campaign_id, data, created_at)
VALUES ($1, 'discount_code.redeemed', $2, $3, $4::jsonb, $5)
"""
_COUNT = """
INSERT INTO redemption_counters (campaign_id, shard, redeemed) VALUES ($1, $2, 1)
ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = redemption_counters.redeemed + 1
"""


class Order(BaseModel):
    order_id: str


def reference_app() -> FastAPI:
    """``uvicorn benchmarks.scenarios.redemptions:reference_app --factory``: the redemption
    transaction and nothing else (``/readyz`` for the harness's start-up wait)."""
    dsn = os.environ["BENCH_REFERENCE_DSN"]
    brand_id = os.environ["BENCH_REFERENCE_BRAND"]
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(dsn, min_size=4, max_size=POOL))
        yield
        await pools[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/redeem/{code}", status_code=201)
    async def redeem(code: str, body: Order, response: Response) -> dict[str, Any]:
        now = datetime.now(UTC)
        async with pools[0].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_LOOKUP, brand_id, code)
            if row is None:
                response.status_code = 404
                return {"type": "/problems/code-not-found"}
            if row["live_id"] is not None:
                response.status_code = 409
                return {"type": "/problems/code-already-redeemed"}
            rid = str(uuid.uuid4())
            inserted = await conn.fetchval(
                _INSERT, rid, brand_id, row["campaign_id"], row["id"], row["claim_id"],
                row["user_id"], row["code"], body.order_id, now,
            )  # fmt: skip
            if inserted is None:
                response.status_code = 409
                return {"type": "/problems/code-already-redeemed"}
            data = {
                "redemption_id": rid,
                "claim_id": row["claim_id"],
                "brand_id": brand_id,
                "campaign_id": row["campaign_id"],
                "code": row["code"],
                "order_id": body.order_id,
                "user_id": row["user_id"],
                "redeemed_at": now.isoformat(),
            }
            await conn.execute(
                _EVENT, str(uuid.uuid4()), brand_id, row["campaign_id"], json.dumps(data), now
            )
            await conn.execute("SELECT pg_notify('discount_codes_events', '')")
            await conn.execute(_COUNT, row["campaign_id"], random.randrange(16))
        return {"id": rid, "code": row["code"], "order_id": body.order_id}

    return app


# --- the report ----------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _report(run: Run, res: ScenarioResult, results: dict[tuple[str, int], dict[str, Any]]) -> None:
    rows = []
    for processes in run.cfg.claim_processes:
        o, r = results[("ours", processes)], results[("reference", processes)]
        what = f"{CLIENTS} connections, {processes} API process{'es' if processes > 1 else ''}"
        note = "; ".join(
            f"{who} not run: {x['error']}"
            for who, x in (("ours", o), ("reference", r))
            if "error" in x
        )
        res.add(
            Figure(
                f"{what}: throughput",
                o.get("throughput"),
                "redemptions/s",
                r.get("throughput"),
                "minimal FastAPI + asyncpg",
                Target("ratio", ">=", TARGET_SHARE_OF_REFERENCE),
                note=note,
            )
        )
        res.add(Figure(f"{what}: p99", o.get("p99_ms"), "ms", r.get("p99_ms"), "minimal app"))
        res.add(
            Figure(
                f"{what}: errors",
                o.get("errors"),
                "count",
                r.get("errors"),
                "minimal app",
                Target("value", "==", 0),
            )
        )
        for kind, x in (("discount-codes", o), ("minimal FastAPI + asyncpg", r)):
            rows.append(
                [
                    kind,
                    str(processes),
                    _rate(x.get("throughput")),
                    _ms(x.get("p50_ms")),
                    _ms(x.get("p99_ms")),
                    str(x.get("errors", "–")),
                    str(x.get("redeemed_twice", "–")),
                    str(x.get("without_event", "–")),
                    x.get("error", ""),
                ]
            )
    measured = [x for x in results.values() if "error" not in x]
    res.add(
        Figure(
            f"codes with two live redemptions ({len(measured)} runs)",
            sum(x["redeemed_twice"] for x in measured) if measured else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            "redemptions without their event",
            sum(x["without_event"] for x in measured) if measured else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.tables.append(
        Table(
            f"every run (wrk -t{THREADS} -c{CLIENTS}, {run.cfg.claim_duration_s:g} s measured "
            f"after {run.cfg.claim_warmup_s:g} s warm-up; each request a different claimed "
            "code; latency in ms)",
            [
                "server",
                "processes",
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
    res.details.update(runs={f"{k}-{p}p": x for (k, p), x in results.items()})
