"""PyMySQL's first statements sent in the same write as its handshake response, where safe.

PyMySQL (>= 1.1) answers the server's greeting, waits for the authentication's OK, then sends
``SET NAMES`` and waits for its OK, then, when the server's autocommit default is not the mode
asked for (PyMySQL's default ``autocommit=False`` against a server's default on),
``SET AUTOCOMMIT`` and waits again. A MySQL or MariaDB server reads nothing after the
handshake response until it has finished authenticating, then reads the next command, so
commands written right behind the response are simply the first commands of the session: one
or two round trips fewer (docs/design/pymysql-handshake.md). The connection is then what
PyMySQL would have made: the same statements, in the same order, the same object.

This holds only when authentication takes one step: the server answers the response with OK
or an error. A server that asks for more (an auth switch to another plugin, or more data as
caching_sha2_password's full authentication does) would read a command as the client's
answer. So commands go along only when all of these hold:

* the greeting names ``mysql_native_password`` (or no plugin), and no TLS is negotiated;
* a handshake with this server, port and user, in this autocommit mode, already took one step
  in this process (learned on the first connect, which goes the usual way, along with whether
  PyMySQL then asked for ``SET AUTOCOMMIT``); nothing else is ever sent along (an
  ``init_command`` could have effects that a connection made again would repeat);
* PyMySQL then asks for exactly the statements sent. If it asks for another, or for fewer,
  the connection is closed (an answer left unread would answer the caller's first query) and
  made again the usual way: when ``SET NAMES`` itself was not asked for, PyMySQL is not the
  one this module knows, and nothing is sent along again in this process; otherwise the
  server's autocommit default changed, and the server is learned afresh;
* the cluster's ``pipeline_handshake`` option is on (the default): turn it off for something
  in front of the servers that cannot take a command arriving with the handshake response.

If the account changed plugin since (``ALTER USER ... IDENTIFIED VIA ed25519``), PyMySQL's
answer to the server's switch request is where :class:`PipelineRefused` is raised, before the
answer is sent: the caller connects again the usual way, and the server is forgotten. The
server sees one handshake that failed (counted like any failed handshake, and reset by the
next success). A wrong password gets the server's error, as without this.
"""

from __future__ import annotations

import logging
import struct
from types import TracebackType
from typing import Any

import pymysql
from pymysql.connections import _pack_int24
from pymysql.constants import CLIENT, COMMAND

from clusterdb.drivers.pymysql_gtid import names_sql

__all__ = ["Handshake", "PipelineRefused", "known"]

log = logging.getLogger("clusterdb")

# (host, port, user, autocommit mode) whose handshake took one step -> what PyMySQL asked for
# right after SET NAMES that is sent along with it too: SET AUTOCOMMIT when the server's
# default is not the mode, or nothing. Item assignment and pop are atomic.
_learned: dict[tuple[str, int, str, Any], tuple[bytes, ...]] = {}

# What PyMySQL may ask for right after SET NAMES that is safe to send along (no side effect to
# repeat should the connection be made again): its autocommit mode, when the server's differs.
_AUTOCOMMIT = frozenset({b"SET AUTOCOMMIT = 0", b"SET AUTOCOMMIT = 1"})

_ONE_STEP_PLUGINS = frozenset({"", "mysql_native_password"})

# The packet number PyMySQL expects next when it asks for SET NAMES after an authentication
# of one step: greeting 0, response 1, OK 2.
_AFTER_ONE_STEP = 3


class PipelineRefused(Exception):
    """Statements were sent along and the handshake went otherwise (the server wanted more
    than one authentication step, or PyMySQL asked for other statements): this connection is
    lost; connect again without sending anything along."""


# True once PyMySQL asked for another statement than the one sent, or for none: its handshake
# is not the one this module knows, and nothing is sent along again in this process.
_disabled = False


def _disable() -> None:
    global _disabled
    _disabled = True
    log.warning(
        "clusterdb: PyMySQL %s connects differently from what clusterdb knows; "
        "connecting again, and without sending SET NAMES along from now on",
        getattr(pymysql, "__version__", "?"),
    )


class Handshake:
    """Hooks on one PyMySQL connection for the length of its ``connect()``: instance attributes
    shadowing two of its methods, removed when the handshake is over, whatever its outcome."""

    def __init__(self, conn: Any, allowed: bool = True) -> None:
        self.conn = conn
        self.allowed = allowed  # the cluster's pipeline_handshake option
        self.key = (str(conn.host), int(conn.port), str(conn.user), conn.autocommit_mode)
        self.sent: tuple[bytes, ...] = ()  # the statements sent along
        self.answered = 0  # how many of them PyMySQL asked for (it reads their answers)
        self.seen: list[bytes] = []  # what PyMySQL asked for first, when nothing was sent along
        self.one_step = False  # and whether authentication had taken one step by then
        self.writes = 0

    def __enter__(self) -> Handshake:
        self.conn.write_packet = self.write_packet
        self.conn._execute_command = self.execute_command
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unhook()
        if kind is not None:
            return
        if self.answered < len(self.sent):
            # Connected without PyMySQL asking for every statement sent along: an answer left
            # unread would be read as the answer to the caller's first query.
            self._refuse("PyMySQL asked for fewer statements")
        if not self.sent:
            self._learned_now()

    def _unhook(self) -> None:
        self.conn.__dict__.pop("write_packet", None)
        self.conn.__dict__.pop("_execute_command", None)

    def _refuse(self, why: str) -> None:
        """Lose this connection for one made the usual way. Nothing more is sent along to this
        server; with PyMySQL asking for something else than SET NAMES first, nothing at all."""
        _learned.pop(self.key, None)
        if self.answered == 0:
            _disable()
        self.conn._force_close()
        raise PipelineRefused(why)

    def _statements(self) -> tuple[bytes, ...]:
        """What to send along now (nothing when it may not be)."""
        conn = self.conn
        if (
            not self.allowed
            or _disabled
            or (conn.ssl and conn.server_capabilities & CLIENT.SSL)  # TLS to come
            or conn._auth_plugin_name not in _ONE_STEP_PLUGINS
        ):
            return ()
        after = _learned.get(self.key)
        return () if after is None else (_set_names(conn), *after)

    def write_packet(self, payload: bytes) -> None:
        conn = self.conn
        self.writes += 1
        if self.writes > 1 and self.sent:
            # An answer to a switch request or a request for more data: the server has taken
            # the first statement for it already.
            _learned.pop(self.key, None)
            log.info(
                "clusterdb: %s:%s wanted more than one authentication step for user %s; "
                "connecting again without sending SET NAMES along",
                *self.key[:3],
            )
            raise PipelineRefused(f"{self.key[0]}:{self.key[1]}: authentication took more steps")
        self.sent = () if self.writes > 1 else self._statements()
        if not self.sent:
            type(conn).write_packet(conn, payload)
            return
        # PyMySQL's framing (write_packet's, then _execute_command's), in one write.
        seq = conn._next_seq_id
        packets = [_pack_int24(len(payload)) + bytes([seq]) + payload]
        for sql in self.sent:
            packets.append(struct.pack("<iB", len(sql) + 1, COMMAND.COM_QUERY) + sql)
        conn._write_bytes(b"".join(packets))
        conn._next_seq_id = (seq + 1) % 256

    def execute_command(self, command: int, sql: str | bytes) -> None:
        conn = self.conn
        asked = sql.encode(conn.encoding) if isinstance(sql, str) else sql
        if self.sent:
            if command != COMMAND.COM_QUERY or asked != self.sent[self.answered]:
                self._unhook()
                self._refuse("PyMySQL asked for another statement")
            self.answered += 1
            if self.answered == len(self.sent):
                self._unhook()  # later commands go straight to PyMySQL
            conn._next_seq_id = 1  # as if PyMySQL had sent it: its answer comes as packet 1
            return
        self._learn(command, asked)
        type(conn)._execute_command(conn, command, sql)

    def _learn(self, command: int, asked: bytes) -> None:
        """Note what PyMySQL asks for first after a handshake that sent nothing along."""
        conn = self.conn
        if not self.seen:
            self.one_step = conn._next_seq_id == _AFTER_ONE_STEP and self.writes == 1
        self.seen.append(asked if command == COMMAND.COM_QUERY else b"")
        if len(self.seen) == 2:
            self._unhook()

    def _learned_now(self) -> None:
        """After a handshake that sent nothing along and succeeded: what to send along next."""
        seen, conn = self.seen, self.conn
        if seen and self.one_step and not conn._secure and seen[0] == _set_names(conn):
            then = seen[1:2]  # SET AUTOCOMMIT, when PyMySQL asked for it next
            _learned[self.key] = tuple(then) if then and then[0] in _AUTOCOMMIT else ()
        else:
            _learned.pop(self.key, None)


def _set_names(conn: Any) -> bytes:
    """The statement PyMySQL's ``set_character_set`` sends for the connection's settings (with
    the GTID tracking of :mod:`clusterdb.drivers.pymysql_gtid` on MariaDB)."""
    return names_sql(conn, conn.charset, conn.collation).encode(conn.encoding)


def known(host: str, port: int, user: str, autocommit: Any = False) -> bool:
    """Whether a handshake with ``user`` at ``host:port``, for that autocommit mode (PyMySQL's
    default: False), took one step in this process, so that the next sends SET NAMES along."""
    return (host, port, user, autocommit) in _learned
