"""Results: figures paired with their raw baselines, written as Markdown and JSON, and plots.

A figure's ratio is always *ours / raw*, in the figure's own unit: for a time, 2.0x means
we take twice as long as the raw path; for a rate, 0.5x means we reach half its rate.

A figure measured over several runs (``Figure.of_runs``) is the median of the runs with
their range (min-max); its ratio is the median of the runs' own ratios (ours and the
reference run one after the other, so each pair shared the machine's state), with their
range.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.stats import median_range

TIME_UNITS = {"s", "ms"}


@dataclass
class Target:
    """``on`` is "ratio" (ours/raw) or "value"; ``op`` one of <=, <, >=, ==."""

    on: str
    op: str
    limit: float

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else value
        if x is None:
            return None
        return {
            "<=": x <= self.limit,
            "<": x < self.limit,
            ">=": x >= self.limit,
            "==": x == self.limit,
        }[self.op]

    def show(self, unit: str) -> str:
        op = {"<=": "≤", ">=": "≥", "<": "<", "==": "="}[self.op]
        if self.on == "ratio":
            return f"{op} {self.limit:g}x reference"
        return f"{op} {fmt(self.limit, unit)}"


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    raw: float | None = None
    raw_name: str = ""
    target: Target | None = None
    note: str = ""
    #: Over several runs: (min, max) of ours and of the reference, each run's ratio.
    span: tuple[float, float] | None = None
    raw_span: tuple[float, float] | None = None
    ratio_runs: list[float] | None = None

    @classmethod
    def of_runs(
        cls,
        name: str,
        values: list[float | None],
        unit: str,
        raws: list[float | None] | None = None,
        raw_name: str = "",
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        """The median of ``values`` with its range; with ``raws`` (the reference's runs,
        paired with ours in order), the median of the pairs' ratios and their range."""
        value, lo, hi = median_range(values)
        raw = raw_lo = raw_hi = None
        ratios: list[float] | None = None
        if raws is not None:
            raw, raw_lo, raw_hi = median_range(raws)
            ratios = [o / r for o, r in zip(values, raws, strict=False) if o is not None and r]
        counted = sum(v is not None for v in values)
        return cls(
            name,
            value,
            unit,
            raw,
            raw_name,
            target,
            note or (f"{counted} of {len(values)} runs" if counted < len(values) else ""),
            None if lo is None or hi is None else (lo, hi),
            None if raw_lo is None or raw_hi is None else (raw_lo, raw_hi),
            ratios,
        )

    @property
    def ratio(self) -> float | None:
        if self.ratio_runs:
            return median_range(self.ratio_runs)[0]
        if self.value is None or not self.raw:
            return None
        return self.value / self.raw

    @property
    def ratio_span(self) -> tuple[float, float] | None:
        if not self.ratio_runs or len(self.ratio_runs) < 2:
            return None
        return min(self.ratio_runs), max(self.ratio_runs)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["met"] = self.met
        return out


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class ScenarioResult:
    key: str
    title: str
    status: str = "ok"
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note_window(self, what: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Keep one measured window's load and CPU (``benchmarks.window.Window``)."""
        entry = {"what": what, **summary}
        self.details.setdefault("windows", []).append(entry)
        return entry


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:g} {unit}"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _ratio(r: float | None, span: tuple[float, float] | None = None) -> str:
    if r is None:
        return "–"
    return f"{r:.2f}x" + ("" if span is None else f" ({span[0]:.2f}-{span[1]:.2f})")


def with_span(value: float | None, unit: str, span: tuple[float, float] | None) -> str:
    """A median and its range: ``1,234 claims/s (1,200-1,260)``."""
    text = fmt(value, unit)
    if span is None or value is None or span[0] == span[1]:
        return text
    lo, hi = (fmt(x, unit).split(" ")[0] for x in span)
    return f"{text} ({lo}-{hi})"


def _met(m: bool | None) -> str:
    return "–" if m is None else ("yes" if m else "**no**")


def figure_cells(f: Figure) -> list[str]:
    """A figure's cells as results.md shows them: name, ours, reference, ratio, target, met."""
    raw = with_span(f.raw, f.unit, f.raw_span) + (f" ({f.raw_name})" if f.raw_name else "")
    if f.raw is None:
        raw = f.raw_name or "–"
    name = f.name + (f" — {f.note}" if f.note else "")
    return [
        cell(name),
        with_span(f.value, f.unit, f.span),
        cell(raw),
        _ratio(f.ratio, f.ratio_span),
        f.target.show(f.unit) if f.target else "–",
        _met(f.met),
    ]


def short_title(title: str) -> str:
    """A scenario's title without its parenthesis: ``3. Claims beside fair reference apps``."""
    return title.split(" (", 1)[0]


def is_check(f: Figure) -> bool:
    """A count that must be 0 (errors, events lost, codes twice), not a performance target."""
    t = f.target
    return t is not None and f.unit == "count" and t.on == "value" and t.op == "==" and not t.limit


def at_a_glance(
    results: list[ScenarioResult], keep: Callable[[Figure], bool] = lambda f: True
) -> list[str]:
    """One row per figure with a target (and ``keep``), under its scenario's number and
    short title, in the order run; the cells are those of the scenario's own table."""
    lines = [
        "| scenario | figure | ours | reference | ours/reference | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res in results:
        shown = ""
        for f in res.figures:
            if f.target is None or not keep(f):
                continue
            scenario = "" if shown == res.key else cell(short_title(res.title))
            shown = res.key
            lines.append("| " + " | ".join([scenario, *figure_cells(f)]) + " |")
    return lines


def tally(results: list[ScenarioResult]) -> str:
    """``31 of 45 targets met, **14 not**``, and the scenarios that gave no figure."""
    targeted = [f for r in results for f in r.figures if f.target is not None]
    met = sum(f.met is True for f in targeted)
    missed = sum(f.met is False for f in targeted)
    line = f"{met} of {len(targeted)} targets met"
    if missed:
        line += f", **{missed} not**"
    if unmeasured := len(targeted) - met - missed:
        line += f", {unmeasured} not measured"
    line += "."
    silent = [r for r in results if r.status != "ok"]
    if silent:
        line += " Did not run to its end: " + "; ".join(
            f"{short_title(r.title)} ({cell(r.status)})" for r in silent
        )
        line += "."
    return line


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_end": [round(x, 2) for x in psutil.getloadavg()],
    }


def markdown(title: str, results: list[ScenarioResult], meta: dict[str, Any]) -> str:
    lines = [f"# {title}", ""]
    lines.append(
        f"Run {meta['started_at']} ({meta['mode']}), command `{meta['command']}`, "
        f"{meta['machine']['cpus']} CPUs, {meta.get('runs', 1)} runs of every measurement "
        f"({meta.get('seconds', '?')} s each where a duration applies). Every figure is the "
        "median of the runs with their range (min-max); ratios are ours / reference in the "
        "figure's unit (time: lower is better; rate: higher is better), the median of each "
        "run's own ratio, ours and the reference run one after the other. Load and CPU are "
        "those of the measured windows only. See benchmarks/README.md."
    )
    lines.append("")
    lines += ["## Every target at a glance", "", tally(results), ""]
    lines += at_a_glance(results)
    lines.append("")
    for res in results:
        lines.append(f"## {res.title}")
        lines.append("")
        lines.append(f"Run {res.started_at}, {res.elapsed_s:.0f} s. {window_line(res)}")
        lines.append("")
        if res.status != "ok":
            lines.append(f"Status: **{cell(res.status)}**")
            lines.append("")
        if res.figures:
            lines.append("| figure | ours | reference | ours/reference | target | met |")
            lines.append("| --- | --- | --- | --- | --- | --- |")
            for f in res.figures:
                lines.append("| " + " | ".join(figure_cells(f)) + " |")
            lines.append("")
        for t in res.tables:
            lines.append(f"**{t.title}**")
            lines.append("")
            lines.append("| " + " | ".join(t.headers) + " |")
            lines.append("|" + " --- |" * len(t.headers))
            for row in t.rows:
                lines.append("| " + " | ".join(cell(c) for c in row) + " |")
            lines.append("")
        for png in res.details.get("plots", []):
            lines.append(f"![{png}]({png})")
            lines.append("")
    return "\n".join(lines)


def window_line(res: ScenarioResult) -> str:
    """The machine during the scenario's measured windows (``details["windows"]``)."""
    windows = [w for w in res.details.get("windows", []) if w.get("load_avg_1min")]
    if not windows:
        return ""
    peak = max((w["load_avg_1min"]["max"] or 0) for w in windows)
    first = windows[0]["load_avg_1min"]["start"]
    busy = [w["machine_cpu_busy_pct"] for w in windows if w.get("machine_cpu_busy_pct") is not None]
    spread = f"{min(busy):.0f}%" if busy and min(busy) == max(busy) else ""
    if busy and not spread:
        spread = f"{min(busy):.0f}-{max(busy):.0f}%"
    cpu = f", machine CPU busy {spread}" if busy else ""
    return (
        f"During its {len(windows)} measured windows: load average (1 min) {first} at the "
        f"first one's start, at most {peak}{cpu}."
    )


def write(
    out_dir: Path, stem: str, title: str, results: list[ScenarioResult], meta: dict[str, Any]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "machine": machine(), "finished_at": datetime.now(UTC).isoformat()}
    md = out_dir / f"{stem}.md"
    js = out_dir / f"{stem}.json"
    md.write_text(markdown(title, results, meta) + "\n")
    payload = {
        "meta": meta,
        "scenarios": [
            {
                "key": r.key,
                "title": r.title,
                "status": r.status,
                "started_at": r.started_at,
                "elapsed_s": r.elapsed_s,
                "figures": [f.as_json() for f in r.figures],
                "tables": [asdict(t) for t in r.tables],
                "details": r.details,
            }
            for r in results
        ],
    }
    js.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return md, js


def load(path: Path) -> tuple[dict[str, Any], list[ScenarioResult]]:
    """An earlier results.json, back as results (to merge a run of ``--only`` into it)."""
    payload = json.loads(path.read_text())
    results = []
    for sc in payload.get("scenarios", []):
        figures = []
        for f in sc.get("figures", []):
            target = Target(**f["target"]) if f.get("target") else None
            figures.append(
                Figure(
                    f["name"],
                    f["value"],
                    f["unit"],
                    f["raw"],
                    f["raw_name"],
                    target,
                    f["note"],
                    tuple(f["span"]) if f.get("span") else None,
                    tuple(f["raw_span"]) if f.get("raw_span") else None,
                    f.get("ratio_runs"),
                )
            )
        results.append(
            ScenarioResult(
                key=sc["key"],
                title=sc["title"],
                status=sc["status"],
                figures=figures,
                tables=[Table(**t) for t in sc.get("tables", [])],
                details=sc.get("details", {}),
                elapsed_s=sc.get("elapsed_s", 0.0),
                started_at=sc.get("started_at") or payload.get("meta", {}).get("started_at", "?"),
            )
        )
    return payload.get("meta", {}), results
