#!/usr/bin/env bash
# Java (17 or later) and Maven for the Apache Kafka node the suites and benchmarks start
# (shared/messaging/apache_kafka.py): installed from Debian's packages when missing. Idempotent.
#
#   deploy/dev/java.sh            (as root, or with sudo rights; `make java`)
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

java_ok() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || return 1
    local major
    major="$("$java" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
    [ -n "$major" ] && [ "$major" -ge 17 ]
}

missing=()
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "java.sh: installing ${missing[*]} from Debian's packages ..."
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "java.sh: $(${JAVA_HOME:+$JAVA_HOME/bin/}java -version 2>&1 | head -n 1); $(mvn -v 2>/dev/null | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
