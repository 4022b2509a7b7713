"""PyMySQL connections that remember the session's last GTID from MariaDB's OK packets.

:class:`TrackingConnection` is PyMySQL's Connection with three changes (and a fourth, not
about GTIDs: PyMySQL's "preferred" TLS context made once per process, see
:mod:`clusterdb.drivers.pymysql_tls`):

* the handshake asks for ``CLIENT_SESSION_TRACK`` (the server then ends each OK packet with
  its info string as a length-encoded string, and the state block when state changed;
  PyMySQL keeps those bytes as ``message`` and reads nothing else of them);
* on MariaDB, the ``SET NAMES`` PyMySQL sends after the handshake also sets
  ``session_track_system_variables = 'last_gtid'`` (:func:`names_sql`): the same statement,
  so no round trip more, and it is the one sent along with the handshake response where
  :mod:`clusterdb.drivers.pymysql_handshake` pipelines it;
* after each statement answered by an OK packet (a write, DDL, ``SET``...), and after
  PyMySQL's own COMMIT, the packet's state block is read when the status says state changed
  (:func:`clusterdb.core.session_track.last_gtid`), and the GTID kept in
  :attr:`TrackingConnection.tracked_gtid`. A statement answered with rows (a ``SELECT``)
  costs nothing more than with PyMySQL: :meth:`TrackingConnection._read_query_result` is
  PyMySQL's own with :class:`_TrackingResult` for its result class (one flag test, in the
  OK-packet branch only). A wrapper calling PyMySQL's method cost one Python frame per
  statement, ~1 % of a ``SELECT 1`` on loopback (bench scenario 1).

``causal_token()`` then gives the tracked GTID without a round trip; None (nothing written
yet, MySQL, or a session whose ``session_track_system_variables`` no longer names
``last_gtid`` before it wrote) keeps the ``SELECT @@last_gtid`` round trip. A session that
changes ``session_track_system_variables`` itself after a write would leave a stale GTID:
don't (a routed connection pins a session that runs ``SET`` to the primary anyway).
"""

from __future__ import annotations

from typing import Any

import pymysql.connections
from pymysql.charset import charset_by_name
from pymysql.constants import CLIENT, COMMAND

from clusterdb.core.session_track import SESSION_STATE_CHANGED, last_gtid
from clusterdb.drivers.pymysql_tls import preferred_context

__all__ = ["TRACK_SQL", "TrackingConnection", "names_sql", "tracked_gtid"]

TRACK_SQL = ", session_track_system_variables = 'last_gtid'"
"""Appended to ``SET NAMES`` on MariaDB: only ``last_gtid`` reported (fewest bytes)."""

_read_ok_packet = pymysql.connections.Connection._read_ok_packet


def names_sql(conn: Any, charset: str, collation: str | None) -> str:
    """PyMySQL's ``SET NAMES`` for ``charset``/``collation``, with :data:`TRACK_SQL` on a
    :class:`TrackingConnection` to a MariaDB server that agreed to session tracking."""
    query = f"SET NAMES {charset}"
    if collation:
        query += f" COLLATE {collation}"
    if (
        isinstance(conn, TrackingConnection)
        and (conn.server_capabilities or 0) & CLIENT.SESSION_TRACK
        and "MariaDB" in str(conn.server_version or "")
    ):
        query += TRACK_SQL
    return query


def tracked_gtid(conn: Any) -> str | None:
    """The last GTID ``conn``'s session wrote, as its OK packets reported it (None: unknown)."""
    return getattr(conn, "tracked_gtid", None)


class _TrackingResult(pymysql.connections.MySQLResult):  # type: ignore[misc]
    """PyMySQL's result, noting the session's last GTID from an OK packet that says the
    session state changed."""

    def _read_ok_packet(self, packet: Any) -> None:
        super()._read_ok_packet(packet)
        if self.server_status & SESSION_STATE_CHANGED:
            self.connection._note(self.message)


class TrackingConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL's Connection, remembering the session's last GTID (see the module)."""

    tracked_gtid: str | None = None
    """The GTID the last write of this session got, ``domain-server-seq``; None: unknown."""

    def __init__(self, *args: Any, client_flag: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, client_flag=client_flag | CLIENT.SESSION_TRACK, **kwargs)

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        """PyMySQL's, but its "preferred" context (asked for as ``{}``) made once per
        process (:func:`~clusterdb.drivers.pymysql_tls.preferred_context`)."""
        if isinstance(sslp, dict) and not sslp:
            ctx = preferred_context()
            if ctx is not None:
                return ctx
        return super()._create_ssl_ctx(sslp)

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        """PyMySQL's, with :func:`names_sql`'s statement."""
        encoding = charset_by_name(charset).encoding
        self._execute_command(COMMAND.COM_QUERY, names_sql(self, charset, collation))
        self._read_packet()
        self.charset = charset
        self.encoding = encoding
        self.collation = collation

    def _read_query_result(self, unbuffered: bool = False) -> int:
        # PyMySQL's own (1.1 and 1.2), with _TrackingResult for MySQLResult; a unit test
        # checks that PyMySQL's still reads so.
        self._result = None
        result = _TrackingResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        rows: int = result.affected_rows
        return rows

    def _read_ok_packet(self) -> Any:
        ok = _read_ok_packet(self)
        if ok.server_status & SESSION_STATE_CHANGED:
            self._note(ok.message)
        return ok

    def _note(self, message: bytes | None) -> None:
        gtid = last_gtid(message)
        if gtid:
            self.tracked_gtid = gtid
