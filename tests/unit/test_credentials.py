"""Password providers (issue 18): config (callable ``password``, ``password_provider`` by
import path), one call per attempt, connects and probes, and every answer scrubbed from
errors, stats, logs and reprs. The driver is a stand-in PEP 249 module whose errors quote the
password it was given (the worst case); tests/server/test_credentials_rotation.py rotates a
real one."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import clusterdb
from clusterdb.config import cluster_from_kwargs, parse_config
from clusterdb.errors import ConfigError
from clusterdb.runtime import process
from clusterdb.runtime.credentials import KEPT

TOKENS = (f"tok-{i:04d}-zq" for i in itertools.count())


class FakeDB(types.ModuleType):
    """A PEP 249 module: connect(password=...) works when the password is the ``valid``
    one and raises an error quoting it otherwise; every password seen is kept."""

    Error = sqlite3.Error
    OperationalError = sqlite3.OperationalError

    def __init__(self) -> None:
        super().__init__(f"fakedb{next(TOKENS)[4:8]}")  # adapters are cached by module name
        self.seen: list[str] = []
        self.valid: str | None = None  # None: any password works

    def connect(self, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        password = kwargs.get("password")
        self.seen.append(str(password))
        if self.valid is not None and password != self.valid:
            raise sqlite3.OperationalError(f"bad password {password!r} for user app")
        return sqlite3.connect(":memory:", check_same_thread=False)


@pytest.fixture
def fakedb() -> FakeDB:
    return FakeDB()


@pytest.fixture
def name() -> Iterator[str]:
    yield "cred"
    clusterdb.unregister("cred") if "cred" in clusterdb.clusters() else None


class Provider:
    def __init__(self) -> None:
        self.given: list[str] = []

    def __call__(self) -> str:
        token = next(TOKENS)
        self.given.append(token)
        return token


def get_token() -> str:  # named by import path in the config tests
    return "from-path-token"


sys.modules.setdefault("cred_tokens", types.ModuleType("cred_tokens"))
sys.modules["cred_tokens"].get_token = get_token  # type: ignore[attr-defined]
sys.modules["cred_tokens"].not_callable = 3  # type: ignore[attr-defined]


def test_callable_password_is_the_provider_not_a_driver_keyword() -> None:
    provider = Provider()
    config = cluster_from_kwargs("c", sqlite3, [":memory:"], {"password": provider})
    assert config.password_provider is provider
    assert "password" not in config.connect_kwargs


def test_provider_by_import_path_from_toml() -> None:
    doc = {
        "clusters": {
            "main": {
                "driver": "sqlite3",
                "nodes": [":memory:"],
                "password_provider": "cred_tokens:get_token",
            }
        }
    }
    (config,) = parse_config(doc)
    assert config.password_provider is get_token
    (config,) = parse_config(
        {
            "clusters": {
                "main": {**doc["clusters"]["main"], "password_provider": "cred_tokens.get_token"}
            }
        }
    )
    assert config.password_provider is get_token


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ({"password_provider": "cred_tokens:nope"}, "password_provider", "has no 'nope'"),
        ({"password_provider": "cred_tokens:not_callable"}, "password_provider", "not callable"),
        ({"password_provider": "no_such_mod_x:f"}, "password_provider", "cannot import"),
        ({"password_provider": "justaname"}, "password_provider", "'module:name'"),
        (
            {"password_provider": "cred_tokens:get_token", "password_env": "X"},
            "password_provider",
            "give only one of password_env, password_provider",
        ),
        (
            {"password": get_token, "password_file": "f"},
            "password_file",
            "give only one of password, password_file",
        ),
    ],
)
def test_provider_config_errors(extra: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", sqlite3, [":memory:"], extra)
    assert info.value.path == f"clusters.c.{path}"
    assert message in str(info.value)


def test_node_level_callable_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="whole cluster only"):
        cluster_from_kwargs("c", sqlite3, [{"dsn": ":memory:", "password": get_token}], {})


def test_each_attempt_and_probe_asks_the_provider(fakedb: FakeDB, name: str) -> None:
    provider = Provider()
    clusterdb.register(name, driver=fakedb, nodes=["a", "b"], password=provider, monitor=False)
    for _ in range(5):
        clusterdb.connect(name).close()
    clusterdb.probe(name)
    assert len(provider.given) >= 7  # 5 connects (one attempt each at least), 2 probes
    assert fakedb.seen[-len(provider.given) :] == provider.given[-len(fakedb.seen) :]
    # A password given to connect() wins: the provider is not asked.
    asked = len(provider.given)
    clusterdb.connect(name, password="override-pw-1").close()
    assert len(provider.given) == asked
    assert fakedb.seen[-1] == "override-pw-1"


def _outputs(name: str, caplog: pytest.LogCaptureFixture, error: BaseException) -> str:
    stats = clusterdb.stats.snapshot(name)
    cluster = process.get(name)
    return "\n".join(
        [
            str(error),
            repr(error),
            repr(error.__cause__),
            repr(stats),
            repr(cluster),
            repr(cluster.config),
            repr(cluster.credentials),
            caplog.text,
        ]
    )


def test_answers_never_shown(fakedb: FakeDB, name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    provider = Provider()
    fakedb.valid = "the-right-one"  # every token is refused, quoted in the error
    clusterdb.register(
        name,
        driver=fakedb,
        nodes=["a", "b"],
        password=provider,
        monitor=False,
        connect_timeout=2.0,
    )
    with pytest.raises(clusterdb.AllNodesFailed) as info:
        clusterdb.connect(name)
    clusterdb.probe(name)
    assert provider.given and all(t in fakedb.seen for t in provider.given)
    text = _outputs(name, caplog, info.value)
    assert "bad password" in text  # the errors are there, their secret masked
    for token in provider.given:
        assert token not in text


def test_provider_failure_is_an_attempt_failure(fakedb: FakeDB, name: str) -> None:
    def broken() -> str:
        raise RuntimeError("token service said: secret-detail-77")

    clusterdb.register(name, driver=fakedb, nodes=["a"], password=broken, monitor=False)
    with pytest.raises(clusterdb.AllNodesFailed) as info:
        clusterdb.connect(name)
    assert "password provider failed: RuntimeError" in str(info.value)
    assert "secret-detail-77" not in str(info.value)
    assert not fakedb.seen  # no connect without a password

    clusterdb.register(name, driver=fakedb, nodes=["a"], password=lambda: "", monitor=False)
    with pytest.raises(clusterdb.AllNodesFailed, match="gave an empty string"):
        clusterdb.connect(name)


def test_redactor_keeps_the_latest_answers_only(fakedb: FakeDB, name: str) -> None:
    provider = Provider()
    clusterdb.register(name, driver=fakedb, nodes=["a"], password=provider, monitor=False)
    for _ in range(KEPT + 5):
        clusterdb.connect(name).close()
    redactor = process.get(name).redactor
    assert redactor.scrub(provider.given[-1]) == redactor.mask
    assert redactor.scrub(provider.given[-KEPT]) == redactor.mask
    assert provider.given[0] in redactor.scrub(provider.given[0])  # forgotten: bounded


def test_async_provider_serves_threads_too(fakedb: FakeDB, name: str) -> None:
    async def provider() -> str:
        await asyncio.sleep(0)
        return "async-token-5"

    clusterdb.register(name, driver=fakedb, nodes=["a"], password=provider, monitor=False)
    clusterdb.connect(name).close()  # run to completion on this thread (no loop running)
    assert clusterdb.probe(name).nodes[0].state == "up"
    assert fakedb.seen[-2:] == ["async-token-5", "async-token-5"]
