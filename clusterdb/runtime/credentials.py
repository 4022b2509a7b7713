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
from clusterdb.core.redact import Redactor, is_secret_key

__all__ = ["KEPT", "Credentials", "ProviderError", "Redacting", "fresh"]

KEPT = 16
"""How many of the provider's latest answers the redactor keeps besides the config's secrets
(an error quoting an older token is unlikely; the regex must not grow without bound)."""


class ProviderError(Exception):
    """The password provider raised or gave something other than a non-empty string."""


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


class Credentials:
    """One cluster's provider and its latest answers.

    ``changed()`` is called (holding no lock) each time the provider gives a value not among
    the last :data:`KEPT`, before that value is used: the cluster then builds a redactor that
    knows it (:meth:`Redacting.refresh_redactor`).
    """

    __slots__ = ("_changed", "_lock", "_recent", "provider")

    def __init__(self, provider: PasswordProvider, changed: Callable[[], None]) -> None:
        self.provider = provider
        self._changed = changed
        self._lock = threading.Lock()
        self._recent: deque[str] = deque(maxlen=KEPT)

    def __repr__(self) -> str:
        name = getattr(self.provider, "__qualname__", type(self.provider).__name__)
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
            value = self.provider()
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
            value = self.provider()
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
        with self._lock:
            new = value not in self._recent
            if new:
                self._recent.append(value)
        if new:
            self._changed()
        return value


def fresh(used: Redactor, current: Redactor, credentials: Credentials | None) -> Redactor:
    """The redactor to scrub an attempt's error with: ``used`` (taken when its connect began)
    knowing the provider's answers given since (``current``: the cluster's now)."""
    if credentials is None or used is current:
        return used
    return used.with_secrets(credentials.recent())


class Redacting:
    """The secrets side of :class:`~clusterdb.runtime.cluster.Cluster`: its redactor knows the
    config's secrets (which a membership change or a reload may add to) and the provider's
    latest answers; each rebuild reads both afresh under its own lock, so the last one to
    finish is never an older view."""

    config: ClusterConfig
    redactor: Redactor
    credentials: Credentials | None
    _redaction: threading.Lock

    def _start_redacting(self) -> None:
        self._redaction = threading.Lock()
        self.credentials = None
        self.refresh_redactor()

    def refresh_redactor(self) -> None:
        """Rebuild the redactor from the config (and its provider, when the config changed
        it) and the provider's latest answers. Takes no lock of the cluster's."""
        with self._redaction:
            provider = self.config.password_provider
            if provider is None:
                self.credentials = None
            elif self.credentials is None or self.credentials.provider is not provider:
                self.credentials = Credentials(provider, self.refresh_redactor)
            recent = () if self.credentials is None else self.credentials.recent()
            self.redactor = Redactor([*self.config.secrets, *recent])

    def redactor_for(self, overrides: Mapping[str, Any]) -> Redactor:
        """The cluster's redactor, plus any secret passed as a connect() override."""
        extra = [v for k, v in overrides.items() if isinstance(v, str) and is_secret_key(k)]
        return self.redactor.with_secrets(extra) if extra else self.redactor
