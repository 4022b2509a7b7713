"""Which nodes a new node list keeps, adds, removes and changes: the pure rule behind
``add_node()``, ``remove_node()``, ``reload()`` and :meth:`Cluster.set_nodes`.

A node is named; its *settings* are any value compared with ``==`` (the runtime passes the
node's config entry and its bound driver arguments). The rule, per name:

    in the old list only                       -> removed (its record retired)
    in the new list only                       -> added (a new record: state unknown, no stats)
    in both, settings equal                    -> kept (record, state, stats, estimates kept)
    in both, settings differ                   -> changed (retired, then added afresh)

Why a changed node starts afresh: its state, stats and estimates describe a server that may
no longer be the one its name points to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clusterdb.errors import ConfigError

__all__ = ["MembershipChange", "check_names", "diff_nodes"]


@dataclass(frozen=True)
class MembershipChange:
    """What one change of a cluster's node list did, node names in the new list's order
    (``removed``: the old list's)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def retired(self) -> tuple[str, ...]:
        """Names whose old record goes: removed and changed."""
        return self.removed + self.changed

    @property
    def fresh(self) -> tuple[str, ...]:
        """Names that get a new record: added and changed."""
        return self.added + self.changed


def diff_nodes(old: Mapping[str, object], new: Sequence[tuple[str, object]]) -> MembershipChange:
    """The change from ``old`` (name -> settings) to ``new`` ((name, settings) pairs, names
    distinct: see :func:`check_names`)."""
    new_names = {name for name, _ in new}
    added: list[str] = []
    changed: list[str] = []
    for name, settings in new:
        if name not in old:
            added.append(name)
        elif old[name] != settings:
            changed.append(name)
    removed = tuple(name for name in old if name not in new_names)
    return MembershipChange(tuple(added), removed, tuple(changed))


def check_names(cluster: str, names: Sequence[str]) -> None:
    """Raise ConfigError unless ``names`` is a non-empty list of distinct, non-empty names."""
    path = f"clusters.{cluster}.nodes"
    if not names:
        raise ConfigError(
            f"cluster {cluster!r} would have no node left: add its replacement first, or "
            f"unregister the cluster",
            path,
        )
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a node needs a non-empty name", f"{path}[{index}].name")
        if name in seen:
            raise ConfigError(
                f"duplicate node name {name!r}, also used by {path}[{seen[name]}] "
                "(give each node a distinct name)",
                f"{path}[{index}].name",
            )
        seen[name] = index
