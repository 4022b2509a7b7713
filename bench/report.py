"""Render a run as the markdown the README shows, and write ``latest.json`` / ``latest.md``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.model import Goal, ScenarioResult, Series

__all__ = ["fmt_value", "render_markdown", "write_results"]

_UNITS = {"ms": " ms", "us": " µs", "x": "x", "/s": "/s", "%": " %"}


def fmt_value(value: float, unit: str) -> str:
    """Three significant figures or so, never scientific notation."""
    mag = abs(value)
    if mag >= 1000:
        text = f"{value:,.0f}"
    elif mag >= 100:
        text = f"{value:.0f}"
    elif mag >= 10:
        text = f"{value:.1f}"
    elif unit == "x":
        text = f"{value:.3f}"
    else:
        text = f"{value:.2f}"
    return text + _UNITS.get(unit, f" {unit}")


def _goal_row(i: int, g: Goal) -> str:
    op = "≤" if g.op == "<=" else "≥"
    verdict = "**pass**" if g.passed else "**FAIL**"
    value, target = fmt_value(g.value, g.unit), fmt_value(g.target, g.unit)
    return f"| {i} | {g.what} | {value} | {op} {target} | {verdict} |"


def _series_row(r: ScenarioResult, s: Series) -> str:
    m = s.summary
    extra = ", ".join(
        f"{k.replace('_', ' ')} {fmt_value(v, '')}".strip() for k, v in s.extra.items()
    )
    note = "; ".join(x for x in (s.note, extra) if x)
    return (
        f"| {r.title} | {s.contender} | {m.n} | {fmt_value(m.median, s.unit)} "
        f"| {fmt_value(m.p95, s.unit)} | {note} |"
    )


def _machine_line(machine: Mapping[str, Any]) -> str:
    aws = machine.get("aws_wrapper", {})
    aws_text = (
        f"AWS Advanced Python Wrapper {aws.get('version')} (with its "
        f"dependencies {len(aws.get('distributions', []))} distributions, "
        f"{aws.get('installed_mb')} MB)"
        if aws.get("installed")
        else f"AWS Advanced Python Wrapper: {aws.get('status', 'unknown')}"
    )
    load = machine.get("load_start", (0.0, 0.0, 0.0))
    return (
        f"{machine.get('cpu_model')} ({machine.get('cores')} cores), {machine.get('os')}, "
        f"Python {machine.get('python')}; psycopg {machine.get('psycopg')} "
        f"({machine.get('psycopg_impl')}, libpq {machine.get('libpq')}), "
        f"PyMySQL {machine.get('pymysql')}; {machine.get('postgres', 'PostgreSQL ?')}, "
        f"{machine.get('mariadb', 'MariaDB ?')}; {aws_text}. "
        f"CPU idle ({machine.get('cpu_idle', {}).get('driver')}): "
        f"{machine.get('cpu_idle', {}).get('latency_request')}. "
        f"Load average at start {load[0]:.2f} (1 min), at end "
        f"{machine.get('load_end', (0.0,))[0]:.2f}."
    )


def render_markdown(
    *,
    command: str,
    started: str,
    seconds: float,
    machine: Mapping[str, Any],
    results: Sequence[ScenarioResult],
    quick: bool,
) -> str:
    lines = [
        "### Benchmark results"
        + (" (quick run: few repetitions, not for comparison)" if quick else ""),
        "",
        f"Made by `{command}` on {started} in {seconds:.0f} s.",
        "",
        _machine_line(machine),
        "",
        "| # | goal | measured | target | result |",
        "|---|---|---|---|---|",
    ]
    goals = [g for r in results for g in r.goals]
    lines += [_goal_row(i, g) for i, g in enumerate(goals, 1)]
    errors = [r for r in results if r.error]
    for r in errors:
        error = (r.error or "").splitlines()[0][:160].replace("|", "/")
        lines.append(f"| - | {r.title} | not measured: {error} | | **ERROR** |")
    lines += [
        "",
        "| scenario | contender | n | median | p95 | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines += [_series_row(r, s) for s in r.series if s.samples]
    loads = ", ".join(f"{r.key} {r.load:.2f}" for r in results)
    lines += ["", f"Load average (1 min) when each scenario started: {loads}."]
    notes = [(r.title, n) for r in results for n in r.notes]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {title}: {note}" for title, note in notes]
    return "\n".join(lines) + "\n"


def write_results(prefix: Path, payload: Mapping[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``<prefix>.json`` and ``<prefix>.md``; returns both paths."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path = prefix.with_suffix(".json")
    md_path = prefix.with_suffix(".md")
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
