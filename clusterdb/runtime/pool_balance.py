"""One pool's bookkeeping over a cluster, whatever the pool: its connections per node, the
checkout verdict and the checkin verdict.

SQLAlchemy's engines (:mod:`clusterdb.sqlalchemy`) and psycopg_pool (:mod:`clusterdb.psycopg`)
call the same :class:`PoolBalance` from their own hooks, so the rules (:func:`~clusterdb.core.
rebalance.assess`, :class:`~clusterdb.core.rebalance.Rebalancer`) are written once:

* checkout: a connection whose node no longer fits the pool's role is refused;
* checkin: an idle connection whose node no longer fits is dropped at once, and one on a node
  holding more than its share is dropped to be *moved*: the pool's next connect asks
  connect() for the short node first (:meth:`PoolBalance.take_destination`, connect()'s
  ``prefer=``). One move per ``RebalancePolicy.spacing`` at most: never a reconnect storm.

Decisions are taken under a lock and cost no I/O; the caller closes what is to be closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from clusterdb.core.description import WantedRole
from clusterdb.core.rebalance import Rebalancer
from clusterdb.runtime import pooled

__all__ = ["CheckinVerdict", "PoolBalance"]

CheckinVerdict = Literal["keep", "drop", "move"]


class PoolBalance:
    """What one pool (of connections clusterdb made for ``role``) knows and decides."""

    def __init__(self, role: WantedRole, clock: Callable[[], float] = time.monotonic) -> None:
        self.role: WantedRole = role
        self.moved = 0
        """Connections dropped at checkin to move them to another node."""
        self.refused = 0
        """Connections refused at checkout (their node no longer fits)."""
        self.opened_total = 0
        """Connections the pool opened (counted by :meth:`opened`)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._balance = Rebalancer(pooled.DEFAULT_POLICY)
        self._destination: str | None = None

    def take_destination(self) -> str | None:
        """The node the last move chose for its replacement (once), else None."""
        with self._lock:
            node, self._destination = self._destination, None
        return node

    @property
    def counts(self) -> dict[str, int]:
        """Node -> the pool's open connections on it."""
        with self._lock:
            return dict(self._balance.counts)

    def opened(self, tag: pooled.NodeTag) -> None:
        """The pool opened a connection on ``tag``'s node."""
        with self._lock:
            self.opened_total += 1
            self._balance.opened(tag.node)

    def closed(self, tag: pooled.NodeTag) -> None:
        """The pool closed (or lost) a connection on ``tag``'s node."""
        with self._lock:
            self._balance.closed(tag.node)

    def keeps(self, tag: pooled.NodeTag) -> bool:
        """Checkout: may the connection on ``tag``'s node be handed out for the pool's role?
        (Its node current and fit: :func:`clusterdb.fits`.) A refusal is counted."""
        if tag.current and tag.node in tag.fitness.assessment(self.role).fit:  # is_current()
            return True
        self.refused += 1
        return False

    def checkin(self, tag: pooled.NodeTag) -> CheckinVerdict:
        """Checkin of an idle connection on ``tag``'s node: ``"keep"`` it, ``"drop"`` it (its
        node no longer fits), or ``"move"`` it (drop it; the replacement goes to
        :meth:`take_destination`). A move is counted."""
        now = self._clock()
        found = tag.fitness.assessment(self.role, now)
        if not tag.current or tag.node not in found.fit:  # pooled.is_current(), inline
            return "drop"
        if self._balance.settled(found):  # read without the lock: at worst a move waits
            return "keep"
        with self._lock:
            destination = self._balance.move_to(tag.node, found, now)
            if destination is None:
                return "keep"
            self._destination = destination
            self.moved += 1
        return "move"
