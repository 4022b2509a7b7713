"""One connection that routes each statement: ``clusterdb.connect(name, role="auto")``.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/routed_connection.py

Reads go to a replica that has applied this connection's own writes, writes to the primary,
an explicit transaction wholly to the primary, and a statement that carries session state
(here a temporary table) keeps the session on the primary from then on.
"""

from __future__ import annotations

import os

import clusterdb

WHOAMI = "SELECT pg_is_in_recovery()"


def where(cur: clusterdb.RoutedCursor) -> str:
    cur.execute(WHOAMI)
    row = cur.fetchone()
    return "a replica" if row and row[0] else "the primary"


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)
    table = f"clusterdb_example_routed_{os.getpid()}"
    with clusterdb.connect(cluster, role="auto") as conn:
        cur = conn.cursor()
        print(f"routed: a plain read runs on {where(cur)}")
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
        for i in range(5):  # write, then read it back at once: never stale
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, f"note {i}"))
            cur.execute(f"SELECT note FROM {table} WHERE id = %s", (i,))
            row = cur.fetchone()
            assert row == (f"note {i}",), row
            print(f"routed: wrote {i} on the primary, read it back on the {conn.last_target}")
        conn.autocommit = False  # an explicit transaction: the primary, reads included
        cur.execute(f"UPDATE {table} SET note = 'changed' WHERE id = 0")
        cur.execute(f"SELECT note FROM {table} WHERE id = 0")
        print(f"routed: inside a transaction, read {cur.fetchone()} on the {conn.last_target}")
        conn.commit()
        conn.autocommit = True
        cur.execute(f"DROP TABLE {table}")
        cur.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
        print(f"routed: pinned to the primary ({conn.pinned}); reads run on {where(cur)}")
    clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
