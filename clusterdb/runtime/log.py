"""The wording of what a cluster logs on the ``clusterdb`` logger; called after its lock.

Changes a user acts on (a node down, a promotion, replication stopped, a Galera node out of
sync) are WARNINGs; a node back up, a drain, replication running again, a Galera node synced
again are INFO; routine attempts are DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clusterdb.core.events import (
    DrainChanged,
    Event,
    GaleraChanged,
    ReplicationChanged,
    RoleChanged,
    StateChanged,
)
from clusterdb.core.galera import unusable_reason

__all__ = ["log", "log_connected", "log_events", "log_failed", "log_hedging"]

log = logging.getLogger("clusterdb")

_MS = 1000.0


def log_connected(cluster: str, node: str, latency: float, discarded: bool = False) -> None:
    """An attempt on ``node`` connected after ``latency`` s (DEBUG: the caller checks
    ``log.isEnabledFor(logging.DEBUG)`` first, saving the call on every connect)."""
    suffix = " (discarded)" if discarded else ""
    log.debug("cluster %r: node %s connected in %.1f ms%s", cluster, node, latency * _MS, suffix)


def log_failed(cluster: str, node: str, line: str) -> None:
    """An attempt on ``node`` failed with ``line`` (DEBUG; the node going down is an event)."""
    log.debug("cluster %r: node %s failed: %s", cluster, node, line)


def log_hedging(cluster: str, node: str, elapsed: float) -> None:
    """``node`` is silent after ``elapsed`` s: the next attempt starts (DEBUG)."""
    log.debug("cluster %r: node %s silent after %.1f ms, hedging", cluster, node, elapsed * _MS)


def log_events(cluster: str, events: Iterable[Event]) -> None:
    """Log each event of ``cluster``, in order."""
    for event in events:
        if isinstance(event, StateChanged):
            _state(cluster, event)
        elif isinstance(event, RoleChanged):
            _role(cluster, event)
        elif isinstance(event, ReplicationChanged):
            _replication(cluster, event)
        elif isinstance(event, GaleraChanged):
            _galera(cluster, event)
        else:
            _drain(cluster, event)


def _state(cluster: str, e: StateChanged) -> None:
    if e.new == "down":
        log.warning("cluster %r: node %s (%s) is down: %s", cluster, e.node, e.address, e.detail)
    elif e.old == "down":
        log.info("cluster %r: node %s (%s) is up, %s", cluster, e.node, e.address, e.detail)
    else:
        log.debug("cluster %r: node %s (%s) is up", cluster, e.node, e.address)


def _role(cluster: str, e: RoleChanged) -> None:
    if e.old == "unknown":
        log.debug("cluster %r: node %s is a %s", cluster, e.node, e.new)
    elif e.new == "primary":
        log.warning("cluster %r: node %s was promoted: %s -> primary", cluster, e.node, e.old)
    else:
        log.warning("cluster %r: node %s is no longer primary: now %s", cluster, e.node, e.new)


def _replication(cluster: str, e: ReplicationChanged) -> None:
    if e.stopped:
        log.warning(
            "cluster %r: node %s: replication stopped (applies no more changes; "
            "skipped under max_lag)",
            cluster,
            e.node,
        )
    else:
        log.info("cluster %r: node %s: replication running again", cluster, e.node)


def _galera(cluster: str, e: GaleraChanged) -> None:
    reason = unusable_reason(e.new)
    if reason is not None:
        log.warning("cluster %r: node %s: %s", cluster, e.node, reason)
    elif e.old is not None and e.new is not None:
        log.info("cluster %r: node %s: galera %s again (was %s)", cluster, e.node, e.new, e.old)


def _drain(cluster: str, e: DrainChanged) -> None:
    log.info("cluster %r: node %s %s", cluster, e.node, "drained" if e.drained else "undrained")
