"""Functions that keep a statement on the primary, and the queries that find a cluster's own.

Built in: the server's functions that write, lock, start session state, run SQL text or work
only on a primary (upper-case name -> (reason, session pin or None)). Per cluster: the
PostgreSQL functions outside ``pg_catalog`` that are VOLATILE (PostgreSQL refuses writes in a
STABLE or IMMUTABLE function), and the MariaDB stored functions that do not declare that they
only read (MariaDB does not enforce the declaration, and CONTAINS SQL is its default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clusterdb.core.statement_lex import Dialect

Rule = tuple[str, str | None]
"""(reason the statement goes to the primary, reason it pins the session or None)."""

_WRITES = "writes"
_LOCKS = "takes or releases a lock"
_SESSION = "reads this session's state"
_RUNS_SQL = "runs SQL text"
_PRIMARY_ONLY = "works only on a primary"
_SERVER = "changes server state"


def _group(reason: str, names: str, pin: str | None = None) -> dict[str, Rule]:
    return {n.upper(): (f"{n}() {reason}", pin) for n in names.split()}


# Every VOLATILE pg_catalog function of PostgreSQL 15 was looked at (223 names); those below
# write, lock, hold session state, run SQL text or fail during recovery. The rest (random,
# clock_timestamp, pg_sleep, pg_relation_size, pg_ls_dir...) only read.
POSTGRESQL_FUNCTIONS: Mapping[str, Rule] = {
    **_group(_WRITES, "nextval setval lo_creat lo_create lo_from_bytea lo_import lo_put"),
    **_group(_WRITES, "lo_unlink lo_truncate lo_truncate64 lowrite lo_export"),
    **_group(_WRITES, "brin_summarize_new_values brin_summarize_range brin_desummarize_range"),
    **_group(_WRITES, "gin_clean_pending_list pg_import_system_collations pg_nextoid"),
    **_group(_WRITES, "pg_extension_config_dump pg_logical_emit_message"),
    **_group(_SESSION, "currval lastval lo_open lo_close lo_lseek lo_lseek64 loread"),
    **_group(_SESSION, "lo_tell lo_tell64 pg_export_snapshot"),
    **_group(_SESSION, "cursor_to_xml cursor_to_xmlschema"),
    **_group(_RUNS_SQL, "query_to_xml query_to_xml_and_xmlschema query_to_xmlschema"),
    **_group(_RUNS_SQL, "ts_stat ts_rewrite"),
    **_group(_LOCKS, "pg_advisory_lock pg_advisory_lock_shared", "advisory lock"),
    **_group(_LOCKS, "pg_try_advisory_lock pg_try_advisory_lock_shared", "advisory lock"),
    **_group(_LOCKS, "pg_advisory_xact_lock pg_advisory_xact_lock_shared"),
    **_group(_LOCKS, "pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared"),
    **_group(_LOCKS, "pg_advisory_unlock pg_advisory_unlock_shared pg_advisory_unlock_all"),
    **_group("changes a setting", "set_config", "set_config() changes a setting"),
    **_group("seeds random()", "setseed", "setseed() seeds this session's random()"),
    **_group(_PRIMARY_ONLY, "pg_current_wal_lsn pg_current_wal_insert_lsn"),
    **_group(_PRIMARY_ONLY, "pg_current_wal_flush_lsn txid_current pg_current_xact_id"),
    **_group(_PRIMARY_ONLY, "pg_switch_wal pg_create_restore_point pg_backup_start"),
    **_group(_PRIMARY_ONLY, "pg_backup_stop pg_notify"),
    **_group(_SERVER, "pg_cancel_backend pg_terminate_backend pg_reload_conf pg_promote"),
    **_group(_SERVER, "pg_rotate_logfile pg_rotate_logfile_old pg_stat_reset"),
    **_group(_SERVER, "pg_stat_reset_shared pg_stat_reset_single_table_counters"),
    **_group(_SERVER, "pg_stat_reset_single_function_counters pg_stat_reset_slru"),
    **_group(_SERVER, "pg_stat_reset_replication_slot pg_stat_reset_subscription_stats"),
    **_group(_SERVER, "pg_create_physical_replication_slot pg_create_logical_replication_slot"),
    **_group(_SERVER, "pg_drop_replication_slot pg_copy_physical_replication_slot"),
    **_group(_SERVER, "pg_copy_logical_replication_slot pg_replication_slot_advance"),
    **_group(_SERVER, "pg_logical_slot_get_changes pg_logical_slot_get_binary_changes"),
    **_group(_SERVER, "pg_replication_origin_create pg_replication_origin_drop"),
    **_group(_SERVER, "pg_replication_origin_advance pg_replication_origin_session_setup"),
    **_group(_SERVER, "pg_replication_origin_session_reset pg_replication_origin_xact_setup"),
    **_group(_SERVER, "pg_replication_origin_xact_reset"),
}

MYSQL_FUNCTIONS: Mapping[str, Rule] = {
    **_group(_WRITES, "nextval setval"),
    **_group(_LOCKS, "get_lock", "named lock (GET_LOCK)"),
    **_group(_LOCKS, "release_lock release_all_locks is_free_lock is_used_lock"),
    **_group(_SESSION, "lastval last_insert_id found_rows row_count"),
}

# Volatile, but only read: a user or extension function of one of these names (uuid-ossp,
# pgcrypto, tablefunc) does not keep a statement on the primary.
POSTGRESQL_READ_ONLY_VOLATILE: frozenset[str] = frozenset(
    {
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "gen_random_uuid",
        "gen_random_bytes",
        "gen_salt",
        "normal_rand",
    }
)

POSTGRESQL_WRITING_FUNCTIONS_QUERY = """\
SELECT DISTINCT p.proname
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE p.provolatile = 'v'
  AND p.prokind <> 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
"""The cluster's own functions that may write: VOLATILE, outside the catalog, not procedures
(a procedure is only ever CALLed). The catalog's are in POSTGRESQL_FUNCTIONS."""

MYSQL_WRITING_FUNCTIONS_QUERY = """\
SELECT DISTINCT ROUTINE_NAME
FROM information_schema.ROUTINES
WHERE ROUTINE_TYPE = 'FUNCTION'
  AND SQL_DATA_ACCESS NOT IN ('NO SQL', 'READS SQL DATA')"""
"""The cluster's stored functions that may write: MODIFIES SQL DATA, and CONTAINS SQL, the
default, which MariaDB does not check either (a function left undeclared may write)."""


def writing_functions(rows: Iterable[tuple[Any, ...]], dialect: Dialect) -> frozenset[str]:
    """Function names (lower case) from the rows of the dialect's lookup query, less the
    PostgreSQL allow-list of volatile functions that only read."""
    names = {str(row[0]).lower() for row in rows}
    if dialect == "postgresql":
        names -= POSTGRESQL_READ_ONLY_VOLATILE
    return frozenset(names)


_MARKERS = frozenset({"FOR", "INTO", "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT"})
_MYSQL_MARKERS = frozenset({"LOCK", "NEXT", "PREVIOUS", "@"})


@dataclass(frozen=True)
class Vocabulary:
    """What the rules look for in one dialect: functions (upper case) -> rule, and
    ``markers``, every word that can make a read statement need the primary (a statement
    with none of them is decided without looking further)."""

    dialect: Dialect
    functions: Mapping[str, Rule]
    markers: frozenset[str]


def vocabulary(dialect: Dialect, writing: Iterable[str] = ()) -> Vocabulary:
    """The built-in functions of ``dialect`` plus the cluster's own ``writing`` ones."""
    builtin = POSTGRESQL_FUNCTIONS if dialect == "postgresql" else MYSQL_FUNCTIONS
    functions = dict(builtin)
    for name in writing:
        functions.setdefault(name.upper(), (f"{name.lower()}() may write", None))
    quote = '"' if dialect == "postgresql" else "`"
    markers = set(_MARKERS) | set(functions) | {f"{quote}{f}{quote}" for f in functions}
    if dialect == "mysql":
        markers |= _MYSQL_MARKERS
    return Vocabulary(dialect, functions, frozenset(markers))
