"""Rotating passwords against a real PostgreSQL (issue 18): a provider that changes the
password on the server (ALTER ROLE through an admin connection) and in its answer every
1.5 s; an SQLAlchemy pool recycling its connections, and connect_async() with a coroutine
provider, keep succeeding, and no password ever appears in logs, errors, stats or reprs."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy
from connect_support import registered

import clusterdb
import clusterdb.sqlalchemy
from clusterdb.runtime import process
from clusterdb.testing.postgres import PostgresCluster

ROTATE_EVERY = 1.5  # seconds between two passwords
ROLE = "rotating_app"


class Rotator:
    """The provider: when the password is older than ROTATE_EVERY, sets a new one on the
    server first, then answers it. Calls are serialised, so no connect can hold a password
    the server has already dropped (PostgreSQL keeps one password per role)."""

    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.used: list[str] = []
        self.changed = 0.0
        self.calls = 0

    def _rotate(self) -> str:
        password = f"rot-{secrets.token_hex(10)}"
        self.cluster.execute(self.cluster.primary, f"ALTER ROLE {ROLE} PASSWORD '{password}'")
        self.used.append(password)
        self.changed = time.monotonic()
        return password

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            if not self.used or time.monotonic() - self.changed > ROTATE_EVERY:
                return self._rotate()
            return self.used[-1]

    async def async_call(self) -> str:
        await asyncio.sleep(0)
        return self()


@contextmanager
def rotating_role(cluster: PostgresCluster) -> Iterator[Rotator]:
    primary = cluster.primary
    cluster.execute(primary, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{secrets.token_hex(8)}'")
    cluster.execute(primary, f"GRANT ALL ON SCHEMA public TO {ROLE}")
    try:
        yield Rotator(cluster)
    finally:
        cluster.execute(primary, f"DROP OWNED BY {ROLE}")
        cluster.execute(primary, f"DROP ROLE {ROLE}")


def _assert_never_shown(rotator: Rotator, name: str, *texts: str) -> None:
    cluster = process.get(name)
    shown = "\n".join(
        [
            *texts,
            repr(clusterdb.stats.snapshot(name)),
            repr(cluster),
            repr(cluster.config),
            repr(cluster.credentials),
        ]
    )
    leaked = [p for p in rotator.used if p in shown]
    assert not leaked, f"{len(leaked)} passwords shown"


@pytest.mark.postgres
def test_pool_reconnects_through_rotations(
    pg_cluster: PostgresCluster,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    with (
        rotating_role(pg_cluster) as rotator,
        registered(pg_cluster, user=ROLE, password=rotator, connect_timeout=3.0) as name,
    ):
        engine = clusterdb.sqlalchemy.create_engine(
            name, role="primary", pool_size=2, max_overflow=0, pool_recycle=0.4
        )
        ok = 0
        failed: list[str] = []
        until = time.monotonic() + 4 * ROTATE_EVERY + 0.5
        try:
            while time.monotonic() < until:
                try:
                    with engine.connect() as conn:
                        assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
                    ok += 1
                except Exception as exc:
                    failed.append(repr(exc))
                time.sleep(0.05)
        finally:
            engine.dispose()
        assert not failed, failed[:3]
        assert ok > 20
        assert len(rotator.used) >= 4, rotator.used  # the server's password really changed
        # The old passwords no longer work: the pool's reconnects used the new ones.
        with pytest.raises(psycopg.OperationalError) as old:
            kwargs = pg_cluster.connect_kwargs(pg_cluster.primary, via_proxy=False)
            psycopg.connect(**{**kwargs, "user": ROLE, "password": rotator.used[0]})
        assert "password authentication failed" in str(old.value)
        out = capsys.readouterr()
        _assert_never_shown(rotator, name, caplog.text, out.out, out.err)


@pytest.mark.postgres
def test_connect_async_awaits_a_coroutine_provider(
    pg_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    with (
        rotating_role(pg_cluster) as rotator,
        registered(pg_cluster, user=ROLE, password=rotator.async_call, connect_timeout=3.0) as name,
    ):

        async def main() -> int:
            done = 0
            until = time.monotonic() + 2 * ROTATE_EVERY + 0.5
            while time.monotonic() < until:
                conn = await clusterdb.connect_async(name, role="primary")
                try:
                    cur = await conn.execute("SELECT 1")
                    assert (await cur.fetchone()) == (1,)
                finally:
                    await conn.close()
                done += 1
                await asyncio.sleep(0.05)
            return done

        assert asyncio.run(main()) > 10
        assert len(rotator.used) >= 2
        # A wrong password: the server's error is shown, the password it was sent is not.
        with pytest.raises(clusterdb.AllNodesFailed) as info:
            clusterdb.connect(name, role="primary", password=rotator.used[0] + "x")
        _assert_never_shown(rotator, name, caplog.text, str(info.value))
