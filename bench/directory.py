"""Benchmark of the directory: replica rebuild and search over a 20,000-unit federation.

1. **Replica rebuild.** The synthetic directory (all 290 kommuner and 21 regions,
   ``bench/directory_synthetic.py``) is produced onto ``vardkedja.directory`` of a private
   broker (Apache Kafka, one KRaft node; ``--broker tansu``: the embedded Tansu broker) as
   the owners' directories would publish it; then a real directory worker
   process starts with an empty database and the time until its replica holds every unit is
   measured (issue 3 target: <= 30 s for 20,000 units).
2. **Search.** A real directory API process serves that replica; a client sends searches at a
   fixed rate (open loop: a slow answer does not delay the next request) for a fixed time,
   with a mix of Swedish queries and filters. Latency percentiles and errors are reported
   (target: p99 <= 20 ms at 200 requests/s). The API builds its index when it starts; the
   time from its readiness to the first answered search is reported separately, and so is
   the resident memory of the API and worker processes after the run.

    make bench-directory            # or: python -m bench.directory --units 20000 --rate 200
    python -m bench.directory --units 20000 --rate 200 --broker tansu

Writes bench/results/directory-<backend>.json and prints a markdown line. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench import brokers
from bench.directory_synthetic import as_events, generate
from bench.stats import summary_ms, timeline
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker, Engine
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import UNIT_CHANGED_V1
from shared.messaging.kafka import Producer, ensure_topics
from shared.messaging.processes import free_port
from tests.conftest import POSTGRES, create_pg_database, drop_pg_database, make_settings

# Imported at module level: tests.conftest probes PostgreSQL with asyncio.run.
from tests.helpers.signed import signed

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUERIES = [
    "boendestöd",
    "beroende",
    "beroendemottagning",
    "psykiatri",
    "unga vuxna",
    "spel",
    "socialtjänst",
    "anhörig",
    "läkemedelsassisterad",
    "Växjö",
    "remissport",
    "sysselsättning",
    "HVB",
    "abstinens",
    "motivation",
    "kontaktbegäran",
    "stöd",
    "mottagning",
]
TANSU_FETCH_MAX_WAIT_MS = 20  # Tansu answers a fetch only when the wait expires


def synthetic_trust(work: Path) -> Path:
    """A trust list of the synthetic federation (every kommun and region that owns units,
    and Region Kronoberg whose replica reads them): each unit event is signed by its owner
    and checked by the replica, as in production (ADR 0020)."""
    from bench.directory_synthetic import members
    from shared.messaging.trust_keys import ensure_members

    folder = work / "keys"
    listed = {m.orgnr: m.name for m in members()}
    listed.setdefault("232100-0065", "Region Kronoberg")
    ensure_members(folder, listed.items())
    return folder


async def produce(broker: Broker, events: list[dict[str, Any]], trust: Path) -> float:
    settings = make_settings(bootstrap=broker.bootstrap, **brokers.client_settings(broker)).kafka
    await ensure_topics(settings, [topics.DIRECTORY])
    producer = Producer(settings, "bench-directory")
    await producer.start()
    t0 = time.perf_counter()
    try:
        for i in range(0, len(events), 1000):
            records = []
            for payload in events[i : i + 1000]:
                ev = CloudEvent(
                    source=f"urn:vardkedja:{payload['owner_orgnr'].replace('-', '')}:directory",
                    type=UNIT_CHANGED_V1,
                    subject=payload["unit_id"],
                    partitionkey=payload["unit_id"],
                    aggversion=1,
                    data=payload,
                )
                records.append(signed(ev, topics.DIRECTORY, directory=trust))
            results = await producer.send_ordered(records)
            assert not [r for r in results if isinstance(r, BaseException)]
    finally:
        await producer.stop()
    return time.perf_counter() - t0


def _rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _spawn(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vardkedja.cli", role, "directory"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def replica_count(url: str) -> int:
    from sqlalchemy import func, select

    from services.directory.models import ReplicaUnit
    from shared.data.db import Database

    db = Database(url)
    try:
        async with db.sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(ReplicaUnit)) or 0)
    finally:
        await db.dispose()


async def load(port: int, token: str, rate: float, seconds: float) -> dict[str, Any]:
    rng = random.Random(7)
    latencies: list[float] = []
    started_at: list[float] = []
    errors = 0
    kommuner = ["0780", "0764", "0180", "1480", "1280", "2085", "0380", "2480"]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=10,
        limits=limits,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:

        async def one(params: dict[str, Any]) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                r = await client.get("/v1/search", params=params)
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)
            started_at.append(t0)

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            params: dict[str, Any] = {"q": rng.choice(QUERIES), "limit": 20}
            if rng.random() < 0.5:
                params["kommunkod"] = rng.choice(kommuner)
            tasks.append(asyncio.create_task(one(params)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "requests": n,
        "errors": errors,
        "achieved_rate": round(n / elapsed, 1),
        "latency_ms": summary_ms(latencies),
        "timeline": timeline(zip(started_at, latencies, strict=True)),
    }


async def run(
    backend: str, units: int, rate: float, seconds: float, engine: Engine = brokers.DEFAULT
) -> dict[str, Any]:
    work = RESULTS / f".tmp-dir-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True, exist_ok=True)
    broker = await brokers.start(engine, work)
    url = (
        f"sqlite+aiosqlite:///{work / 'directory.db'}"
        if backend == "sqlite"
        else await create_pg_database()
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        events = as_events(generate(units))
        generated = time.perf_counter() - t0
        trust = synthetic_trust(work)
        produced = await produce(broker, events, trust)
        port = free_port()
        env = {
            **os.environ,
            "VK_ENV": "development",
            "VK_SERVICE": "directory",
            "VK_MEMBER__ORGNR": "232100-0065",
            "VK_MEMBER__NAME": "Region Kronoberg",
            "VK_MEMBER__KIND": "region",
            "VK_DATABASE_URL": url,
            "VK_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
            **brokers.client_env(
                broker, brokers.fetch_wait_ms(broker, None, TANSU_FETCH_MAX_WAIT_MS)
            ),
            "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000",
            "VK_HTTP__PORT": str(port),
            "VK_LOG_LEVEL": "WARNING",
            "VK_TRUST__DIR": str(trust.resolve()),
        }
        from services.directory.spec import SPEC
        from shared.data.migrations import upgrade

        await upgrade(SPEC.migrations_dir, url)
        started = time.perf_counter()
        procs.append(_spawn("worker", {**env, "VK_AUTO_MIGRATE": "false"}, work / "w.log"))
        while await replica_count(url) < units:
            if procs[0].poll() is not None:
                raise RuntimeError((work / "w.log").read_text()[-2000:])
            if time.perf_counter() - started > 600:
                raise TimeoutError("replica rebuild took more than 600 s")
            await asyncio.sleep(0.25)
        rebuild = time.perf_counter() - started

        procs.append(_spawn("serve", {**env, "VK_AUTO_MIGRATE": "false"}, work / "a.log"))
        token = mint_token(sub="bench", org="232100-0065", scopes=["directory:read"])
        async with httpx.AsyncClient(timeout=120) as client:
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            t1 = time.perf_counter()
            first = await client.get(
                f"http://127.0.0.1:{port}/v1/search",
                params={"q": "boendestöd"},
                headers={"Authorization": f"Bearer {token}"},
            )
            first_search = time.perf_counter() - t1
            assert first.status_code == 200, first.text
            total = first.json()["total"]
        result = await load(port, token, rate, seconds)
        return {
            "api_rss_mb": _rss_mb(procs[1].pid),
            "worker_rss_mb": _rss_mb(procs[0].pid),
            "backend": backend,
            "broker": brokers.info(broker),
            "units": units,
            "generate_s": round(generated, 2),
            "produce_s": round(produced, 2),
            "replica_rebuild_s": round(rebuild, 2),
            "first_search_builds_index_s": round(first_search, 2),
            "matches_for_boendestod": total,
            "search": result,
            "target": {"rebuild_s": 30, "search_p99_ms": 20, "rate": rate},
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        await brokers.stop(broker)
        if backend == "postgres":
            await drop_pg_database(url)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    brokers.add_argument(parser)
    args = parser.parse_args()
    backends = args.backend or (["sqlite", "postgres"] if POSTGRES else ["sqlite"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        r = asyncio.run(run(backend, args.units, args.rate, args.seconds, args.broker))
        (RESULTS / f"directory-{backend}.json").write_text(json.dumps(r, indent=2))
        s = r["search"]["latency_ms"]
        print(
            f"| {backend} | {r['units']} units | rebuild {r['replica_rebuild_s']} s | "
            f"index build {r['first_search_builds_index_s']} s | search at "
            f"{r['search']['achieved_rate']}/s p50 {s['p50']} ms p99 {s['p99']} ms | "
            f"errors {r['search']['errors']} | API RSS {r['api_rss_mb']} MB |"
        )


if __name__ == "__main__":
    main()
