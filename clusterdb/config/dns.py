"""DNS names as node lists: the ``dns`` option read, and resolved records turned into nodes;
pure, no I/O (the lookups are :mod:`clusterdb.runtime.dns`'s).

A spec ``"db.example.com:5432"`` is an A/AAAA name: every address it resolves to is a node at
that port. A spec starting with ``_`` (``"_postgresql._tcp.example.com"``) is an SRV name:
each target of the lowest priority present is resolved in turn, at the record's port (weights
are not used: clusterdb spreads load by measured latency). The hostname is kept for TLS: with
psycopg a node is ``host=<hostname> hostaddr=<address>`` (libpq verifies the certificate and
sends SNI for the name, connects to the address); other drivers get the address as ``host``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clusterdb.config.model import Kwargs, NodeEntry
from clusterdb.errors import ConfigError

__all__ = ["DnsName", "SrvRecord", "check_dns", "entries_for", "lowest_priority"]


@dataclass(frozen=True)
class DnsName:
    host: str
    port: int | None
    """None for an SRV name (the records give the ports)."""

    @property
    def srv(self) -> bool:
        return self.port is None


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


def check_dns(value: object, path: str) -> tuple[DnsName, ...]:
    """The ``dns`` option: one spec or a list (``"name:port"`` or ``"_service._proto.name"``)."""
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, list | tuple) or not specs:
        raise ConfigError("must be a name or a list: 'db.example.com:5432' or '_pg._tcp.x'", path)
    names: list[DnsName] = []
    for index, spec in enumerate(specs):
        where = path if isinstance(value, str) else f"{path}[{index}]"
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError("must be a DNS name string", where)
        spec = spec.strip().rstrip(".")
        if spec.startswith("_"):
            names.append(DnsName(spec, None))
            continue
        host, sep, port = spec.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                f"must be 'name:port' or an SRV name '_svc._tcp.name', got {spec!r}", where
            )
        names.append(DnsName(host.strip("[]"), int(port)))
    return tuple(names)


def lowest_priority(records: Sequence[SrvRecord]) -> list[SrvRecord]:
    """The records of the lowest priority present (RFC 2782: higher ones are fallbacks),
    heaviest first."""
    if not records:
        return []
    low = min(r.priority for r in records)
    return sorted((r for r in records if r.priority == low), key=lambda r: (-r.weight, r.target))


def entries_for(host: str, port: int, addresses: Sequence[str], keep_name: bool) -> list[NodeEntry]:
    """One node per address of ``host``, named ``host[address]:port``; ``keep_name``: the
    hostname as ``host`` and the address as ``hostaddr`` (libpq), else the address as host."""
    entries = []
    for address in dict.fromkeys(addresses):
        name = f"{host}[{address}]:{port}"
        if keep_name:
            entries.append(
                NodeEntry(name, host=host, port=port, params=Kwargs({"hostaddr": address}))
            )
        else:
            entries.append(NodeEntry(name, host=address, port=port, params=Kwargs()))
    return entries
