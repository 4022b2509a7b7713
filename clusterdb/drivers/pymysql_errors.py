"""Which PyMySQL errors on an established connection say something about the node.

Read-only: MariaDB and MySQL refuse a write on a server running ``read_only`` with error 1290
(``ER_OPTION_PREVENTS_STATEMENT``, "running with the --read-only option"; the same code names
other options, so the message is checked) and MySQL with 1836 (``ER_READ_ONLY_MODE``). A write
in a transaction the session itself declared ``READ ONLY`` (1792) is the session's, not the
node's. Lost: the client's "server has gone away" and "lost connection" errors, the server's
shutdown and killed-connection errors, and PyMySQL's ``InterfaceError(0, '')`` on a connection
whose socket is gone.

asyncmy (the asyncio driver of PyMySQL clusters) raises errors of its own classes with the same
arguments: they are read the same way.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.constants import CR, ER

from clusterdb.drivers.base import ErrorKind

__all__ = ["classify"]

_READ_ONLY_MODE = 1836
_CONNECTION_KILLED = 1927  # MariaDB
_CLIENT_INACTIVITY = 4031  # MySQL 8: the server closed an idle session
_LOST = frozenset(
    {
        CR.CR_SERVER_GONE_ERROR,
        CR.CR_SERVER_LOST,
        CR.CR_SERVER_LOST_EXTENDED,
        ER.SERVER_SHUTDOWN,
        _CONNECTION_KILLED,
        _CLIENT_INACTIVITY,
    }
)


def classify(exc: BaseException, conn: Any = None) -> ErrorKind | None:
    """``read_only``, ``lost`` or None for a PyMySQL error (see the module's docstring)."""
    if not isinstance(exc, pymysql.err.Error) and type(exc).__module__ != "asyncmy.errors":
        return None
    args = exc.args
    code = args[0] if args and isinstance(args[0], int) else None
    if code == _READ_ONLY_MODE:
        return "read_only"
    if code == ER.OPTION_PREVENTS_STATEMENT:
        message = str(args[1]).lower() if len(args) > 1 else ""
        return "read_only" if "read-only" in message or "read_only" in message else None
    if code in _LOST:
        return "lost"
    if type(exc).__name__ == "InterfaceError" and code == 0:
        return "lost"
    return None
