"""clusterdb.drivers.pymysql_gtid copies PyMySQL's ``Connection._read_query_result`` with its
own result class (no wrapper frame per statement): the copy must still be PyMySQL's method."""

from __future__ import annotations

import inspect
import textwrap

import pymysql.connections

from clusterdb.drivers.pymysql_gtid import TrackingConnection, _TrackingResult


def _body(fn: object) -> list[str]:
    """The method's code lines, without comments, blank lines and annotations."""
    lines = textwrap.dedent(inspect.getsource(fn)).splitlines()  # type: ignore[arg-type]
    out = []
    for line in lines[1:]:  # the def line differs by its annotations
        code = line.split("#", 1)[0].rstrip()
        if code:
            out.append(code.replace("rows: int = ", "return ").replace("return rows", ""))
    return [x for x in out if x.strip()]


def test_read_query_result_is_pymysqls_with_the_tracking_result() -> None:
    theirs = _body(pymysql.connections.Connection._read_query_result)
    ours = _body(TrackingConnection._read_query_result)
    assert [x.replace("MySQLResult(", "_TrackingResult(") for x in theirs] == ours


def test_the_tracking_result_is_a_pymysql_result() -> None:
    assert issubclass(_TrackingResult, pymysql.connections.MySQLResult)
    assert "_read_ok_packet" in vars(pymysql.connections.MySQLResult)
