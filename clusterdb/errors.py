"""clusterdb's own exceptions.

    Error                         root of every error clusterdb raises itself
    ├── InterfaceError            the caller used clusterdb wrongly
    │   ├── ConfigError           a bad config file, option or node spec (also a ValueError);
    │   │                         ``.path`` is the key path, e.g. ``clusters.main.nodes[1].port``
    │   └── UnknownClusterError   no cluster registered under that name (also a LookupError)
    └── DatabaseError
        └── OperationalError
            ├── AllNodesFailed    every node tried failed; ``.errors`` maps node name → exception
            └── NoSuitableNode    no node can serve the request (role, drain, lag): nothing tried

``AllNodesFailed`` and ``NoSuitableNode`` are raised as subclasses bound to the driver
(:func:`bind_to_driver`), so the object raised is also an instance of the driver's own
``OperationalError``: code written for psycopg or PyMySQL still catches it. An ``except``
clause looks only at real base classes, which is why this is a subclass and not a
``__instancecheck__`` trick.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AllNodesFailed",
    "CausalTokenError",
    "ConfigError",
    "DatabaseError",
    "Error",
    "InterfaceError",
    "NoSuitableNode",
    "OperationalError",
    "UnknownClusterError",
    "bind_to_driver",
]


class Error(Exception):
    """Root of clusterdb's own errors."""


class InterfaceError(Error):
    """The caller used clusterdb wrongly."""


class DatabaseError(Error):
    """An error about the database cluster."""


class OperationalError(DatabaseError):
    """The cluster could not serve the request (nodes down, none suitable)."""


class ConfigError(InterfaceError, ValueError):
    """A bad config file, option or node spec; ``path`` names the key (may be empty)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CausalTokenError(InterfaceError, ValueError):
    """A read-your-writes token that is malformed or belongs to another cluster."""


class UnknownClusterError(InterfaceError, LookupError):
    """No cluster is registered under the name asked for."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        self.name = name
        hint = (
            f"registered: {', '.join(repr(k) for k in known)}"
            if known
            else "no cluster is registered yet"
        )
        super().__init__(
            f"unknown cluster {name!r} ({hint}); call clusterdb.register({name!r}, ...) "
            "or clusterdb.load_config(path) first"
        )

    def __str__(self) -> str:
        # LookupError would quote the message like a key; keep it readable.
        return str(self.args[0])


class AllNodesFailed(OperationalError):
    """Every node tried for one connect() failed.

    ``errors`` maps each node name to its exception; the message holds one line per node,
    already redacted.
    """

    def __init__(
        self, cluster: str, errors: Mapping[str, BaseException], lines: Mapping[str, str]
    ) -> None:
        self.cluster = cluster
        self.errors: dict[str, BaseException] = dict(errors)
        count = len(lines)
        body = "\n".join(f"  {name}: {line}" for name, line in lines.items())
        noun = "node" if count == 1 else "nodes"
        super().__init__(f"cluster {cluster!r}: all {count} {noun} tried failed:\n{body}")


class NoSuitableNode(OperationalError):
    """No node of the cluster can serve the request, so none was tried.

    ``reasons`` maps each node name to why it was not usable.
    """

    def __init__(self, cluster: str, wanted: str, reasons: Mapping[str, str]) -> None:
        self.cluster = cluster
        self.wanted = wanted
        self.reasons = dict(reasons)
        body = "\n".join(f"  {name}: {why}" for name, why in reasons.items())
        super().__init__(f"cluster {cluster!r} has no usable node for {wanted}:\n{body}")


_bound: dict[tuple[type[Exception], type[Exception]], type[Exception]] = {}


def bind_to_driver(cls: type[OperationalError], driver_error: type[Exception]) -> type[Exception]:
    """Return a subclass of both ``cls`` and the driver's ``OperationalError`` (cached).

    No lock: ``dict.setdefault`` is atomic, so two threads racing here get the same class.
    """
    key = (cls, driver_error)
    bound = _bound.get(key)
    if bound is None:
        made = type(cls.__name__, (cls, driver_error), {"__module__": cls.__module__})
        bound = _bound.setdefault(key, made)
    return bound
