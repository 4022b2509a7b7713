"""The errors a failed connect() raises (pure), whichever racer ran it.

Both are bound to the driver's own ``OperationalError`` (:func:`~clusterdb.errors.bind_to_driver`)
so that code written for the driver still catches them.
"""

from __future__ import annotations

from collections.abc import Mapping

from clusterdb.core.redact import Redactor
from clusterdb.core.selection import Plan
from clusterdb.errors import AllNodesFailed, NoSuitableNode, bind_to_driver

__all__ = ["all_failed", "no_suitable", "safe_error"]


def no_suitable(cluster: str, wanted: str, plan: Plan, driver_error: type[Exception]) -> Exception:
    """The error of a connect() whose ``plan`` is empty: why each node was left out."""
    error = bind_to_driver(NoSuitableNode, driver_error)
    return error(cluster, wanted, plan.rejected)


def all_failed(
    cluster: str,
    report: Mapping[str, tuple[BaseException | None, str]],
    driver_error: type[Exception],
) -> Exception:
    """The error of a connect() whose every node tried failed: ``report`` maps each node to
    its error (None: it never answered, ``driver_error`` stands in) and its one-line form."""
    errors = {node: exc or driver_error(line) for node, (exc, line) in report.items()}
    lines = {node: line for node, (_, line) in report.items()}
    error = bind_to_driver(AllNodesFailed, driver_error)
    return error(cluster, errors, lines)


def safe_error(
    redactor: Redactor, exc: BaseException, line: str, driver_error: type[Exception]
) -> BaseException:
    """``exc``, or a ``driver_error`` carrying only its scrubbed ``line`` when its text holds
    a secret (it is kept in :attr:`AllNodesFailed.errors`)."""
    try:
        text = f"{exc}\n{exc!r}"
    except Exception:
        text = ""
    if text and redactor.scrub(text) == text:
        return exc
    return driver_error(line)
