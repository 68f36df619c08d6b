"""The topic layout (architecture.md, ADR 0003).

- ``vardkedja.directory``: broadcast, log-compacted, key = unit id, organisational data only.
- ``vardkedja.member.<orgnr>.inbound``: messages *to* one member; every member writes,
  only that member reads (ACLs in production); key = case id.
- ``vardkedja.member.<orgnr>.internal``: one instance's own domain events.
- ``vardkedja.member.<orgnr>.deadletter``: that member's events that kept failing.
"""

from __future__ import annotations

DIRECTORY = "vardkedja.directory"

RETENTION_7_DAYS_MS = 7 * 24 * 60 * 60 * 1000
RETENTION_30_DAYS_MS = 30 * 24 * 60 * 60 * 1000
DURABLE_REPLICATION_FACTOR = 3
"""From this replication factor on, a topic also gets ``min.insync.replicas``."""
MIN_INSYNC_REPLICAS = 2

KIND_CONFIGS: dict[str, dict[str, str]] = {
    "directory": {"cleanup.policy": "compact"},
    "inbound": {"cleanup.policy": "delete", "retention.ms": str(RETENTION_7_DAYS_MS)},
    "internal": {"cleanup.policy": "delete", "retention.ms": str(RETENTION_7_DAYS_MS)},
    "deadletter": {"cleanup.policy": "delete", "retention.ms": str(RETENTION_30_DAYS_MS)},
}
"""Production's configuration of each kind of topic (deploy/README.md's table): the one
table that ``shared.messaging.kafka.ensure_topics`` creates topics from and that
``deploy/kafka/create-topics.sh`` is checked against (tests/unit/test_deploy.py)."""


def _digits(orgnr: str) -> str:
    digits = orgnr.replace("-", "")
    if len(digits) != 10 or not digits.isdigit():
        raise ValueError("organisationsnummer must have 10 digits")
    return digits


def inbound(orgnr: str) -> str:
    """The topic of messages addressed to member ``orgnr``."""
    return f"vardkedja.member.{_digits(orgnr)}.inbound"


def internal(orgnr: str) -> str:
    """The topic of member ``orgnr``'s own domain events (e.g. referral → notify)."""
    return f"vardkedja.member.{_digits(orgnr)}.internal"


def deadletter(orgnr: str) -> str:
    """Where member ``orgnr``'s consumers put events that keep failing."""
    return f"vardkedja.member.{_digits(orgnr)}.deadletter"


def member_topics(orgnr: str) -> list[str]:
    """Every topic that belongs to one member."""
    return [inbound(orgnr), internal(orgnr), deadletter(orgnr)]


def consumer_group(orgnr: str, service: str, consumer: str | None = None) -> str:
    """The consumer group of one service (and optionally one named consumer) of one member."""
    base = f"vardkedja.{_digits(orgnr)}.{service}"
    return f"{base}.{consumer}" if consumer else base


def member_of_topic(topic: str) -> str | None:
    """The orgnr digits a per-member topic belongs to, or None for broadcast topics."""
    parts = topic.split(".")
    if len(parts) == 4 and parts[0] == "vardkedja" and parts[1] == "member":
        return parts[2]
    return None


def topic_kind(name: str) -> str | None:
    """``directory``, ``inbound``, ``internal`` or ``deadletter``; None for a topic outside
    the layout (a test's own topic)."""
    if name == DIRECTORY:
        return "directory"
    kind = name.rsplit(".", 1)[-1]
    return kind if member_of_topic(name) is not None and kind in KIND_CONFIGS else None


def topic_configs(name: str, *, replication_factor: int = 1) -> dict[str, str]:
    """The configuration topic ``name`` is created with: its kind's (:data:`KIND_CONFIGS`;
    the broker's defaults for a topic outside the layout), and ``min.insync.replicas`` when
    it is replicated :data:`DURABLE_REPLICATION_FACTOR` times or more."""
    kind = topic_kind(name)
    configs = dict(KIND_CONFIGS[kind]) if kind is not None else {}
    if replication_factor >= DURABLE_REPLICATION_FACTOR:
        configs["min.insync.replicas"] = str(MIN_INSYNC_REPLICAS)
    return configs


COMPACTED: frozenset[str] = frozenset(
    name for name in (DIRECTORY,) if topic_configs(name).get("cleanup.policy") == "compact"
)
"""The compacted topics of the layout (from :data:`KIND_CONFIGS`)."""
