"""Helpers the scenarios share: reading and writing topics as an outsider (a tool, a
misbehaving network, an operator resetting offsets), and looking into databases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql import Executable

from shared.data.db import Database
from shared.messaging.kafka import (
    Consumer,
    OffsetProbe,
    OutgoingRecord,
    ReceivedRecord,
    TopicPartition,
    committed_offsets,
)
from tests.conftest import kafka_settings
from tests.helpers.harness import eventually
from tests.integration.test_outbox_inbox import produce_raw, running

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = kafka_settings("x").partitions

__all__ = [
    "PARTITIONS",
    "ROOT",
    "LogEnd",
    "commit_group",
    "committed_total",
    "copies_per_event",
    "end_offsets",
    "eventually",
    "inversions",
    "kill_proc",
    "log_ends",
    "outbox_records",
    "per_key",
    "produce_raw",
    "query",
    "read_all",
    "running",
    "settle",
    "spawn",
    "stop_proc",
    "wait_line",
]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The log-end offset of every partition of ``topic`` (0 where it has none)."""
    probe = OffsetProbe(kafka_settings(bootstrap), f"reliability-probe-{uuid.uuid4().hex[:6]}")
    try:
        ends = await probe.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await probe.stop()
    return {tp.partition: n for tp, n in ends.items()}


async def read_all(
    bootstrap: str, topic: str, *, within: float = 60, quiet: float = 1.5
) -> list[ReceivedRecord]:
    """Every record of ``topic`` from offset 0 (a fresh group): read until the log ends
    the broker reports are reached and nothing more arrives for ``quiet`` seconds (the
    embedded broker sometimes reports a log end one short of its last record)."""
    ends = await end_offsets(bootstrap, topic)
    consumer = Consumer(
        kafka_settings(bootstrap),
        topics=[topic],
        group_id=f"reliability-reader-{uuid.uuid4().hex[:8]}",
        client_id="reliability-reader",
    )
    seen: dict[tuple[int, int], ReceivedRecord] = {}
    last: dict[int, int] = dict.fromkeys(ends, -1)
    moved = time.monotonic()
    await consumer.start()
    try:

        async def complete() -> bool:
            nonlocal moved
            for records in (await consumer.poll(200)).values():
                for r in records:
                    seen[(r.partition, r.offset)] = r
                    last[r.partition] = max(last.get(r.partition, -1), r.offset)
                    moved = time.monotonic()
            reached = all(last[p] >= ends[p] - 1 for p in ends)
            return reached and time.monotonic() - moved > quiet

        await eventually(complete, within=within, what=f"all of {topic}")
    finally:
        await consumer.stop()
    return [seen[k] for k in sorted(seen)]


def log_ends(records: Iterable[ReceivedRecord]) -> dict[int, int]:
    """Per partition, the offset after the last of ``records`` (0 for none)."""
    out = dict.fromkeys(range(PARTITIONS), 0)
    for r in records:
        out[r.partition] = max(out.get(r.partition, 0), r.offset + 1)
    return out


def copies_per_event(records: Iterable[ReceivedRecord]) -> Counter[str]:
    """How many records of each CloudEvent id (``ce_id``) there are."""
    return Counter(dict(r.headers).get("ce_id", b"").decode() for r in records)


async def committed_total(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on each partition of ``topic``."""
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    got = await committed_offsets(kafka_settings(bootstrap), group, tps)
    return {tp.partition: got.get(tp, 0) for tp in tps}


async def commit_group(
    bootstrap: str, group: str, topic: str, offsets: dict[int, int], *, within: float = 60
) -> None:
    """Commit ``offsets`` (partition -> next offset) for ``group`` on ``topic``, as an
    operator resetting a consumer group does; the group's own consumers must be stopped."""
    consumer = Consumer(
        kafka_settings(bootstrap), topics=[topic], group_id=group, client_id="reliability-reset"
    )
    await consumer.start()
    wanted = {TopicPartition(topic, p): o for p, o in offsets.items()}
    try:

        async def committed() -> bool:
            await consumer.poll(100)  # joins the group and gets the partitions assigned
            try:
                await consumer.commit(wanted)
            except Exception:  # not assigned yet: poll again
                return False
            return True

        await eventually(committed, within=within, what=f"offsets of {group} reset")
    finally:
        await consumer.stop()


async def outbox_records(
    db_url: str, outbox: Any, *, topic: str, types: Sequence[str] | None = None
) -> list[OutgoingRecord]:
    """The records an outbox holds for ``topic`` (optionally only ``types``), in order, as
    the relay would send them (used to deliver them differently: again, or shuffled)."""
    q = select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.seq)
    if types is not None:
        q = q.where(outbox.c.event_type.in_(list(types)))
    return [
        OutgoingRecord(
            topic=r.topic,
            key=r.key.encode() if r.key is not None else None,
            value=bytes(r.body),
            headers=[(k, v.encode()) for k, v in r.headers],
        )
        for r in await query(db_url, q)
    ]


async def query(db_url: str, stmt: Executable) -> list[Any]:
    """The rows of ``stmt`` on ``db_url`` (a connection of its own, closed afterwards)."""
    db = Database(db_url)
    try:
        async with db.sessionmaker() as session:
            return list((await session.execute(stmt)).all())
    finally:
        await db.dispose()


def inversions(sequences: dict[str, list[int]]) -> int:
    """Places where a key's sequence goes backwards (0 when every key is in order)."""
    return sum(1 for seqs in sequences.values() for a, b in itertools.pairwise(seqs) if b < a)


def per_key(effects: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """Effects grouped by key, in the order they happened."""
    out: dict[str, list[int]] = defaultdict(list)
    for key, seq in effects:
        out[key].append(seq)
    return out


def spawn(*args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """``python -m <args>`` from the project root, its stdout piped (stderr to ``log``)."""
    err = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    finally:
        if log:
            err.close()  # type: ignore[union-attr]


async def wait_line(proc: subprocess.Popen[str], want: str, *, within: float = 60) -> None:
    """Wait until ``proc`` prints the line ``want`` (reading its stdout off the loop)."""

    def read() -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + within
        for line in proc.stdout:
            if line.strip() == want:
                return
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"process did not print {want!r} (exit {proc.poll()})")

    await asyncio.wait_for(asyncio.to_thread(read), timeout=within)


def stop_proc(proc: subprocess.Popen[str], *, timeout: float = 30) -> str:
    """SIGTERM ``proc`` and return what it printed last (SIGKILL if it does not stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    lines = (out or "").strip().splitlines()
    return lines[-1] if lines else ""


def kill_proc(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` and reap it (as a crash: no cleanup)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class LogEnd:
    """Watches the total number of records on a topic (one long-lived client)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.probe = OffsetProbe(kafka_settings(bootstrap), f"reliability-watch-{topic[-6:]}")
        self.tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    async def total(self) -> int:
        return sum((await self.probe.end_offsets(self.tps)).values())

    async def grows_past(self, base: int, *, within: float = 30) -> int:
        """Return the total as soon as it exceeds ``base`` (no sleep between looks)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            now = await self.total()
            if now > base:
                return now
        raise AssertionError(f"no new record on {self.topic} within {within} s")

    async def close(self) -> None:
        await self.probe.stop()


async def settle(
    check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.25
) -> tuple[bool, float]:
    """Wait until ``check()`` holds or ``within`` seconds pass; whether it held and the
    seconds waited (so a scenario can report its figures before it asserts)."""
    started = time.monotonic()
    while True:
        if await check():
            return True, round(time.monotonic() - started, 2)
        if time.monotonic() - started > within:
            return False, round(time.monotonic() - started, 2)
        await asyncio.sleep(every)
