"""The PostgreSQL template data dir: where the binaries are, initdb, the config, the accounts.

Made once per process and shut down cleanly; every node is a copy of it (see
:mod:`clusterdb.testing.postgres`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
from pathlib import Path

from clusterdb.testing import cleanup
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.process import run
from clusterdb.testing.template import DataTemplate

__all__ = ["BINDIR_ENV", "INSTALL_HINT", "TEMPLATE", "chown", "find_bindir", "os_user"]

BINDIR_ENV = "CLUSTERDB_PG_BINDIR"
INSTALL_HINT = (
    "install them with `sudo apt-get install -y postgresql` (or run `make servers`), "
    f"or point ${BINDIR_ENV} at the directory holding initdb and postgres"
)
_OS_USER = "postgres"

# fsync/full_page_writes off: the data is thrown away. synchronous_commit stays on: off delays
# a write's visibility on the replicas (docs/design/test-harness.md).
_CONF = """
# clusterdb.testing
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 32MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 20
wal_keep_size = 128MB
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = 100ms
wal_receiver_status_interval = 1s
autovacuum = off
# mmap keeps dynamic shared memory inside the data dir: with the default (posix) every killed
# server leaves files behind in /dev/shm.
dynamic_shared_memory_type = mmap
jit = off
logging_collector = off
log_min_messages = warning
"""

_HBA = """
# clusterdb.testing: password (SCRAM) for everyone, over TCP on loopback only
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


def find_bindir() -> Path:
    """The directory with initdb and postgres: ${BINDIR_ENV}, the newest
    /usr/lib/postgresql/*/bin, or PATH."""
    candidates: list[Path] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(Path(os.environ[BINDIR_ENV]))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates.extend(Path(p) for p in reversed(versions))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return bindir
    raise HarnessError(
        "PostgreSQL server binaries (initdb, postgres) not found in "
        f"/usr/lib/postgresql/*/bin or on PATH: {INSTALL_HINT}"
    )


def os_user() -> str | None:
    """Who runs initdb and postgres: they refuse to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_OS_USER)
    except KeyError:
        raise HarnessError(
            f"running as root, PostgreSQL must run as the {_OS_USER!r} OS user, which does not "
            "exist: install the postgresql package (it creates it) or run as a normal user"
        ) from None
    return _OS_USER


def chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _create(template: DataTemplate, bindir: Path) -> Path:
    """``initdb`` once, then the config files and the accounts (``postgres --single``)."""
    admin, app, db = template.admin_user, template.app_user, template.dbname
    user = os_user()
    base = cleanup.make_tempdir("pg-template")
    chown(base, user)
    data = base / "data"
    run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            admin,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--wal-segsize=1",
        ],
        user=user,
        what="initdb (template)",
    )
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(_CONF)
    (data / "pg_hba.conf").write_text(_HBA)
    # Default privileges in template1 are copied into the new database, so tables the
    # admin creates there are usable by the application user.
    sql = "\n".join(
        [
            f"ALTER ROLE {admin} PASSWORD '{template.admin_password}';",
            f"CREATE ROLE {app} LOGIN PASSWORD '{template.app_password}';",
            f"GRANT pg_monitor TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT ALL ON TABLES TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {admin} GRANT ALL ON SEQUENCES TO {app};",
            f"CREATE DATABASE {db} OWNER {app};",
            "",
        ]
    )
    run(
        [
            str(bindir / "postgres"),
            "--single",
            "-D",
            str(data),
            "-c",
            "exit_on_error=on",
            "template1",  # the database to connect to
        ],
        user=user,
        input=sql.encode(),
        what="postgres --single (template setup)",
    )
    return data


TEMPLATE = DataTemplate(_create, admin_user="postgres", app_user="clusterdb", dbname="clusterdb")
"""The PostgreSQL template: ``postgres`` is the superuser, ``clusterdb`` the application's
non-superuser (member of ``pg_monitor``), owning database ``clusterdb``."""
