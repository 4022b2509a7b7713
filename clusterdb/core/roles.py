"""Which node roles serve which wanted role: the one rule that selection and the race share.

``TIERS[wanted]`` lists the roles that fit ``wanted``, best first. A role outside every tier
does not fit; a role ranked after ``"unknown"`` fits only as a fallback (``prefer-replica``'s
primary): a node of unknown role may still turn out better, so the race holds it aside.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import get_args

from clusterdb.core.description import NodeDescription, Role, WantedRole

__all__ = ["TIERS", "WANTED_ROLES", "role_fits", "role_is_fallback", "unfit_reason"]

WANTED_ROLES: tuple[WantedRole, ...] = get_args(WantedRole)

TIERS: Mapping[WantedRole, tuple[tuple[Role, ...], ...]] = MappingProxyType(
    {
        "any": (("primary", "replica", "unknown"),),
        "primary": (("primary",), ("unknown",)),
        "replica": (("replica",), ("unknown",)),
        "prefer-replica": (("replica",), ("unknown",), ("primary",)),
    }
)

# role -> its tier's index, per wanted role (roles that do not fit are absent).
_TIER_OF: Mapping[WantedRole, Mapping[Role, int]] = {
    wanted: {role: index for index, roles in enumerate(tiers) for role in roles}
    for wanted, tiers in TIERS.items()
}


def role_fits(wanted: WantedRole, role: Role | None) -> bool:
    """Whether a node of ``role`` may serve ``wanted``. An unknown role (``"unknown"``, or
    None: the driver cannot tell) is never refused: only a known wrong one is."""
    return role is None or role in _TIER_OF[wanted]


def role_is_fallback(wanted: WantedRole, role: Role | None) -> bool:
    """Whether ``role`` fits ``wanted`` only after nodes of unknown role (taken when no better
    node answers)."""
    tiers = _TIER_OF[wanted]
    return role is not None and tiers.get(role, -1) > tiers["unknown"]


def unfit_reason(node: NodeDescription, wanted: WantedRole, max_lag: float | None) -> str | None:
    """Why ``node`` cannot serve ``wanted`` whatever its state, or None when it can."""
    if node.drained:
        return "drained"
    if not role_fits(wanted, node.role):
        return f"role {node.role}, wanted {wanted}"
    lag_matters = wanted in ("replica", "prefer-replica") and node.role != "primary"
    if lag_matters and max_lag is not None:
        if node.replication_stopped:
            return f"replication stopped: lag unbounded > max_lag {max_lag:.1f} s"
        if node.lag is not None and node.lag > max_lag:
            return f"lag {node.lag:.1f} s > max_lag {max_lag:.1f} s"
    return None
