"""A curious operator's view of the bus (ADR 0020): every record of every topic, read raw
from offset 0 (key, headers and body), searched for what users typed about a person.

What a member shares travels sealed for its recipient, so the operator of the cluster (or
anyone who can read it) finds none of it: :func:`scan_the_bus` counts the planted values
found in the raw records (must be 0) and, to show the search is not blind, the same values
found in the same records once their recipients have opened them (must be > 0).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import KafkaSettings
from shared.messaging.events import topics
from shared.messaging.kafka import Consumer, OffsetProbe, ReceivedRecord, TopicPartition
from shared.messaging.trust import SEALED_CONTENT_TYPE, Untrusted, trust_in

PARTITIONS = range(0, 64)


def person_forms(personnummer: str) -> set[str]:
    """Every way a personnummer may be written (with and without century and hyphen)."""
    digits = re.sub(r"\D", "", personnummer)
    short = digits[-10:]
    forms = {short, f"{short[:6]}-{short[6:]}"}
    if len(digits) == 12:
        forms |= {digits, f"{digits[:8]}-{digits[8:]}"}
    return forms


def free_texts(bodies: Iterable[Any], *, except_: set[str]) -> set[str]:
    """Every free text a user typed in ``bodies`` (string leaves with a space, 15+ chars),
    except organisational ones (unit and member names, which the directory publishes)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif (
            isinstance(value, str)
            and " " in value
            and len(value) >= 15
            and value not in except_
            and "{" not in value
        ):
            found.add(value)

    for body in bodies:
        walk(body)
    return found


@dataclass
class BusScan:
    records: Counter[str] = field(default_factory=Counter)  # per topic kind
    sealed: int = 0
    found_raw: Counter[str] = field(default_factory=Counter)  # canary -> hits in raw bytes
    found_opened: Counter[str] = field(default_factory=Counter)  # hits after opening
    keys_with_canaries: int = 0
    unopened: Counter[str] = field(default_factory=Counter)  # why a record did not open

    def figures(self) -> dict[str, Any]:
        return {
            "records_by_topic_kind": dict(self.records),
            "records_sealed": self.sealed,
            "canary_hits_raw": sum(self.found_raw.values()),
            "canary_hits_after_opening": sum(self.found_opened.values()),
            "canaries_found_after_opening": len(self.found_opened),
            "records_not_opened": dict(self.unopened),
        }


async def read_topic(kafka: KafkaSettings, topic: str) -> list[ReceivedRecord]:
    """Every record of ``topic`` from offset 0, read raw (a fresh group, nothing decoded)."""
    probe = OffsetProbe(kafka, f"bus-scan-probe-{uuid.uuid4().hex[:6]}")
    try:
        ends = await probe.end_offsets([TopicPartition(topic, p) for p in PARTITIONS])
    finally:
        await probe.stop()
    want = {tp.partition: end for tp, end in ends.items() if end > 0}
    if not want:
        return []
    consumer = Consumer(
        kafka, topics=[topic], group_id=f"bus-scan-{uuid.uuid4().hex}", client_id="bus-scan"
    )
    await consumer.start()
    out: list[ReceivedRecord] = []
    seen: dict[int, int] = {}
    try:
        async with asyncio.timeout(60):
            while any(seen.get(p, 0) < end for p, end in want.items()):
                batch = await consumer.poll(timeout_ms=500)
                for tp, records in batch.items():
                    out += records
                    if records:
                        seen[tp.partition] = records[-1].offset + 1
    finally:
        await consumer.stop()
    return out


def _raw(record: ReceivedRecord) -> str:
    parts = [record.key or b"", record.value or b""]
    for name, value in record.headers:
        parts += [name.encode(), value]
    return "\n".join(p.decode("utf-8", "replace") for p in parts)


async def scan_the_bus(
    kafka: KafkaSettings, members: Iterable[str], keys_dir: Path, canaries: set[str]
) -> BusScan:
    """Read every topic of the federation raw and count ``canaries`` in it, then again in
    each record as its recipient opens it."""
    scan = BusScan()
    names = [topics.DIRECTORY] + [t for m in members for t in topics.member_topics(m)]
    for topic in names:
        kind = topics.topic_kind(topic) or "other"
        for record in await read_topic(kafka, topic):
            scan.records[kind] += 1
            raw = _raw(record)
            for canary in canaries:
                if canary in raw:
                    scan.found_raw[canary] += 1
            if record.key and any(c in record.key.decode("utf-8", "replace") for c in canaries):
                scan.keys_with_canaries += 1
            if dict(record.headers).get("content-type") != SEALED_CONTENT_TYPE.encode():
                continue
            scan.sealed += 1
            member = topics.member_of_topic(topic)
            assert member is not None
            try:
                plain = trust_in(keys_dir, member).admit(
                    topic, record.key, record.value, list(record.headers)
                )
            except Untrusted as exc:
                scan.unopened[exc.rule] += 1
                continue
            text = plain.decode("utf-8", "replace")
            if kind == "deadletter":
                text += repr(plain)  # the dead letter's record is base64 inside: counted raw
            for canary in canaries:
                if canary in text:
                    scan.found_opened[canary] += 1
    return scan


__all__ = ["BusScan", "free_texts", "person_forms", "read_topic", "scan_the_bus"]
