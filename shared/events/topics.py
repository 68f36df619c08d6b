"""The topic layout (architecture.md, ADR 0003).

- ``vardkedja.directory``: broadcast, log-compacted, key = unit id, organisational data only.
- ``vardkedja.member.<orgnr>.inbound``: messages *to* one member; every member writes,
  only that member reads (ACLs in production); key = case id.
- ``vardkedja.member.<orgnr>.internal``: one instance's own domain events.
- ``vardkedja.member.<orgnr>.deadletter``: that member's events that kept failing.
"""

from __future__ import annotations

DIRECTORY = "vardkedja.directory"
COMPACTED: frozenset[str] = frozenset({DIRECTORY})


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
