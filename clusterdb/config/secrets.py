"""Which values of a config are secrets: the one place that knows, for the library and the CLI.

A secret is a value under a secret-looking key (``password``, ``sslpassword``, ``token``...,
see :func:`~clusterdb.core.redact.is_secret_key`) at the cluster or node level, in a node's
DSN, or read through ``password_env`` / ``password_file``. :attr:`ClusterConfig.secrets`
holds each one, and :func:`secrets_kept_out` keeps them out of every ConfigError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from clusterdb.config.model import ClusterConfig, NodeEntry, PasswordProvider
from clusterdb.config.schema import PASSWORD_REFERENCES, PROVIDER_KEY, join, kind, message_of
from clusterdb.config.sources import password_from_env, password_from_file, provider_from_path
from clusterdb.core.dsn import looks_like_dsn, parse_dsn
from clusterdb.core.redact import Redactor, is_secret_key
from clusterdb.errors import ConfigError

__all__ = [
    "Secrets",
    "add_password",
    "entry_secrets",
    "known_secrets",
    "secrets_kept_out",
    "take_provider",
]


class Secrets:
    """Collects secret values in order, once each."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, value: object) -> None:
        if value is not None and str(value):
            self._seen[str(value)] = None

    def add_all(self, values: Iterable[object]) -> None:
        for value in values:
            self.add(value)

    def collect(self, params: Mapping[str, object]) -> None:
        """Every value of ``params`` under a secret-looking key."""
        for key, value in params.items():
            if is_secret_key(key):
                self.add(value)

    def values(self) -> tuple[str, ...]:
        return tuple(self._seen)


def known_secrets(configs: Iterable[ClusterConfig]) -> tuple[str, ...]:
    """Every secret of ``configs``, once each: what output about them must never show."""
    found = Secrets()
    for config in configs:
        found.add_all(config.secrets)
    return found.values()


def entry_secrets(entries: Iterable[NodeEntry]) -> tuple[str, ...]:
    """Every secret of already built node ``entries`` (secret-looking params, a DSN's
    password): for entries made by code rather than by the builder, which records its own."""
    found = Secrets()
    for entry in entries:
        found.collect(entry.params)
        if entry.dsn is not None and looks_like_dsn(entry.dsn):
            try:
                found.collect(parse_dsn(entry.dsn))
            except ConfigError:
                found.add(entry.dsn)  # unparsable: mask it whole rather than guess
    return found.values()


def _raw_values(data: object) -> Iterator[str]:
    """Every string under a secret-looking key anywhere in ``data`` (tables, lists, nodes)."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in PASSWORD_REFERENCES or key == PROVIDER_KEY:
                continue
            if isinstance(key, str) and is_secret_key(key) and isinstance(value, str):
                yield value
            else:
                yield from _raw_values(value)
    elif isinstance(data, list | tuple):
        for item in data:
            yield from _raw_values(item)


@contextlib.contextmanager
def secrets_kept_out(secrets: Secrets, *raw: object) -> Iterator[None]:
    """Last line of defence: scrub from a ConfigError raised inside every secret collected in
    ``secrets`` and every secret-looking value of the unvalidated input ``raw``.

    Messages are written never to quote a value that may be secret, but a value in the wrong
    place (a password typed as the driver name) is quoted as what it was taken for.
    """
    try:
        yield
    except ConfigError as exc:
        known = [*secrets.values(), *(v for data in raw for v in _raw_values(data))]
        if not known:
            raise
        redactor = Redactor(known)
        raise ConfigError(redactor.scrub(message_of(exc)), redactor.scrub(exc.path)) from None


def add_password(
    own: Mapping[str, object],
    params: dict[str, object],
    path: str,
    base: Path | None,
    secrets: Secrets,
) -> None:
    """Put in the driver keywords ``params`` the password read through ``password_env`` /
    ``password_file`` of ``own`` (a cluster's or a node's keys), if given; record in
    ``secrets`` every secret of ``params`` then.

    At most one of the three ways may be used: a second is an error naming it.
    """
    given = [k for k in PASSWORD_REFERENCES if own.get(k) is not None]
    if "password" in params:
        given.insert(0, "password")
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}", join(path, given[1]))
    if given == ["password"]:
        value = params["password"]
        if callable(value):
            raise ConfigError(
                "a callable password (a provider) is taken for the whole cluster only",
                join(path, "password"),
            )
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"must be a string, not {kind(value)}", join(path, "password"))
    elif given == ["password_env"]:
        params["password"] = password_from_env(own["password_env"], join(path, "password_env"))
    elif given == ["password_file"]:
        file = own["password_file"]
        params["password"] = password_from_file(file, join(path, "password_file"), base)
    secrets.collect(params)


def take_provider(
    own: Mapping[str, object], params: dict[str, object], path: str
) -> PasswordProvider | None:
    """The cluster's password provider: a callable ``password`` (taken out of the driver
    keywords ``params``) or the callable named by ``password_provider`` in ``own``; None when
    the password, if any, is a plain value.

    A provider excludes every other way to give the cluster's password.
    """
    value = params.get("password")
    spec = own.get(PROVIDER_KEY)
    if not callable(value) and spec is None:
        return None
    given = [k for k in ("password", *PASSWORD_REFERENCES) if k in params or own.get(k)]
    if spec is not None and given:
        raise ConfigError(f"give only one of {given[0]}, {PROVIDER_KEY}", join(path, PROVIDER_KEY))
    if spec is None:
        others = [k for k in PASSWORD_REFERENCES if own.get(k) is not None]
        if others:
            raise ConfigError(f"give only one of password, {others[0]}", join(path, others[0]))
        del params["password"]
        return value  # type: ignore[return-value]  # callable() checked it
    return provider_from_path(spec, join(path, PROVIDER_KEY))
