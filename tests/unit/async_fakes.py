"""Stand-ins for an asyncio driver, for the asyncio racer's unit tests (no database).

A node's behaviour is a coroutine function that sleeps, raises, hangs until released, or
returns a :class:`Conn`; the adapter remembers every connection made and every attempt that
was cancelled, so a test can check that nothing was left open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from clusterdb.config import cluster_from_kwargs
from clusterdb.core.description import Role
from clusterdb.drivers.asyncio_base import AsyncAdapter, AsyncPending
from clusterdb.drivers.base import ConnectArgs
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.runtime.cluster import Cluster

NODES = ("a", "b", "c")

Behaviour = Callable[[str], Awaitable[Any]]


class Conn:
    """Stands for a connection: which node made it, its role, whether it was closed."""

    def __init__(self, node: str, role: Role | None = None) -> None:
        self.node = node
        self.role = role
        self.closed = False


def ok(after: float = 0.0, role: Role | None = None) -> Behaviour:
    async def behave(node: str) -> Conn:
        await asyncio.sleep(after)
        return Conn(node, role)

    return behave


def fail(after: float = 0.0) -> Behaviour:
    async def behave(node: str) -> Conn:
        await asyncio.sleep(after)
        raise sqlite3.OperationalError(f"{node}: refused")

    return behave


def hang(release: asyncio.Event | None = None, role: Role | None = None) -> Behaviour:
    """Silent until ``release`` (never, without one), then connects."""

    async def behave(node: str) -> Conn:
        await (release.wait() if release is not None else asyncio.Event().wait())
        return Conn(node, role)

    return behave


class FakeAsyncAdapter(AsyncAdapter):
    """Runs each node's behaviour within the attempt's timeout, as a driver would."""

    name = "fake"
    operational_error = sqlite3.OperationalError

    def __init__(self, role_is_free: bool = True, **behaviours: Behaviour) -> None:
        self.role_is_free = role_is_free
        self.behaviours = behaviours
        self.made: list[Conn] = []
        self.started: dict[str, float] = {}
        self.cancelled: list[str] = []
        self.role_queries = 0

    async def connect(
        self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float
    ) -> Any:
        node = str(target.args[0])
        self.started[node] = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(timeout):
                conn = await self.behaviours[node](node)
        except TimeoutError:
            raise sqlite3.OperationalError(f"{node}: timed out") from None
        except asyncio.CancelledError:
            self.cancelled.append(node)
            raise
        self.made.append(conn)
        return conn

    async def detect_role(self, conn: Any) -> Role | None:
        self.role_queries += 1
        role: Role | None = conn.role
        return role

    async def close(self, conn: Any) -> None:
        conn.closed = True


class InlineFakeAdapter(FakeAsyncAdapter):
    """Begins attempts in the caller's task (:meth:`AsyncAdapter.start`): a node that answers
    within the patience connects there; one that does not is handed over as pending."""

    starts_inline = True

    def __init__(self, role_is_free: bool = True, **behaviours: Behaviour) -> None:
        super().__init__(role_is_free, **behaviours)
        self.inline: list[str] = []  # nodes whose connection was made in the caller's task
        self.idled = 0

    async def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = lambda: None,
    ) -> Any:
        node = str(target.args[0])
        running = asyncio.ensure_future(self.connect(target, overrides, timeout))
        idle()
        self.idled += 1
        try:
            done, _ = await asyncio.wait({running}, timeout=patience)
        except BaseException:
            running.cancel()
            raise
        if done:
            conn = running.result()
            self.inline.append(node)
            return conn

        async def finish(remaining: float) -> Any:
            return await asyncio.wait_for(running, remaining)

        def cancel() -> None:
            running.cancel()

        return AsyncPending(finish, cancel)


class NodeNameAdapter(GenericAdapter):
    """sqlite3's adapter named "fake", whose connect arguments are the node's name."""

    def __init__(self) -> None:
        super().__init__(sqlite3)
        self.name = "fake"

    def connect_args(self, node: Any, kwargs: Mapping[str, Any]) -> ConnectArgs:
        return ConnectArgs((node.name,), {})


def make_cluster(nodes: tuple[str, ...] = NODES, **options: Any) -> Cluster:
    specs = [{"name": n, "dsn": ":memory:"} for n in nodes]
    config = cluster_from_kwargs("aracer", sqlite3, specs, {"monitor": False, **options})
    return Cluster(config, NodeNameAdapter())


async def settle(cluster: Cluster, timeout: float = 10.0) -> None:
    """Wait (on the loop) until no attempt is pending: late losers have recorded theirs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(n.pending for n in cluster.stats_snapshot().nodes):
        assert loop.time() < deadline, "attempts still pending"
        await asyncio.sleep(0.005)
