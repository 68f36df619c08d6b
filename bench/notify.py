"""Benchmark of notify's fan-out: referral.received events at a fixed rate on a member's
internal topic, consumed by the notify worker (its own process), each turned into an inbox
row and a signed webhook to a case system (a real HTTP receiver on loopback).

Reported, per event: *fan-out* latency, from the moment the worker consumed the event (its
inbox row's ``received_at``, taken when the consumer starts applying the batch the event
came in) to the signed webhook's arrival at the receiver; the part of it after the handler
made the notification (``notification.created_at``); and end to end, from the event's send
to Kafka to the webhook's arrival. The worker's CPU time per event, and its memory (RSS)
sampled every second, compared between the first and the last third of the run: a long run
(``--seconds 300``) shows whether it is stable. The machine's load average is given at the
start and the end (the machine is shared; CPU per event is the figure least disturbed), and
the broker's CPU share over each third of the run (the broker's own process: the JVM of
Apache Kafka, or Tansu): Tansu's memory engine costs more per fetch the more batches a
partition holds, so its share rises over a long run and takes the cores the worker needs
(Apache Kafka's fetch cost does not grow with the log).
``--broker`` chooses Apache Kafka (default) or the embedded Tansu broker; ``--partitions``
and ``--fetch-max-wait-ms`` change the topic's partitions (3) and the consumers' fetch wait
(Tansu: 10 ms; Apache Kafka: the broker's client setting, since it answers a fetch as soon
as data arrives).

    make bench-notify                     # 20 s at 200 events/s, SQLite (and PostgreSQL)
    python -m bench.notify --rate 200 --seconds 300 --backend sqlite
    python -m bench.notify --rate 200 --seconds 300 --backend sqlite --broker tansu

Writes bench/results/notify-<backend>.json and prints a markdown line. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import brokers
from bench.stats import summary_ms, timeline
from shared.messaging.broker import Broker, Engine
from tests.conftest import POSTGRES, create_pg_database, drop_pg_database

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from tests.helpers.signed import signed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ORGNR = "212000-0647"
UNIT = "vaxjo-soc-mottagning"
TANSU_FETCH_MAX_WAIT_MS = 10


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quarter_mean(values: list[float], k: int) -> float:
    """Mean of the ``k``-th quarter (0-3) of ``values`` (NaN when there are none)."""
    n = len(values)
    part = values[k * n // 4 : max(k * n // 4 + 1, (k + 1) * n // 4)]
    return round(sum(part) / len(part), 1) if part else float("nan")


def cpu_share(samples: list[tuple[float, float]], start_s: float, end_s: float) -> float | None:
    """CPU seconds per second between ``start_s`` and ``end_s`` of ``(seconds, CPU seconds)``
    samples (None with fewer than two samples there)."""
    inside = [(t, c) for t, c in samples if start_s <= t <= end_s]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 2)


def share_by_third(samples: list[tuple[float, float]]) -> list[float | None]:
    """CPU share over each third of a run's ``(seconds, CPU seconds)`` samples."""
    end = samples[-1][0] if samples else 0.0
    return [cpu_share(samples, k * end / 3, (k + 1) * end / 3) for k in range(3)]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def prepare(db_url: str, receiver_url: str) -> str:
    """Migrate and subscribe the receiver to the intake's referral.received notifications."""
    from services.notify.subscriptions import create_subscription
    from shared.data import migrations
    from shared.data.db import Database
    from shared.identity.auth import Caller
    from shared.service import load_spec
    from tests.integration.notify.conftest import notify_settings, work_of

    await migrations.upgrade(load_spec("notify").migrations_dir, db_url)
    db = Database(db_url)
    caller = Caller(sub="bench", org=ORGNR, unit=UNIT, scopes=frozenset())
    try:
        async with db.transaction() as session:
            sub = await create_subscription(
                work_of(session, notify_settings(db_url), caller),
                unit_id=UNIT,
                url=receiver_url,
                event_types=["referral.received"],
                secret=None,
            )
    finally:
        await db.dispose()
    return sub.secret


def worker_env(
    db_url: str, data_dir: Path, broker: Broker, fetch_max_wait_ms: int
) -> dict[str, str]:
    return {
        **os.environ,
        "VK_ENV": "development",
        "VK_SERVICE": "notify",
        "VK_MEMBER__ORGNR": ORGNR,
        "VK_MEMBER__NAME": "Växjö kommun",
        "VK_MEMBER__KIND": "kommun",
        "VK_DATA_DIR": str(data_dir),
        "VK_DATABASE_URL": db_url,
        "VK_AUTO_MIGRATE": "false",
        "VK_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        **brokers.client_env(broker, fetch_max_wait_ms),
        "VK_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE": "true",
        "VK_NOTIFY__LINK_BASE_URL": "https://notify.vaxjo.example",
    }


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The notify worker of the member, as its own process."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vardkedja.cli", "worker", "notify"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def run(
    backend: str,
    rate: float,
    seconds: float,
    partitions: int = 3,
    fetch_max_wait_ms: int | None = None,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    from shared.config import KafkaSettings
    from shared.messaging.events import CloudEvent, topics
    from shared.messaging.events.payloads import REFERRAL_RECEIVED_V1, ReferralReceivedV1
    from shared.messaging.kafka import Producer, ensure_topics
    from tests.integration.notify.servers import WebhookReceiver

    work = Path(tempfile.mkdtemp(prefix="vk-bench-notify-"))
    db_url = (
        await create_pg_database()
        if backend == "postgres"
        else f"sqlite+aiosqlite:///{work / 'notify.db'}"
    )
    broker = await brokers.start(engine, work)
    fetch_wait = brokers.fetch_wait_ms(broker, fetch_max_wait_ms, TANSU_FETCH_MAX_WAIT_MS)
    receiver = await WebhookReceiver().start()
    receiver.secrets = [await prepare(db_url, receiver.url)]
    kafka = KafkaSettings.model_validate(
        {
            "bootstrap_servers": broker.bootstrap,
            "partitions": partitions,
            **brokers.client_settings(broker, fetch_wait),
        }
    )
    topic = topics.internal(ORGNR)
    await ensure_topics(kafka, [topic], client_id="bench-admin")
    # The broker's own process: Tansu, or the JVM that runs Apache Kafka (started directly,
    # not through a shell, so its CPU time is all of the broker's threads).
    assert broker.process is not None
    broker_pid = broker.process.pid
    worker = spawn_worker(worker_env(db_url, work, broker, fetch_wait), work / "worker.log")
    producer = Producer(kafka, "bench-referral")
    await producer.start()
    memory: list[tuple[float, float]] = []
    broker_cpu: list[tuple[float, float]] = []  # (seconds into the run, broker CPU seconds)
    sent_at: dict[str, float] = {}
    event_of: dict[str, str] = {}  # referral id -> event id
    load_start = os.getloadavg()

    async def send(n: int) -> None:
        records = []
        for _ in range(n):
            rid = str(uuid.uuid4())
            payload = ReferralReceivedV1(
                referral_id=rid,
                kind="kontaktbegaran",
                unit_id=UNIT,
                sender_orgnr="232100-0065",
                received_at=dt.datetime.now(dt.UTC),
            )
            event = CloudEvent(
                source=f"urn:vardkedja:{ORGNR.replace('-', '')}:referral",
                type=REFERRAL_RECEIVED_V1,
                partitionkey=rid,
                data=payload.model_dump(mode="json"),
            )
            records.append(signed(event, topic))
            sent_at[rid] = time.time()
            event_of[rid] = event.id
        results = await producer.send_ordered(records)
        assert not [r for r in results if isinstance(r, BaseException)]

    try:
        # Warm up: the worker joins its group and delivers a first webhook.
        await send(1)
        started = time.monotonic()
        while not receiver.received:
            if worker.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError(f"the worker did not start; see {work / 'worker.log'}")
            await asyncio.sleep(0.1)
        receiver.received.clear()
        cpu_start = cpu_seconds(worker.pid)
        bench_cpu_start = time.process_time()

        total = int(rate * seconds)
        tick = 0.01
        start = time.monotonic()
        sent = 0
        next_sample = start
        while sent < total:
            now = time.monotonic()
            if now >= next_sample:
                memory.append((round(now - start, 1), round(rss_mb(worker.pid), 1)))
                broker_cpu.append((now - start, cpu_seconds(broker_pid)))
                next_sample += 1.0
            due = min(total, int((now - start) * rate) + 1)
            if due > sent:
                await send(due - sent)
                sent = due
            await asyncio.sleep(tick)
        send_seconds = time.monotonic() - start
        drain_start = time.monotonic()
        while len(receiver.received) < total and time.monotonic() - drain_start < 120:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        memory.append((round(time.monotonic() - start, 1), round(rss_mb(worker.pid), 1)))
        cpu = cpu_seconds(worker.pid) - cpu_start
        bench_cpu = time.process_time() - bench_cpu_start
        wall = time.monotonic() - start
    finally:
        await producer.stop()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        await receiver.stop()
        await brokers.stop(broker)
        shutil.rmtree(work / "broker", ignore_errors=True)  # its data (broker.log stays)

    consumed_at = await consumed_times(db_url)
    fan_out, after_handler, end_to_end = [], [], []
    by_consumed: list[tuple[float, float]] = []
    for r in receiver.received:
        body = json.loads(r.body)
        created = dt.datetime.fromisoformat(body["data"]["created_at"]).timestamp()
        after_handler.append(r.at - created)
        subject = body["data"]["subject_id"]
        if subject in event_of and event_of[subject] in consumed_at:
            fan_out.append(r.at - consumed_at[event_of[subject]])
            by_consumed.append((consumed_at[event_of[subject]], fan_out[-1]))
        if subject in sent_at:
            end_to_end.append(r.at - sent_at[subject])
    ids = [r.webhook_id for r in receiver.received]
    if backend == "postgres":
        await drop_pg_database(db_url)
    rss = [m for _t, m in memory]
    third = max(1, len(rss) // 3)
    return {
        "backend": backend,
        "broker": brokers.info(broker),
        "rate": rate,
        "seconds": seconds,
        "partitions": partitions,
        "fetch_max_wait_ms": fetch_wait,
        "events": total,
        "send_seconds": round(send_seconds, 2),
        "webhooks_received": len(ids),
        "duplicates": len(ids) - len(set(ids)),
        # Events without a verified webhook when the bench stopped waiting.
        "lost": total - len({r.webhook_id for r in receiver.received if r.verified_with}),
        "signature_verified": sum(1 for r in receiver.received if r.verified_with),
        "worker_cpu_ms_per_event": round(cpu * 1000 / max(1, total), 2),
        "worker_cpu_share": round(cpu / wall, 2),
        # This process: the publisher and the receiver (which verifies every signature).
        # Near 1.0 it, not the worker, sets the pace.
        "bench_cpu_share": round(bench_cpu / wall, 2),
        # The broker's process (Tansu, or Apache Kafka's JVM). Tansu's memory engine costs
        # more per fetch the more batches a partition holds: its share rising from the first
        # to the last third is the broker's, not the worker's.
        "broker_cpu_share_by_third": share_by_third(broker_cpu),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "fan_out_ms": summary_ms(fan_out),
        "fan_out_note": "event consumed (inbox_event.received_at) -> signed webhook received",
        "timeline": timeline(by_consumed),
        "timeline_note": "per second of consumption: events consumed then, their fan-out",
        "after_handler_ms": summary_ms(after_handler),
        "after_handler_note": "notification made (created_at) -> signed webhook at the receiver",
        "worker_rss_mb": {
            "first_third_mean": round(sum(rss[:third]) / third, 1),
            "last_third_mean": round(sum(rss[-third:]) / third, 1),
            # Stable = no growth once warm: the last quarter against the second.
            "second_quarter_mean": quarter_mean(rss, 1),
            "last_quarter_mean": quarter_mean(rss, 3),
            "max": max(rss),
            "samples": memory,
        },
        "end_to_end_ms": summary_ms(end_to_end),
        "end_to_end_note": "event sent to Kafka -> signed webhook at the receiver",
    }


async def consumed_times(db_url: str) -> dict[str, float]:
    """When the worker consumed each event: its inbox row's ``received_at`` (epoch seconds)."""
    from services.notify.models import infra
    from shared.data.db import Database

    db = Database(db_url)
    try:
        async with db.sessionmaker() as session:
            inbox = infra.inbox
            rows = await session.execute(select(inbox.c.event_id, inbox.c.received_at))
            return {str(event_id): at.timestamp() for event_id, at in rows}
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        help=f"consumers' fetch wait (Tansu: {TANSU_FETCH_MAX_WAIT_MS} ms, as Tansu answers "
        "only when it expires; Apache Kafka: the broker's client setting)",
    )
    brokers.add_argument(parser)
    args = parser.parse_args()
    backends = args.backend or (["sqlite", "postgres"] if POSTGRES else ["sqlite"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        r = asyncio.run(
            run(
                backend,
                args.rate,
                args.seconds,
                args.partitions,
                args.fetch_max_wait_ms,
                args.broker,
            )
        )
        (RESULTS / f"notify-{backend}.json").write_text(json.dumps(r, indent=2))
        f = r["fan_out_ms"]
        m = r["worker_rss_mb"]
        e = r["end_to_end_ms"]
        print(
            f"| {args.seconds:g} s | {backend} | {r['events']} | {r['webhooks_received']} | "
            f"{r['duplicates']} | {f['p50']} / {f['p99']} | {e['p50']} / {e['p99']} | "
            f"{r['worker_cpu_ms_per_event']} | {m['first_third_mean']} → "
            f"{m['last_third_mean']} (max {m['max']}) | "
            f"{r['load_average_start'][0]} → {r['load_average_end'][0]} |"
        )


if __name__ == "__main__":
    main()
