"""The pure rules both connect paths share: arguments, which roles to read, the errors."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from clusterdb.core.description import ClusterDescription, NodeDescription, Role
from clusterdb.core.failures import all_failed, no_suitable, safe_error
from clusterdb.core.redact import Redactor
from clusterdb.core.request import connect_request
from clusterdb.core.roles import read_always, roles_to_read, wrong_role
from clusterdb.core.selection import Plan
from clusterdb.errors import AllNodesFailed, ConfigError, NoSuitableNode


def test_wrong_role_line() -> None:
    assert wrong_role("replica", "primary") == "is a replica, wanted primary"


def _desc(**roles: Role) -> ClusterDescription:
    return ClusterDescription(
        "c", tuple(NodeDescription(name=n, address=n, role=r) for n, r in roles.items())
    )


def test_roles_are_read_when_they_decide_or_cost_nothing() -> None:
    desc = _desc(a="primary", b="unknown")
    assert roles_to_read("primary", False, desc) is read_always
    assert roles_to_read("any", True, desc) is read_always
    read = roles_to_read("any", False, desc)
    assert (read("a"), read("b")) == (False, True)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({}, 5.0), ({"connect_timeout": 0.25}, 0.25), ({"connect_timeout": 3}, 3.0)],
)
def test_connect_request_takes_the_deadline_out(overrides: dict[str, Any], expected: float) -> None:
    given = {**overrides, "user": "u"}
    assert connect_request("any", given, 5.0) == expected
    assert given == {"user": "u"}


@pytest.mark.parametrize(
    ("wanted", "timeout", "path"),
    [
        ("master", None, "role"),
        ("any", 0, "connect_timeout"),
        ("any", -1.0, "connect_timeout"),
        ("any", float("nan"), "connect_timeout"),
        ("any", float("inf"), "connect_timeout"),
        ("any", True, "connect_timeout"),
        ("any", "2", "connect_timeout"),
    ],
)
def test_connect_request_refuses(wanted: Any, timeout: Any, path: str) -> None:
    overrides = {} if timeout is None else {"connect_timeout": timeout}
    with pytest.raises(ConfigError) as info:
        connect_request(wanted, overrides, 5.0)
    assert info.value.path == path


def test_no_suitable_is_the_drivers_error_too() -> None:
    plan = Plan((), (), False, {"a": "drained"})
    error = no_suitable("c", "replica", plan, sqlite3.OperationalError)
    assert isinstance(error, NoSuitableNode) and isinstance(error, sqlite3.OperationalError)
    assert error.reasons == {"a": "drained"}


def test_all_failed_stands_in_for_silent_nodes() -> None:
    refused = sqlite3.OperationalError("refused")
    error = all_failed(
        "c", {"a": (refused, "refused"), "b": (None, "no answer")}, sqlite3.OperationalError
    )
    assert isinstance(error, AllNodesFailed) and isinstance(error, sqlite3.OperationalError)
    assert error.errors["a"] is refused
    assert str(error.errors["b"]) == "no answer"
    assert "a: refused" in str(error) and "b: no answer" in str(error)


def test_safe_error_hides_an_error_quoting_a_secret() -> None:
    redactor = Redactor(["s3cret"])
    plain = sqlite3.OperationalError("refused")
    assert safe_error(redactor, plain, "refused", sqlite3.OperationalError) is plain
    leaky = sqlite3.OperationalError("password s3cret refused")
    stand_in = safe_error(redactor, leaky, "password *** refused", sqlite3.OperationalError)
    assert stand_in is not leaky
    assert "s3cret" not in f"{stand_in}{stand_in!r}"
