"""Connections after connect(): which node each is on, whether it still fits, and errors seen
on it, for pools and ORMs that keep connections for hours.

Every connection connect() returns carries a :class:`NodeTag` (an attribute set on the
driver's own object; a weak mapping for objects that take no attribute). :func:`fits` asks
the cluster's :class:`Fitness` (an :class:`~clusterdb.core.rebalance.Assessment` per wanted
role, kept while nothing it depends on changes, as rankings are); :func:`report` feeds an
error seen on a connection back into its node's state and has the monitor re-read every
node's role.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Mapping
from time import monotonic as _monotonic
from typing import Any, NamedTuple, Protocol

from clusterdb.config import ClusterOptions
from clusterdb.core.description import ClusterDescription, WantedRole
from clusterdb.core.rebalance import Assessment, RebalancePolicy, assess
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.core.stats import ClusterStats
from clusterdb.drivers.base import DriverAdapter, ErrorKind
from clusterdb.errors import ConfigError

__all__ = [
    "Fitness",
    "NodeRef",
    "NodeTag",
    "NodeTags",
    "bound",
    "fits",
    "is_current",
    "node_of",
    "node_tags",
    "report",
    "retire_tags",
    "tag",
    "tag_of",
]

ATTRIBUTE = "_clusterdb_node"
_KEPT_FOR = 1.0  # latency estimates decay: an assessment is made again at least this often
DEFAULT_POLICY = RebalancePolicy()


class Epoch(Protocol):
    """What changes whenever a kept ranking, or assessment, may no longer hold (the
    cluster's :class:`~clusterdb.core.ranking_cache.RankingCache`)."""

    @property
    def epoch(self) -> int: ...


class Cluster(Protocol):
    """What connections' tags need of the runtime cluster (:class:`~clusterdb.runtime.
    cluster.Cluster`, which makes the tags: this module does not import it)."""

    name: str
    adapter: DriverAdapter
    retired: bool
    tags: NodeTags

    @property
    def options(self) -> ClusterOptions: ...
    @property
    def node_names(self) -> tuple[str, ...]: ...
    @property
    def rankings(self) -> Epoch: ...
    def describe(self) -> ClusterDescription: ...
    def stats_snapshot(self) -> ClusterStats: ...
    def record_read_only(self, node: str) -> None: ...
    def record_lost(self, node: str, exc: BaseException) -> None: ...
    def request_check(self) -> None: ...


class Bounding(Protocol):
    """An adapter (threads or asyncio) that can bound a connection's calls."""

    def bound_queries(
        self, conn: Any, bound: float, report: Callable[[Any, BaseException], object]
    ) -> bool: ...


class NodeRef(NamedTuple):
    """The cluster and node a connection made by clusterdb is on."""

    cluster: str
    node: str


class Fitness:
    """A cluster's assessments for pools, one per wanted role, each kept while the cluster's
    epoch stands and for at most ``_KEPT_FOR`` seconds. Read without a lock: a stale entry
    is at worst one assessment made again."""

    __slots__ = ("_cluster", "_epochs", "_kept", "policy")

    def __init__(self, cluster: Cluster, policy: RebalancePolicy = DEFAULT_POLICY) -> None:
        self._cluster = cluster
        self._epochs = cluster.rankings  # read at every checkout: one attribute, no property
        self.policy = policy
        self._kept: dict[WantedRole, tuple[int, float, Assessment]] = {}

    def assessment(self, wanted: WantedRole, now: float | None = None) -> Assessment:
        """What a pool asking for ``wanted`` may keep now (``now``: ``time.monotonic()``,
        when the caller has it). A pool's checks call this at every checkout and checkin: a
        kept one costs a dict lookup, the epoch's read and the clock's."""
        kept = self._kept.get(wanted)
        if now is None:
            now = _monotonic()
        if kept is not None and kept[0] == self._epochs.epoch and now < kept[1]:
            return kept[2]
        return self._assess(wanted, now)

    def _assess(self, wanted: WantedRole, now: float) -> Assessment:
        cluster = self._cluster
        epoch = self._epochs.epoch  # read before describing: a change meanwhile is seen next
        options = cluster.options
        best = {
            n.name: n.latency_min_ms / 1000.0
            for n in cluster.stats_snapshot().nodes
            if n.latency_min_ms is not None
        }
        found = assess(
            cluster.describe(),
            wanted,
            max_lag=options.max_lag,
            selection=options.selection,
            policy=self.policy,
            best=best,
        )
        self._kept[wanted] = (epoch, now + _KEPT_FOR, found)
        return found


class NodeTag:
    """What a connection carries: its node, and the cluster object that made it."""

    __slots__ = ("cluster", "current", "fitness", "node", "ref")

    def __init__(self, cluster: Cluster, node: str, fitness: Fitness, current: bool = True) -> None:
        self.cluster = cluster
        self.node = node
        self.fitness = fitness
        self.ref = NodeRef(cluster.name, node)
        self.current = current
        """Still its node's tag (see :func:`is_current`): set False, once and for all, when
        the cluster is closed (unregistered or registered again) or the node removed or
        changed (:func:`retire_tags`)."""

    def __repr__(self) -> str:
        return f"<NodeTag {self.ref.cluster}/{self.node}>"


class NodeTags(dict[str, NodeTag]):
    """One tag per node of a cluster, made once per node (a changed node gets a new one);
    a name no longer in the cluster gets a tag made on demand, not kept, so a connection that
    a removed node's late attempt hands over is still tagged, and fits nowhere."""

    __slots__ = ("cluster", "fitness")

    def __init__(self, cluster: Cluster, tags: dict[str, NodeTag], fitness: Fitness) -> None:
        super().__init__(tags)
        self.cluster = cluster
        self.fitness = fitness

    def __missing__(self, node: str) -> NodeTag:
        return NodeTag(self.cluster, node, self.fitness, current=False)

    def following(self, names: tuple[str, ...], fresh: tuple[str, ...] = ()) -> NodeTags:
        """The tags of a new node list ``names``: kept ones reused, ``fresh`` names (added or
        changed nodes) given new ones."""
        tags = {
            n: self[n] if n in self and n not in fresh else NodeTag(self.cluster, n, self.fitness)
            for n in names
        }
        return NodeTags(self.cluster, tags, self.fitness)


def node_tags(cluster: Cluster) -> NodeTags:
    """One tag per node of ``cluster``, made once at registration."""
    fitness = Fitness(cluster)
    tags = {name: NodeTag(cluster, name, fitness) for name in cluster.node_names}
    return NodeTags(cluster, tags, fitness)


def is_current(found: NodeTag) -> bool:
    """Whether ``found`` is still its node's tag: its cluster neither unregistered nor
    registered again, the node neither removed nor changed since the connection was made.
    A flag on the tag (an attribute read: pools check it at every checkout and checkin)."""
    return found.current


def retire_tags(old: Iterable[NodeTag], kept: Mapping[str, NodeTag] | None = None) -> None:
    """Mark the tags of ``old`` that are not in ``kept`` (all when None) as no longer their
    node's: their cluster closed, or their node removed or changed. Call it once the new
    tags are in place."""
    for found in old:
        if kept is None or kept.get(found.node) is not found:
            found.current = False


# Connections that take no attribute but a weak reference (C extension types).
_weak_tags: weakref.WeakKeyDictionary[Any, NodeTag] = weakref.WeakKeyDictionary()


def tag(conn: Any, node_tag: NodeTag) -> None:
    """Mark ``conn`` as made on ``node_tag``'s node (tens of nanoseconds: on connect's path)."""
    try:
        conn._clusterdb_node = node_tag
    except (AttributeError, TypeError):
        with contextlib.suppress(TypeError):  # neither: node_of() answers None for it
            _weak_tags[conn] = node_tag


def tag_of(conn: Any) -> NodeTag | None:
    """The tag connect() or connect_async() put on ``conn`` (or on the asyncio driver's
    connection that SQLAlchemy's adapter ``conn`` wraps), or None."""
    found: NodeTag | None = getattr(conn, ATTRIBUTE, None)
    if found is not None:
        return found
    inner = getattr(conn, "driver_connection", None)  # sqlalchemy.engine.AdaptedConnection
    if inner is not None and inner is not conn:
        return tag_of(inner)
    if not _weak_tags:
        return None
    try:
        return _weak_tags.get(conn)
    except TypeError:
        return None


def node_of(conn: Any) -> NodeRef | None:
    """The cluster and node ``conn`` is on, when clusterdb made it; else None."""
    found = tag_of(conn)
    return None if found is None else found.ref


def fits(conn: Any, role: WantedRole = "any") -> bool:
    """Would connect(role=``role``) hand out ``conn``'s node now? No I/O.

    False when the node is down, drained, of the wrong role, lagging more than ``max_lag``
    (replicas), far slower than the fastest fitting node, removed from the cluster or changed
    (``remove_node``, ``reload``), or its cluster was registered again or unregistered
    since. A connection clusterdb did not make fits (nothing is known against it).
    """
    if role not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {role!r}", "role")
    found = tag_of(conn)
    if found is None:
        return True
    if not is_current(found):
        return False
    return found.node in found.fitness.assessment(role).fit


def report(conn: Any, exc: BaseException) -> ErrorKind | None:
    """Feed an error seen on ``conn`` into its node's state: what kind of error it was (the
    node is not primary, or the connection is lost), or None for any other error or a
    connection clusterdb did not make. Either kind asks the monitor to re-read every node's
    role now."""
    found = tag_of(conn)
    if found is None:
        return None
    cluster = found.cluster
    kind = cluster.adapter.classify_error(exc, conn)
    if kind is None:
        return None
    if kind == "read_only":
        cluster.record_read_only(found.node)
    else:
        cluster.record_lost(found.node, exc)
    cluster.request_check()
    return kind


def bound(adapter: Bounding, conn: Any, query_timeout: float | None) -> Any:
    """``conn``, its calls bounded by ``query_timeout`` seconds when not None (the driver's
    own mechanism, :meth:`~clusterdb.drivers.base.DriverAdapter.bound_queries`), their errors
    reported (:func:`report`)."""
    if query_timeout is not None:
        adapter.bound_queries(conn, query_timeout, report)
    return conn
