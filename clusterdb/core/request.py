"""The arguments of one connect() (pure): the role asked for, the overall deadline, and the
bound on the new connection's calls (``query_timeout``)."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from clusterdb.core.roles import WANTED_ROLES
from clusterdb.errors import ConfigError

__all__ = ["connect_request", "query_timeout_request"]


def connect_request(wanted: object, overrides: MutableMapping[str, Any], default: float) -> float:
    """Check ``wanted`` and take ``connect_timeout`` out of ``overrides`` (the rest goes to the
    driver): the connect's overall deadline in seconds, ``default`` when not given. Raises
    :class:`~clusterdb.errors.ConfigError` naming the argument at fault."""
    if wanted not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {wanted!r}", "role")
    if "connect_timeout" not in overrides:
        return default  # checked when the cluster was configured
    return _seconds(overrides.pop("connect_timeout"), "connect_timeout", "")


def query_timeout_request(
    overrides: MutableMapping[str, Any], default: float | None
) -> float | None:
    """Take ``query_timeout`` out of ``overrides``: the bound, in seconds, on how long a call
    on the new connection waits for its server; None for no bound; ``default`` (the
    cluster's) when not given. Raises :class:`~clusterdb.errors.ConfigError` naming it."""
    if "query_timeout" not in overrides:
        return default
    value = overrides.pop("query_timeout")
    return None if value is None else _seconds(value, "query_timeout", " or None")


def _seconds(value: object, key: str, alternative: str) -> float:
    """``value`` as a number of seconds > 0; ConfigError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number of seconds{alternative}, not {value!r}", key)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"must be > 0 seconds, not {value!r}", key)
    return float(value)
