"""Scenario 3: claims through HTTP at 1/8/32/64 concurrent clients, with 1 and 2 API
processes (``serve --workers 2``). Clients are async httpx clients in a child process,
each claim by a distinct shopper's token, on a fresh campaign per run.

Raw baseline: the claim transaction (first available code ``FOR UPDATE SKIP LOCKED``,
mark it, insert the claim, insert the outbox row, commit) issued straight by asyncpg /
sqlite3 at the same concurrency, on identical tables. The raw runs go first, with no API
running, so their connections fit PostgreSQL's ``max_connections``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import plots
from benchmarks.api import Brand
from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios import give_codes
from benchmarks.services import Stack, query, wait_for_pg_connections

if TYPE_CHECKING:
    from benchmarks.run import Run

TARGET_SHARE_OF_RAW = 0.5


def pg(run: Run, res: ScenarioResult) -> None:
    stack = run.stack("postgresql", "claims-pg")
    try:
        _claims(run, res, stack, raw_kind="pg_claims", raw_name="asyncpg")
    finally:
        run.drop(stack)


def sqlite(run: Run, res: ScenarioResult) -> None:
    stack = run.stack("sqlite", "claims-sqlite")
    try:
        _claims(run, res, stack, raw_kind="sqlite_claims", raw_name="sqlite3")
    finally:
        run.drop(stack)


def _claims(run: Run, res: ScenarioResult, stack: Stack, *, raw_kind: str, raw_name: str) -> None:
    cfg = run.cfg
    api = stack.start_api(1)
    brand = Brand(api.url, run.tokens)
    setups = [(p, c) for p in cfg.claim_processes for c in cfg.claim_clients]
    campaigns: dict[tuple[int, int], str] = {}
    for setup in setups:
        campaigns[setup] = brand.campaign(f"claims {setup[0]}p {setup[1]}c")
    give_codes(stack, brand, list(campaigns.values()), cfg.claim_codes)
    raw_campaigns = {c: brand.campaign(f"raw {c}c") for c in cfg.claim_clients}
    tokens_file = run.tokens_file(cfg.claim_codes)
    stack.stop_api()

    wait = 5.0 if cfg.quick else 120.0
    raw: dict[int, dict[str, Any]] = {}
    for clients in cfg.claim_clients:
        spec: dict[str, Any] = {
            "brand_id": brand.brand_id,
            "campaign_id": raw_campaigns[clients],
            "concurrency": clients,
            "warmup": cfg.claim_warmup_s,
            "duration": cfg.claim_duration_s,
        }
        if raw_kind == "pg_claims":
            spec.update(dsn=stack.raw_dsn, codes=cfg.raw_claim_codes_pg)
        else:
            spec.update(
                service_db=stack.raw_dsn,
                raw_db=str(stack.workdir / f"raw-claims-{clients}.db"),
                codes=cfg.raw_claim_codes_sqlite,
            )
        raw[clients] = _attempt(stack, clients + 2, wait, lambda s=spec: stack.child(raw_kind, s))

    ours: dict[tuple[int, int], dict[str, Any]] = {}
    for processes, clients in setups:

        def measure(processes: int = processes, clients: int = clients) -> dict[str, Any]:
            api = stack.start_api(processes)
            result = stack.child(
                "claims_closed",
                {
                    "url": api.url,
                    "campaign_id": campaigns[(processes, clients)],
                    "tokens_file": tokens_file,
                    "concurrency": clients,
                    "warmup": cfg.claim_warmup_s,
                    "duration": cfg.claim_duration_s,
                },
            )
            result["handed_twice"], result["claimed_without_claim"] = _integrity(
                stack, campaigns[(processes, clients)]
            )
            return result

        # A request holds at most one connection; a process opens at most 2 x pool size (40).
        needed = min(clients, 40 * processes) + 3
        ours[(processes, clients)] = _attempt(stack, needed, wait, measure)
    stack.stop_api()

    _report(run, res, stack, raw_name, raw, ours)


def _attempt(
    stack: Stack, connections: int, wait: float, measure: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """One measured run; a run that cannot go (PostgreSQL connections held by others) or
    fails is kept as ``{"error": why}`` and the other runs go on."""
    try:
        if stack.backend == "postgresql":
            wait_for_pg_connections(connections, wait)
        return measure()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}


def _integrity(stack: Stack, campaign_id: str) -> tuple[int, int]:
    """(codes held by two claims, codes marked claimed without a claim): both must be 0."""
    twice = query(
        stack,
        "SELECT count(*) - count(DISTINCT code_id) FROM claims WHERE campaign_id = $1",
        campaign_id,
    )[0][0]
    orphans = query(
        stack,
        "SELECT (SELECT count(*) FROM codes WHERE campaign_id = $1 AND claimed_at IS NOT NULL)"
        " - (SELECT count(*) FROM claims WHERE campaign_id = $1)",
        campaign_id,
    )[0][0]
    return int(twice), int(orphans)


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _report(
    run: Run,
    res: ScenarioResult,
    stack: Stack,
    raw_name: str,
    raw: dict[int, dict[str, Any]],
    ours: dict[tuple[int, int], dict[str, Any]],
) -> None:
    db = "PostgreSQL" if stack.backend == "postgresql" else "SQLite"
    top = max(run.cfg.claim_clients)
    for processes in run.cfg.claim_processes:
        o, r = ours[(processes, top)], raw[top]
        what = f"{top} clients, {processes} API process{'es' if processes > 1 else ''}"
        note = "; ".join(x for x in (_why(o), _why(r, "raw")) if x)
        res.add(
            Figure(
                f"{what}: throughput",
                o.get("throughput"),
                "claims/s",
                r.get("throughput"),
                f"{raw_name}, {top} connections",
                Target("ratio", ">=", TARGET_SHARE_OF_RAW),
                note=note,
            )
        )
        res.add(Figure(f"{what}: p99", o.get("p99_ms"), "ms", r.get("p99_ms"), raw_name))
        res.add(
            Figure(
                f"{what}: errors",
                o.get("errors"),
                "count",
                r.get("errors"),
                raw_name,
                Target("value", "==", 0),
                note=_statuses(o),
            )
        )
    one = ours.get((1, top), {})
    if stack.backend == "postgresql" and one.get("throughput") is not None:
        run.shared["claims_pg_1p_top"] = one["throughput"]
    measured = [o for o in ours.values() if "error" not in o]
    twice = sum(o["handed_twice"] for o in measured) if measured else None
    orphans = sum(o["claimed_without_claim"] for o in measured) if measured else None
    res.add(
        Figure(
            f"codes handed out twice ({len(measured)} runs)",
            twice,
            "count",
            target=Target("value", "==", 0),
        )
    )
    res.add(
        Figure(
            "codes marked claimed without a claim",
            orphans,
            "count",
            target=Target("value", "==", 0),
        )
    )

    rows = []
    series: dict[str, list[dict[str, Any]]] = {}
    for (processes, clients), o in sorted(ours.items()):
        r = raw[clients]
        share = (
            o["throughput"] / r["throughput"]
            if o.get("throughput") is not None and r.get("throughput")
            else None
        )
        rows.append(
            [
                str(processes),
                str(clients),
                _rate(o.get("throughput")),
                _ms(o.get("p50_ms")),
                _ms(o.get("p99_ms")),
                str(o.get("errors", "–")),
                _rate(r.get("throughput")),
                _ms(r.get("p50_ms")),
                _ms(r.get("p99_ms")),
                "–" if share is None else f"{share:.2f}x",
                str(o.get("handed_twice", "–")),
                "; ".join(x for x in (_why(o), _why(r, "raw"), _statuses(o)) if x),
            ]
        )
        if "error" not in o:
            series.setdefault(f"{db}, {processes} API process(es)", []).append(
                {"clients": clients, "throughput": o["throughput"], "p99_ms": o["p99_ms"]}
            )
    series[f"{db}, raw {raw_name}"] = [
        {"clients": c, "throughput": r["throughput"], "p99_ms": r["p99_ms"]}
        for c, r in raw.items()
        if "error" not in r
    ]
    res.tables.append(
        Table(
            f"{db}: every run ({run.cfg.claim_duration_s:g} s measured after "
            f"{run.cfg.claim_warmup_s:g} s warm-up; latency in ms)",
            [
                "API procs",
                "clients",
                "claims/s",
                "p50",
                "p99",
                "errors",
                f"raw {raw_name}/s",
                "raw p50",
                "raw p99",
                "ours/raw",
                "handed twice",
                "notes",
            ],
            rows,
        )
    )
    png = Path(run.out_dir) / f"claims_{stack.backend}.png"
    run.out_dir.mkdir(parents=True, exist_ok=True)
    drawn = plots.claims(series, png)
    res.details.update(
        plots=[drawn.name] if drawn else [],
        ours={f"{p}p-{c}c": o for (p, c), o in ours.items()},
        raw={str(c): r for c, r in raw.items()},
    )


def _why(o: dict[str, Any], who: str = "ours") -> str:
    if "error" in o:
        return f"{who} not run: {o['error']}"
    if o.get("ran_out_of_users") or o.get("ran_out_of_codes"):
        return f"{who} ran out of users/codes before the end"
    return ""


def _statuses(o: dict[str, Any]) -> str:
    bad = {k: v for k, v in o.get("statuses", {}).items() if k != "201"}
    return "" if not bad else "answers: " + ", ".join(f"{k}×{v}" for k, v in sorted(bad.items()))
