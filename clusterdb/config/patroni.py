"""Patroni's ``GET /cluster`` answer, read into clusterdb's terms: pure, no I/O.

Every member Patroni lists becomes a node named after the member, at the member's ``host``
and ``port``; Patroni's role for it (``leader`` -> primary, any other -> replica) and its
replication lag in bytes are kept as a *hint*: clusterdb's own probes decide what a node is
(a member Patroni calls leader that answers as a replica is not used as primary), the hint
only says when to look again. Why the member name: it is stable across restarts and what
operators see in ``patronictl list``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clusterdb.config.model import Kwargs, NodeEntry
from clusterdb.core.description import Role
from clusterdb.errors import ConfigError

__all__ = ["PatroniView", "check_endpoints", "parse_cluster"]

_PRIMARY_ROLES = ("leader", "master", "primary")  # "master" before Patroni 3; "primary" in 4's API
_STANDBY_LEADER = "standby_leader"


@dataclass(frozen=True)
class PatroniView:
    """What one ``/cluster`` answer says: the nodes, and Patroni's role and lag per member."""

    nodes: tuple[NodeEntry, ...]
    roles: Mapping[str, Role]
    """Patroni's role per member name: ``primary`` for its leader, ``replica`` otherwise."""
    lag: Mapping[str, int | None]
    """Replication lag in bytes per replica, None when Patroni says ``unknown``."""
    states: Mapping[str, str]
    """Patroni's state per member (``running``, ``streaming``, ``stopped``, ``starting``...)."""

    @property
    def leader(self) -> str | None:
        return next((name for name, role in self.roles.items() if role == "primary"), None)


def _port(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None


def _lag(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_cluster(data: object) -> PatroniView:
    """The view of a decoded ``/cluster`` JSON document.

    Raises ValueError for a document that is not Patroni's (no ``members`` list); a member
    without a name, host or valid port is skipped (Patroni lists such a member while it
    starts). A ``standby_leader`` (the leader of a standby cluster) is a replica here.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("members"), list):
        raise ValueError("not a Patroni /cluster answer: no members list")
    nodes: list[NodeEntry] = []
    roles: dict[str, Role] = {}
    lag: dict[str, int | None] = {}
    states: dict[str, str] = {}
    for item in data["members"]:
        if not isinstance(item, Mapping):
            continue
        name, host, port = item.get("name"), item.get("host"), _port(item.get("port"))
        if not isinstance(name, str) or not name or not isinstance(host, str) or not host:
            continue
        if port is None or name in roles:
            continue
        nodes.append(NodeEntry(name=name, host=host, port=port, params=Kwargs()))
        role = item.get("role")
        roles[name] = "primary" if role in _PRIMARY_ROLES else "replica"
        states[name] = str(item.get("state", ""))
        if roles[name] == "replica":
            lag[name] = _lag(item.get("lag"))
    return PatroniView(tuple(nodes), roles, lag, states)


def check_endpoints(value: object, path: str) -> tuple[str, ...]:
    """The ``patroni`` option: one REST API URL or a list of them (``http://host:8008``),
    trailing slashes dropped. Raises ConfigError naming ``path``."""
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list | tuple) or not urls:
        raise ConfigError("must be a URL or a non-empty list of URLs (http://host:8008)", path)
    checked: list[str] = []
    for index, url in enumerate(urls):
        where = f"{path}[{index}]" if not isinstance(value, str) else path
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("must be an http:// or https:// URL of a Patroni REST API", where)
        checked.append(url.rstrip("/"))
    return tuple(checked)
