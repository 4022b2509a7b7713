"""Per-connection hooks for pools that call back with the connection alone (psycopg_pool's
``check=`` and ``reset=``): the :class:`~clusterdb.runtime.pool_balance.PoolBalance` a
connection counts in travels with it, as the attribute ``_clusterdb_pool``.

A connection is counted in when its pool's connect made it (:func:`counted`) and out once,
whichever comes first: closed, found broken by an error report or a check (the pool discards
a broken connection without closing it), or garbage-collected.
"""

from __future__ import annotations

import math
from typing import Any

from clusterdb.runtime import pooled
from clusterdb.runtime.pool_balance import PoolBalance

__all__ = ["counted", "expired", "keeps", "leaves", "report", "uncounted"]


def report(conn: Any, exc: BaseException) -> None:
    """Report ``exc`` to clusterdb; a connection it broke leaves its pool's balance now (the
    pool discards a broken connection without closing it)."""
    pooled.report(conn, exc)
    if getattr(conn, "broken", False):
        uncounted(conn)


def counted(conn: Any, balance: PoolBalance | None) -> None:
    """Count ``conn``, just made by its pool's connect, in ``balance`` (None: no pool)."""
    tag = pooled.tag_of(conn)
    if balance is not None and tag is not None:
        conn._clusterdb_pool = balance
        balance.opened(tag)


def uncounted(conn: Any) -> None:
    """Count ``conn`` out of its pool's balance, once."""
    balance = getattr(conn, "__dict__", {}).pop("_clusterdb_pool", None)
    tag = pooled.tag_of(conn) if balance is not None else None
    if tag is not None:
        balance.closed(tag)


def keeps(conn: Any) -> bool:
    """Checkout: may ``conn`` be handed out? Its pool's verdict (:meth:`PoolBalance.keeps`),
    else :func:`~clusterdb.runtime.pooled.fits` for the role it was made for. No I/O."""
    if getattr(conn, "broken", False):
        uncounted(conn)
    balance: PoolBalance | None = getattr(conn, "_clusterdb_pool", None)
    tag = pooled.tag_of(conn)
    if balance is not None and tag is not None:
        return balance.keeps(tag)
    return pooled.fits(conn, getattr(conn, "role", "any"))


def leaves(conn: Any) -> bool:
    """Return to the pool: should ``conn`` go (its node unfit, or moved to rebalance)?
    (:meth:`PoolBalance.checkin`; False for a connection of no pool.)"""
    balance: PoolBalance | None = getattr(conn, "_clusterdb_pool", None)
    tag = pooled.tag_of(conn)
    return balance is not None and tag is not None and balance.checkin(tag) != "keep"


def expired(conn: Any) -> bool:
    """Mark ``conn`` as past its lifetime, when the pool keeps one on it (psycopg_pool 3.1+:
    ``_expire_at``, checked right after ``reset``): the pool then discards and replaces it
    quietly, as at ``max_lifetime``. Else False: the caller closes it, which the pool also
    discards and replaces, logging two warnings."""
    if not hasattr(conn, "_expire_at"):
        return False
    conn._expire_at = -math.inf
    return True
