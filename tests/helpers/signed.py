"""Records as a member writes them to the bus, and read back as their recipient reads them
(ADR 0020): tests that publish or read raw records go through these, with the keys of the
test session's trust list (``tests.conftest.TEST_TRUST_DIR``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.messaging.events import CloudEvent, decode, encode, topics
from shared.messaging.kafka import OutgoingRecord
from shared.messaging.trust import Trust, trust_in


def trust_dir() -> Path:
    return Path(os.environ["VK_TRUST__DIR"])


def member_trust_of(orgnr: str, directory: Path | None = None) -> Trust:
    return trust_in(directory or trust_dir(), orgnr)


def signed(
    event: CloudEvent, topic: str, *, directory: Path | None = None, body: bytes | None = None
) -> OutgoingRecord:
    """``event`` as its source member publishes it to ``topic``: sealed when the topic
    belongs to a member, signed by the sender named in ``source``. ``body`` replaces the
    event's data (a malformed body that is still signed by a member)."""
    key, data, headers = encode(event)
    body = data if body is None else body
    sender = event.sender_orgnr
    assert sender is not None, "the event's source names no member"
    body, headers = member_trust_of(sender, directory).protect(
        topic, key, body, headers, event_id=event.id, source=event.source
    )
    return OutgoingRecord(topic, key, body, headers)


def opened(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    *,
    directory: Path | None = None,
) -> CloudEvent:
    """A record of ``topic`` as its recipient reads it (verified, opened, decoded)."""
    member = topics.member_of_topic(topic)
    source = next((v.decode() for k, v in headers if k == "ce_source"), "")
    reader = member or CloudEvent(source=source, type="se.vardkedja.x.y.v1").sender_orgnr
    assert reader is not None
    plain = member_trust_of(reader, directory).admit(topic, key, value, list(headers))
    return decode(key, plain, list(headers))


def outbox_data(row: Any) -> dict[str, Any]:
    """The data of an outbox row (``topic``, ``key``, ``headers``, ``body``) as its
    recipient reads it: the outbox holds the record as it goes on the bus, sealed for a
    member's topic."""
    key = row.key.encode() if row.key is not None else None
    headers = [(k, v.encode()) for k, v in row.headers]
    return opened(row.topic, key, bytes(row.body), headers).data
