"""The validated config of a cluster: :class:`ClusterConfig`, its :class:`NodeEntry` nodes and
:class:`ClusterOptions`. No repr of them shows a secret value."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

from clusterdb.config.schema import OPTIONS, check_option
from clusterdb.core.dsn import looks_like_dsn, parse_dsn
from clusterdb.core.galera import Topology
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy
from clusterdb.core.redact import Redactor, is_secret_key
from clusterdb.errors import ConfigError

__all__ = ["ClusterConfig", "ClusterOptions", "Kwargs", "NodeEntry", "PasswordProvider"]

PasswordProvider = Callable[[], "str | Awaitable[str]"]
"""A callable giving the password for one new connection (an IAM token...); a coroutine
function works for ``connect_async`` (and on worker threads, run to completion there)."""


class Kwargs(Mapping[str, object]):
    """A read-only mapping whose repr shows ``***`` for secret keys."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object] = types.MappingProxyType({})) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return dict(self._data) == other if isinstance(other, Mapping) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data)))

    def __repr__(self) -> str:
        shown = {k: "***" if is_secret_key(k) else v for k, v in self._data.items()}
        return Redactor([str(v) for k, v in self._data.items() if is_secret_key(k)]).scrub(
            repr(shown)
        )


@dataclass(frozen=True)
class NodeEntry:
    """One node as the user gave it. Its repr never shows a secret value."""

    name: str
    host: str | None = None
    port: int | None = None
    dsn: str | None = None
    """The raw string when the node was given as a DSN, conninfo, URL or path (sqlite3)."""
    params: Mapping[str, object] = field(default_factory=Kwargs)
    """Other per-node keyword arguments for the driver's connect()."""

    @property
    def address(self) -> str:
        """``host:port`` (or host, or the DSN's host:port, or a path); never a password."""
        if self.host is not None:
            return host_port(self.host, self.port)
        if self.dsn is not None:
            found = dsn_host_port(self.dsn)
            if found is None:
                return Redactor().scrub(self.dsn)
            return host_port(found[0], self.port if self.port is not None else found[1])
        for key in ("database", "dbname", "db"):
            value = self.params.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    def __repr__(self) -> str:
        params = self.params if isinstance(self.params, Kwargs) else Kwargs(self.params)
        return f"NodeEntry(name={self.name!r}, address={self.address!r}, params={params!r})"


def host_port(host: str, port: int | str | None) -> str:
    """``host:port``, an IPv6 address in brackets; ``host`` alone without a port."""
    shown = f"[{host}]" if ":" in host and not host.startswith("/") else host
    return shown if port is None or port == "" else f"{shown}:{port}"


def dsn_host_port(dsn: str) -> tuple[str, str | None] | None:
    """The host and port of a conninfo or URL; None for a path or a DSN with no host."""
    if not looks_like_dsn(dsn):
        return None
    try:
        parsed = parse_dsn(dsn)
    except ConfigError:
        return None
    host = parsed.get("host")
    return (host, parsed.get("port")) if host else None


@dataclass(frozen=True)
class ClusterOptions:
    """clusterdb's own settings of one cluster (not passed to the driver).

    The plain fields are checked on construction by :func:`~clusterdb.config.schema.
    check_option`, the same check a config file or register() goes through.
    """

    connect_timeout: float = 5.0
    """Overall deadline of one connect(), seconds (sub-second allowed)."""
    max_lag: float | None = None
    """Replicas lagging more (seconds) are not chosen for "replica" / "prefer-replica"."""
    causal_wait: float = 1.0
    """connect(after=token): seconds to wait for a replica to apply the token before the
    primary serves (``prefer-replica``) or NoSuitableNode is raised (``replica``)."""
    query_timeout: float | None = None
    """Seconds a call on a connection may wait for its server before it fails with the
    driver's own ``OperationalError`` and the node is marked down (a node frozen after the
    connect); None: no bound, the drivers' own default. Not on by default: a bound cuts
    legitimate long statements too, which the driver alone would have let finish."""
    heartbeat: float = 5.0
    """Seconds between two probes of a healthy node."""
    monitor: bool = True
    """Run the background monitor for this cluster."""
    pipeline_handshake: bool = True
    """PyMySQL: send ``SET NAMES`` (and ``SET AUTOCOMMIT`` when needed) in the same write as
    the handshake response once a server is known to authenticate in one step."""
    topology: Topology = "auto"
    """How wsrep (MariaDB Galera) status counts; see :data:`clusterdb.core.galera.Topology`."""
    single_writer: bool = False
    """Galera: ``role="primary"`` goes to one synced node only (the first in the node list),
    to avoid certification conflicts; see :func:`clusterdb.core.roles.preferred_writer`."""
    causal_reads: bool = False
    """Galera (PyMySQL and asyncmy): every session clusterdb opens runs ``SET SESSION
    wsrep_sync_wait = 1`` first (PyMySQL's ``init_command``), so a read waits until the node
    has applied every write committed anywhere in the cluster before it began."""
    patroni: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    """DNS names re-resolved each heartbeat into the node list (:mod:`clusterdb.config.dns`)."""
    """Patroni REST API URLs: the node list, and hints about roles, follow ``GET /cluster``
    (:mod:`clusterdb.runtime.discovery`); empty: the node list is the config's."""
    selection: SelectionPolicy = field(default_factory=SelectionPolicy)
    hedge: HedgePolicy = field(default_factory=HedgePolicy)
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        for key, option in OPTIONS.items():
            if option.target == "options":
                value = getattr(self, option.field)
                if value is not None or not option.nullable:
                    check_option(key, value, key)


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster, validated. Its repr never shows a secret value."""

    name: str
    driver: str | types.ModuleType
    """"psycopg", "pymysql", another PEP 249 module's import name ("sqlite3"), or a module."""
    nodes: tuple[NodeEntry, ...]
    options: ClusterOptions = field(default_factory=ClusterOptions)
    connect_kwargs: Mapping[str, object] = field(default_factory=Kwargs)
    """Keyword arguments for every driver connect() (user, dbname, password, ...)."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Every secret value seen (passwords), for the Redactor."""
    password_provider: PasswordProvider | None = field(default=None, repr=False, compare=False)
    """Called for each new connection's password (``password=callable`` or
    ``password_provider = "module:name"``); its answers are secrets too."""

    def __repr__(self) -> str:
        kwargs = self.connect_kwargs
        shown = kwargs if isinstance(kwargs, Kwargs) else Kwargs(kwargs)
        driver = self.driver if isinstance(self.driver, str) else self.driver.__name__
        text = (
            f"ClusterConfig(name={self.name!r}, driver={driver!r}, nodes={self.nodes!r}, "
            f"options={self.options!r}, connect_kwargs={shown!r})"
        )
        return Redactor(self.secrets).scrub(text)
