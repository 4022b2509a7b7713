#!/usr/bin/env bash
# Makes sure the PostgreSQL and MariaDB server binaries used by clusterdb.testing are installed,
# and MariaDB's regression suite (mariadb-test-data), read by the unit tests as SQL corpus.
# Makes sure the PostgreSQL, MariaDB, Galera (galera-4) and etcd (etcd-server, under
# clusterdb.testing.PatroniCluster) server binaries used by clusterdb.testing are installed.
#
# Quiet when they are. When some are missing and we are root on Debian/Ubuntu, installs the
# packages without letting them start (or restart) any system service; otherwise prints the
# command to run and exits 1. The machine's own PostgreSQL/MariaDB services are never touched.
set -euo pipefail

have_postgres() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ] \
            && [ -x "$dir/pg_basebackup" ]; then
            return 0
        fi
    done
    command -v initdb && command -v postgres && command -v pg_ctl && command -v pg_basebackup
} >/dev/null 2>&1

have_mariadb() {
    { [ -x /usr/sbin/mariadbd ] || command -v mariadbd; } \
        && { [ -x /usr/bin/mariadb-install-db ] || command -v mariadb-install-db; }
} >/dev/null 2>&1

# MariaDB's regression suite: SQL statements for the statement classifier's property tests.
have_mariadb_suite() {
    [ -d /usr/share/mysql/mysql-test ]
}

# The Galera provider; Debian's mariadb-server depends on galera-4, other setups may lack it.
have_galera() {
    local lib
    for lib in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so \
        /usr/lib64/galera-4/libgalera_smm.so /usr/lib64/galera/libgalera_smm.so \
        /usr/local/lib/libgalera_smm.so "${CLUSTERDB_GALERA_PROVIDER:-}"; do
        [ -n "$lib" ] && [ -f "$lib" ] && return 0
    done
    return 1
}

# etcd, the store Patroni runs over in clusterdb.testing.PatroniCluster.
have_etcd() {
    [ -x /usr/bin/etcd ] || command -v etcd
} >/dev/null 2>&1

missing=()
have_postgres || missing+=(postgresql)
have_mariadb || missing+=(mariadb-server)
have_mariadb_suite || missing+=(mariadb-test-data)
have_galera || missing+=(galera-4)
have_etcd || missing+=(etcd-server)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"

if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
    {
        echo "clusterdb's server tests need the PostgreSQL, MariaDB, Galera and etcd server binaries;"
        echo "missing: ${missing[*]}. Install them with:"
        echo
        echo "    sudo sh -c '$install_cmd'"
        echo
        echo "(on other systems, install the equivalent packages; the PostgreSQL binaries are"
        echo "looked for in /usr/lib/postgresql/*/bin, \$CLUSTERDB_PG_BINDIR or PATH)"
    } >&2
    exit 1
fi

echo "ensure-servers: installing ${missing[*]} (system services are not started)" >&2

# invoke-rc.d asks policy-rc.d whether it may start a service; 101 means "no". Keep any
# policy already in place and put it back afterwards, whatever happens.
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
    backup="$(mktemp)"
    cp -p "$policy" "$backup"
fi
restore_policy() {
    if [ -n "$backup" ]; then
        mv -f "$backup" "$policy"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# clusterdb scripts/ensure-servers.sh: no service starts during install\nexit 101\n' \
    >"$policy"
chmod 755 "$policy"

apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"

have_postgres || { echo "ensure-servers: PostgreSQL binaries still missing" >&2; exit 1; }
have_mariadb || { echo "ensure-servers: MariaDB binaries still missing" >&2; exit 1; }
have_mariadb_suite || { echo "ensure-servers: MariaDB test suite still missing" >&2; exit 1; }
have_galera || { echo "ensure-servers: the Galera provider is still missing" >&2; exit 1; }
have_etcd || { echo "ensure-servers: etcd is still missing" >&2; exit 1; }
