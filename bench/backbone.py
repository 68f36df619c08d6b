"""Benchmark of the event backbone: outbox → relay → Kafka → idempotent inbox.

Three processes on loopback, as in production: a *writer* (the API's side: one transaction
per event, state change + outbox row), the *relay* (the worker's outbox relay) and a
*consumer* (another member's worker: inbox + effect in one transaction). The writer runs at
a fixed rate for a fixed time; the consumer records, per event, the time from the writer's
commit to the effect's commit. The same run measures the floor: a raw Kafka round trip on
the same broker and a raw database commit on the same database. The broker is Apache Kafka
(one KRaft node) unless ``--broker tansu`` chooses the embedded Tansu broker.

    make bench            # SQLite; PostgreSQL too when reachable
    python -m bench.backbone --rate 200 --seconds 30 --backend sqlite
    python -m bench.backbone --rate 200 --seconds 30 --broker tansu

Writes bench/results/backbone-<backend>.json and prints a markdown summary. Figures, not
pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import brokers

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from bench.stats import summary_ms, timeline
from shared.messaging.broker import Broker, Engine
from tests.conftest import POSTGRES, create_pg_database, drop_pg_database, make_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WARM_UP = "warm-up"  # the key of the event that proves the pipeline up before the run


# ---------------------------------------------------------------- roles (child processes)


def _settings(db_url: str, bootstrap: str, client: dict[str, str] | None = None) -> Any:
    """A role's settings; ``client`` is what the broker needs of its clients, by default as
    the parent passed it to the role's process (``brokers.client_env``)."""
    if client is None:
        client = {
            name.removeprefix("VK_KAFKA__").lower(): value
            for name, value in os.environ.items()
            if name.startswith("VK_KAFKA__") and name != "VK_KAFKA__BOOTSTRAP_SERVERS"
        }
    return make_settings(db_url=db_url, bootstrap=bootstrap, dead_letter_after=5, **client)


async def role_writer(db_url: str, bootstrap: str, topic: str, rate: float, seconds: float) -> None:
    from tests.helpers.harness import Harness

    h = await Harness(_settings(db_url, bootstrap), topic).setup()
    total = int(rate * seconds)
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await h.write(f"case-{i % 50}", i // 50)
    print(json.dumps({"written": total, "seconds": time.monotonic() - start}), flush=True)


async def role_relay(db_url: str, bootstrap: str, topic: str) -> None:
    from tests.helpers.harness import Harness

    h = Harness(_settings(db_url, bootstrap), topic)
    relay = h.relay()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, relay.stop)
    await relay.run()
    print(json.dumps({"published": relay.published, "replays": relay.replays}), flush=True)


async def role_consumer(db_url: str, bootstrap: str, topic: str, out: str) -> None:
    import datetime as dt

    from tests.helpers.harness import Harness

    h = await Harness(_settings(db_url, bootstrap), topic).setup()
    latencies: list[float] = []
    written_at: list[float] = []

    def applied(delivery: Any) -> None:
        if delivery.payload.key == WARM_UP:
            return
        latencies.append((dt.datetime.now(dt.UTC) - delivery.event.time).total_seconds())
        written_at.append(delivery.event.time.timestamp())

    consumer = h.consumer(f"bench-{uuid.uuid4().hex[:6]}", on_applied=applied)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, consumer.stop)
    await consumer.run()
    effects = [e for e in await h.effects() if e[0] != WARM_UP]
    Path(out).write_text(  # noqa: ASYNC240 - once, at exit
        json.dumps(
            {
                "latencies": latencies,
                "written_at": written_at,
                "counts": consumer.counts,
                "effects": len(effects),
                "distinct": len(set(effects)),
            }
        )
    )


# ------------------------------------------------------------------- floor measurements


async def floor_kafka(broker: Broker, n: int = 300) -> dict[str, float]:
    """Produce one record and wait until an already-assigned consumer receives it, on
    ``broker`` with the client settings it needs (the benchmarks' own)."""
    from shared.messaging.kafka import Consumer, OutgoingRecord, Producer, ensure_topics

    k = make_settings(bootstrap=broker.bootstrap, **brokers.client_settings(broker)).kafka
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"
    await ensure_topics(k, [topic])
    producer = Producer(k, "floor")
    consumer = Consumer(k, topics=[topic], group_id=f"floor-{uuid.uuid4().hex[:6]}", client_id="f")
    await producer.start()
    await consumer.start()
    rtts: list[float] = []

    async def round_trip(value: bytes, within: float) -> float:
        t0 = time.perf_counter()
        await producer.send_ordered([OutgoingRecord(topic, b"k", value, [])])
        while not any(
            r.value == value for records in (await consumer.poll(500)).values() for r in records
        ):
            if time.perf_counter() - t0 > within:
                raise TimeoutError(f"the floor's record did not come back within {within:.0f} s")
        return time.perf_counter() - t0

    try:
        # Not timed: the consumer joins its group and is assigned the partition (it reads
        # from the earliest offset, so this record comes back once it has).
        await round_trip(b"warm-up", within=120)
        for i in range(n):
            rtts.append(await round_trip(str(i).encode(), within=60))
    finally:
        await consumer.stop()
        await producer.stop()
    return summary_ms(rtts)


async def floor_db(db_url: str, n: int = 500) -> dict[str, float]:
    """One INSERT and COMMIT per transaction, as the writer does (without the outbox row)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from shared.data.db import Database

    md = MetaData()
    t = Table("floor", md, Column("id", Integer, primary_key=True), Column("v", String(20)))
    db = Database(db_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(md.create_all)
    times: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        async with db.transaction() as s:
            await s.execute(t.insert().values(v=str(i)))
        times.append(time.perf_counter() - t0)
    await db.dispose()
    return summary_ms(times)


# ------------------------------------------------------------------------- orchestration


def _spawn(*args: str, log: Path, broker: Broker) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.backbone", "--role", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "VK_LOG_LEVEL": "WARNING", **brokers.client_env(broker)},
    )


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


async def _applied(db_url: str) -> int:
    """Effects the consumer has committed (the warm-up's included)."""
    from sqlalchemy import func, select

    from shared.data.db import Database
    from tests.helpers.harness import applied

    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(applied)) or 0)
    finally:
        await db.dispose()


async def run_backend(
    backend: str, rate: float, seconds: float, engine: Engine = brokers.DEFAULT
) -> dict[str, Any]:
    tmp = RESULTS / f".tmp-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True, exist_ok=True)
    broker = await brokers.start(engine, tmp)
    created: list[str] = []

    async def new_db(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        url = await create_pg_database()
        created.append(url)
        return url

    try:
        sender_db, receiver_db = await new_db("sender"), await new_db("receiver")
        topic = f"bench.backbone.{uuid.uuid4().hex[:8]}"
        floor = {
            "kafka_round_trip_ms": await floor_kafka(broker),
            "db_commit_ms": await floor_db(await new_db("floor")),
        }
        # The sender's schema exists before the relay starts.
        from tests.helpers.harness import Harness

        client = brokers.client_settings(broker)
        sender = await Harness(_settings(sender_db, broker.bootstrap, client), topic).setup()
        await Harness(_settings(receiver_db, broker.bootstrap, client), topic).setup()
        out = tmp / "consumer.json"
        consumer = _spawn(
            "consumer",
            receiver_db,
            broker.bootstrap,
            topic,
            str(out),
            log=tmp / "c.log",
            broker=broker,
        )
        relay = _spawn(
            "relay", sender_db, broker.bootstrap, topic, log=tmp / "r.log", broker=broker
        )
        # Not timed: one event through the whole pipeline, so that the run starts with the
        # relay publishing and the consumer in its group (not counted in the results).
        await sender.write(WARM_UP, 0)
        deadline = time.monotonic() + 120
        while await _applied(receiver_db) < 1:
            for name, p in (("relay", relay), ("consumer", consumer)):
                if p.poll() is not None:
                    raise RuntimeError(f"{name} died: {(tmp / (name[0] + '.log')).read_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError("the warm-up event was not applied within 120 s")
            await asyncio.sleep(0.1)
        await sender.db.dispose()
        started = time.monotonic()
        writer = _spawn(
            "writer",
            sender_db,
            broker.bootstrap,
            topic,
            str(rate),
            str(seconds),
            log=tmp / "w.log",
            broker=broker,
        )
        rss: dict[str, int] = {"relay": 0, "consumer": 0, "writer": 0}
        while writer.poll() is None:
            for name, p in (("relay", relay), ("consumer", consumer)):
                if p.poll() is not None:
                    raise RuntimeError(f"{name} died: {(tmp / (name[0] + '.log')).read_text()}")
            for name, p in (("relay", relay), ("consumer", consumer), ("writer", writer)):
                rss[name] = max(rss[name], _rss_kb(p.pid))
            await asyncio.sleep(0.5)
        if writer.returncode != 0:
            raise RuntimeError(f"writer failed: {(tmp / 'w.log').read_text()[-2000:]}")
        written = int(rate * seconds)
        # Drain: wait until the consumer's database holds every effect (or 120 s).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if await _applied(receiver_db) >= written + 1:  # the warm-up's effect is one
                break
            await asyncio.sleep(0.2)
        drained = time.monotonic() - started
        for p in (relay, consumer):
            p.send_signal(signal.SIGTERM)
        for p in (relay, consumer):
            p.wait(60)
        result = json.loads(out.read_text())
        lat = result["latencies"]
        return {
            "backend": backend,
            "broker": brokers.info(broker),
            "rate_per_s": rate,
            "seconds": seconds,
            "written": written,
            "applied": result["effects"],
            "lost": written - result["distinct"],
            "duplicated_effects": result["effects"] - result["distinct"],
            "redeliveries_dropped": result["counts"].get("duplicate", 0),
            "throughput_per_s": round(written / drained, 1),
            "end_to_end_ms": summary_ms(lat),
            "timeline": timeline(zip(result["written_at"], lat, strict=True)),
            "timeline_note": "per second of writing: events written then, their end-to-end",
            "floor": floor,
            "ratio_p50_to_kafka_floor": round(
                summary_ms(lat)["p50"] / max(0.01, floor["kafka_round_trip_ms"]["p50"]), 2
            ),
            "max_rss_mb": {k: round(v / 1024, 1) for k, v in rss.items()},
        }
    finally:
        await brokers.stop(broker)
        for url in created:
            await drop_pg_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | rate/s | events | lost | dup. effects | e2e p50 / p99 ms | "
        "Kafka RTT p50 / p99 ms | DB commit p50 ms | p50 ÷ Kafka floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e, k, d = r["end_to_end_ms"], r["floor"]["kafka_round_trip_ms"], r["floor"]["db_commit_ms"]
        lines.append(
            f"| {r['backend']} | {r['rate_per_s']:.0f} | {r['written']} | {r['lost']} | "
            f"{r['duplicated_effects']} | {e['p50']} / {e['p99']} | {k['p50']} / {k['p99']} | "
            f"{d['p50']} | {r['ratio_p50_to_kafka_floor']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    brokers.add_argument(parser)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "writer":
            asyncio.run(role_writer(rest[0], rest[1], rest[2], float(rest[3]), float(rest[4])))
        elif role == "relay":
            asyncio.run(role_relay(rest[0], rest[1], rest[2]))
        else:
            asyncio.run(role_consumer(rest[0], rest[1], rest[2], rest[3]))
        return
    backends = args.backend or (["sqlite", "postgres"] if POSTGRES else ["sqlite"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for backend in backends:
        r = asyncio.run(run_backend(backend, args.rate, args.seconds, args.broker))
        r["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        (RESULTS / f"backbone-{backend}.json").write_text(json.dumps(r, indent=2))
        results.append(r)
    table = markdown(results)
    (RESULTS / "backbone.md").write_text(
        f"# Backbone benchmark\n\n`python -m bench.backbone --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --broker {args.broker}` on "
        f"{brokers.label(results[0]['broker'])}\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
