"""The figures and tables of ``claims-ref``: medians of the runs with their ranges, each
ratio the median of the runs' own ratios (ours and the reference ran back to back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.report import Figure, ScenarioResult, Table, Target
from benchmarks.scenarios.claims_ref import CONNECTIONS, PG_PROCESSES, POOL, SQLITE_PROCESSES
from benchmarks.stats import median_range

if TYPE_CHECKING:
    from benchmarks.run import Run

# Issue 26's targets for ours.
PG_SHARE_OF_ES256_REF = 0.85
PG_CPU_SHARE_OF_PGBENCH = 1.3
SQLITE_SHARE = 0.6
# Issue 12's, kept.
P99_MS = 150
ONE_CLIENT_P50_MS = 3

NAMES = {
    "ours": "discount-codes (ES256, access log)",
    "ref-es256": "fair reference + PyJWT ES256",
    "ref": "fair reference, no authentication",
    "pgbench": "pgbench of the reference's statement",
}


def _of(runs: list[dict[str, Any]], part: str, *keys: str) -> list[Any]:
    out = []
    for r in runs:
        x: Any = r.get(part, {})
        for k in keys:
            x = x.get(k) if isinstance(x, dict) else None
        out.append(x)
    return out


def _us(values: list[Any]) -> list[Any]:
    """Milliseconds of CPU per claim as microseconds (a figure well under 1 ms)."""
    return [None if v is None else v * 1000 for v in values]


def _sum_checks(runs: list[dict[str, Any]], key: str) -> int | None:
    counted = [r["checks"][key] for r in runs if "checks" in r]
    return sum(counted) if counted else None


def report(
    run: Run,
    res: ScenarioResult,
    pg: dict[str, list[dict[str, Any]]],
    lite: dict[str, list[dict[str, Any]]],
) -> None:
    n = run.cfg.runs
    what = f"PostgreSQL, {PG_PROCESSES} processes x {POOL} connections, {CONNECTIONS} clients"
    ours, ref, bare = pg["ours"], pg["ref-es256"], pg["ref"]
    res.add(
        Figure.of_runs(
            f"{what}: claims/s",
            _of(ours, "main", "throughput"),
            "claims/s",
            _of(ref, "main", "throughput"),
            NAMES["ref-es256"],
            Target("ratio", ">=", PG_SHARE_OF_ES256_REF),
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: claims/s vs the reference without authentication",
            _of(ours, "main", "throughput"),
            "claims/s",
            _of(bare, "main", "throughput"),
            NAMES["ref"],
        )
    )
    res.add(
        Figure.of_runs(
            f"{what}: p99",
            _of(ours, "main", "p99_ms"),
            "ms",
            _of(ref, "main", "p99_ms"),
            NAMES["ref-es256"],
            Target("value", "<=", P99_MS),
        )
    )
    res.add(
        Figure.of_runs(
            "PostgreSQL, 1 client: p50",
            _of(ours, "single", "p50_ms"),
            "ms",
            _of(ref, "single", "p50_ms"),
            NAMES["ref-es256"],
            Target("value", "<=", ONE_CLIENT_P50_MS),
        )
    )
    res.add(
        Figure.of_runs(
            "PostgreSQL CPU per claim (this database's backends)",
            _us(_of(ours, "main", "window", "pg_cpu_ms_per_op")),
            "µs",
            _us(_of(pg["pgbench"], "main", "window", "pg_cpu_ms_per_op")),
            f"{NAMES['pgbench']}, {POOL * PG_PROCESSES} connections (ours' pool)",
            Target("ratio", "<=", PG_CPU_SHARE_OF_PGBENCH),
        )
    )
    res.add(
        Figure.of_runs(
            "PostgreSQL shared processes' CPU per claim (WAL writer, checkpointer...)",
            _us(_of(ours, "main", "window", "pg_shared_cpu_ms_per_op")),
            "µs",
            _us(_of(pg["pgbench"], "main", "window", "pg_shared_cpu_ms_per_op")),
            NAMES["pgbench"],
        )
    )
    res.add(
        Figure.of_runs(
            f"SQLite, {SQLITE_PROCESSES} process, {CONNECTIONS} clients: claims/s",
            _of(lite["ours"], "main", "throughput"),
            "claims/s",
            _of(lite["ref-es256"], "main", "throughput"),
            "fair sqlite3 reference + PyJWT ES256",
            Target("ratio", ">=", SQLITE_SHARE),
        )
    )
    res.add(
        Figure.of_runs(
            "SQLite: claims/s vs the reference without authentication",
            _of(lite["ours"], "main", "throughput"),
            "claims/s",
            _of(lite["ref"], "main", "throughput"),
            "fair sqlite3 reference, no authentication",
        )
    )
    every_ours = ours + lite["ours"]
    errors = [r["main"]["errors"] for r in every_ours if "main" in r]
    res.add(
        Figure(
            f"ours: errors (non-201 + socket), {len(errors)} runs",
            sum(errors) if errors else None,
            "count",
            target=Target("value", "==", 0),
        )
    )
    for key, label in (
        ("answered_201_not_stored", "answered 201 but not stored"),
        ("claims_without_event", "claims without their outbox event"),
        ("claimed_without_claim", "codes marked claimed without a claim"),
    ):
        res.add(
            Figure(
                f"ours: {label} ({n * 2} runs)",
                _sum_checks(every_ours, key),
                "count",
                target=Target("value", "==", 0),
            )
        )
    res.tables.append(_table(run, {"PostgreSQL": pg, "SQLite": lite}))
    res.details.update(runs={"postgresql": pg, "sqlite": lite})
    capacity = median_range(_of(ours, "main", "throughput"))[0]
    if capacity:
        run.shared["claims_pg_capacity"] = capacity


def _fmt(x: Any, pattern: str) -> str:
    return "–" if x is None else pattern.format(x)


def _table(run: Run, stores: dict[str, dict[str, list[dict[str, Any]]]]) -> Table:
    rows = []
    for db, apps in stores.items():
        for name, runs in apps.items():
            for i, r in enumerate(runs):
                main, single = r.get("main", {}), r.get("single", {})
                window = main.get("window", {})
                bad = {k: v for k, v in main.get("statuses", {}).items() if k != "201"}
                notes = "; ".join(
                    x
                    for x in (
                        r.get("error", ""),
                        ", ".join(f"{k}×{v}" for k, v in sorted(bad.items())),
                        "tokens wrapped" if main.get("wrapped") else "",
                    )
                    if x
                )
                rows.append(
                    [
                        db,
                        NAMES[name],
                        str(i + 1),
                        _fmt(main.get("throughput"), "{:,.0f}"),
                        _fmt(main.get("p50_ms"), "{:.1f}"),
                        _fmt(main.get("p99_ms"), "{:.1f}"),
                        _fmt(main.get("app_cpu_ms_per_claim"), "{:.2f}"),
                        _fmt(window.get("pg_cpu_ms_per_op"), "{:.3f}"),
                        _fmt(single.get("p50_ms"), "{:.2f}"),
                        _fmt(window.get("load_avg_1min", {}).get("max"), "{:.2f}"),
                        _fmt(window.get("machine_cpu_busy_pct"), "{:.0f}%"),
                        notes,
                    ]
                )
    t = run.cfg
    return Table(
        f"Every run, in the order run: wrk -t2 -c{CONNECTIONS} -d{t.claim_duration_s:g}s after a "
        f"{t.claim_warmup_s:g} s warm-up, then wrk -t1 -c1 (latency in ms; load and CPU of "
        "the measured window)",
        [
            "store",
            "app",
            "run",
            "claims/s",
            "p50",
            "p99",
            "app CPU ms/claim",
            "PostgreSQL CPU ms/claim",
            "1 client p50",
            "load avg max",
            "machine CPU",
            "notes",
        ],
        rows,
    )
