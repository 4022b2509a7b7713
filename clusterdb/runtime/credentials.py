"""Passwords that rotate: a cluster's password provider, called for each new connection.

:class:`Credentials` calls the provider (``password=callable`` or ``password_provider =
"module:name"``) once per attempt, connects and probes alike, and puts its answer in the
driver keywords as ``password`` (a ``password`` given to ``connect()`` wins, and the provider
is not called). Each answer becomes a secret of the cluster's :class:`Redactor` before any
connection uses it, so an error that quotes it is scrubbed like a configured password.

A sync provider serves both ``connect()`` and ``connect_async()``; a coroutine function is
awaited by ``connect_async()`` and run to completion with :func:`asyncio.run` on a thread
with no running loop (``connect()``, the monitor's probes). Why per attempt: a cloud IAM
token lives for minutes, and a pool reconnecting with the one read at start-up fails.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from clusterdb.config import ClusterConfig
from clusterdb.config.model import PasswordProvider
from clusterdb.core.redact import Redactor

__all__ = ["KEPT", "Credentials", "ProviderError", "fresh"]

KEPT = 16
"""How many of the provider's latest answers the redactor keeps besides the config's secrets
(an error quoting an older token is unlikely; the regex must not grow without bound)."""


class ProviderError(Exception):
    """The password provider raised or gave something other than a non-empty string."""


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


class Credentials:
    """One cluster's provider, and the redactor that knows its answers.

    ``publish(redactor)`` is called (outside any lock of the cluster) with a new redactor each
    time the provider gives a value not seen among the last :data:`KEPT`.
    """

    __slots__ = ("_base", "_lock", "_provider", "_publish", "_recent")

    def __init__(
        self,
        config: ClusterConfig,
        provider: PasswordProvider,
        publish: Callable[[Redactor], None],
    ) -> None:
        self._provider = provider
        self._publish = publish
        self._base = config.secrets
        self._lock = threading.Lock()
        self._recent: deque[str] = deque(maxlen=KEPT)

    def __repr__(self) -> str:
        name = getattr(self._provider, "__qualname__", type(self._provider).__name__)
        return f"<Credentials provider={name}>"

    def recent(self) -> tuple[str, ...]:
        """The provider's latest answers (secrets: for a redactor only)."""
        with self._lock:
            return tuple(self._recent)

    def overrides(self, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
        """``overrides`` with a fresh ``password`` (unless it has one): for a thread."""
        if "password" in overrides:
            return overrides
        try:
            value = self._provider()
            if inspect.isawaitable(value):
                value = asyncio.run(_awaited(value))
        except Exception as exc:
            raise ProviderError(f"the password provider failed: {type(exc).__name__}") from None
        return {**overrides, "password": self._seen(value)}

    async def overrides_async(self, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
        """``overrides`` with a fresh ``password`` (unless it has one): for an event loop."""
        if "password" in overrides:
            return overrides
        try:
            value = self._provider()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            raise ProviderError(f"the password provider failed: {type(exc).__name__}") from None
        return {**overrides, "password": self._seen(value)}

    def starting(self, start: Callable[..., Any]) -> Callable[..., Any]:
        """``start(target, overrides, *rest)`` (a driver's ``start``) with a fresh password."""

        def begin(target: Any, overrides: Mapping[str, Any], *rest: Any) -> Any:
            return start(target, self.overrides(overrides), *rest)

        return begin

    async def starting_async(
        self,
        start: Callable[..., Awaitable[Any]],
        target: Any,
        overrides: Mapping[str, Any],
        *rest: Any,
    ) -> Any:
        """``await start(target, overrides, *rest)`` (an async driver's ``start``) with a fresh
        password."""
        return await start(target, await self.overrides_async(overrides), *rest)

    def _seen(self, value: object) -> str:
        """``value`` checked, and known to the redactor before anything uses it."""
        if not isinstance(value, str) or not value:
            shown = "an empty string" if value == "" else f"a {type(value).__name__}"
            raise ProviderError(f"the password provider gave {shown}, not a password")
        with self._lock:  # published under it: a slower thread must not publish an older one
            if value not in self._recent:
                self._recent.append(value)
                self._publish(Redactor([*self._base, *self._recent]))
        return value


def fresh(used: Redactor, current: Redactor, credentials: Credentials | None) -> Redactor:
    """The redactor to scrub an attempt's error with: ``used`` (taken when its connect began)
    knowing the provider's answers given since (``current``: the cluster's now)."""
    if credentials is None or used is current:
        return used
    return used.with_secrets(credentials.recent())
