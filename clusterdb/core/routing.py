"""A routed connection's decisions (``connect(role="auto")``): where each statement runs, and
what it leaves behind (an open transaction, a session pinned to the primary, a write that
replicas must apply before this connection reads from them again).

One :class:`RoutingState` per routed connection, shared by the thread and asyncio
connections, which only do the I/O it asks for. Pure and not thread-safe (a DB-API
connection is used by one thread at a time). The rules, in order:

1. a statement inside an open transaction runs where the transaction runs;
2. BEGIN / START TRANSACTION opens one on the primary; ``... READ ONLY`` on a replica (the
   classifier says where), unless the session is pinned;
3. with autocommit off, the first statement opens the transaction: on the primary, or on a
   replica when the connection is declared ``read_only`` and not pinned;
4. a pinned session, or a statement that pins it (SET, temporary table, PREPARE, LISTEN,
   advisory lock, WITH HOLD cursor...), runs on the primary and stays there;
5. otherwise where the classifier says: reads to a replica, the rest to the primary.

Read-your-writes: a write that ran outside a transaction, or a committed transaction that
wrote, leaves the state *unsynced*; before the next replica read the connection takes a token
from the primary (:meth:`RoutingState.token_taken`) and reads only from a replica connection
known to have applied it (:meth:`RoutingState.replica_fresh`, :meth:`RoutingState.replica_at`).
Why lazily: a burst of writes costs one token, and a write-only session none.
"""

from __future__ import annotations

from typing import Literal

from clusterdb.core.description import WantedRole
from clusterdb.core.statement_result import Classification, Target

__all__ = ["ConnectRole", "RoutingState", "SessionWrites", "Target", "plain_read"]

ConnectRole = WantedRole | Literal["auto"]
"""The ``role=`` of connect(): a node's role, or ``"auto"`` for a routed connection."""

_BEGINS = frozenset({"begin", "begin-read-only"})


def plain_read(c: Classification) -> bool:
    """A read that changes nothing: in a :meth:`RoutingState.steady` state it goes to the
    replica and leaves the state as it was (what lets a connection skip the state machine
    for a statement text it has seen)."""
    return c.target == "replica" and c.pins_session is None and c.transaction is None


class RoutingState:
    """Where one routed connection's statements go. Fields are read by the connection:

    ``autocommit`` (default True), ``read_only`` (an autocommit-off transaction may run on a
    replica), ``transaction`` (where the open transaction runs, or None), ``pinned`` (why the
    session stays on the primary, or None), ``unsynced`` (a write since the last token),
    ``token`` (the last token taken), ``replica_token`` (the token the replica connection is
    known to have applied)."""

    __slots__ = (
        "autocommit",
        "pinned",
        "read_only",
        "replica_token",
        "token",
        "transaction",
        "tx_wrote",
        "unsynced",
    )

    def __init__(self, autocommit: bool = True, read_only: bool = False) -> None:
        self.autocommit = autocommit
        self.read_only = read_only
        self.transaction: Target | None = None
        self.tx_wrote = False
        self.pinned: str | None = None
        self.unsynced = False
        self.token: str | None = None
        self.replica_token: str | None = None

    def __repr__(self) -> str:
        return (
            f"RoutingState(autocommit={self.autocommit}, transaction={self.transaction}, "
            f"pinned={self.pinned!r}, unsynced={self.unsynced})"
        )

    def route(self, c: Classification) -> Target:
        """Where a statement classified ``c`` runs (rules 1-5 above)."""
        if self.transaction is not None:
            return self.transaction
        if c.transaction in _BEGINS:
            return "replica" if c.target == "replica" and self.pinned is None else "primary"
        if not self.autocommit:
            return "replica" if self.read_only and self.pinned is None else "primary"
        if self.pinned is not None or c.pins_session is not None:
            return "primary"
        return c.target

    def starting(self, c: Classification, target: Target) -> None:
        """Before a statement routed to ``target`` runs: with autocommit off it opens the
        transaction even if it then fails (the driver's transaction is open either way)."""
        if self.transaction is None and not self.autocommit and c.transaction not in _BEGINS:
            self.transaction = target
            self.tx_wrote = False

    def ran(self, c: Classification, target: Target) -> None:
        """After a statement classified ``c`` ran on ``target`` without error."""
        if c.pins_session is not None and target == "primary" and self.pinned is None:
            self.pinned = c.pins_session
        kind = c.transaction
        writes = c.target == "primary" and kind is None
        if self.transaction is None:
            if kind in _BEGINS:
                self.transaction = target
                self.tx_wrote = False
            elif writes and target == "primary":
                self.unsynced = True
            return
        if kind in ("commit", "rollback"):
            self.ended(kind == "commit")
        elif kind == "chain":
            self.unsynced = self.unsynced or self.tx_wrote
            self.tx_wrote = False
        elif writes:
            self.tx_wrote = True

    def ended(self, committed: bool) -> None:
        """The open transaction ended (COMMIT, ROLLBACK, commit(), rollback())."""
        if committed and self.transaction == "primary" and self.tx_wrote:
            self.unsynced = True
        self.transaction = None
        self.tx_wrote = False

    def opened(self, target: Target) -> None:
        """A transaction was opened by the driver's own call (psycopg's ``transaction()``)."""
        self.transaction = target
        self.tx_wrote = target == "primary"  # unknown statements may write: assume they do

    def set_autocommit(self, value: bool) -> str | None:
        """Turn autocommit on or off; the reason it cannot be now, or None."""
        if self.transaction is not None and value != self.autocommit:
            return f"cannot change autocommit inside a transaction (on the {self.transaction})"
        self.autocommit = value
        return None

    def steady(self) -> bool:
        """Autocommit, no transaction, no pin and a fresh replica: every :func:`plain_read`
        goes to the replica connection and changes nothing."""
        return (
            self.autocommit
            and self.transaction is None
            and self.pinned is None
            and self.replica_fresh()
        )

    def token_taken(self, token: str | None) -> None:
        """The primary's token after this connection's writes was read."""
        self.token = token
        self.unsynced = False

    def replica_fresh(self) -> bool:
        """The replica connection has applied every write of this connection that is known
        (when a token is still to be taken, it is not)."""
        return not self.unsynced and self.replica_token == self.token

    def replica_at(self, token: str | None) -> None:
        """The replica connection (new, or checked) has applied ``token``."""
        self.replica_token = token


class SessionWrites:
    """Read-your-writes for an ORM session or a web request, which pick an engine (or a
    database alias) per statement rather than per connection: once the current transaction
    wrote, its reads go to the primary too (the replica's transaction cannot see its
    uncommitted rows); after it commits, reads go to a replica only once a token of its
    writes is known (``token``: the replica connection must have applied it), else to the
    primary. Pure; one per session or request."""

    __slots__ = ("token", "unsynced", "wrote")

    def __init__(self, token: str | None = None) -> None:
        self.wrote = False
        self.unsynced = False
        self.token = token
        """The token the replica connection must have applied (from an earlier request)."""

    def target(self, writes: bool) -> Target:
        """Where a statement goes: ``writes`` (a flush, DML, a locking read) to the primary,
        as do reads of a transaction that wrote or while a commit is not yet synced."""
        if writes:
            self.wrote = True
            return "primary"
        if self.wrote or self.unsynced:
            return "primary"
        return "replica"

    def ended(self, committed: bool) -> None:
        """The session's transaction ended; a commit of writes leaves the session unsynced."""
        if committed and self.wrote:
            self.unsynced = True
        self.wrote = False

    def token_taken(self, token: str | None) -> None:
        """The token after the commit: replicas serve reads again once they applied it (None:
        tokens unknown, reads stay on the primary)."""
        if token is not None:
            self.token = token
            self.unsynced = False
