"""A runtime cluster's operator actions, mixed into :class:`~clusterdb.runtime.cluster.
Cluster`: its node list changed while it serves (``set_nodes``, the one primitive;
``add_node``, ``remove_node``, ``reconfigure`` for ``reload()``), and a node drained.

Which nodes are kept, added, removed or changed is :func:`clusterdb.core.membership.
diff_nodes` over each node's config entry and bound driver arguments. A change is prepared
outside the cluster's lock (the new config checked and bound to the driver first, so a bad
spec changes nothing) and swapped in under it in one step: the record, target and tag maps
are replaced, never mutated, so readers without the lock see the old list or the new one.

Attempts still pending on a retired record (removed or changed) leave the cluster's in-flight
count at the swap and are counted per name in ``_stale``: each of their late results (a
success, a failure, a queued return) consumes one and is otherwise ignored. A new attempt on a
removed node fails at once (:meth:`Cluster.target`), so no connect() planned after the change
returns reaches a removed node. Changes are serialised by their own lock, taken before the
cluster's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from clusterdb.config import ClusterConfig, NodeEntry, entry_secrets, with_node
from clusterdb.core.membership import MembershipChange, check_names, diff_nodes
from clusterdb.core.node_state import NodeRecord
from clusterdb.core.ranking_cache import RankingCache
from clusterdb.core.redact import Redactor
from clusterdb.drivers import ConnectArgs, DriverAdapter
from clusterdb.drivers.bind import bind_nodes
from clusterdb.errors import InterfaceError
from clusterdb.runtime.locked import Locked
from clusterdb.runtime.pooled import NodeTags, retire_tags

__all__ = ["Membership", "MembershipChange", "Watcher", "new_record"]

log = logging.getLogger("clusterdb")


class Watcher(Protocol):
    """What watches a cluster in the background (the process's monitor)."""

    def watch(self, cluster: Any) -> None: ...
    def unwatch(self, cluster: Any) -> None: ...
    def node_failed(self, cluster: Any, node: str) -> None: ...
    def request_check(self, cluster: Any) -> None: ...

    # And, when it has one, nodes_changed(cluster, fresh): the node list changed, ``fresh``
    # names (added or changed) are to be probed at once (Monitor.nodes_changed).


def new_record(entry: NodeEntry, config: ClusterConfig) -> NodeRecord:
    """A node's record as it starts: state unknown, no stats."""
    o = config.options
    return NodeRecord(entry.name, entry.address, o.selection.trial_serves, o.topology)


class Membership:
    """The node-list changes of :class:`~clusterdb.runtime.cluster.Cluster` (its fields are
    declared here and set by its constructor)."""

    name: str
    config: ClusterConfig
    adapter: DriverAdapter
    redactor: Redactor
    tags: NodeTags
    retired: bool
    _nodes: dict[str, NodeRecord]
    _targets: dict[str, ConnectArgs]
    _stale: dict[str, int]
    _in_flight: int
    _locked: Locked
    _rankings: RankingCache
    _single_writer: bool
    _membership: threading.Lock
    _watched_by: Watcher | None

    refresh_redactor: Callable[[], None]  # Redacting's
    _start_discovery: Callable[[], None]  # Discovering's

    # -- the monitor --

    def watch(self, watcher: Watcher) -> None:
        """Have ``watcher`` (the process's monitor) watch this cluster; cheap once it does."""
        if not self.config.options.monitor:
            return
        if self._watched_by is not watcher:  # first use, after close(), or in a forked child
            watcher.watch(self)
            self._watched_by = watcher

    # -- drain --

    def drain(self, node: str) -> None:
        """Give ``node`` no new connections until :meth:`undrain` (open ones are untouched)."""
        self._set_drained(node, True)

    def undrain(self, node: str) -> None:
        """Put a drained ``node`` back into rotation."""
        self._set_drained(node, False)

    def _set_drained(self, node: str, drained: bool) -> None:
        n = self._nodes.get(node)  # the node's record as the change finds it
        if n is None:
            raise InterfaceError(
                f"cluster {self.name!r} has no node {node!r} (nodes: {', '.join(self._nodes)})"
            )
        with self._locked as s:
            s.apply(n.on_drained(drained))

    # -- the node list --

    def set_nodes(self, entries: Sequence[NodeEntry]) -> MembershipChange:
        """Make the node list ``entries``, in that order: unchanged nodes (same name, same
        settings) keep their record, state, stats and estimates; new names are added;
        missing names retired; a name whose settings differ starts afresh. Connections
        already open are left alone. Raises ConfigError (nothing changed) for an empty list,
        duplicate names or settings the driver refuses."""
        entries = tuple(entries)
        with self._membership:
            secrets = (*self.config.secrets, *entry_secrets(entries))
            config = dataclasses.replace(self.config, nodes=entries, secrets=secrets)
            return self._change(config)

    def reconfigure(self, config: ClusterConfig) -> MembershipChange:
        """Take ``config`` (same name and driver: a file read again) as this cluster's:
        its options at once, its nodes as :meth:`set_nodes` does (a node whose driver
        arguments change with the cluster-wide settings counts as changed); a cluster whose
        nodes are discovered keeps its current list, and its source is built afresh."""
        if config.name != self.name or config.driver != self.config.driver:
            raise InterfaceError(
                f"cluster {self.name!r}: only a config of the same name and driver can be "
                "applied in place; register() it to replace the cluster"
            )
        o = config.options
        if o.patroni or o.dns:  # the node list is discovery's: keep it, poll the new source
            config = dataclasses.replace(config, nodes=self.config.nodes)
        with self._membership:
            secrets = (*self.config.secrets, *config.secrets)
            change = self._change(dataclasses.replace(config, secrets=secrets))
        self._start_discovery()
        return change

    def add_node(self, spec: object) -> str:
        """Add one node (``spec``: what register()'s ``nodes=`` takes for one node), last in
        the list; returns its name."""
        with self._membership:
            config = with_node(self.config, spec)
            self._change(config)
            return config.nodes[-1].name

    def remove_node(self, node: str) -> None:
        """Retire ``node``: no connect() planned from now on tries it."""
        with self._membership:
            names = [e.name for e in self.config.nodes]
            if node not in names:
                raise InterfaceError(
                    f"cluster {self.name!r} has no node {node!r} (nodes: {', '.join(names)}): "
                    "nothing removed"
                )
            if len(names) == 1:
                raise InterfaceError(
                    f"cannot remove {node!r}, the last node of cluster {self.name!r}: "
                    f"add_node({self.name!r}, ...) its replacement first, or "
                    f"unregister({self.name!r})"
                )
            nodes = tuple(e for e in self.config.nodes if e.name != node)
            self._change(dataclasses.replace(self.config, nodes=nodes))

    def _change(self, config: ClusterConfig) -> MembershipChange:
        """Hold the membership lock: check and bind ``config``, then swap it in."""
        check_names(config.name, [e.name for e in config.nodes])
        secrets = tuple(dict.fromkeys(config.secrets))
        config = dataclasses.replace(config, secrets=secrets)
        targets = bind_nodes(config, self.adapter)  # ConfigError here: nothing changed
        old = {e.name: (e, self._targets[e.name]) for e in self.config.nodes}
        bound = tuple(zip(config.nodes, targets, strict=True))
        change = diff_nodes(old, [(e.name, (e, t)) for e, t in bound])
        fresh = set(change.fresh)
        nodes = self._nodes
        records = {
            e.name: new_record(e, config) if e.name in fresh else nodes[e.name]
            for e in config.nodes
        }
        targets_by_name = {e.name: t for e, t in bound}
        tags = self.tags.following(tuple(records), change.fresh)
        self._swap(config, records, targets_by_name, tags, change)
        if change:
            log.info(
                "cluster %r: nodes added %s, removed %s, changed %s",
                self.name,
                list(change.added),
                list(change.removed),
                list(change.changed),
            )
        follow = getattr(self._watched_by, "nodes_changed", None)  # close() may clear it
        if follow is not None:
            follow(self, change.fresh)
        return change

    def _swap(
        self,
        config: ClusterConfig,
        records: dict[str, NodeRecord],
        targets: dict[str, ConnectArgs],
        tags: NodeTags,
        change: MembershipChange,
    ) -> None:
        """The new node list, options and secrets, in one critical section."""
        o = config.options
        with self._locked:  # the outbox folded first: its entries are counted as before
            stale = self._stale
            for name in change.retired:
                record = self._nodes[name]
                record.retired = True
                if record.pending:
                    self._in_flight -= record.pending
                    stale[name] = stale.get(name, 0) + record.pending
            for record in records.values():  # options of kept records may have changed
                record.trial_serves = o.selection.trial_serves
                record.topology = o.topology
            old_tags, self.tags = self.tags, tags
            self._nodes, self._targets = records, targets
            retire_tags(old_tags.values(), tags)
            self.config = config
            self._single_writer = o.single_writer
            self.refresh_redactor()  # the config's secrets and the provider's answers
            self._rankings.floor = o.selection.window_ms / 4 / 1000.0
            self._rankings.invalidate()
