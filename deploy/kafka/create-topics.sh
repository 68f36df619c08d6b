#!/usr/bin/env bash
# Create the vardkedja topics on an Apache Kafka cluster. Idempotent (--if-not-exists):
# safe to run on every deploy and when a member joins. An existing topic keeps its
# configuration; change it with kafka-configs.sh --alter.
#
#   create-topics.sh [ORGNR ...]        members as 232100-0065 or 2321000065
#
# Environment:
#   VK_TOPIC_MEMBERS    members when no arguments are given (space separated or a JSON list)
#   BOOTSTRAP_SERVERS   default kafka:9092
#   PARTITIONS          default 3
#   REPLICATION_FACTOR  default 1 (3 in production; then min.insync.replicas=2)
#   COMMAND_CONFIG      admin client properties (SSL, admin certificate); optional
#   KAFKA_BIN           default /opt/kafka/bin
#   DRY_RUN=1           print the kafka-topics.sh commands instead of running them
#
# Topics: vardkedja.directory (compacted, key = unit id) and per member
# vardkedja.member.<digits>.inbound / .internal / .deadletter. See deploy/README.md.
set -euo pipefail

BOOTSTRAP_SERVERS="${BOOTSTRAP_SERVERS:-kafka:9092}"
PARTITIONS="${PARTITIONS:-3}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
COMMAND_CONFIG="${COMMAND_CONFIG:-}"
DRY_RUN="${DRY_RUN:-0}"

RETENTION_7D=604800000
RETENTION_30D=2592000000

if [ "$#" -gt 0 ]; then
    members=("$@")
else
    list="${VK_TOPIC_MEMBERS:-}"
    read -r -a members <<<"${list//[\[\]\",]/ }"
fi
if [ "${#members[@]}" -eq 0 ]; then
    echo "create-topics.sh: no members (give orgnrs as arguments or in VK_TOPIC_MEMBERS)" >&2
    exit 2
fi

digits_of() {
    local d="${1//-/}"
    if ! [[ "$d" =~ ^[0-9]{10}$ ]]; then
        echo "create-topics.sh: not an organisationsnummer: $1" >&2
        exit 2
    fi
    printf '%s' "$d"
}

common=(--bootstrap-server "$BOOTSTRAP_SERVERS")
if [ -n "$COMMAND_CONFIG" ]; then
    common+=(--command-config "$COMMAND_CONFIG")
fi
durability=()
if [ "$REPLICATION_FACTOR" -ge 3 ]; then
    durability=(--config min.insync.replicas=2)
fi

run() {
    if [ "$DRY_RUN" = "1" ]; then
        printf '%q ' "$@"
        printf '\n'
    else
        "$@"
    fi
}

create() {  # create TOPIC CONFIG...
    local topic="$1"
    shift
    local configs=()
    local c
    for c in "$@"; do
        configs+=(--config "$c")
    done
    run "$KAFKA_BIN/kafka-topics.sh" "${common[@]}" --create --if-not-exists \
        --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" \
        "${durability[@]}" "${configs[@]}"
}

digits=()
for orgnr in "${members[@]}"; do
    digits+=("$(digits_of "$orgnr")")
done

if [ "$DRY_RUN" != "1" ]; then
    # The compose file waits for a healthy broker; elsewhere give it a minute.
    for attempt in $(seq 1 30); do
        if "$KAFKA_BIN/kafka-topics.sh" "${common[@]}" --list >/dev/null 2>&1; then
            break
        fi
        if [ "$attempt" -eq 30 ]; then
            echo "create-topics.sh: broker $BOOTSTRAP_SERVERS not reachable" >&2
            exit 1
        fi
        sleep 2
    done
fi

create vardkedja.directory cleanup.policy=compact
for d in "${digits[@]}"; do
    create "vardkedja.member.$d.inbound" cleanup.policy=delete "retention.ms=$RETENTION_7D"
    create "vardkedja.member.$d.internal" cleanup.policy=delete "retention.ms=$RETENTION_7D"
    create "vardkedja.member.$d.deadletter" cleanup.policy=delete "retention.ms=$RETENTION_30D"
done

if [ "$DRY_RUN" != "1" ]; then
    "$KAFKA_BIN/kafka-topics.sh" "${common[@]}" --list | grep '^vardkedja\.' || true
fi
