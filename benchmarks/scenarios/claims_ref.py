"""Scenario ``claims-ref``: our claims beside minimal reference apps, in one run, under one
load tool (wrk) and the same number of processes.

PostgreSQL, 2 processes each: the minimal FastAPI + asyncpg app on a known row, the same
with a plain ``SKIP LOCKED`` queue, and ``discount-codes serve --workers 2`` in
production mode (ES256 tokens verified against a key file, access log at INFO). SQLite,
1 process each: the minimal sqlite3 app and ours. Every app: a 2 s warm-up at 64
connections, ``wrk -t2 -c64 -d10s``, then ``wrk -t1 -c1 -d3s`` for the 1-client p50;
every request a new shopper (``benchmarks/claims.lua``), so every answer but ``201`` is
an error. After each app's runs, SQL checks that no code went to two claims.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from benchmarks import wrk
from benchmarks.api import Brand
from benchmarks.es256 import Es256Tokens
from benchmarks.reference import schema
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import give_codes
from benchmarks.scenarios.claims import _integrity
from benchmarks.services import (
    Proc,
    Stack,
    _wait_ready,
    free_port,
    query,
    wait_every_process,
    wait_for_pg_connections,
)

if TYPE_CHECKING:
    from benchmarks.run import Run

PG_PROCESSES = 2
SQLITE_PROCESSES = 1
CONNECTIONS = 64
REF_PATH = f"/v1/campaigns/{schema.CAMPAIGN}/claims"
# Targets of issue 12 for ours.
PG_SHARE_OF_KNOWN = 0.6
P99_MS = 150
ONE_CLIENT_P50_MS = 3
SQLITE_SHARE = 0.5


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    duration_s: float
    single_s: float
    tokens: int
    codes: int  # in every app's campaign: more than a run can claim on this machine


# 15 s of claims at up to ~7,500/s (the SQLite reference here) is ~113,000: every app gets
# more codes than that and a new shopper for each request. Quick: 4 s, ~30,000.
FULL = Timing(warmup_s=2, duration_s=10, single_s=3, tokens=200_000, codes=150_000)
QUICK = Timing(warmup_s=1, duration_s=2, single_s=1, tokens=60_000, codes=50_000)


def es256(run: Run) -> Es256Tokens:
    """The run's ES256 key (and its tokens), made once and shared by the scenarios."""
    if "es256" not in run.shared:
        run.shared["es256"] = Es256Tokens(run.workdir / "es256")
    tokens: Es256Tokens = run.shared["es256"]
    return tokens


def prod_env(tokens: Es256Tokens, **extra: str) -> dict[str, str]:
    """Our server as production runs it: key file, no dev mode, the access log written."""
    return {"DISCOUNT_CODES_LOG_LEVEL": "INFO", **tokens.server_env(), **extra}


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


def _database_pids() -> list[int]:
    """PostgreSQL's processes (server and backends): the database's share of a claim."""
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def settle(stack: Stack, sqlite_path: str | None = None) -> None:
    """Before an app's runs, untimed: the database's housekeeping done, so that autovacuum
    (fresh codes, the previous app's claims) and a checkpoint do not land inside this
    app's 10 s and count as its cost. SQLite: the write-ahead log checkpointed."""
    if stack.backend == "postgresql":
        query(stack, "VACUUM (ANALYZE)")
        query(stack, "CHECKPOINT")
        return
    con = sqlite3.connect(sqlite_path or stack.raw_dsn)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def measure(url: str, path: str, cursor: wrk.Cursor, timing: Timing, proc: Proc) -> dict[str, Any]:
    wrk.claims(url, path, cursor, threads=2, connections=CONNECTIONS, duration_s=timing.warmup_s)
    app, database = _app_pids(proc), _database_pids()
    before = _cpu_seconds(app), _cpu_seconds(database)
    main = wrk.claims(
        url, path, cursor, threads=2, connections=CONNECTIONS, duration_s=timing.duration_s
    )
    after = _cpu_seconds(app), _cpu_seconds(database)
    answered = main.get("throughput", 0) * timing.duration_s
    if answered:
        # CPU per claim of the app's processes and of PostgreSQL's (SQLite's is the app's).
        main["app_cpu_ms_per_claim"] = round((after[0] - before[0]) * 1000 / answered, 3)
        main["db_cpu_ms_per_claim"] = round((after[1] - before[1]) * 1000 / answered, 3)
    single = wrk.claims(url, path, cursor, threads=1, connections=1, duration_s=timing.single_s)
    return {"main": main, "single": single}


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


def _run_reference(
    stack: Stack,
    name: str,
    module: str,
    processes: int,
    timing: Timing,
    tokens_file: Path,
    **env: str,
) -> dict[str, Any]:
    settle(stack, env.get("REF_SQLITE"))
    proc, url = start_reference(stack, name, module, processes, **env)
    try:
        return measure(url, REF_PATH, wrk.Cursor(tokens_file), timing, proc)
    finally:
        stack.stop(proc)


def _run_ours(
    run: Run, stack: Stack, processes: int, timing: Timing, tokens: Es256Tokens, path: Path
) -> dict[str, Any]:
    api = stack.start_api(1, dev=False, **prod_env(tokens))
    brand = Brand(api.url, tokens)
    campaign = brand.campaign("claims-ref")
    give_codes(stack, brand, [campaign], timing.codes)
    stack.stop_api()
    settle(stack)
    api = stack.start_api(processes, dev=False, **prod_env(tokens))
    try:
        path_ = f"/v1/campaigns/{campaign}/claims"
        out = measure(api.url, path_, wrk.Cursor(path), timing, api.proc)
    finally:
        stack.stop_api()
    twice, orphans = _integrity(stack, campaign)
    out["integrity"] = {"handed_twice": twice, "claimed_without_claim": orphans}
    return out


def _attempt(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One app's runs; the machine's load average at its start goes with them (other
    sessions share the 2 cores: a ratio between apps run under different loads is
    suspect)."""
    load = round(os.getloadavg()[0], 2)
    try:
        result: dict[str, Any] = fn(*args, **kwargs)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
    result["load_avg_1min"] = load
    return result


def scenario(run: Run, res: ScenarioResult) -> None:
    wrk.available()
    timing = QUICK if run.cfg.quick else FULL
    tokens = es256(run)
    path = tokens.write_lines(run.workdir / "es256-tokens.txt", timing.tokens)
    apps: dict[str, dict[str, Any]] = {}

    stack = run.stack("postgresql", "claims-ref-pg")
    try:
        for mode, label in (("known", "ref-pg-known"), ("skip", "ref-pg-skip")):
            codes = schema.KNOWN_BLOCK * PG_PROCESSES if mode == "known" else timing.codes
            asyncio.run(schema.create_pg(stack.raw_dsn, f"ref_{mode}", codes))
            wait_for_pg_connections(20 * PG_PROCESSES + 3, 120)
            apps[label] = _attempt(
                _run_reference,
                stack,
                label,
                "pg_app",
                PG_PROCESSES,
                timing,
                path,
                REF_MODE=mode,
                REF_DSN=stack.raw_dsn,
                REF_SCHEMA=f"ref_{mode}",
            )
            if "error" not in apps[label]:
                apps[label]["integrity"] = asyncio.run(
                    schema.integrity_pg(stack.raw_dsn, f"ref_{mode}")
                )
        wait_for_pg_connections(20 * PG_PROCESSES + 3, 120)
        apps["ours-pg"] = _attempt(_run_ours, run, stack, PG_PROCESSES, timing, tokens, path)
    finally:
        run.drop(stack)

    stack = run.stack("sqlite", "claims-ref-sqlite")
    try:
        ref_db = str(stack.workdir / "reference.db")
        schema.create_sqlite(ref_db, timing.codes)
        apps["ref-sqlite"] = _attempt(
            _run_reference,
            stack,
            "ref-sqlite",
            "sqlite_app",
            SQLITE_PROCESSES,
            timing,
            path,
            REF_SQLITE=ref_db,
        )
        if "error" not in apps["ref-sqlite"]:
            apps["ref-sqlite"]["integrity"] = schema.integrity_sqlite(ref_db)
        apps["ours-sqlite"] = _attempt(
            _run_ours, run, stack, SQLITE_PROCESSES, timing, tokens, path
        )
    finally:
        run.drop(stack)

    _report(res, apps, timing)


NAMES = {
    "ref-pg-known": "minimal FastAPI + asyncpg, known row",
    "ref-pg-skip": "minimal FastAPI + asyncpg, plain SKIP LOCKED queue",
    "ours-pg": "discount-codes (ES256, access log), PostgreSQL",
    "ref-sqlite": "minimal FastAPI + sqlite3 (WAL, synchronous=NORMAL)",
    "ours-sqlite": "discount-codes (ES256, access log), SQLite",
}


def _get(app: dict[str, Any], run: str, key: str) -> Any:
    return app.get(run, {}).get(key)


def _report(res: ScenarioResult, apps: dict[str, dict[str, Any]], timing: Timing) -> None:
    pg, known, skip = apps["ours-pg"], apps["ref-pg-known"], apps["ref-pg-skip"]
    lite, ref_lite = apps["ours-sqlite"], apps["ref-sqlite"]
    pg_what = f"PostgreSQL, {PG_PROCESSES} processes, {CONNECTIONS} connections"
    res.add(
        Figure(
            f"{pg_what}: claims/s vs known-row app",
            _get(pg, "main", "throughput"),
            "claims/s",
            _get(known, "main", "throughput"),
            NAMES["ref-pg-known"],
            Target("ratio", ">=", PG_SHARE_OF_KNOWN),
            note=pg.get("error", ""),
        )
    )
    res.add(
        Figure(
            f"{pg_what}: claims/s vs SKIP LOCKED app",
            _get(pg, "main", "throughput"),
            "claims/s",
            _get(skip, "main", "throughput"),
            NAMES["ref-pg-skip"],
        )
    )
    res.add(
        Figure(
            f"{pg_what}: p99",
            _get(pg, "main", "p99_ms"),
            "ms",
            _get(known, "main", "p99_ms"),
            NAMES["ref-pg-known"],
            Target("value", "<=", P99_MS),
        )
    )
    res.add(
        Figure(
            f"{pg_what}: errors (non-201 + socket)",
            _get(pg, "main", "errors"),
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            "PostgreSQL, 1 client: p50",
            _get(pg, "single", "p50_ms"),
            "ms",
            _get(known, "single", "p50_ms"),
            NAMES["ref-pg-known"],
            Target("value", "<=", ONE_CLIENT_P50_MS),
        )
    )
    res.add(
        Figure(
            f"SQLite, 1 process, {CONNECTIONS} connections: claims/s",
            _get(lite, "main", "throughput"),
            "claims/s",
            _get(ref_lite, "main", "throughput"),
            NAMES["ref-sqlite"],
            Target("ratio", ">=", SQLITE_SHARE),
            note=lite.get("error", ""),
        )
    )
    res.add(
        Figure(
            "SQLite: errors (non-201 + socket)",
            _get(lite, "main", "errors"),
            "count",
            target=Target("value", "==", 0),
        )
    )
    twice = [a["integrity"]["handed_twice"] for a in apps.values() if "integrity" in a]
    res.add(
        Figure(
            f"codes handed out twice ({len(twice)} apps checked)",
            sum(twice) if twice else None,
            "count",
            target=Target("value", "==", 0),
        )
    )

    rows = []
    ratio_to = {"ours-pg": "ref-pg-known", "ours-sqlite": "ref-sqlite"}
    for key, app in apps.items():
        main, single = app.get("main", {}), app.get("single", {})
        ratio = ""
        if (
            key in ratio_to
            and main.get("throughput")
            and _get(apps[ratio_to[key]], "main", "throughput")
        ):
            ratio = f"{main['throughput'] / apps[ratio_to[key]]['main']['throughput']:.2f}x"
            if key == "ours-pg" and _get(skip, "main", "throughput"):
                ratio += f" ({main['throughput'] / skip['main']['throughput']:.2f}x of SKIP LOCKED)"
        integ = app.get("integrity", {})
        bad = {k: v for k, v in main.get("statuses", {}).items() if k != "201"}
        notes = "; ".join(
            x
            for x in (
                app.get("error", ""),
                ", ".join(f"{k}×{v}" for k, v in sorted(bad.items())),
                ", ".join(f"{k} {v}" for k, v in main.get("socket_errors", {}).items() if v),
                "tokens wrapped" if main.get("wrapped") else "",
            )
            if x
        )
        rows.append(
            [
                NAMES[key],
                str(PG_PROCESSES if "pg" in key else SQLITE_PROCESSES),
                _fmt(main.get("throughput"), "{:,.0f}"),
                _fmt(main.get("p50_ms"), "{:.1f}"),
                _fmt(main.get("p99_ms"), "{:.1f}"),
                _fmt(main.get("errors"), "{}"),
                _fmt(main.get("app_cpu_ms_per_claim"), "{:.2f}"),
                _fmt(main.get("db_cpu_ms_per_claim") if "pg" in key else None, "{:.2f}"),
                _fmt(single.get("p50_ms"), "{:.2f}"),
                _fmt(single.get("throughput"), "{:,.0f}"),
                ratio or "–",
                _fmt(integ.get("handed_twice"), "{}"),
                _fmt(app.get("load_avg_1min"), "{:.1f}"),
                notes,
            ]
        )
    res.tables.append(
        Table(
            f"Every app: wrk -t2 -c{CONNECTIONS} -d{timing.duration_s:g}s after a "
            f"{timing.warmup_s:g} s warm-up, then wrk -t1 -c1 -d{timing.single_s:g}s "
            "(latency in ms)",
            [
                "app",
                "processes",
                "claims/s",
                "p50",
                "p99",
                "errors",
                "app CPU ms/claim",
                "PostgreSQL CPU ms/claim",
                "1 client p50",
                "1 client claims/s",
                "ours/reference",
                "handed twice",
                "load avg",
                "notes",
            ],
            rows,
        )
    )
    res.details.update(apps=apps)


def _fmt(x: Any, pattern: str) -> str:
    return "–" if x is None else pattern.format(x)
