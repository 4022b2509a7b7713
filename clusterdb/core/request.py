"""The arguments of one connect() (pure): the role asked for and the overall deadline."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from clusterdb.core.roles import WANTED_ROLES
from clusterdb.errors import ConfigError

__all__ = ["connect_request"]


def connect_request(wanted: object, overrides: MutableMapping[str, Any], default: float) -> float:
    """Check ``wanted`` and take ``connect_timeout`` out of ``overrides`` (the rest goes to the
    driver): the connect's overall deadline in seconds, ``default`` when not given. Raises
    :class:`~clusterdb.errors.ConfigError` naming the argument at fault."""
    if wanted not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {wanted!r}", "role")
    if "connect_timeout" not in overrides:
        return default  # checked when the cluster was configured
    value = overrides.pop("connect_timeout")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number of seconds, not {value!r}", "connect_timeout")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"must be > 0 seconds, not {value!r}", "connect_timeout")
    return float(value)
