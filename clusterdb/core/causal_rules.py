"""The rules of ``connect(after=token)`` (pure), shared by connect() and connect_async().

* **SQL, per kind** (``pg``, ``mariadb``): the token query (one round trip), the applied
  query asked on a new connection, MariaDB's server-side wait.
* **What satisfies a token**: a primary always (it wrote the log); a replica whose applied
  position :func:`~clusterdb.core.causal.covers` it, whether seen before (the monitor's
  probe, an earlier connect's question: positions only grow, so that holds for good) or asked
  on the new connection.
* **The course** (:class:`CausalCourse`): the role to connect with while looking, which nodes
  were found lacking (the next connect avoids them), and what happens when none applied the
  token within ``causal_wait``: ``prefer-replica`` and ``any`` take the primary, ``replica``
  raises NoSuitableNode naming the token; ``primary`` never looks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from clusterdb.core.causal import Kind, Position, Token, covers, parse_gtids, parse_lsn
from clusterdb.core.description import WantedRole
from clusterdb.core.selection import Plan
from clusterdb.errors import CausalTokenError

__all__ = [
    "APPLIED_SQL",
    "POLL_INTERVAL",
    "TOKEN_SQL",
    "WAIT_SLICE",
    "Avoid",
    "CausalCourse",
    "Position",
    "applied_from_row",
    "parse_applied",
    "token_from_row",
    "wait_reached",
    "wait_sql",
    "without",
]

_PG_SYSTEM = "(SELECT system_identifier FROM pg_control_system())::text"

TOKEN_SQL: dict[Kind, str] = {
    # The insert position bounds every record this session committed from above (a commit
    # returns once its record is inserted, flushed or not); a standby's replay position
    # covers what a read on it saw (monotonic reads from a replica connection's token).
    # When the last record ended at a page boundary the insert position points past the
    # next page's header (24 bytes; 40 at a segment's start), where no record ends: a
    # replica's replay position would never reach it until the next write, so the header is
    # taken off (the end-of-record form, as pg_last_wal_replay_lsn() prints it).
    "pg": "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE ("
    "SELECT CASE WHEN (i - '0/0') % s.seg = 40 THEN i - 40"
    " WHEN (i - '0/0') % s.blk = 24 THEN i - 24 ELSE i END"
    " FROM pg_current_wal_insert_lsn() AS i, (SELECT"
    " max(setting::numeric) FILTER (WHERE name = 'wal_segment_size') AS seg,"
    " max(setting::numeric) FILTER (WHERE name = 'wal_block_size') AS blk"
    f" FROM pg_settings) AS s) END::text, {_PG_SYSTEM}",
    # The session's last GTID, else (no write yet) everything the server has.
    "mariadb": "SELECT @@last_gtid, @@gtid_current_pos",
}
"""One round trip giving the two fields :func:`token_from_row` reads."""

APPLIED_SQL: dict[Kind, str] = {
    "pg": f"SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, {_PG_SYSTEM}",
    "mariadb": "SELECT @@read_only, @@gtid_current_pos, ''",
}
"""Asked on a new connection: (is a replica, applied position, PostgreSQL system id)."""

POLL_INTERVAL = 0.005
"""Seconds between two looks at a PostgreSQL replica's replay position while waiting
(PostgreSQL has no server-side wait before version 17; a look costs one round trip)."""
WAIT_SLICE = 0.1
"""Seconds of one ``MASTER_GTID_WAIT`` when several MariaDB replicas are waited on in turn."""


def wait_sql(token: Token, seconds: float) -> str | None:
    """MariaDB's server-side wait for ``token`` (``MASTER_GTID_WAIT(pos, timeout)``: 0 once
    applied, -1 on timeout); None for PostgreSQL (poll :data:`APPLIED_SQL`). The position is
    digits and dashes (parsed), so it is written inline."""
    if token.kind != "mariadb":
        return None
    return f"SELECT MASTER_GTID_WAIT('{token.server_form}', {max(seconds, 0.0):.3f})"


def wait_reached(token: Token, kind: Kind, row: Sequence[Any] | None) -> bool:
    """Whether one look while waiting found ``token`` applied: a :func:`wait_sql` row (0:
    reached) on MariaDB, an :data:`APPLIED_SQL` row on PostgreSQL."""
    if row is None:
        return False
    if wait_sql(token, 0.0) is not None:
        return row[0] is not None and int(row[0]) == 0
    replica, position, _ = applied_from_row(kind, row)
    return not replica or covers(position, token)


def parse_applied(kind: Kind, text: str | None) -> Position | None:
    """A server's applied position as it prints it -> a :data:`Position` (None: unknown)."""
    if text is None:
        return None
    return parse_lsn(text) if kind == "pg" else parse_gtids(text)


def token_from_row(cluster: str, kind: Kind, row: Sequence[Any] | None) -> Token:
    """The token of a :data:`TOKEN_SQL` row."""
    if row is None or len(row) < 2:
        raise CausalTokenError(f"cluster {cluster!r}: the server gave no log position")
    if kind == "pg":
        if row[0] is None:
            raise CausalTokenError(f"cluster {cluster!r}: the server gave no log position")
        return Token(cluster, "pg", parse_lsn(str(row[0])), str(row[1] or ""))
    last, current = (_text(v) for v in row[:2])
    return Token(cluster, "mariadb", parse_gtids(last or current))


def applied_from_row(kind: Kind, row: Sequence[Any] | None) -> tuple[bool, Position | None, str]:
    """(is a replica, applied position, system id) of an :data:`APPLIED_SQL` row."""
    if row is None:
        return True, None, ""
    replica = bool(int(row[0])) if row[0] is not None else True
    position = None if row[1] is None else parse_applied(kind, _text(row[1]))
    return replica, position, _text(row[2])


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def without(plan: Plan, nodes: Iterable[str], reason: str) -> Plan:
    """``plan`` without ``nodes`` (each then rejected for ``reason``); the others keep their
    order and hedge delays."""
    drop = {n for n in nodes if n in plan.nodes}
    if not drop:
        return plan
    keep = [i for i, n in enumerate(plan.nodes) if n not in drop]
    rejected = dict(plan.rejected)
    rejected.update((n, reason) for n in sorted(drop))
    return Plan(
        nodes=tuple(plan.nodes[i] for i in keep),
        hedge_delays=tuple(plan.hedge_delays[i] for i in keep),
        race=plan.race and bool(keep),
        rejected=MappingProxyType(rejected),
    )


Avoid = tuple[Iterable[str], str]
"""(nodes a connect leaves out, why): the replicas a token search found lacking."""
Verdict = Literal["take", "hold"]


class CausalCourse:
    """One ``connect(after=token)``'s decisions: the connect side does the I/O and asks.

    ``positions``: replicas' applied positions as last seen (probes, earlier questions);
    ``known``: those past the token. ``avoid``: nodes found lacking, which the next connect
    leaves out; their connections are held for the wait. ``seen``: positions read here.
    """

    def __init__(
        self,
        token: Token,
        wanted: WantedRole,
        positions: Mapping[str, Position | None],
        kind: Kind = "pg",
        causal_wait: float = 1.0,
    ) -> None:
        self.token = token
        self.wanted: WantedRole = wanted
        self.positions = positions
        self.known = frozenset(n for n, p in positions.items() if covers(p, token))
        self.seen: dict[str, Position] = {}
        self.narrow = bool(self.known)
        self.kind: Kind = kind
        self.causal_wait = causal_wait
        self.avoid: set[str] = set()
        self.waited = self.fell_back = False
        self.deadline = 0.0

    @property
    def ask_sql(self) -> str:
        """The question asked on a new connection (:data:`APPLIED_SQL`)."""
        return APPLIED_SQL[self.kind]

    def start_wait(self, now: float) -> None:
        """The wait on held replicas begins at ``now``: it lasts ``causal_wait`` seconds."""
        self.waited = True
        self.deadline = now + self.causal_wait

    def look(self, held: int, now: float) -> str:
        """The query of one look at one of ``held`` replicas: MariaDB's wait, for what is
        left (a slice of it when several are waited on in turn), or PostgreSQL's question."""
        remaining = self.deadline - now
        wait = wait_sql(self.token, remaining if held == 1 else min(remaining, WAIT_SLICE))
        return wait or self.ask_sql

    def reached(self, row: Sequence[Any] | None) -> bool:
        """Whether the answer to :meth:`look` says the token is applied."""
        return wait_reached(self.token, self.kind, row)

    def pause(self, now: float) -> float | None:
        """Seconds to sleep before the next round of looks; None once the wait is over."""
        remaining = self.deadline - now
        if remaining <= 0:
            return None
        return min(POLL_INTERVAL, remaining) if self.kind == "pg" else 0.0

    def give_up(self, held: bool, reasons: Mapping[str, str]) -> dict[str, str] | None:
        """No replica served (``held``: some were found lacking): None -> connect to the
        primary; else the reasons of the NoSuitableNode to raise (``replica``)."""
        self.fell_back = held or not self.falls_back
        if self.falls_back:
            return None
        return self.no_replica(reasons, self.causal_wait if self.waited else 0.0)

    @property
    def direct(self) -> bool:
        """True when a plain connect serves (``primary``: the primary has every write)."""
        return self.wanted == "primary"

    @property
    def search_role(self) -> WantedRole:
        """The role to connect with while looking: a replica, or any node for ``any``."""
        return "any" if self.wanted == "any" else "replica"

    @property
    def avoiding(self) -> Avoid:
        """What the next connect leaves out, and why: while some replicas are known past the
        token, the others (the plan then draws among the known by latency, as usual, so their
        load stays spread); after that, the replicas found lacking."""
        if self.narrow:
            others = set(self.positions) - self.known
            return others, f"not known to have applied {self.token}"
        return self.avoid, self.reason

    def widen(self) -> bool:
        """The connect among the known replicas found none: True -> look among them all."""
        narrow, self.narrow = self.narrow, False
        return narrow

    @property
    def reason(self) -> str:
        """Why an avoided node is out of the plan."""
        return f"has not applied {self.token}"

    def judge(self, node: str, replica: bool, position: Position | None) -> Verdict:
        """A new connection to ``node`` (``replica``: it is one; ``position``: what it has
        applied, None when not asked): take it, or hold it for the wait."""
        if not replica or node in self.known or covers(position, self.token):
            return "take"
        self.avoid.add(node)
        return "hold"

    def judge_answer(self, cluster: str, node: str, row: Sequence[Any] | None) -> Verdict:
        """:meth:`judge` a new connection to ``node`` by its answer to :attr:`ask_sql` (None:
        not asked, see :meth:`needs_asking`); CausalTokenError when the answer shows another
        PostgreSQL system than the token's."""
        if row is None:
            return self.judge(node, True, None)
        replica, position, system = applied_from_row(self.kind, row)
        self.token.check_cluster(cluster, system)
        if replica and position is not None:
            self.seen[node] = position
        return self.judge(node, replica, position)

    def needs_asking(self, node: str) -> bool:
        """Whether a new connection to ``node`` must be asked what it has applied."""
        return node not in self.known

    @property
    def waits(self) -> bool:
        """Whether to wait for a held replica (``any`` takes the primary at once)."""
        return self.wanted in ("replica", "prefer-replica")

    @property
    def falls_back(self) -> bool:
        """After the wait: True -> the primary; False -> raise :meth:`no_replica`."""
        return self.wanted != "replica"

    def wanted_text(self) -> str:
        """What NoSuitableNode says was wanted: the role and the token."""
        return f"{self.wanted} after token {self.token}"

    def no_replica(self, reasons: Mapping[str, str], waited: float) -> dict[str, str]:
        """The NoSuitableNode reasons of a ``replica`` connect that found none in time."""
        out = dict(reasons)
        for node in sorted(self.avoid):
            out[node] = f"{self.reason} after waiting {waited:.2f} s (causal_wait)"
        if not out:
            out["(none)"] = f"no replica to apply {self.token}"
        return out
