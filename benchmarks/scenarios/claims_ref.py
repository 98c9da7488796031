"""Scenario ``claims-ref``: our claims beside fair reference apps, interleaved, ``--runs``
times, every app under one load tool (wrk) with the same processes and pool size.

PostgreSQL, 2 processes each, ``db_pool_size`` connections per process (ours' setting):
``discount-codes serve --workers 2`` in production mode (ES256 tokens verified against a
key file, access log at INFO); the reference app (``benchmarks.reference.pg_app``, one
round trip per claim) verifying the same ES256 tokens with PyJWT, and the same app with no
authentication; and pgbench calling the reference's one statement on as many connections
as ours hold, for the database's own cost of the three writes. SQLite, 1 process each:
ours, the sqlite3 reference with ES256, and without.

Every app's run: a fresh campaign of the same size in the same database (the service's
own tables, so the same indexes), the database's housekeeping done untimed first
(``settle``), a warm-up, on PostgreSQL ``ANALYZE`` (so no app is measured with plans
made for the empty claims table of the first run), ``wrk -t2 -c64`` measured inside a
:class:`~benchmarks.window.Window` (load, machine CPU, and the CPU of the PostgreSQL
backends serving this database), then ``wrk -t1 -c1`` for the 1-client p50. Apps take
turns: ours, reference, ours, reference... and every figure is the median of the runs
with its range.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from benchmarks import pgbench, wrk
from benchmarks.api import Brand
from benchmarks.es256 import ISSUER, Es256Tokens
from benchmarks.reference import schema
from benchmarks.report import ScenarioResult
from benchmarks.scenarios import seed_codes
from benchmarks.services import (
    Proc,
    Stack,
    _wait_ready,
    free_port,
    query,
    wait_every_process,
    wait_for_pg_connections,
)
from benchmarks.window import Window
from discount_codes.config import Settings

if TYPE_CHECKING:
    from benchmarks.run import Run

PG_PROCESSES = 2
SQLITE_PROCESSES = 1
CONNECTIONS = 64
#: Ours' pool per process: the setting's default (the harness passes no DISCOUNT_CODES_*
#: variable of its own environment to the servers).
POOL = int(Settings.model_fields["db_pool_size"].default)
#: Claims/s an app could reach here at most, to size each run's campaign (every request a
#: new shopper and a free code until the end).
PG_CEILING, SQLITE_CEILING = 4000, 9000


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    duration_s: float
    single_s: float

    def codes(self, ceiling: int) -> int:
        return int(ceiling * (self.warmup_s + self.duration_s + self.single_s)) + 2000


def timing_of(run: Run) -> Timing:
    cfg = run.cfg
    return Timing(cfg.claim_warmup_s, cfg.claim_duration_s, min(3.0, cfg.claim_duration_s))


def es256(run: Run) -> Es256Tokens:
    """The run's ES256 key (and its tokens), made once and shared by the scenarios."""
    if "es256" not in run.shared:
        run.shared["es256"] = Es256Tokens(run.workdir / "es256")
    tokens: Es256Tokens = run.shared["es256"]
    return tokens


def prod_env(tokens: Es256Tokens, **extra: str) -> dict[str, str]:
    """Our server as production runs it: key file, no dev mode, the access log written."""
    return {"DISCOUNT_CODES_LOG_LEVEL": "INFO", **tokens.server_env(), **extra}


def ref_env(tokens: Es256Tokens, auth: str) -> dict[str, str]:
    from benchmarks.es256 import AUDIENCE

    return {
        "REF_AUTH": auth,
        "REF_KEY_FILE": str(tokens.public_key_file),
        "REF_ISSUER": ISSUER,
        "REF_AUDIENCE": AUDIENCE,
    }


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def _app_pids(proc: Proc) -> list[int]:
    with suppress(psutil.Error):
        return [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    return [proc.pid]


def settle(stack: Stack) -> None:
    """Before an app's run, untimed: the database's housekeeping done, so that autovacuum
    (fresh codes, the previous app's claims) and a checkpoint do not land inside this
    app's window and count as its cost. SQLite: the write-ahead log checkpointed."""
    if stack.backend == "postgresql":
        query(stack, "VACUUM (ANALYZE)")
        query(stack, "CHECKPOINT")
        return
    con = sqlite3.connect(stack.raw_dsn)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def measure(
    stack: Stack, url: str, path: str, cursor: wrk.Cursor, timing: Timing, proc: Proc | None
) -> dict[str, Any]:
    """Warm-up, the measured window (with the app's and PostgreSQL's CPU), 1 client."""
    warm = wrk.claims(
        url, path, cursor, threads=2, connections=CONNECTIONS, duration_s=timing.warmup_s
    )
    if stack.backend == "postgresql":
        # Statistics that count the claims the warm-up wrote: on the first run, the VACUUM
        # of ``settle`` saw an empty claims table, and plans cached in the warm-up for it
        # scan the table whole, a cost growing with every claim of the window.
        query(stack, "ANALYZE")
    app = _app_pids(proc) if proc else []
    before = _cpu_seconds(app)
    db = stack.database if stack.backend == "postgresql" else None
    with Window(db) as window:
        main = wrk.claims(
            url, path, cursor, threads=2, connections=CONNECTIONS, duration_s=timing.duration_s
        )
    created = main["statuses"].get("201", 0)
    main["window"] = window.summary(created)
    if created:
        main["app_cpu_ms_per_claim"] = round((_cpu_seconds(app) - before) * 1000 / created, 3)
    single = wrk.claims(url, path, cursor, threads=1, connections=1, duration_s=timing.single_s)
    return {"main": main, "single": single, "warm_201": warm["statuses"].get("201", 0)}


def start_reference(
    stack: Stack, name: str, module: str, processes: int, **env: str
) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", f"benchmarks.reference.{module}:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(processes)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    argv += ["--log-level", "warning"]
    proc = stack.spawn(name, argv, **env)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    wait_every_process(url, proc, processes)
    return proc, url


@dataclass
class Apps:
    """One store's apps and their campaigns (one per app and run)."""

    run: Run
    stack: Stack
    tokens: Es256Tokens
    timing: Timing
    token_path: Path
    processes: int
    campaigns: dict[tuple[str, int], str]

    def path(self, app: str, i: int) -> str:
        return f"/v1/campaigns/{self.campaigns[(app, i)]}/claims"

    def cursor(self) -> wrk.Cursor:
        return wrk.Cursor(self.token_path)


def _prepare(run: Run, stack: Stack, names: list[str], ceiling: int) -> Apps:
    tokens, timing = es256(run), timing_of(run)
    per_campaign = timing.codes(ceiling)
    token_path = tokens.write_lines(run.workdir / f"es256-tokens-{per_campaign}.txt", per_campaign)
    api = stack.start_api(1, dev=False, **prod_env(tokens))
    brand = Brand(api.url, tokens)
    campaigns = {
        (name, i): brand.campaign(f"claims-ref {name} #{i}")
        for i in range(run.cfg.runs)
        for name in names
    }
    stack.stop_api()
    seed_codes(stack, brand.brand_id, list(campaigns.values()), per_campaign)
    processes = PG_PROCESSES if stack.backend == "postgresql" else SQLITE_PROCESSES
    return Apps(run, stack, tokens, timing, token_path, processes, campaigns)


def _ours(apps: Apps, i: int) -> dict[str, Any]:
    stack = apps.stack
    settle(stack)
    api = stack.start_api(apps.processes, dev=False, **prod_env(apps.tokens))
    try:
        return measure(stack, api.url, apps.path("ours", i), apps.cursor(), apps.timing, api.proc)
    finally:
        stack.stop_api()


def _reference(apps: Apps, name: str, auth: str, i: int) -> dict[str, Any]:
    stack = apps.stack
    settle(stack)
    env = ref_env(apps.tokens, auth)
    if stack.backend == "postgresql":
        env.update(REF_DSN=stack.raw_dsn, REF_POOL=str(POOL))
        module = "pg_app"
    else:
        env.update(REF_SQLITE=stack.raw_dsn)
        module = "sqlite_app"
    proc, url = start_reference(stack, f"{name}-{i}", module, apps.processes, **env)
    try:
        return measure(stack, url, apps.path(name, i), apps.cursor(), apps.timing, proc)
    finally:
        stack.stop(proc)


def _pgbench(apps: Apps, i: int) -> dict[str, Any]:
    """The reference's statement under pgbench on as many connections as ours hold. The
    window opens after the warm-up and closes before pgbench stops, so its backends are
    all alive through it; the work is the claims committed in the window."""
    stack = apps.stack
    settle(stack)
    campaign = apps.campaigns[("pgbench", i)]
    script = pgbench.script(stack.workdir, campaign)
    t = apps.timing
    total = t.warmup_s + t.duration_s + 2
    proc = pgbench.start(stack.raw_dsn, script, clients=POOL * PG_PROCESSES, seconds=total)
    count = "SELECT count(*) FROM claims WHERE campaign_id = $1"
    try:
        time.sleep(t.warmup_s)  # pgbench's warm-up, part of the measurement's schedule
        before = query(stack, count, campaign)[0][0]
        started = time.monotonic()
        with Window(stack.database) as window:
            time.sleep(t.duration_s)
        after = query(stack, count, campaign)[0][0]
        elapsed = time.monotonic() - started
    finally:
        main = pgbench.finish(proc, timeout=total + 60)
    work = int(after) - int(before)
    main.update(throughput=work / elapsed, window=window.summary(work), clients=POOL * PG_PROCESSES)
    return {"main": main}


def checks(stack: Stack, campaign_id: str, answered_201: int) -> dict[str, int]:
    """Checks that could fail: answered 201 but not stored (fewer claims in the database
    than 201 answers), claims without their outbox event, codes marked claimed without
    a claim."""
    stored, without_event, orphans = query(
        stack,
        "SELECT (SELECT count(*) FROM claims WHERE campaign_id = $1), "
        "(SELECT count(*) FROM claims c WHERE c.campaign_id = $1 AND NOT EXISTS "
        "  (SELECT 1 FROM events e WHERE e.id = c.id)), "
        "(SELECT count(*) FROM codes WHERE campaign_id = $1 AND claimed_at IS NOT NULL) - "
        "(SELECT count(*) FROM claims WHERE campaign_id = $1)",
        campaign_id,
    )[0]
    return {
        "answered_201_not_stored": max(0, answered_201 - int(stored)),
        "claims_without_event": int(without_event),
        "claimed_without_claim": int(orphans),
    }


def _attempt(apps: Apps, name: str, i: int, fn: Any, *args: Any) -> dict[str, Any]:
    """One app's run; a run that fails is kept as ``{"error": why}`` and the others go on."""
    try:
        if apps.stack.backend == "postgresql":
            wait_for_pg_connections(POOL * apps.processes + 3, 120)
        result: dict[str, Any] = fn(apps, *args, i)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
    if name != "pgbench":
        answered = sum(
            part.get("statuses", {}).get("201", 0) for part in (result["main"], result["single"])
        )
        answered += result.get("warm_201", 0)
        result["checks"] = checks(apps.stack, apps.campaigns[(name, i)], answered)
    return result


PG_APPS = ("ours", "ref-es256", "ref", "pgbench")
SQLITE_APPS = ("ours", "ref-es256", "ref")


def _series(apps: Apps, names: tuple[str, ...], res: ScenarioResult, db: str) -> dict[str, Any]:
    """Every app ``--runs`` times, taking turns; ``{app: [run, ...]}``."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(apps.run.cfg.runs):
        for name in names:
            print(f"[bench]   claims-ref {db} run {i + 1}: {name}", flush=True)
            if name == "ours":
                result = _attempt(apps, name, i, _ours)
            elif name == "pgbench":
                result = _attempt(apps, name, i, _pgbench)
            else:
                auth = "es256" if name.endswith("es256") else "none"
                result = _attempt(apps, name, i, _reference, name, auth)
            if "main" in result and "window" in result["main"]:
                res.note_window(f"{db} {name} #{i + 1}", result["main"]["window"])
            out[name].append(result)
    return out


def scenario(run: Run, res: ScenarioResult) -> None:
    from benchmarks.scenarios.claims_ref_report import report

    wrk.available()
    pgbench.available()
    stack = run.stack("postgresql", "claims-ref-pg")
    try:
        asyncio.run(schema.install_pg(stack.raw_dsn))
        pg = _series(_prepare(run, stack, list(PG_APPS), PG_CEILING), PG_APPS, res, "PostgreSQL")
    finally:
        run.drop(stack)
    stack = run.stack("sqlite", "claims-ref-sqlite")
    try:
        apps = _prepare(run, stack, list(SQLITE_APPS), SQLITE_CEILING)
        lite = _series(apps, SQLITE_APPS, res, "SQLite")
    finally:
        run.drop(stack)
    report(run, res, pg, lite)
