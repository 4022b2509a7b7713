"""Which node roles serve which wanted role: the one rule that selection and the race share.

``TIERS[wanted]`` lists the roles that fit ``wanted``, best first. A role outside every tier
does not fit; a role ranked after ``"unknown"`` fits only as a fallback (``prefer-replica``'s
primary): a node of unknown role may still turn out better, so the race holds it aside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import get_args

from clusterdb.core.description import ClusterDescription, NodeDescription, Role, WantedRole
from clusterdb.core.galera import unusable_reason

__all__ = [
    "TIERS",
    "WANTED_ROLES",
    "preferred_writer",
    "read_always",
    "role_fits",
    "role_is_fallback",
    "role_wins",
    "roles_to_read",
    "unfit_reason",
    "wrong_role",
]

WANTED_ROLES: tuple[WantedRole, ...] = get_args(WantedRole)

TIERS: Mapping[WantedRole, tuple[tuple[Role, ...], ...]] = MappingProxyType(
    {
        "any": (("primary", "replica", "unknown"),),
        "primary": (("primary",), ("unknown",)),
        "replica": (("replica",), ("unknown",)),
        "prefer-replica": (("replica",), ("unknown",), ("primary",)),
    }
)


def _roles(wanted: WantedRole, after_unknown: bool) -> frozenset[Role | None]:
    tiers = TIERS[wanted]
    unknown = next(i for i, roles in enumerate(tiers) if "unknown" in roles)
    return frozenset(
        r for i, roles in enumerate(tiers) for r in roles if (i > unknown) is after_unknown
    )


# Per wanted role, the roles (None: the driver cannot tell) that fit, that are fallbacks, and
# that win outright: set lookups, as connect() asks on every connect.
_FALLBACK = {wanted: _roles(wanted, after_unknown=True) for wanted in TIERS}
_WINS = {wanted: _roles(wanted, after_unknown=False) | {None} for wanted in TIERS}
_FITS = {wanted: _WINS[wanted] | _FALLBACK[wanted] for wanted in TIERS}


def role_fits(wanted: WantedRole, role: Role | None) -> bool:
    """Whether a node of ``role`` may serve ``wanted``. An unknown role (``"unknown"``, or
    None: the driver cannot tell) is never refused: only a known wrong one is."""
    return role in _FITS[wanted]


def role_is_fallback(wanted: WantedRole, role: Role | None) -> bool:
    """Whether ``role`` fits ``wanted`` only after nodes of unknown role (taken when no better
    node answers)."""
    return role in _FALLBACK[wanted]


def role_wins(wanted: WantedRole, role: Role | None) -> bool:
    """Whether ``role`` fits ``wanted`` and is no fallback: a connection to it wins outright."""
    return role in _WINS[wanted]


def wrong_role(role: Role | None, wanted: WantedRole) -> str:
    """The error line of a node whose connection has a role that does not fit ``wanted``."""
    return f"is a {role}, wanted {wanted}"


def read_always(node: str) -> bool:
    """The role is read on every new connection."""
    return True


def roles_to_read(
    wanted: WantedRole, role_is_free: bool, desc: ClusterDescription
) -> Callable[[str], bool]:
    """``read(node)``: whether to read the role on a new connection to ``node``: always when
    the role decides (``wanted`` is not ``any``) or costs no round trip, else only on nodes
    whose role ``desc`` does not know (learnt once; the monitor keeps it fresh)."""
    if role_is_free or wanted != "any":
        return read_always
    return desc.unknown_roles.__contains__


def unfit_reason(node: NodeDescription, wanted: WantedRole, max_lag: float | None) -> str | None:
    """Why ``node`` cannot serve ``wanted`` whatever its state, or None when it can."""
    if node.drained:
        return "drained"
    if node.galera is not None and node.galera != "synced":
        return unusable_reason(node.galera)
    if node.role not in _FITS[wanted]:  # role_fits(), without a call per node
        return f"role {node.role}, wanted {wanted}"
    lag_matters = wanted in ("replica", "prefer-replica") and node.role != "primary"
    if lag_matters and max_lag is not None:
        if node.replication_stopped:
            return f"replication stopped: lag unbounded > max_lag {max_lag:.1f} s"
        if node.lag is not None and node.lag > max_lag:
            return f"lag {node.lag:.1f} s > max_lag {max_lag:.1f} s"
    return None


def preferred_writer(nodes: Sequence[NodeDescription]) -> str | None:
    """The node that takes every ``role="primary"`` connect under ``single_writer``: the
    first in registration order that is not down, drained, a replica or a Galera node out of
    sync; None when there is none.

    Registration order, not the current writer kept while healthy: every process computes the
    same node from the same health, so writers in many processes do not conflict in
    certification; the cost is a move back to the first node once it is synced again.
    """
    for node in nodes:
        if (
            node.state != "down"
            and not node.drained
            and node.role != "replica"
            and node.galera in (None, "synced")
        ):
            return node.name
    return None
