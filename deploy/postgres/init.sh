#!/usr/bin/env bash
# Creates the application role and one database per member and service,
# vk_<orgnr digits>_<service>, each owned by that role. Idempotent.
#
# The official postgres image runs this once, on an empty data directory, from
# /docker-entrypoint-initdb.d. It also works against any server: set PGHOST/PGUSER.
#
# Environment:
#   VK_DB_PASSWORD  password of the application role (required)
#   VK_DB_USER      application role, default vardkedja
#   VK_DB_MEMBERS   orgnrs, space separated or a JSON list
#   POSTGRES_USER, POSTGRES_DB  superuser connection (set by the postgres image)
#
# Development layout: one role for every database. Production: one PostgreSQL (or at
# least one role) per member, see deploy/README.md.
set -eo pipefail

: "${VK_DB_PASSWORD:?VK_DB_PASSWORD must be set}"
VK_DB_USER="${VK_DB_USER:-vardkedja}"
members="${VK_DB_MEMBERS:-2321000065 2120000647 2120000613}"
services="directory consent referral notify"

sql() {
    cat <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'vk_user', :'vk_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'vk_user')\gexec
SQL
    local orgnr d service db
    for orgnr in ${members//[\[\]\",]/ }; do
        d="${orgnr//-/}"
        if ! [[ "$d" =~ ^[0-9]{10}$ ]]; then
            echo "init.sh: not an organisationsnummer: $orgnr" >&2
            return 2
        fi
        for service in $services; do
            db="vk_${d}_${service}"
            printf "SELECT format('CREATE DATABASE %%I OWNER %%I', '%s', :'vk_user')\n" "$db"
            printf "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '%s')\\\\gexec\n" "$db"
            printf "REVOKE ALL ON DATABASE %s FROM PUBLIC;\n" "$db"
        done
    done
}

script="$(sql)"
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v vk_user="$VK_DB_USER" -v vk_password="$VK_DB_PASSWORD" <<<"$script"
