"""Benchmark of the event backbone: outbox → relay → Kafka → idempotent inbox.

Three processes on loopback, as in production: a *writer* (the API's side: one transaction
per event, state change + outbox row), the *relay* (the worker's outbox relay) and a
*consumer* (another member's worker: inbox + effect in one transaction). The writer runs at
a fixed rate for a fixed time; the consumer records, per event, the time from the writer's
commit to the effect's commit. The same run measures the floor: a raw Kafka round trip on
the same broker and a raw database commit on the same database.

    make bench            # SQLite; PostgreSQL too when reachable
    python -m bench.backbone --rate 200 --seconds 30 --backend sqlite

Writes bench/results/backbone-<backend>.json and prints a markdown summary. Figures, not
pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from bench.stats import summary_ms, timeline
from tests.conftest import POSTGRES, create_pg_database, drop_pg_database, make_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# ---------------------------------------------------------------- roles (child processes)


def _settings(db_url: str, bootstrap: str) -> Any:
    return make_settings(db_url=db_url, bootstrap=bootstrap, dead_letter_after=5)


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
        latencies.append((dt.datetime.now(dt.UTC) - delivery.event.time).total_seconds())
        written_at.append(delivery.event.time.timestamp())

    consumer = h.consumer(f"bench-{uuid.uuid4().hex[:6]}", on_applied=applied)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, consumer.stop)
    await consumer.run()
    effects = await h.effects()
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


async def floor_kafka(bootstrap: str, n: int = 300) -> dict[str, float]:
    """Produce one record and wait until an already-assigned consumer receives it."""
    from shared.kafka import Consumer, OutgoingRecord, Producer, ensure_topics

    k = make_settings(bootstrap=bootstrap).kafka
    topic = f"bench.floor.{uuid.uuid4().hex[:8]}"
    await ensure_topics(k, [topic])
    producer = Producer(k, "floor")
    consumer = Consumer(k, topics=[topic], group_id=f"floor-{uuid.uuid4().hex[:6]}", client_id="f")
    await producer.start()
    await consumer.start()
    rtts: list[float] = []
    try:
        for _ in range(20):  # let the consumer join the group
            await consumer.poll(100)
        for i in range(n):
            t0 = time.perf_counter()
            await producer.send_ordered([OutgoingRecord(topic, b"k", str(i).encode(), [])])
            got = False
            while not got:
                for records in (await consumer.poll(500)).values():
                    got = got or any(r.value == str(i).encode() for r in records)
            rtts.append(time.perf_counter() - t0)
    finally:
        await consumer.stop()
        await producer.stop()
    return summary_ms(rtts)


async def floor_db(db_url: str, n: int = 500) -> dict[str, float]:
    """One INSERT and COMMIT per transaction, as the writer does (without the outbox row)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from shared.db import Database

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


def _spawn(*args: str, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.backbone", "--role", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "VK_LOG_LEVEL": "WARNING"},
    )


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


async def run_backend(backend: str, rate: float, seconds: float) -> dict[str, Any]:
    from shared.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(port=free_port())
    broker.start()
    tmp = RESULTS / f".tmp-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True, exist_ok=True)
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
            "kafka_round_trip_ms": await floor_kafka(broker.bootstrap),
            "db_commit_ms": await floor_db(await new_db("floor")),
        }
        # The sender's schema exists before the relay starts.
        from tests.helpers.harness import Harness

        await Harness(_settings(sender_db, broker.bootstrap), topic).setup()
        await Harness(_settings(receiver_db, broker.bootstrap), topic).setup()
        out = tmp / "consumer.json"
        consumer = _spawn(
            "consumer", receiver_db, broker.bootstrap, topic, str(out), log=tmp / "c.log"
        )
        relay = _spawn("relay", sender_db, broker.bootstrap, topic, log=tmp / "r.log")
        await asyncio.sleep(4)  # consumer joins its group (the embedded broker holds joins)
        started = time.monotonic()
        writer = _spawn(
            "writer",
            sender_db,
            broker.bootstrap,
            topic,
            str(rate),
            str(seconds),
            log=tmp / "w.log",
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
        from sqlalchemy import func, select

        from shared.db import Database
        from tests.helpers.harness import applied

        rdb = Database(receiver_db)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            async with rdb.sessionmaker() as s:
                n = int(await s.scalar(select(func.count()).select_from(applied)) or 0)
            if n >= written:
                break
            await asyncio.sleep(0.2)
        drained = time.monotonic() - started
        await rdb.dispose()
        for p in (relay, consumer):
            p.send_signal(signal.SIGTERM)
        for p in (relay, consumer):
            p.wait(60)
        result = json.loads(out.read_text())
        lat = result["latencies"]
        return {
            "backend": backend,
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
        broker.stop()
        for url in created:
            await drop_pg_database(url)
        for f in tmp.glob("*"):
            f.unlink()
        tmp.rmdir()


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
        r = asyncio.run(run_backend(backend, args.rate, args.seconds))
        r["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        (RESULTS / f"backbone-{backend}.json").write_text(json.dumps(r, indent=2))
        results.append(r)
    table = markdown(results)
    (RESULTS / "backbone.md").write_text(
        f"# Backbone benchmark\n\n`python -m bench.backbone --rate {args.rate:g} "
        f"--seconds {args.seconds:g}`\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
