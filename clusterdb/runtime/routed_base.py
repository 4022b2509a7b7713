"""What the thread and asyncio routed connections share, with no I/O: the cluster's
classifier, the routing state, the connection's public attributes and its errors.

The decisions are :class:`~clusterdb.core.routing.RoutingState`'s; this module turns a query
into a classification (the cluster's :class:`~clusterdb.core.statement.Classifier`, built once
per registered cluster from the lookup of its functions that may write) and keeps the two
driver connections.
"""

from __future__ import annotations

import importlib
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType, ModuleType
from typing import Any

from clusterdb.core.routing import RoutingState, Target, plain_read
from clusterdb.core.statement import (
    Classification,
    Classifier,
    Dialect,
    writing_functions,
    writing_functions_query,
)
from clusterdb.errors import ConfigError
from clusterdb.runtime import pooled
from clusterdb.runtime.cluster import Cluster

__all__ = ["CALLPROC", "NOT_TEXT", "REFUSED", "CursorBase", "RoutedBase", "dialect_of"]

log = logging.getLogger("clusterdb.routing")

_DIALECTS: dict[str, Dialect] = {"psycopg": "postgresql", "pymysql": "mysql"}
NOT_TEXT = Classification("primary", "the query is not a plain string")
CALLPROC = Classification("primary", "callproc() runs a procedure")
REFUSED = Classification("primary", "a replica refused it as a write")

_EXCEPTIONS = (
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
)

_NO_FAST_READS: Mapping[str, bool] = MappingProxyType({})

PLAIN_READS = 256
"""Statement texts remembered per connection as plain reads (then forgotten all at once)."""

_classifiers: weakref.WeakKeyDictionary[Cluster, Classifier] = weakref.WeakKeyDictionary()


def dialect_of(cluster: Cluster) -> Dialect:
    """The SQL dialect of the cluster's driver; ConfigError for a driver without roles."""
    dialect = _DIALECTS.get(cluster.adapter.name)
    if dialect is None:
        raise ConfigError(
            f"role='auto' needs a psycopg or pymysql cluster, not driver {cluster.adapter.name!r}",
            "role",
        )
    return dialect


def kept_classifier(cluster: Cluster) -> Classifier | None:
    """The classifier built for this registration of the cluster, if any."""
    return _classifiers.get(cluster)


def keep_classifier(cluster: Cluster, rows: Iterable[tuple[Any, ...]] | None) -> Classifier:
    """The cluster's classifier from the rows of its lookup query (None: the lookup failed;
    only the built-in functions are known), kept for the cluster's other routed connections."""
    dialect = dialect_of(cluster)
    names = writing_functions(rows, dialect) if rows is not None else frozenset[str]()
    found = _classifiers.setdefault(cluster, Classifier(dialect, names))
    return found


def lookup_query(cluster: Cluster) -> str:
    return writing_functions_query(dialect_of(cluster))


class RoutedBase:
    """The state of one routed connection, and what needs no I/O."""

    def __init__(
        self,
        cluster: Cluster,
        overrides: Mapping[str, Any],
        errors: ModuleType,
        after: str | None = None,
        cursor_class: type | None = None,
    ) -> None:
        overrides = dict(overrides)
        autocommit = overrides.pop("autocommit", True)
        self._cluster = cluster
        self._dialect = dialect_of(cluster)
        self._overrides = overrides
        self._state = RoutingState(autocommit=bool(autocommit))
        self._state.token = after  # reads only from a replica that has applied it
        self._classify: Callable[[str], Classification] | None = None
        found = kept_classifier(cluster)
        if found is not None:
            self._classify = found.classify
        self._primary: Any = None
        self._replica: Any = None
        self._closed = False
        self._errors = errors
        self._cursor_class = cursor_class
        """The driver's cursor class: which optional cursor methods the driver has."""
        for name in _EXCEPTIONS:  # the DB-API's optional extension, as the driver's
            setattr(self, name, getattr(errors, name))
        self._fast_reads: Mapping[str, bool] = _NO_FAST_READS
        """The plain reads seen (``_plain_reads``) while RoutingState.steady() holds with a
        replica connection open, else nothing: a statement found here skips classification
        and the state machine (one dict lookup, see RoutedCursor.execute)."""
        self._refused: dict[str, bool] = {}
        """Statement texts a replica refused as writes: the primary from then on."""
        self._plain_reads: dict[str, bool] = {}
        """Statement texts seen to be plain reads (core.routing.plain_read)."""
        self.last_target: Target | None = None
        """Where the last statement ran: ``"primary"`` or ``"replica"``."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else repr(self._state)
        return f"<{type(self).__name__} cluster={self._cluster.name!r} {state}>"

    @property
    def pinned(self) -> str | None:
        """Why this session stays on the primary (``"SET changes session state"``,
        ``"temporary table"``, ``"advisory lock"``...), or None."""
        return self._state.pinned

    @property
    def in_transaction(self) -> Target | None:
        """Where the open transaction runs (``"primary"`` or ``"replica"``), or None."""
        return self._state.transaction

    @property
    def read_only(self) -> bool:
        """With autocommit off, a transaction of a read-only connection runs on a replica."""
        return self._state.read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self._check_idle("read_only")
        self._state.read_only = bool(value)
        self._restate()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def primary_connection(self) -> Any:
        """The driver's connection to the primary, or None while none is open."""
        return self._primary

    @property
    def replica_connection(self) -> Any:
        """The driver's connection used for reads, or None while none is open."""
        return self._replica

    def classify(self, query: Any) -> Classification:
        """The classifier's answer for ``query`` (str or bytes; anything else: primary)."""
        assert self._classify is not None
        if isinstance(query, str):
            if self._refused and query in self._refused:
                return REFUSED
            return self._classify(query)
        if isinstance(query, bytes):
            return self._classify(query.decode("utf-8", "replace"))
        return NOT_TEXT

    def _plan(self, query: Any) -> tuple[Classification, Target]:
        """The classification of ``query`` and where it runs; the transaction it opens."""
        if self._closed:
            raise self._errors.InterfaceError("the routed connection is closed")
        c = self.classify(query)
        if type(query) is str and plain_read(c):
            if len(self._plain_reads) >= PLAIN_READS:
                self._plain_reads.clear()
            self._plain_reads[query] = True
        return c, self._decide(c)

    def _restate(self) -> None:
        """Recompute whether plain reads may skip the state machine: after every change of
        the state or of the replica connection."""
        steady = not self._closed and self._replica is not None and self._state.steady()
        self._fast_reads = self._plain_reads if steady else _NO_FAST_READS

    def _decide(self, c: Classification) -> Target:
        state = self._state
        target = state.route(c)
        state.starting(c, target)
        return target

    def _check_idle(self, what: str) -> None:
        if self._state.transaction is not None:
            raise self._errors.ProgrammingError(
                f"cannot change {what} inside a transaction (on the {self._state.transaction})"
            )

    def _transaction_target(self) -> Target:
        """Where a transaction opened by the driver's ``transaction()`` runs: the open one's
        place, else the primary (a replica for a read-only connection that is not pinned)."""
        state = self._state
        if state.transaction is not None:
            return state.transaction
        return "replica" if state.read_only and state.pinned is None else "primary"

    def _held(self, target: Target) -> Any:
        return self._primary if target == "primary" else self._replica

    def _open_overrides(self) -> dict[str, Any]:
        return {**self._overrides, "autocommit": self._state.autocommit}

    def _refusal(self, conn: Any, exc: BaseException) -> bool:
        return self._cluster.adapter.classify_error(exc, conn) == "read_only"

    def _retry_on_primary(self, target: Target, conn: Any, exc: BaseException, query: Any) -> bool:
        """Whether to run again on the primary a statement a replica refused with its
        read-only error (a view calling a writing function...): outside a transaction only,
        where it ran nothing. Its text goes to the primary from then on."""
        state = self._state
        if target != "replica" or state.transaction is not None or not state.autocommit:
            return False
        if not self._refusal(conn, exc):
            return False
        if type(query) is str:
            self._plain_reads.pop(query, None)
            if len(self._refused) >= PLAIN_READS:
                self._refused.clear()
            self._refused[query] = True
        return True

    def _failed(self, target: Target, conn: Any, exc: BaseException) -> Any:
        """Report ``exc`` seen on ``conn``; a lost connection that holds no session state is
        dropped (the next statement opens another). Returns the connection to close, if any."""
        if target == "replica" and self._refusal(conn, exc):
            return None  # a replica refusing a write: expected there, not a demotion
        kind = pooled.report(conn, exc)
        if kind != "lost" or self._held(target) is not conn:
            return None
        if target == "primary":
            if self._state.pinned is not None:
                return None  # its session state is gone: keep failing, as the driver would
            self._primary = None
        else:
            self._replica = None
        if self._state.transaction == target:
            self._state.ended(committed=False)
        self._restate()
        return conn


class CursorBase:
    """What the thread and asyncio routed cursors share: a driver cursor kept per target
    (made again when the target's connection was replaced), and the one that ran last."""

    connection: RoutedBase
    _callproc: Callable[..., Any]  # each subclass's: to the primary

    def __init__(self, connection: RoutedBase, args: Sequence[Any], kwargs: Mapping[str, Any]):
        self.connection = connection
        self._args = args
        self._kwargs = kwargs
        self._cursors: dict[Target, tuple[Any, Any]] = {}
        self._current: Any = None
        self._arraysize = 1
        self._closed = False

    def _cursor(self, target: Target, conn: Any) -> Any:
        if self._closed:
            raise self.connection._errors.InterfaceError("the cursor is closed")
        kept = self._cursors.get(target)
        if kept is not None and kept[0] is conn:
            return kept[1]
        cur = conn.cursor(*self._args, **self._kwargs)
        cur.arraysize = self._arraysize
        self._cursors[target] = (conn, cur)
        return cur

    def _fast(self, query: Any) -> tuple[Any, Any] | None:
        """The replica connection and its driver cursor when ``query`` is a plain read seen
        before and the state is steady (no classification, no state change), else None.
        (Closing the cursor empties ``_cursors``: a closed cursor has no kept cursor.) The
        thread cursor's execute() has this inline: a call is a fifth of the routed cost."""
        routed = self.connection
        if type(query) is str and query in routed._fast_reads:
            kept = self._cursors.get("replica")
            if kept is not None and kept[0] is routed._replica:
                return kept
        return None

    def _read(self, cur: Any, result: Any) -> Any:
        """After a fast plain read on the replica's driver cursor ``cur``."""
        self.connection.last_target = "replica"
        if self._current is not cur:
            self._now_on(cur)
        return self if result is cur else result

    def _done(self, c: Classification, target: Target, cur: Any, result: Any) -> Any:
        """After the driver cursor ``cur`` ran a statement classified ``c`` on ``target``."""
        routed = self.connection
        routed._state.ran(c, target)
        routed._restate()
        routed.last_target = target
        if self._current is not cur:
            self._now_on(cur)
        return self if result is cur else result

    def _now_on(self, cur: Any) -> None:
        """``cur`` ran the last statement: the results are its. Its own ``fetchone`` and
        ``fetchall`` are put on this cursor, so that a fetch costs no call of ours (half the
        routed cursor's cost per statement; see docs/design/routing.md)."""
        self._current = cur
        own = self.__dict__
        own["fetchone"] = cur.fetchone
        own["fetchall"] = cur.fetchall

    def _last(self) -> Any:
        if self._current is None:
            raise self.connection._errors.ProgrammingError("no result: execute() first")
        return self._current

    @property
    def description(self) -> Any:
        return None if self._current is None else self._current.description

    @property
    def rowcount(self) -> int:
        return -1 if self._current is None else int(self._current.rowcount)

    @property
    def lastrowid(self) -> Any:
        return None if self._current is None else getattr(self._current, "lastrowid", None)

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value
        for _, cur in self._cursors.values():
            cur.arraysize = value

    @property
    def closed(self) -> bool:
        return self._closed

    def __getattr__(self, name: str) -> Any:
        """``callproc``, ``setinputsizes`` and ``setoutputsize`` where the driver's cursor
        has them (psycopg has no callproc; PyMySQL spells ``setoutputsizes``)."""
        if name.startswith("_") or not hasattr(self.connection._cursor_class, name):
            raise AttributeError(name)
        if name == "callproc":
            return self._callproc
        if name in ("setinputsizes", "setoutputsize"):
            return _nothing
        raise AttributeError(name)


def _nothing(*args: Any) -> None:
    """The DB-API's size hints: drivers ignore them, so does a routed cursor."""


def errors_of(exc_type: type[BaseException]) -> ModuleType:
    """The module defining the driver's exception ``exc_type`` (its DB-API error classes)."""
    return importlib.import_module(exc_type.__module__)
