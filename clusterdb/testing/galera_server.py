"""What a Galera node of the harness is started with: the provider and its options.

Group communication is tuned for loopback and quick tests: a silent peer is suspected after
``SUSPECT_TIMEOUT`` s (the time an isolated or hung node takes to leave the primary component)
and evicted after twice that; the defaults (5 s and 15 s) are for real networks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST

INSTALL_HINT = (
    "install it with `sudo apt-get install -y galera-4` (or run `make servers`), or point "
    "$CLUSTERDB_GALERA_PROVIDER at libgalera_smm.so"
)
PROVIDER_ENV = "CLUSTERDB_GALERA_PROVIDER"
_PROVIDERS = (
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib64/galera/libgalera_smm.so",
    "/usr/local/lib/libgalera_smm.so",
)
SST_SCRIPT = "wsrep_sst_mysqldump"
SST_CONNECT_TIMEOUT = 10.0  # that script's mysql client: --connect_timeout=10
SUSPECT_TIMEOUT = 3.0

# Galera's wsrep_local_state values (wsrep_local_state_comment says the same in words).
JOINING, DONOR, JOINED, SYNCED = 1, 2, 3, 4
STATUS_SQL = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', "
    "'wsrep_local_state_comment', 'wsrep_ready', 'wsrep_cluster_status', 'wsrep_cluster_size')"
)


def find_provider() -> Path:
    """The galera-4 provider library: $CLUSTERDB_GALERA_PROVIDER or the usual places."""
    env = os.environ.get(PROVIDER_ENV)
    for candidate in (env,) if env else _PROVIDERS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise HarnessError(f"the Galera provider (libgalera_smm.so) was not found: {INSTALL_HINT}")


def find_sst_script() -> Path:
    """The server's mysqldump state transfer script (installed with mariadb-server)."""
    for d in ("/usr/bin", "/usr/local/bin", "/usr/sbin"):
        if os.access(Path(d) / SST_SCRIPT, os.X_OK):
            return Path(d) / SST_SCRIPT
    found = shutil.which(SST_SCRIPT)
    if found is None:
        raise HarnessError(f"{SST_SCRIPT} was not found: install mariadb-server")
    return Path(found)


def provider_options(gcomm_port: int, ist_port: int) -> str:
    """``wsrep_provider_options`` of one node: its own listen ports, a small gcache, and the
    quick failure detection described above."""
    suspect = SUSPECT_TIMEOUT
    return ";".join(
        [
            f"gmcast.listen_addr=tcp://{HOST}:{gcomm_port}",
            f"ist.recv_addr={HOST}:{ist_port}",
            "gcache.size=16M",
            "pc.recovery=false",  # the harness decides who bootstraps
            "evs.keepalive_period=PT0.3S",
            "evs.inactive_check_period=PT0.5S",
            "evs.join_retrans_period=PT0.3S",
            f"evs.suspect_timeout=PT{suspect:g}S",
            f"evs.inactive_timeout=PT{2 * suspect:g}S",
            f"evs.install_timeout=PT{1.5 * suspect:g}S",
        ]
    )


def mark_safe_to_bootstrap(datadir: Path) -> None:
    """Let a node whose grastate.dat says otherwise (it was killed, or was not the last to
    leave) bootstrap a new primary component: the documented manual recovery."""
    grastate = datadir / "grastate.dat"
    try:
        text = grastate.read_text()
    except FileNotFoundError:
        return
    grastate.write_text(text.replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1"))
