#!/usr/bin/env bash
# docker-compose (Debian's package) to validate docker-compose.yml without a Docker engine
# (`make compose-check`, tests/unit/test_deploy.py): installed when missing. Idempotent.
#
#   deploy/dev/compose.sh         (as root, or with sudo rights)
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "compose.sh: installing docker-compose from Debian's packages ..."
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq docker-compose >/dev/null
fi
echo "compose.sh: $(docker-compose version --short 2>/dev/null || docker-compose --version)"
