"""What the routed-connection server tests share: a table per test, the statements of the
corpus, and the node a routed read landed on."""

from __future__ import annotations

import uuid
from typing import Any

from clusterdb.testing.cluster import Cluster


def table_name() -> str:
    return f"r_{uuid.uuid4().hex[:8]}"


def make_table(cluster: Cluster, name: str) -> None:
    """``name`` (id int primary key, v text), on every node once replicas caught up."""
    cluster.execute(
        cluster.primary, f"CREATE TABLE {name} (id int PRIMARY KEY, v text)", admin=False
    )
    cluster.wait_caught_up()


def read_node(cur: Any, cluster: Cluster) -> str:
    """The node that answers a plain read on the routed cursor ``cur``."""
    cur.execute(cluster.WHOAMI_SQL)
    row = cur.fetchone()
    assert row is not None
    return str(row[0])


# Statements a replica refuses, or that carry session state, with what must hold after
# them: (setup statements, statement, check query, expected first column of the check).
PG_CORPUS: list[tuple[str, str | None, object]] = [
    ("SELECT * FROM {t} FOR UPDATE", None, None),
    ("SELECT * FROM {t} FOR SHARE", None, None),
    ("WITH d AS (DELETE FROM {t} WHERE id = -1 RETURNING *) SELECT count(*) FROM d", None, None),
    ("EXPLAIN ANALYZE DELETE FROM {t} WHERE id = -1", None, None),
    ("SELECT nextval('{t}_seq')", "SELECT currval('{t}_seq')", 1),
    ("VACUUM {t}", None, None),
    ("ANALYZE {t}", None, None),
    ("SELECT * INTO {t}_copy FROM {t}", "SELECT count(*) FROM {t}_copy", 1),
    ("DO $$ BEGIN PERFORM 1; END $$", None, None),
    ("NOTIFY {t}", None, None),
    ("SELECT txid_current() > 0", None, None),
]
PG_SESSION: list[tuple[str, str, object, str]] = [
    # (statement, check, expected, pin reason)
    ("SET application_name = 'routed-x'", "SHOW application_name", "routed-x", "SET"),
    ("CREATE TEMP TABLE tmp_x AS SELECT 42 AS v", "SELECT v FROM tmp_x", 42, "temporary table"),
    ("PREPARE p_x AS SELECT 7", "EXECUTE p_x", 7, "prepared statement"),
    ("LISTEN chan_x", "SELECT count(*) FROM pg_listening_channels()", 1, "LISTEN"),
    ("SELECT pg_advisory_lock(4242)", "SELECT pg_advisory_unlock(4242)", True, "advisory lock"),
    (
        "DECLARE c_x CURSOR WITH HOLD FOR SELECT 5",
        "FETCH NEXT FROM c_x",
        5,
        "WITH HOLD cursor",
    ),
]
MARIADB_CORPUS: list[tuple[str, str | None, object]] = [
    ("SELECT * FROM {t} FOR UPDATE", None, None),
    ("SELECT * FROM {t} LOCK IN SHARE MODE", None, None),
    ("EXPLAIN DELETE FROM {t} WHERE id = -1", None, None),
    ("SELECT NEXTVAL({t}_seq)", "SELECT LASTVAL({t}_seq)", 1),
    ("SELECT bump_{t}()", "SELECT count(*) FROM {t} WHERE id = 1000", 1),
    ("ANALYZE TABLE {t}", None, None),
    ("OPTIMIZE TABLE {t}", None, None),
]
MARIADB_SESSION: list[tuple[str, str, object, str]] = [
    ("SET @x = 42", "SELECT @x", 42, "user variable"),
    ("SET SESSION sql_mode = 'NO_ZERO_DATE'", "SELECT @@SESSION.sql_mode", "NO_ZERO_DATE", "SET"),
    ("CREATE TEMPORARY TABLE tmp_x AS SELECT 42 AS v", "SELECT v FROM tmp_x", 42, "temporary"),
    ("SELECT GET_LOCK('lock_x', 1)", "SELECT RELEASE_LOCK('lock_x')", 1, "named lock"),
    ("PREPARE p_x FROM 'SELECT 7'", "EXECUTE p_x", 7, "prepared statement"),
    ("SELECT 42 INTO @y", "SELECT @y", 42, "user variable"),
]
