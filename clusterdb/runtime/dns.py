"""DNS lookups for DNS discovery, behind one replaceable seam (:data:`resolver`).

``resolver.addresses(host)`` gives every IPv4/IPv6 address of a name (``getaddrinfo``: the
system's resolver, /etc/hosts included); ``resolver.srv(name)`` the SRV records of a name
(dnspython, the ``dns`` extra). Tests and applications with their own resolver replace it with
:func:`use_resolver`. :class:`DnsSource` re-resolves the cluster's names each heartbeat.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clusterdb.config.dns import DnsName, SrvRecord, entries_for, lowest_priority
from clusterdb.config.model import NodeEntry
from clusterdb.config.patroni import PatroniView

__all__ = ["DnsSource", "Resolver", "resolver", "use_resolver"]


def system_addresses(host: str) -> list[str]:
    """Every address of ``host``, in the resolver's order, once each."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def dnspython_srv(name: str) -> list[SrvRecord]:
    """The SRV records of ``name`` (needs dnspython: pip install 'clusterdb[dns]')."""
    try:
        import dns.resolver
    except ImportError:
        raise RuntimeError("SRV names need dnspython: pip install 'clusterdb[dns]'") from None
    answer = dns.resolver.resolve(name, "SRV")
    return [
        SrvRecord(int(r.priority), int(r.weight), int(r.port), str(r.target).rstrip("."))
        for r in answer
    ]


@dataclass(frozen=True)
class Resolver:
    addresses: Callable[[str], Sequence[str]] = system_addresses
    srv: Callable[[str], Sequence[SrvRecord]] = dnspython_srv


resolver = Resolver()
"""The lookups DNS discovery uses; replace with :func:`use_resolver`."""


def use_resolver(new: Resolver) -> Resolver:
    """Make ``new`` the resolver of every DNS discovery from the next poll on; returns the
    previous one (to put back)."""
    global resolver
    old, resolver = resolver, new
    return old


class DnsSource:
    """The cluster's DNS names, resolved afresh at each :meth:`fetch`."""

    def __init__(self, names: Sequence[DnsName], keep_name: bool) -> None:
        self.names = tuple(names)
        self.keep_name = keep_name
        self.last_error = ""

    def fetch(self) -> PatroniView | None:
        """Every node the names give now (no role hints); None when no name resolved."""
        current = resolver
        entries: list[NodeEntry] = []
        for name in self.names:
            try:
                targets = (
                    [(r.target, r.port) for r in lowest_priority(current.srv(name.host))]
                    if name.srv
                    else [(name.host, name.port or 0)]
                )
                for host, port in targets:
                    found = current.addresses(host)
                    entries.extend(entries_for(host, port, found, self.keep_name))
            except Exception as exc:
                self.last_error = f"{name.host}: {type(exc).__name__}: {exc}"[:300]
        unique = list({e.name: e for e in entries}.values())
        return PatroniView(tuple(unique), {}, {}, {}) if unique else None
