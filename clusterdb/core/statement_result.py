"""The statement classifier's answer, and how the answers for several statements combine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Target = Literal["replica", "primary"]
TransactionKind = Literal["begin", "begin-read-only", "commit", "rollback", "savepoint", "chain"]
"""What a statement does to the transaction: ``begin`` / ``begin-read-only`` start one,
``commit`` / ``rollback`` end it, ``chain`` ends it and starts the next with the same access
mode (AND CHAIN), ``savepoint`` (SAVEPOINT, RELEASE, ROLLBACK TO) stays inside it."""

_FOLLOWS_TRANSACTION = frozenset({"commit", "rollback", "savepoint", "chain"})


@dataclass(frozen=True, slots=True)
class Classification:
    """Where one statement string may run.

    ``target``: ``"replica"`` only when nothing in the string writes, locks, starts session
    state or is unknown. ``pins_session``: why the session must stay on the primary from now
    on (SET, temporary table, PREPARE, LISTEN, advisory or named lock, WITH HOLD cursor...), or
    None. ``transaction``: see :data:`TransactionKind`; a routed connection runs COMMIT,
    ROLLBACK and savepoints where the open transaction runs, whatever ``target`` says.
    """

    target: Target
    reason: str
    pins_session: str | None = None
    transaction: TransactionKind | None = None


EMPTY = Classification("primary", "empty statement")


def primary(reason: str, pins: str | None = None) -> Classification:
    return Classification("primary", reason, pins)


def replica(reason: str) -> Classification:
    return Classification("replica", reason)


def control(kind: TransactionKind, reason: str, target: Target = "primary") -> Classification:
    return Classification(target, reason, None, kind)


def combine(parts: Sequence[Classification]) -> Classification:
    """One answer for several statements sent as one string: the primary if any statement
    needs it (statements that end or stay in a transaction follow it and do not count), the
    first pin, and the transaction state the string leaves (savepoints left aside)."""
    if len(parts) == 1:
        return parts[0]
    deciding = [p for p in parts if p.transaction not in _FOLLOWS_TRANSACTION] or list(parts)
    chosen = next((p for p in deciding if p.target == "primary"), deciding[0])
    pins = next((p.pins_session for p in parts if p.pins_session), None)
    kinds = [p.transaction for p in parts if p.transaction is not None]
    ends = [k for k in kinds if k != "savepoint"]
    kind = ends[-1] if ends else (kinds[-1] if kinds else None)
    return Classification(chosen.target, chosen.reason, pins, kind)


def either(readings: Sequence[Classification]) -> Classification:
    """One answer for the same text read under different session settings: the primary if
    any reading needs it, and any reading's pin."""
    chosen = next((r for r in readings if r.target == "primary"), readings[0])
    pins = next((r.pins_session for r in readings if r.pins_session), None)
    return Classification(chosen.target, chosen.reason, pins, readings[0].transaction)
