#!/usr/bin/env bash
# Print the kafka-acls.sh commands that give one member's principal exactly what its
# services need (Apache Kafka with StandardAuthorizer, allow.everyone.if.no.acl.found=false).
#
#   acls.sh ORGNR [FEDERATION_ORGNR ...]
#   acls.sh 232100-0065 212000-0647 212000-0613 | sh   # review, then apply
#
# ORGNR is the member being granted; FEDERATION_ORGNR are the members whose inbound topic
# it may write (default: VK_FEDERATION_MEMBERS, a JSON list or space separated; the
# member itself is always included). Rerun for every member when a member joins.
#
# Environment:
#   BOOTSTRAP_SERVERS  default kafka:9092
#   COMMAND_CONFIG     admin client properties (SSL, a super user's certificate);
#                      default /etc/kafka/admin.properties, empty to omit
#   PRINCIPAL          default User:member-<digits> (the certificate CN after
#                      ssl.principal.mapping.rules, see deploy/README.md)
#   KAFKA_ACLS         default kafka-acls.sh
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ "$#" -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac

digits_of() {
    local d="${1//-/}"
    if ! [[ "$d" =~ ^[0-9]{10}$ ]]; then
        echo "acls.sh: not an organisationsnummer: $1" >&2
        exit 2
    fi
    printf '%s' "$d"
}

member="$(digits_of "$1")"
shift
if [ "$#" -gt 0 ]; then
    federation=("$@")
else
    list="${VK_FEDERATION_MEMBERS:-}"
    read -r -a federation <<<"${list//[\[\]\",]/ }"
fi
# Every organisationsnummer is checked before anything is printed: a bad one must not
# leave half a member's ACLs applied.
for orgnr in "${federation[@]}"; do
    digits_of "$orgnr" >/dev/null
done

BOOTSTRAP_SERVERS="${BOOTSTRAP_SERVERS:-kafka:9092}"
COMMAND_CONFIG="${COMMAND_CONFIG-/etc/kafka/admin.properties}"
PRINCIPAL="${PRINCIPAL:-User:member-$member}"
KAFKA_ACLS="${KAFKA_ACLS:-kafka-acls.sh}"

prefix=(--bootstrap-server "$BOOTSTRAP_SERVERS")
if [ -n "$COMMAND_CONFIG" ]; then
    prefix+=(--command-config "$COMMAND_CONFIG")
fi
prefix+=(--add --allow-principal "$PRINCIPAL")

quote() {  # quote ARG : ARG in POSIX single quotes, safe for any sh (dash included)
    local q="'\\''"
    printf "'%s'" "${1//\'/$q}"
}

emit() {  # emit ARG... : one kafka-acls.sh command line, quoted for sh
    local line arg
    line="$(quote "$KAFKA_ACLS")"
    for arg in "${prefix[@]}" "$@"; do
        line+=" $(quote "$arg")"
    done
    printf '%s\n' "$line"
}

echo "# ACLs for $PRINCIPAL (member $member)"

echo "# Own topics: consume inbound, produce and consume internal and deadletter."
emit --operation Read --topic "vardkedja.member.$member.inbound"
emit --operation Read --operation Write --topic "vardkedja.member.$member.internal"
emit --operation Read --operation Write --topic "vardkedja.member.$member.deadletter"

echo "# Directory broadcast: every member reads and publishes its own units."
emit --operation Read --operation Write --topic vardkedja.directory

echo "# Every member's inbound topic (including its own): produce only."
declare -A seen=(["$member"]=1)
inbound=("$member")
for orgnr in "${federation[@]}"; do
    d="$(digits_of "$orgnr")"
    if [ -z "${seen[$d]:-}" ]; then
        seen[$d]=1
        inbound+=("$d")
    fi
done
for d in "${inbound[@]}"; do
    emit --operation Write --topic "vardkedja.member.$d.inbound"
done

echo "# Consumer groups vardkedja.$member.<service>."
emit --operation Read --resource-pattern-type prefixed --group "vardkedja.$member."
