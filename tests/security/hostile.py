"""Issue 19's hostile member (ADR 0020): a member of the federation with its own keys and
its own broker client, writing what it likes to the bus, and what the other members' own
databases say they did with each of its records.

The hostile member holds nothing of anyone else's: its key file, the trust list every
member has (public keys only) and a producer. It reads the bus as its operator could (the
routing metadata in the clear; sealed bodies it cannot open) and crafts records from it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel

from shared.config import KafkaSettings
from shared.messaging.events import CloudEvent, encode
from shared.messaging.kafka import OutgoingRecord, Producer, ReceivedRecord, SentRecord
from shared.messaging.trust import SIGNATURE_HEADER, Untrusted, trust_in


def digits(orgnr: str) -> str:
    return orgnr.replace("-", "")


def source(orgnr: str, service: str) -> str:
    """The ``ce_source`` of ``orgnr``'s ``service``."""
    return f"urn:vardkedja:{digits(orgnr)}:{service}"


def event(
    type_: str, payload: BaseModel, *, orgnr: str, service: str, key: str, version: int = 1
) -> CloudEvent:
    """An event as ``orgnr``'s ``service`` would write it (``Outbox.event``): whatever the
    hostile member chooses to name as its source."""
    return CloudEvent(
        source=source(orgnr, service),
        type=type_,
        subject=key,
        aggversion=version,
        partitionkey=key,
        data=payload.model_dump(mode="json"),
    )


def header(record: ReceivedRecord | OutgoingRecord, name: str) -> str | None:
    return next((v.decode("utf-8", "replace") for k, v in record.headers if k == name), None)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def naming_kid(record: OutgoingRecord, kid: str) -> OutgoingRecord:
    """``record`` with its signature's protected header rebuilt to name ``kid`` (another
    member's signing key); the signature bytes stay the hostile member's own."""
    signature = header(record, SIGNATURE_HEADER)
    assert signature is not None
    protected, _, sig = signature.split(".")
    fields = json.loads(_b64url_decode(protected))
    fields["kid"] = kid
    forged = _b64url(json.dumps(fields, separators=(",", ":")).encode())
    headers = [(k, v) for k, v in record.headers if k != SIGNATURE_HEADER]
    headers.append((SIGNATURE_HEADER, f"{forged}..{sig}".encode()))
    return replace(record, headers=headers)


def unsigned(record: OutgoingRecord) -> OutgoingRecord:
    """``record`` without its signature."""
    return replace(record, headers=[(k, v) for k, v in record.headers if k != SIGNATURE_HEADER])


def again(
    record: ReceivedRecord, *, topic: str | None = None, value: bytes | None = None
) -> OutgoingRecord:
    """A record read from the bus, published again as it was (on ``topic``, with ``value``)."""
    return OutgoingRecord(
        topic or record.topic,
        record.key,
        (record.value or b"") if value is None else value,
        list(record.headers),
    )


class HostileMember:
    """A member with its own keys (``keys_dir``, as ``vardkedja keys new`` made them) and its
    own broker client."""

    def __init__(self, keys_dir: Path, orgnr: str, kafka: KafkaSettings) -> None:
        self.orgnr = orgnr
        self.trust = trust_in(keys_dir, orgnr)
        self._producer = Producer(kafka, f"hostile-{digits(orgnr)}")

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    def signing_kid(self, orgnr: str) -> str:
        """The kid of ``orgnr``'s current signing key, as the trust list publishes it."""
        key = self.trust.trust_list.members[digits(orgnr)].newest("sig", dt.datetime.now(dt.UTC))
        assert key is not None
        return key.kid

    def signed(self, ev: CloudEvent, topic: str) -> OutgoingRecord:
        """``ev`` sealed for ``topic``'s member and signed with this member's own key, whatever
        source it names."""
        key, body, headers = encode(ev)
        body, headers = self.trust.protect(
            topic, key, body, headers, event_id=ev.id, source=ev.source
        )
        return OutgoingRecord(topic, key, body, headers)

    def genuine(self, record: ReceivedRecord) -> bool:
        """Whether a record read from the bus is signed by the member it names (verified with
        the trust list); a body sealed for another member is not opened, and need not be."""
        try:
            self.trust.admit(record.topic, record.key, record.value, list(record.headers))
        except Untrusted as exc:
            return exc.rule == "cannot_open"
        return True

    async def publish(self, record: OutgoingRecord) -> SentRecord:
        """One record, alone in its batch (so the broker's offset is the record's)."""
        [result] = await self._producer.send_ordered([record])
        if isinstance(result, BaseException):
            raise result
        return result


# -- what the members did with each record: their own databases -----------------------------

Consumer = tuple[str, str, str]
"""(orgnr digits, service, consumer name)."""


@dataclass(frozen=True)
class Seen:
    """What one consumer of one member did with one record (``inbox_event`` and, when it
    was dead-lettered, ``dead_letter``)."""

    member: str  # orgnr digits
    service: str
    consumer: str
    outcome: str  # applied | skipped | dead_lettered
    reason: str | None

    @property
    def where(self) -> Consumer:
        return (self.member, self.service, self.consumer)


def seen(
    data_dir: Path, members: Iterable[str], services: Iterable[str], sent: SentRecord
) -> list[Seen]:
    """Every consumer of every member that recorded the record at ``sent`` (read from the
    SQLite databases ``<data_dir>/<digits>/<service>.db``, read-only)."""
    at = (sent.topic, sent.partition, sent.offset)
    out: list[Seen] = []
    services = list(services)
    for member in members:
        for service in services:
            path = data_dir / digits(member) / f"{service}.db"
            if not path.exists():
                continue
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                rows = db.execute(
                    "SELECT consumer, outcome FROM inbox_event WHERE topic = ? AND partition = ? "
                    'AND "offset" = ?',
                    at,
                )
                outcomes = dict(rows.fetchall())
                rows = db.execute(
                    "SELECT consumer, reason FROM dead_letter WHERE topic = ? AND partition = ? "
                    'AND "offset" = ?',
                    at,
                )
                reasons = dict(rows.fetchall())
            finally:
                db.close()
            for consumer in sorted(outcomes.keys() | reasons.keys()):
                out.append(
                    Seen(
                        digits(member),
                        service,
                        consumer,
                        outcomes.get(consumer, "dead_lettered"),
                        reasons.get(consumer),
                    )
                )
    return out


__all__ = [
    "Consumer",
    "HostileMember",
    "Seen",
    "again",
    "event",
    "header",
    "naming_kid",
    "seen",
    "source",
    "unsigned",
]
