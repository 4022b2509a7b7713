"""A chaos run's summary as Markdown: faults, operations, failures by kind, recovery, leaks.

Pure text from a :class:`~clusterdb.testing.chaos.run.ChaosResult`. Recovery time of a fault:
from the moment its end action returned (the node is back) to the first operation that
connected to that node afterwards (none: the node got no connect before the run ended).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from clusterdb.testing.chaos.run import ChaosResult

__all__ = ["recovery_times", "summary"]


def recovery_times(result: ChaosResult) -> dict[str, list[float]]:
    """Per fault kind, seconds from each disruptive fault's end to its node's next connect."""
    connects = sorted(
        (op.end, op.node) for op in result.ops if op.connect_error is None and op.node
    )
    out: dict[str, list[float]] = {}
    for applied in result.applied:
        if applied.fault.kind in ("latency", "repl_delay") or applied.end == float("inf"):
            continue
        node = (
            applied.node
            if applied.fault.kind not in ("promote", "switchover")
            else None  # a topology change: the first connect anywhere for role primary
        )
        later = [
            t - applied.end for t, n in connects if t >= applied.end and (node is None or n == node)
        ]
        if later:
            out.setdefault(applied.fault.kind, []).append(later[0])
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"


def summary(results: Sequence[ChaosResult], title: str = "Chaos run") -> str:
    """One Markdown section per result (a server kind), then nothing else."""
    lines = [f"# {title}", ""]
    for r in results:
        ok = "all invariants held, nothing left behind" if r.ok else "**FAILED**"
        lines += [
            f"## {r.driver}: seed {r.config.seed}, {r.elapsed:.0f} s ({ok})",
            "",
            f"Grace window after a fault: {r.grace:.1f} s. Workers: "
            f"{r.config.threads_per_role} thread(s) and {r.config.tasks_per_role} asyncio "
            f"task(s) per role, {r.config.pace * 1000:.0f} ms apart.",
            "",
        ]
        kinds = Counter(a.fault.kind for a in r.applied)
        rec = recovery_times(r)
        lines += _table(
            ["fault", "count", "recovery median / max (ms)"],
            [(k, n, _ms(rec[k]) if rec.get(k) else "-") for k, n in sorted(kinds.items())],
        )
        lines.append("")
        by_role: Counter[tuple[str, str]] = Counter()
        for op in r.ops:
            outcome = (
                f"connect failed: {op.connect_error}"
                if op.connect_error
                else f"query failed: {op.query_error}"
                if op.query_error
                else "ok"
            )
            by_role[(op.wanted, outcome)] += 1
        lines += _table(
            ["role", "outcome", "operations"], [(w, o, n) for (w, o), n in sorted(by_role.items())]
        )
        acked = sum(1 for op in r.ops if op.acked)
        lines += ["", f"Operations: {len(r.ops)}; acknowledged writes: {acked}.", ""]
        rows: list[tuple[str, object]] = [(k, len(v)) for k, v in r.violations.items()]
        rows += [("harness errors", len(r.harness_errors))]
        rows += [(k, v) for k, v in r.leaks.items()]
        m = r.memory
        rows += [
            (
                "Python memory after warm-up -> end (KiB)",
                f"{m.traced_mark // 1024} -> {m.traced_end // 1024}",
            ),
            (
                "RSS after warm-up -> end (MiB; it holds the run's record of every operation "
                "and tracemalloc's tables)",
                f"{m.rss_mark / 2**20:.1f} -> {m.rss_end / 2**20:.1f}",
            ),
        ]
        lines += _table(["check", "result"], rows)
        for kind, found in r.violations.items():
            lines += [f"- {kind}: {line}" for line in found[:20]]
        lines += [f"- harness: {e}" for e in r.harness_errors]
        lines.append("")
    return "\n".join(lines)
