"""Fuzzing every way input reaches clusterdb: ``register()`` keywords, config files (valid-ish
TOML, broken TOML, bytes that are not text), DSN strings and node specs, and the command
line (``python -m clusterdb`` through its ``main()``, in-process).

Contract: bad input raises a clusterdb error (``ConfigError``: an ``InterfaceError`` naming the
key path) or, on the command line, exits with status 2 and one message; never another
exception, never a traceback, and never the password that the input holds (in the message,
the repr, the key path or the CLI's output). The password is put only where a password
belongs (``password``, ``sslpassword``, a DSN's password, ``password_env``/``password_file``),
since a secret typed as the driver's name is quoted as the name it was taken for.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config_properties import documents, to_toml

import clusterdb
from clusterdb.core.dsn import parse_dsn
from clusterdb.errors import ConfigError, Error
from clusterdb.tools import cli

PASSWORD = "Pw9!fuzz-secret"
ENV = "CLUSTERDB_FUZZ_PASSWORD"
FAST = settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=120)
"""A few seconds per test in ``make test``; HYPOTHESIS_PROFILE or --hypothesis-seed for more."""


def _no_password(value: object) -> bool:
    return "Pw9" not in str(value)


TEXT = st.text(max_size=8).filter(_no_password)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    TEXT,
    st.binary(max_size=4),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            *sorted(clusterdb.config.CLUSTER_KEYS - {"password"}),
            *sorted(clusterdb.config.NODE_KEYS - {"password"}),
            "selection",
            "hedge",
            "backoff",
            "db",
            "sslmode",
            "application_name",
        ]
    ),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def _entries(draw: st.DrawFn, password_file: str) -> tuple[str, object]:
    """One key of a cluster or node mapping: anything, or the password given one of the ways."""
    entry: tuple[str, object] = draw(
        st.one_of(
            st.tuples(KEYS, VALUES),
            st.tuples(KEYS, VALUES),
            st.tuples(st.sampled_from(["password", "sslpassword", "passwd"]), st.just(PASSWORD)),
            st.just(("password_env", ENV)),
            st.just(("password_file", password_file)),
        )
    )
    return entry


def _mappings(password_file: str) -> st.SearchStrategy[dict[str, object]]:
    return st.lists(_entries(password_file), max_size=5).map(dict)


DSNS = st.one_of(
    TEXT,
    st.builds(lambda a, b: f"host={a} password={PASSWORD} port={b}", TEXT, TEXT),
    st.builds(lambda a: f"host={a} password='{PASSWORD}'", TEXT),
    st.builds(lambda a: f"{a}= password={PASSWORD}", st.sampled_from(["host", "port", "x"])),
    st.builds(lambda h, p, q: f"postgresql://u:{PASSWORD}@{h}:{p}/db{q}", TEXT, TEXT, TEXT),
    st.builds(lambda h, q: f"mysql://u:{PASSWORD}@{h}/db?{q}", TEXT, TEXT),
)
DRIVERS = st.one_of(
    st.sampled_from(["psycopg", "pymysql", "sqlite3", "PyMySQL", "nope", "", "json", "os"]),
    st.just(sqlite3),
    SCALARS,
)


def _assert_clean(exc: BaseException) -> None:
    """A clusterdb error whose message, repr and key path hold no password."""
    assert isinstance(exc, Error), f"{type(exc).__name__} escaped: {exc!r}"
    for text in (str(exc), repr(exc), getattr(exc, "path", "")):
        assert PASSWORD not in text, text


@pytest.fixture
def password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV, PASSWORD)
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    return str(path)


@contextlib.contextmanager
def _registered(name: object) -> Iterator[None]:
    try:
        yield
    finally:
        if isinstance(name, str) and name in clusterdb.clusters():
            clusterdb.unregister(name)


# -- register() ---------------------------------------------------------------------------------


@FAST
@given(name=st.one_of(TEXT, SCALARS), driver=DRIVERS, data=st.data())
def test_register_keywords_give_clusterdb_errors_without_the_password(
    password_file: str, name: Any, driver: Any, data: st.DataObject
) -> None:
    mappings = _mappings(password_file)
    nodes = data.draw(st.one_of(VALUES, st.lists(st.one_of(DSNS, mappings), max_size=3)))
    kwargs = data.draw(mappings)
    for own in ("name", "driver", "nodes"):
        kwargs.pop(own, None)
    with _registered(name):
        try:
            clusterdb.register(name, driver, nodes, **kwargs)
        except Exception as exc:
            _assert_clean(exc)


# -- DSN strings and node specs -----------------------------------------------------------------


@FAST
@given(dsn=st.one_of(DSNS, st.text(max_size=40)))
def test_dsn_strings_parse_or_raise_config_error_without_the_password(dsn: str) -> None:
    try:
        parsed = parse_dsn(dsn)
    except Exception as exc:
        _assert_clean(exc)
        assert isinstance(exc, ConfigError)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())


@settings(FAST, max_examples=80)
@given(spec=DSNS, driver=st.sampled_from(["psycopg", "pymysql"]))
def test_a_node_given_as_a_dsn_never_shows_its_password(spec: str, driver: str) -> None:
    name = "fuzz-dsn"
    with _registered(name):
        try:
            clusterdb.register(name, driver, [spec], monitor=False)
        except Exception as exc:
            _assert_clean(exc)
            return
        stats = clusterdb.stats.snapshot(name)
        assert PASSWORD not in repr(stats)


@pytest.mark.parametrize("key", ["host", "port", "dbname"])
def test_an_unquoted_empty_value_before_a_password_is_an_error_not_a_host(key: str) -> None:
    # Found by fuzzing: libpq reads "host= password=x" as host "password=x", so the password
    # became the node's name and was quoted in the driver's refusal of the node.
    spec = f"{key}= password={PASSWORD} port=1"
    with pytest.raises(ConfigError, match=f"'{key}' has an empty value") as info:
        clusterdb.register("fuzz-empty", "pymysql", [spec])
    _assert_clean(info.value)
    assert info.value.path == "clusters.fuzz-empty.nodes[0]"
    assert parse_dsn(f"{key}='' password={PASSWORD}") == {key: "", "password": PASSWORD}
    assert parse_dsn("password = x=y") == {"password": "x=y"}  # libpq's reading kept here


@pytest.mark.parametrize("value", ["\\ ", "a\\ ", "a\\\t", "a\\ \\ "])
def test_an_escaped_space_that_joins_the_password_to_a_value_is_an_error(value: str) -> None:
    # Found by fuzzing: libpq reads "host=\\ password='x'" as the host " password='x'", so the
    # password was shown as the node's address in stats.
    spec = f"host={value}password='{PASSWORD}'"
    with pytest.raises(ConfigError, match="backslash-escaped space") as info:
        clusterdb.register("fuzz-escaped", "psycopg", [spec])
    _assert_clean(info.value)
    assert parse_dsn("host=a\\ b port=1") == {"host": "a b", "port": "1"}  # still a value


# -- config files -------------------------------------------------------------------------------


def _mutated(text: str, edits: list[tuple[int, int, str]]) -> str:
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut :]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3), st.text(max_size=3)), max_size=3)


@st.composite
def _secret_documents(draw: st.DrawFn, password_file: str) -> dict[str, Any]:
    """A valid document (test_config_properties), then a password given one of the ways at
    the cluster or a node, then arbitrary keys and values added here and there."""
    doc: dict[str, Any] = draw(documents())
    for table in doc["clusters"].values():
        where = draw(st.sampled_from([table, *table["nodes"]]))
        for key in ("password", "password_env", "password_file"):
            where.pop(key, None)
        key, value = draw(
            st.sampled_from(
                [("password", PASSWORD), ("password_env", ENV), ("password_file", password_file)]
            )
        )
        where[key] = value
        if draw(st.booleans()):
            node = draw(st.sampled_from(table["nodes"]))
            node.pop("host", None)
            node["dsn"] = draw(DSNS)
        for _ in range(draw(st.integers(0, 2))):
            target = draw(st.sampled_from([doc, table, *table["nodes"]]))
            value = draw(VALUES.filter(lambda v: v is not None and not isinstance(v, bytes)))
            with contextlib.suppress(TypeError):
                to_toml({"x": value})  # only values the small writer can write
                target[draw(KEYS)] = value
    return doc


@settings(FAST, max_examples=80)
@given(data=st.data(), garble=st.sampled_from(["none", "edits", "bytes"]))
def test_config_files_load_or_raise_config_error_without_the_password(
    password_file: str, tmp_path: Path, data: st.DataObject, garble: str
) -> None:
    doc = data.draw(_secret_documents(password_file))
    try:
        text = to_toml(doc)
    except TypeError:
        return  # a value the small writer cannot write
    if garble == "edits":
        text = _mutated(text, data.draw(EDITS))
    raw = text.encode("utf-8", "surrogatepass")
    if garble == "bytes":
        raw = raw[: data.draw(st.integers(0, len(raw)))] + data.draw(st.binary(max_size=6))
    path = tmp_path / "c.toml"  # one file, written again for each example
    path.write_bytes(raw)
    try:
        names = clusterdb.load_config(str(path))
    except Exception as exc:
        _assert_clean(exc)
        return
    for name in names:
        assert PASSWORD not in repr(clusterdb.stats.snapshot(name))
        clusterdb.unregister(name)


# -- the command line ---------------------------------------------------------------------------

LEAKY_DRIVER = '''
"""A PEP 249 module whose errors quote every argument, password included."""
apilevel, threadsafety, paramstyle = "2.0", 1, "qmark"
class Error(Exception): ...
class OperationalError(Error): ...
def connect(*args, **kwargs):
    secret = kwargs.get("password")
    raise OperationalError(f"cannot connect with {args!r} {kwargs!r} password={secret}")
'''


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Config files the CLI is run over: sqlite3 nodes, a driver whose errors quote the
    password, broken TOML around a password, bad node specs, bytes, a missing file."""
    base = tmp_path_factory.mktemp("cli")
    (base / "clusterdb_fuzz_leaky.py").write_text(LEAKY_DRIVER)
    sys.path.insert(0, str(base))

    def write(name: str, text: str) -> str:
        (base / name).write_text(text)
        return str(base / name)

    files = [
        write(
            "sqlite.toml",
            f'[clusters.lite]\ndriver = "sqlite3"\nconnect_timeout = 0.5\nnodes = ["{base}/a.db",'
            f' {{ name = "pw", dsn = "{base}/b.db", options = {{ password = "{PASSWORD}" }} }}]\n',
        ),
        write(
            "leaky.toml",
            '[clusters.leaky]\ndriver = "clusterdb_fuzz_leaky"\nconnect_timeout = 0.5\n'
            f'password = "{PASSWORD}"\n'
            f'nodes = ["one", {{ name = "two", password_env = "{ENV}" }}]\n',
        ),
        write("broken.toml", f'[clusters.x]\ndriver = "sqlite3"\npassword = "{PASSWORD}\n'),
        write(
            "nodes.toml",
            f'[clusters.x]\ndriver = "pymysql"\nnodes = ["host= password={PASSWORD} port=1",'
            f' "mysql://u:{PASSWORD}@h:x/db", {{ host = "h", port = "1" }}]\n',
        ),
        str(base / "missing.toml"),
        str(base),
    ]
    (base / "bytes.toml").write_bytes(b"\xff\xfe[clusters" + PASSWORD.encode())
    files.append(str(base / "bytes.toml"))
    yield files
    sys.path.remove(str(base))


ARGS = st.one_of(
    st.sampled_from(
        ["--json", "--timeout", "0.5", "0", "-1", "nan", "-v", "-vv", "lite", "leaky", "x", "--"]
    ),
    st.text(max_size=6).filter(lambda t: _no_password(t) and not t.startswith("--w")),
)


def _run_cli(argv: list[str]) -> tuple[object, str]:
    """(exit status, stdout and stderr) of ``python -m clusterdb ARGV``, in-process."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status: object = cli.main(argv, out=out)
            except SystemExit as exc:  # argparse: usage errors and --help
                status = exc.code
    finally:
        for name in clusterdb.clusters():
            clusterdb.unregister(name)
    return status, out.getvalue() + err.getvalue()


@settings(FAST, max_examples=60)
@given(
    head=st.lists(st.sampled_from(["-v", "-vv"]), max_size=1),
    command=st.sampled_from(["status", "check"]),
    data=st.data(),
    rest=st.lists(ARGS, max_size=4),
)
def test_cli_arguments_exit_cleanly_without_a_traceback_or_the_password(
    cli_files: list[str],
    password_file: str,
    head: list[str],
    command: str,
    data: st.DataObject,
    rest: list[str],
) -> None:
    config = data.draw(st.sampled_from(cli_files))
    status, output = _run_cli([*head, command, "-c", config, *rest])
    assert status in (0, 1, 2), (status, output)
    assert "Traceback" not in output
    assert PASSWORD not in output


def test_main_called_again_does_not_log_each_line_twice(cli_files: list[str]) -> None:
    # Found while fuzzing main() in-process: every -v run added one more stderr handler.
    logger = logging.getLogger("clusterdb")
    before = (list(logger.handlers), logger.level)
    sqlite = next(f for f in cli_files if f.endswith("sqlite.toml"))
    for _ in range(2):
        status, output = _run_cli(["-v", "check", "-c", sqlite])
        assert status == 0 and "lite: OK" in output
        assert (list(logger.handlers), logger.level) == before


def test_the_cli_masks_a_password_a_driver_quotes(cli_files: list[str], password_file: str) -> None:
    leaky = next(f for f in cli_files if f.endswith("leaky.toml"))
    for argv in (["-vv", "check", "-c", leaky], ["status", "--json", "-c", leaky]):
        status, output = _run_cli(argv)
        assert "cannot connect with" in output  # the driver's own message reached the output
        assert PASSWORD not in output
    assert status == 0
