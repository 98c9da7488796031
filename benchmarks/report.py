"""Results: figures paired with their raw baselines, written as Markdown and JSON, and plots.

A figure's ratio is always *ours / raw*, in the figure's own unit: for a time, 2.0x means
we take twice as long as the raw path; for a rate, 0.5x means we reach half its rate.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

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
            return f"{op} {self.limit:g}x raw"
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

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.raw:
            return None
        return self.value / self.raw

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


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
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


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}x"


def _met(m: bool | None) -> str:
    return "–" if m is None else ("yes" if m else "**no**")


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
        f"{meta['machine']['cpus']} CPUs, load average at the end "
        f"{meta['machine']['load_avg_at_end']}. Ratios are ours / raw in the figure's unit "
        "(time: lower is better; rate: higher is better); the raw baseline is measured in "
        "this same run. See benchmarks/README.md."
    )
    lines.append("")
    for res in results:
        lines.append(f"## {res.title}")
        lines.append("")
        load = res.details.get("load_avg_1min", {})
        lines.append(
            f"Run {res.started_at}, {res.elapsed_s:.0f} s; machine load average (1 min) "
            f"{load.get('start', '?')} at the start, {load.get('end', '?')} at the end."
        )
        lines.append("")
        if res.status != "ok":
            lines.append(f"Status: **{cell(res.status)}**")
            lines.append("")
        if res.figures:
            lines.append("| figure | ours | raw baseline | ours/raw | target | met |")
            lines.append("| --- | --- | --- | --- | --- | --- |")
            for f in res.figures:
                raw = fmt(f.raw, f.unit) + (f" ({f.raw_name})" if f.raw_name else "")
                if f.raw is None:
                    raw = f.raw_name or "–"
                target = f.target.show(f.unit) if f.target else "–"
                name = f.name + (f" — {f.note}" if f.note else "")
                lines.append(
                    f"| {cell(name)} | {fmt(f.value, f.unit)} | {cell(raw)} | {_ratio(f.ratio)} "
                    f"| {target} | {_met(f.met)} |"
                )
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
                Figure(f["name"], f["value"], f["unit"], f["raw"], f["raw_name"], target, f["note"])
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
