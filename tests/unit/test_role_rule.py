"""The role rule (clusterdb.core.roles) as one table: every wanted role against every role a
node can have, with what selection and the race make of it."""

from __future__ import annotations

import pytest

from clusterdb.core.description import NodeDescription, Role, WantedRole
from clusterdb.core.roles import (
    TIERS,
    WANTED_ROLES,
    role_fits,
    role_is_fallback,
    role_wins,
    unfit_reason,
)

# wanted, role -> fits, fallback (None: the driver cannot tell the role)
TABLE: dict[tuple[WantedRole, Role | None], tuple[bool, bool]] = {
    ("any", "primary"): (True, False),
    ("any", "replica"): (True, False),
    ("any", "unknown"): (True, False),
    ("any", None): (True, False),
    ("primary", "primary"): (True, False),
    ("primary", "replica"): (False, False),
    ("primary", "unknown"): (True, False),
    ("primary", None): (True, False),
    ("replica", "primary"): (False, False),
    ("replica", "replica"): (True, False),
    ("replica", "unknown"): (True, False),
    ("replica", None): (True, False),
    ("prefer-replica", "primary"): (True, True),
    ("prefer-replica", "replica"): (True, False),
    ("prefer-replica", "unknown"): (True, False),
    ("prefer-replica", None): (True, False),
}


def test_the_table_covers_every_wanted_role_and_role() -> None:
    roles: tuple[Role | None, ...] = ("primary", "replica", "unknown", None)
    assert set(TABLE) == {(w, r) for w in WANTED_ROLES for r in roles}
    assert set(TIERS) == set(WANTED_ROLES)


@pytest.mark.parametrize(("wanted", "role"), list(TABLE))
def test_role_fits_fallback_and_wins(wanted: WantedRole, role: Role | None) -> None:
    fits, fallback = TABLE[wanted, role]
    assert role_fits(wanted, role) is fits
    assert role_is_fallback(wanted, role) is fallback
    assert role_wins(wanted, role) is (fits and not fallback)


@pytest.mark.parametrize(("wanted", "role"), [k for k in TABLE if k[1] is not None])
def test_selection_refuses_exactly_the_roles_that_do_not_fit(
    wanted: WantedRole, role: Role
) -> None:
    reason = unfit_reason(NodeDescription("n", role=role), wanted, max_lag=None)
    fits, _ = TABLE[wanted, role]
    assert reason == (None if fits else f"role {role}, wanted {wanted}")


@pytest.mark.parametrize(
    ("node", "wanted", "reason"),
    [
        (NodeDescription("n", role="primary", drained=True), "any", "drained"),
        (NodeDescription("n", role="replica", lag=9.0), "replica", "lag 9.0 s > max_lag 5.0 s"),
        (NodeDescription("n", role="replica", lag=9.0), "any", None),
        (
            NodeDescription("n", role="unknown", lag=9.0),
            "prefer-replica",
            "lag 9.0 s > max_lag 5.0 s",
        ),
        (NodeDescription("n", role="primary", lag=9.0), "prefer-replica", None),
        (
            NodeDescription("n", role="replica", replication_stopped=True),
            "replica",
            "replication stopped: lag unbounded > max_lag 5.0 s",
        ),
        (NodeDescription("n", role="replica", lag=4.0), "replica", None),
    ],
)
def test_unfit_reason_beyond_the_role(
    node: NodeDescription, wanted: WantedRole, reason: str | None
) -> None:
    assert unfit_reason(node, wanted, max_lag=5.0) == reason
