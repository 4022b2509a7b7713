"""PyMySQL's ``SET NAMES`` sent in the same write as its handshake response, where that is safe.

PyMySQL (>= 1.1) answers the server's greeting, waits for the authentication's OK, then sends
``SET NAMES`` and waits for its OK: two round trips after the greeting. A MySQL or MariaDB
server reads nothing after the handshake response until it has finished authenticating, then
reads the next command, so a command written right behind the response is simply the first
command of the session: one round trip fewer (measured on loopback MariaDB 10.11: 10 µs of a
0.14 ms connect with CPUs held polling, 55 µs of 0.29 ms with CPUs allowed to sleep). The
connection is then what PyMySQL would have made: the same statement, in the same order, the
same object.

This holds only when authentication takes one step: the server answers the response with OK
or an error. A server that asks for more (an auth switch to another plugin, or more data as
caching_sha2_password's full authentication does) would read the command as the client's
answer. So the command goes along only when all of these hold:

* the greeting names ``mysql_native_password`` (or no plugin), and no TLS is negotiated;
* a handshake with this server, port and user already took one step in this process (learned
  on the first connect, which goes the usual way);
* PyMySQL, when it then asks for ``SET NAMES``, asks for exactly the statement sent (if it
  asks for another, or for none, the connection is closed and made again the usual way, and
  nothing is sent along again in this process);
* the cluster's ``pipeline_handshake`` option is on (the default): turn it off for something
  in front of the servers that cannot take a command arriving with the handshake response.

If the account changed plugin since (``ALTER USER ... IDENTIFIED VIA ed25519``), PyMySQL's
answer to the server's switch request is where :class:`PipelineRefused` is raised, before the
answer is sent: the caller connects again the usual way, and the target is forgotten. The
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

__all__ = ["Handshake", "PipelineRefused", "known"]

log = logging.getLogger("clusterdb")

# Servers (host, port, user) whose handshake took one step; set and discard are atomic.
_one_step: set[tuple[str, int, str]] = set()

_ONE_STEP_PLUGINS = frozenset({"", "mysql_native_password"})

# The packet number PyMySQL expects next when it asks for SET NAMES after an authentication
# of one step: greeting 0, response 1, OK 2.
_AFTER_ONE_STEP = 3


class PipelineRefused(Exception):
    """The server wanted more than one authentication step after ``SET NAMES`` was sent along:
    this connection is lost; connect again without sending it along."""


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
        self.key = (str(conn.host), int(conn.port), str(conn.user))
        self.sent: bytes | None = None  # the statement sent along, if any
        self.answered = False  # PyMySQL asked for it, and reads its answer
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
        if kind is None and self.sent is not None and not self.answered:
            # Connected without PyMySQL asking for SET NAMES: its answer would be read as the
            # answer to the caller's first query.
            _disable()
            self.conn._force_close()
            raise PipelineRefused("PyMySQL did not ask for SET NAMES")

    def _unhook(self) -> None:
        self.conn.__dict__.pop("write_packet", None)
        self.conn.__dict__.pop("_execute_command", None)

    def _may_send_along(self) -> bool:
        conn = self.conn
        return (
            self.allowed
            and not _disabled
            and self.key in _one_step
            and not (conn.ssl and conn.server_capabilities & CLIENT.SSL)  # no TLS to come
            and conn._auth_plugin_name in _ONE_STEP_PLUGINS
        )

    def write_packet(self, payload: bytes) -> None:
        conn = self.conn
        self.writes += 1
        if self.writes > 1 and self.sent is not None:
            # An answer to a switch request or a request for more data: the server has taken
            # the command for it already.
            _one_step.discard(self.key)
            log.info(
                "clusterdb: %s:%s wanted more than one authentication step for user %s; "
                "connecting again without sending SET NAMES along",
                *self.key,
            )
            raise PipelineRefused(f"{self.key[0]}:{self.key[1]}: authentication took more steps")
        if self.writes > 1 or not self._may_send_along():
            type(conn).write_packet(conn, payload)
            return
        self.sent = _set_names(conn)
        # PyMySQL's framing (write_packet's, then _execute_command's), in one write.
        seq = conn._next_seq_id
        packet = _pack_int24(len(payload)) + bytes([seq]) + payload
        command = struct.pack("<iB", len(self.sent) + 1, COMMAND.COM_QUERY) + self.sent
        conn._write_bytes(packet + command)
        conn._next_seq_id = (seq + 1) % 256

    def execute_command(self, command: int, sql: str | bytes) -> None:
        conn = self.conn
        self._unhook()  # the handshake is over: later commands go straight to PyMySQL
        if self.sent is None:
            if conn._next_seq_id == _AFTER_ONE_STEP and self.writes == 1 and not conn._secure:
                _one_step.add(self.key)
            else:
                _one_step.discard(self.key)
            conn._execute_command(command, sql)
            return
        asked = sql.encode(conn.encoding) if isinstance(sql, str) else sql
        if command != COMMAND.COM_QUERY or asked != self.sent:
            _disable()
            raise PipelineRefused("PyMySQL asked for another first statement")
        self.answered = True
        conn._next_seq_id = 1  # as if PyMySQL had sent it: its OK comes as packet 1


def _set_names(conn: Any) -> bytes:
    """The statement PyMySQL's ``set_character_set`` sends for the connection's settings."""
    query = f"SET NAMES {conn.charset}"
    if conn.collation:
        query += f" COLLATE {conn.collation}"
    return query.encode(conn.encoding)


def known(host: str, port: int, user: str) -> bool:
    """Whether a handshake with ``user`` at ``host:port`` took one step in this process, so
    that the next one sends SET NAMES along."""
    return (host, port, user) in _one_step
