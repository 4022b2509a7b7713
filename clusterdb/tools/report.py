"""Pure text formatting for the operator's view: tables, "3s ago" ages, redaction of output.

Nothing here does I/O or reads a clock: ``now`` is passed in, so every function is testable
with fixed values. Used by :mod:`clusterdb.tools.cli` and :mod:`clusterdb.tools.demo`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from clusterdb.core.redact import Redactor
from clusterdb.core.stats import ClusterStats, NodeStats

__all__ = [
    "STATUS_HEADERS",
    "ago",
    "causal_lines",
    "collapse_whitespace",
    "fmt_count",
    "fmt_ms",
    "fmt_seconds",
    "mask_secrets",
    "mask_secrets_in",
    "render_status",
    "render_table",
    "status_row",
    "truncate",
    "truncate_middle",
]

STATUS_HEADERS: tuple[str, ...] = (
    "CLUSTER",
    "NODE",
    "ADDRESS",
    "STATE",
    "ROLE",
    "LAT_MS",
    "RTT_MS",
    "LAG_S",
    "CONNECTS",
    "ERRORS",
    "PROBES",
    "PROBE_ERRS",
    "LAST_OK",
    "LAST_ERR",
    "CHANGED",
    "LAST_ERROR",
)
# Numeric columns read best right-aligned.
_RIGHT = frozenset({"LAT_MS", "RTT_MS", "LAG_S", "CONNECTS", "ERRORS", "PROBES", "PROBE_ERRS"})

NONE = "-"


def ago(when: datetime | None, now: datetime) -> str:
    """``"3s ago"``, ``"4m ago"``, ``"2h ago"``, ``"5d ago"``; ``"-"`` for never.

    Minutes and hours keep one more unit while it still matters (``"2m05s ago"``), as an
    operator reading an incident table wants to tell 1m from 1m50s.
    """
    if when is None:
        return NONE
    # A timestamp a little ahead of ``now`` (another process's clock) is "just now".
    secs = max(0, int((now - when).total_seconds()))
    if secs < 60:
        return f"{secs}s ago"
    minutes, secs = divmod(secs, 60)
    if minutes < 10:
        return f"{minutes}m{secs:02d}s ago"
    if minutes < 60:
        return f"{minutes}m ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 10:
        return f"{hours}h{minutes:02d}m ago"
    if hours < 48:
        return f"{hours}h ago"
    return f"{hours // 24}d ago"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with a precision that fits the magnitude; ``"-"`` when unknown."""
    if value is None:
        return NONE
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_seconds(value: float | None) -> str:
    """Seconds (replication lag); ``"-"`` when unknown."""
    if value is None:
        return NONE
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_count(value: int) -> str:
    return str(value)


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace (newlines included) as one space, so one error is one cell."""
    return " ".join(text.split())


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def truncate_middle(text: str, width: int) -> str:
    """Cut the middle out of ``text`` to fit ``width`` characters.

    For error messages: the head names the error type, the tail usually holds the cause
    (``... failed: password authentication failed for user "app"``); the middle is the
    driver's preamble (host and port, already in the ADDRESS column).
    """
    if len(text) <= width:
        return text
    if width < 12:
        return truncate(text, width)
    head = (width - 1) // 3
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every known secret and every ``password=...`` / ``user:pw@`` form.

    The stats are already redacted by the core; this is a second belt for output that also
    holds text from elsewhere (exception messages, log lines).
    """
    return Redactor(secrets).scrub(text)


def mask_secrets_in(data: Any, secrets: Iterable[str] = ()) -> Any:
    """``data`` (JSON-like: dicts, lists, scalars) with secrets masked in every string.

    Scrub values, not serialized JSON: masking ``password: "x"`` inside a JSON text could
    eat the quote that closes the string.
    """
    redactor = Redactor(secrets)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return redactor.scrub(item)
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(data)


def render_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[str] = ()
) -> str:
    """Plain aligned columns, two spaces apart; headers named in ``right`` align right.

    The last column is never padded, so long error texts do not leave trailing blanks.
    """
    body = [list(r) for r in rows]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}")
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    right_set = set(right)
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i == last:
                out.append(cell)
            elif headers[i] in right_set:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in body)])


def _state(node: NodeStats) -> str:
    """``up``, ``down,drained``, ``up,galera:donor``: the state, then what else keeps the node
    out of (or, for a synced Galera node, in) the plans."""
    parts = [node.state]
    if node.galera is not None:
        parts.append(f"galera:{node.galera}")
    if node.drained:
        parts.append("drained")
    return ",".join(parts)


def status_row(
    cluster: str,
    node: NodeStats,
    now: datetime,
    *,
    error_width: int = 72,
    secrets: Iterable[str] = (),
) -> list[str]:
    """One status-table row for ``node`` (cells in :data:`STATUS_HEADERS` order)."""
    error = NONE
    if node.last_error:
        # Scrub before cutting: a cut could leave a secret's prefix that no longer matches.
        error = truncate_middle(
            mask_secrets(collapse_whitespace(node.last_error), secrets), error_width
        )
    return [
        cluster,
        node.name,
        node.address,
        _state(node),
        node.role,
        fmt_ms(node.latency_ms),
        fmt_ms(node.rtt_ms),
        "stopped" if node.replication_stopped else fmt_seconds(node.lag_s),
        fmt_count(node.connects),
        fmt_count(node.connect_errors),
        fmt_count(node.probes),
        fmt_count(node.probe_errors),
        ago(node.last_success_at, now),
        ago(node.last_error_at, now),
        ago(node.last_state_change_at, now),
        error,
    ]


def causal_lines(stats: Mapping[str, ClusterStats]) -> list[str]:
    """One line per cluster whose connect(after=token) calls waited or fell back."""
    return [
        f"{name}: read-your-writes tokens: {fmt_count(c.causal_waits)} waits, "
        f"{fmt_count(c.causal_fallbacks)} fallbacks"
        for name, c in stats.items()
        if c.causal_waits or c.causal_fallbacks
    ]


def render_status(
    stats: Mapping[str, ClusterStats],
    now: datetime,
    *,
    error_width: int = 72,
    secrets: Iterable[str] = (),
    columns: Sequence[str] = STATUS_HEADERS,
) -> str:
    """The ``python -m clusterdb status`` table: one row per node of every cluster, then a
    line per cluster whose read-your-writes tokens waited or fell back (:func:`causal_lines`).

    ``columns`` picks and orders a subset of :data:`STATUS_HEADERS` (the demo's narrow view).
    """
    unknown = [c for c in columns if c not in STATUS_HEADERS]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; known: {', '.join(STATUS_HEADERS)}")
    index = [STATUS_HEADERS.index(c) for c in columns]
    secret_list = list(secrets)
    rows = []
    for name, cluster in stats.items():
        for node in cluster.nodes:
            full = status_row(name, node, now, error_width=error_width, secrets=secret_list)
            rows.append([full[i] for i in index])
    return "\n".join([render_table(columns, rows, right=_RIGHT), *causal_lines(stats)])
