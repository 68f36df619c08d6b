#!/usr/bin/env bash
# A local PostgreSQL for the test suites and benchmarks, from Debian's packages: installed
# if missing, started, and set up as the tests expect (tests/conftest.py, VK_TEST_PG_DSN):
# the superuser role `postgres` reachable at 127.0.0.1:5432 with trust authentication on
# loopback only, and a database `test`. Idempotent; safe to run on every CI run.
#
#   deploy/dev/postgres.sh        (as root, or with sudo rights; `make postgres`)
#
# Development and CI machines only: trust on loopback means any local user is a
# superuser. Never on a machine that holds real data.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    echo "postgres.sh: installing PostgreSQL from Debian's packages ..."
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq postgresql >/dev/null
fi

read -r version cluster port _status _owner datadir _log < <(pg_lsclusters -h | head -n 1)
conf="/etc/postgresql/$version/$cluster"
if [ "$port" != "5432" ]; then
    echo "postgres.sh: cluster $version/$cluster listens on $port, the tests expect 5432" >&2
    exit 1
fi

# Trust on loopback for every role (the tests connect as postgres without a password).
hba="$conf/pg_hba.conf"
if ! grep -q "^# vardkedja: trust on loopback" "$hba"; then
    tmp="$(mktemp)"
    {
        echo "# vardkedja: trust on loopback (development and CI only; deploy/dev/postgres.sh)"
        echo "host    all             all             127.0.0.1/32            trust"
        echo "host    all             all             ::1/128                 trust"
        cat "$hba"
    } >"$tmp"
    as_root install -o postgres -g postgres -m 640 "$tmp" "$hba"
    rm -f "$tmp"
fi

# The end-to-end suites run a dozen service processes, each with a pool of connections.
dropin="$conf/conf.d/vardkedja.conf"
want="max_connections = 400
listen_addresses = 'localhost'"
if [ "$(cat "$dropin" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" | as_root tee "$dropin" >/dev/null
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop >/dev/null 2>&1 || true
fi

if ! pg_lsclusters -h | head -n 1 | grep -q online; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
else
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
fi

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p 5432; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || {
    echo "postgres.sh: PostgreSQL did not become ready at 127.0.0.1:5432" >&2
    exit 1
}

psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='test'" \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"
echo "postgres.sh: PostgreSQL $(psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SHOW server_version' | cut -d' ' -f1) ready at 127.0.0.1:5432 (role postgres, database test)"
