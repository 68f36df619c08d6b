"""Benchmark of referrals between two members, every process separate.

Region Kronoberg and Växjö kommun run directory, consent, referral and notify (API and worker
each: 16 processes) over Apache Kafka (one KRaft node; ``--broker tansu``: the embedded Tansu
broker), with the demo directory, as in
``tests/e2e/test_referral_federation.py``. A written consent is recorded at Region for each of
``--persons`` synthetic persons (and its copy waited for at Växjö); then Region's
Beroendemottagningen Växjö POSTs kontaktbegäran to Växjö's social-services intake (a named
recipient) at a fixed rate, open loop (a slow answer does not delay the next request; each
request is timed from when it was due), with an ``Idempotency-Key`` as a client would.

Measured, per referral, from the database rows after the run (one clock: loopback):

- **end to end**: from when the POST was due to ``incoming.received_at`` at Växjö (filed in
  the unit's worklist; the row commits in the same unit of work, a few ms later);
- from the sender's ``referral.created_at`` (after its consent decision) to the same;
- the POST's own latency, and the closed loop: until Region's recipient row says
  ``delivered`` (``recipient.updated_at``);
- the achieved rate, errors by status, lost (201 at Region, never filed at Växjö),
  undeliverable; the floor in the same run (a raw Kafka round trip on the same broker and a
  raw database commit, from ``bench/backbone.py``); RSS and CPU time of every process; with
  ``--profile``, py-spy samples of the busiest processes for 20 s in mid-run.

    make bench-referral                                   # 60 s at 200/s, SQLite (+ PostgreSQL)
    python -m bench.referral --rate 200 --seconds 300 --backend sqlite --profile
    python -m bench.referral --rate 20 --seconds 60 --backend sqlite --broker tansu

Writes bench/results/referral-<backend>.json and prints a markdown line. Figures only.
Targets (issue 5): >= 200 referrals/s for five minutes, p99 <= 250 ms, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bench import brokers
from bench.backbone import floor_db, floor_kafka
from bench.notify import cpu_seconds, rss_mb
from bench.stats import summary_ms, timeline
from services.consent.models import ConsentCopy
from services.referral.models import Incoming, Recipient, Referral
from shared.data.db import Database
from shared.messaging.broker import Engine

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from tests.conftest import ORG_REGION, ORG_VAXJO, POSTGRES, create_pg_database, drop_pg_database
from tests.e2e.test_referral_federation import (
    INTAKE,
    SENDER_UNIT,
    SERVICES,
    auth,
    demo_units,
    kontaktbegaran,
    synthetic_person,
    two_member_federation,
    unit_id,
    written_consent,
)
from vardkedja.federation import Federation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PROJECT = frozenset({"services", "shared"})
IN_FLIGHT = 64  # concurrent POSTs at most (the client's connections)
TARGET = {"rate_per_s": 200, "seconds": 300, "e2e_p99_ms": 250, "lost": 0}
# The federation's default, as `make run` has it on Tansu (which answers a fetch only when
# the wait expires); on Apache Kafka the consumers use the broker's client setting.
TANSU_FETCH_MAX_WAIT_MS = 100


async def count(db_url: str, stmt: Any) -> int:
    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            return int(await s.scalar(stmt) or 0)
    finally:
        await db.dispose()


async def record_consents(
    fed: Federation, client: httpx.AsyncClient, people: list[str], unit: str
) -> None:
    """A written consent per person at Region; waits until Växjö holds every copy."""
    region = fed.members[0]
    url = f"http://127.0.0.1:{region.port('consent')}/v1/consents"
    headers = auth(ORG_REGION, unit, ["consent:read", "consent:write"])
    gate = asyncio.Semaphore(8)

    async def one(person: str) -> None:
        async with gate:
            r = await client.post(url, json=written_consent(person), headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"consent: {r.status_code} {r.text[:300]}")

    await asyncio.gather(*(one(p) for p in people))
    copies = fed.database_url_for[(ORG_VAXJO, "consent")]
    deadline = time.monotonic() + 300
    while await count(copies, select(func.count()).select_from(ConsentCopy)) < len(people):
        if time.monotonic() > deadline:
            raise TimeoutError("the consent copies did not all reach Växjö within 300 s")
        await asyncio.sleep(0.5)


@dataclass
class Sent:
    """One POST: when it was due (wall clock), how long it took, and what it answered."""

    due: dt.datetime
    post_s: float = float("nan")
    status: int = 0
    task_id: str | None = None
    error: str | None = None


@dataclass
class Samples:
    """Per process: peak RSS and CPU seconds over the load."""

    rss_max: dict[str, float] = field(default_factory=dict)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)


async def load(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    rate: float,
) -> tuple[list[Sent], float, float]:
    """POSTs ``bodies`` at ``rate`` per second, open loop; returns them, the seconds it took
    to issue them and the seconds until every one was answered.

    At most ``IN_FLIGHT`` requests are on the wire; the rest wait here (httpcore's pool
    spends CPU quadratic in its queue, which made the generator the bottleneck), and that
    wait counts in their latency: each is timed from when it was due."""
    out: list[Sent] = []
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int, due: float, sent: Sent) -> None:
        async with gate:
            try:
                r = await client.post(
                    url, json=bodies[i], headers={**headers, "Idempotency-Key": f"b-{run}-{i}"}
                )
                sent.status = r.status_code
                if r.status_code == 201:
                    sent.task_id = r.json()["recipients"][0]["task_id"]
            except httpx.HTTPError as exc:
                sent.error = type(exc).__name__
        sent.post_s = time.perf_counter() - due

    tasks = []
    start = time.perf_counter()
    wall = time.time()
    for i in range(len(bodies)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        s = Sent(due=dt.datetime.fromtimestamp(wall + i / rate, dt.UTC))
        out.append(s)
        tasks.append(asyncio.create_task(one(i, due, s)))
    issued = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return out, issued, time.perf_counter() - start


async def sample(fed: Federation, samples: Samples, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for p in fed.procs:
            with contextlib.suppress(FileNotFoundError):
                samples.rss_max[p.name] = max(
                    samples.rss_max.get(p.name, 0.0), rss_mb(p.process.pid)
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def cpu_now(fed: Federation) -> dict[str, float]:
    return {p.name: cpu_seconds(p.process.pid) for p in fed.procs}


# ------------------------------------------------------------------------------ profiling


def summarise_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Where a py-spy ``raw`` (collapsed stacks) recording spent its samples: by package of
    the innermost frame (self time), and by function of this project anywhere on the stack
    (inclusive: e.g. how much of the process's time is spent under ``send_referral``)."""
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not stack or not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        own[_function(leaf)] += n
        packages[_package(leaf)] += n
        for name in {_function(f) for f in frames if _package(f) in PROJECT}:
            inclusive[name] += n

    def share(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(1, total), 1)) for k, v in c.most_common(top)]

    return {
        "samples": total,
        "self_by_package_pct": share(packages),
        "self_by_function_pct": share(own),
        "inclusive_project_function_pct": share(inclusive),
    }


def _function(frame: str) -> str:
    """``name (path/file.py:12)`` -> ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rsplit(':', 1)[0]).name})" if where else name


def _package(frame: str) -> str:
    """The top-level package of a frame (py-spy names files relative to ``sys.path``)."""
    where = frame.partition(" (")[2].rsplit(":", 1)[0]
    where = where.split("site-packages/", 1)[-1]
    return where.split("/", 1)[0].removesuffix(".py") or "?"


async def profile(fed: Federation, busiest: list[str], seconds: int, out: Path) -> dict[str, Any]:
    """py-spy samples (non-blocking, 50 Hz) of the ``busiest`` processes at once."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    procs = {}
    for p in fed.procs:
        if p.name in busiest:
            raw = out / f"{p.name}.raw"
            procs[p.name] = (
                raw,
                await asyncio.create_subprocess_exec(
                    spy, "record", "-p", str(p.process.pid), "-d", str(seconds), "-r", "50",
                    "--nonblocking", "-f", "raw", "-o", str(raw),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ),
            )  # fmt: skip
    result = {}
    for name, (raw, proc) in procs.items():
        await proc.wait()
        result[name] = summarise_profile(raw) if raw.exists() else {"error": proc.returncode}
    return result


# ------------------------------------------------------------- latency inside the services

SERVER_ROUTES = {
    "referral": ("POST", "/v1/referrals"),
    "consent": ("POST", "/v1/decisions"),
}


async def server_latencies(fed: Federation, client: httpx.AsyncClient) -> dict[str, Any]:
    """Each API's own view of its time per request (its ``vk_http_request_duration_seconds``
    histogram, warm-up included), p50/p99 interpolated within the buckets: set beside the
    client's figures, the difference is time spent waiting to be read (a busy machine)."""
    out: dict[str, Any] = {}
    for member in fed.members:
        for service, (method, route) in SERVER_ROUTES.items():
            url = f"http://127.0.0.1:{member.port(service)}/metrics"
            text = (await client.get(url)).text
            buckets = histogram(text, "vk_http_request_duration_seconds", method, route)
            if buckets and buckets[-1][1]:
                waits = counters(text, ("vk_sqlite_lock_waits", "vk_sqlite_lock_wait_seconds"))
                out[f"{member.digits}-{service} {method} {route}"] = {
                    "n": int(buckets[-1][1]),
                    "p50_ms": round(1000 * bucket_quantile(buckets, 0.5), 1),
                    "p99_ms": round(1000 * bucket_quantile(buckets, 0.99), 1),
                    "sqlite_lock_waits": int(waits["vk_sqlite_lock_waits"]),
                    "sqlite_lock_wait_s": round(waits["vk_sqlite_lock_wait_seconds"], 2),
                }
    return out


def histogram(text: str, name: str, method: str, route: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one histogram's series, in the exposition text."""
    found: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name != name.removesuffix("_seconds") and family.name != name:
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_bucket")
                and labels.get("method") == method
                and labels.get("route") == route
            ):
                found.append((float(labels["le"]), sample.value))
    return sorted(found)


def counters(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The values of unlabelled counters in the exposition text (0 when absent)."""
    found = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name in found:
            found[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return found


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' ``histogram_quantile``: linear within the bucket holding the rank."""
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            share = (rank - below) / (cumulative - below) if cumulative > below else 0.0
            return lower + (upper - lower) * share
        lower, below = upper, cumulative
    return lower


# --------------------------------------------------------------------------- the run


async def collect(fed: Federation, tasks: list[str]) -> dict[str, dict[str, Any]]:
    """Per task: the sender's created_at, recipient status and updated_at; the receiver's
    received_at (None if it was never filed)."""
    rows: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    region = Database(fed.database_url_for[(ORG_REGION, "referral")])
    vaxjo = Database(fed.database_url_for[(ORG_VAXJO, "referral")])
    try:
        async with region.sessionmaker() as s:
            q = select(Recipient.id, Recipient.status, Recipient.updated_at, Referral.created_at)
            q = q.join(Referral, Referral.id == Recipient.referral_id)
            for task, status, updated, created in await s.execute(q):
                if task in rows:
                    rows[task].update(status=status, updated_at=updated, created_at=created)
        async with vaxjo.sessionmaker() as s:
            for task, received in await s.execute(select(Incoming.id, Incoming.received_at)):
                if task in rows:
                    rows[task]["received_at"] = received
    finally:
        await region.dispose()
        await vaxjo.dispose()
    return rows


async def wait_drained(fed: Federation, expected: int, stall_s: float = 60.0) -> tuple[float, bool]:
    """Waits until Växjö filed ``expected`` referrals and Region heard back about each,
    or until neither count moved for ``stall_s``; returns the seconds and whether done."""
    t0 = last_move = time.monotonic()
    region = fed.database_url_for[(ORG_REGION, "referral")]
    vaxjo = fed.database_url_for[(ORG_VAXJO, "referral")]
    filed = select(func.count()).select_from(Incoming)
    settled = select(func.count()).select_from(Recipient).where(Recipient.status != "sent")
    seen = (-1, -1)
    while time.monotonic() - last_move < stall_s:
        now = (await count(vaxjo, filed), await count(region, settled))
        if min(now) >= expected:
            return time.monotonic() - t0, True
        if now != seen:
            seen, last_move = now, time.monotonic()
        await asyncio.sleep(1.0)
    return time.monotonic() - t0, False


async def run(
    backend: str,
    rate: float,
    seconds: float,
    n_persons: int,
    with_profile: bool,
    fetch_max_wait_ms: int | None = None,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    work = RESULTS / f".tmp-referral-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True, exist_ok=True)
    broker = await brokers.start(engine, work)
    fetch_wait = brokers.fetch_wait_ms(broker, fetch_max_wait_ms, TANSU_FETCH_MAX_WAIT_MS)
    created: list[str] = []

    async def new_db(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{work / f'{name}.db'}"
        created.append(await create_pg_database())
        return created[-1]

    urls = {(o, s): await new_db(f"{s}-{o}") for o in (ORG_REGION, ORG_VAXJO) for s in SERVICES}
    fed = two_member_federation(
        urls,
        work / "var",
        broker.bootstrap,
        fetch_max_wait_ms=fetch_wait,
        VK_LOG_LEVEL="WARNING",
        **brokers.client_env(broker, fetch_wait),
    )
    try:
        await asyncio.to_thread(fed.start)
        await fed.wait_ready(timeout=300)
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            replica = await demo_units(fed, client)
            sender_unit = unit_id(replica, ORG_REGION, SENDER_UNIT)
            intake = unit_id(replica, ORG_VAXJO, INTAKE)
            people = [synthetic_person(i) for i in range(n_persons)]
            t0 = time.perf_counter()
            await record_consents(fed, client, people, sender_unit)
            consents_s = time.perf_counter() - t0
            floor = {
                "kafka_round_trip_ms": await floor_kafka(broker),
                "db_commit_ms": await floor_db(await new_db("floor")),
            }
            url = f"http://127.0.0.1:{fed.members[0].port('referral')}/v1/referrals"
            headers = auth(ORG_REGION, sender_unit, ["referral:read", "referral:write"])
            recipients = [{"orgnr": ORG_VAXJO, "unit_id": intake}]

            def body(i: int) -> dict[str, Any]:
                return kontaktbegaran(people[i % len(people)], resolve=None, recipients=recipients)

            # Warm-up (connections, first decisions, consumer fetch loops); not counted.
            warm, _, _ = await load(client, url, headers, [body(i) for i in range(20)], 10)
            warmed = sum(w.status == 201 for w in warm)
            await wait_drained(fed, warmed)

            samples = Samples(cpu_start=cpu_now(fed))
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(fed, samples, stop))
            loadgen_cpu0 = time.process_time()
            n = int(rate * seconds)
            loading = asyncio.create_task(
                load(client, url, headers, [body(i) for i in range(n)], rate)
            )
            profiled: dict[str, Any] = {}
            if with_profile and seconds >= 40:
                await asyncio.sleep(min(seconds / 3, 60))
                now = cpu_now(fed)
                used = {k: now[k] - samples.cpu_start[k] for k in now}
                busiest = sorted(used, key=used.__getitem__, reverse=True)[:4]
                profiled = await profile(fed, busiest, 20, work)
            sent, issued, elapsed = await loading
            loadgen_cpu = time.process_time() - loadgen_cpu0
            ok = [s for s in sent if s.status == 201 and s.task_id]
            drain_s, drained = await wait_drained(fed, len(ok) + warmed)
            samples.cpu_end = cpu_now(fed)  # over the load and the drain
            filed_total = (
                await count(
                    fed.database_url_for[(ORG_VAXJO, "referral")],
                    select(func.count()).select_from(Incoming),
                )
                - warmed
            )
            stop.set()
            await sampler
            rows = await collect(fed, [s.task_id for s in ok if s.task_id])
            server_side = await server_latencies(fed, client)
        return report(
            backend=backend,
            rate=rate,
            seconds=seconds,
            n_persons=n_persons,
            consents_s=consents_s,
            sent=sent,
            ok=ok,
            rows=rows,
            issued=issued,
            elapsed=elapsed,
            drain_s=drain_s,
            drained=drained,
            filed_total=filed_total,
            floor=floor,
            samples=samples,
            loadgen_cpu=loadgen_cpu,
            profiled=profiled,
            fetch_max_wait_ms=fetch_wait,
            server_side=server_side,
            broker=brokers.info(broker),
        )
    finally:
        await asyncio.to_thread(fed.stop)
        await brokers.stop(broker)
        for db_url in created:
            await drop_pg_database(db_url)
        for raw in work.glob("*.raw"):  # the profiles' collapsed stacks, for a flame graph
            shutil.copy(raw, RESULTS / f"profile-{backend}-{raw.name}")
        shutil.rmtree(work, ignore_errors=True)


def report(
    *,
    backend: str,
    rate: float,
    seconds: float,
    n_persons: int,
    consents_s: float,
    sent: list[Sent],
    ok: list[Sent],
    rows: dict[str, dict[str, Any]],
    issued: float,
    elapsed: float,
    drain_s: float,
    drained: bool,
    filed_total: int,
    floor: dict[str, Any],
    samples: Samples,
    loadgen_cpu: float,
    fetch_max_wait_ms: int,
    profiled: dict[str, Any],
    server_side: dict[str, Any],
    broker: dict[str, str],
) -> dict[str, Any]:
    e2e, from_created, closed_loop = [], [], []
    by_due: list[tuple[float, float]] = []
    lost = undeliverable = 0
    last_received: dt.datetime | None = None
    for s in ok:
        row = rows.get(s.task_id or "", {})
        received = row.get("received_at")
        if received is None:
            lost += 1
        else:
            e2e.append((received - s.due).total_seconds())
            by_due.append((s.due.timestamp(), e2e[-1]))
            from_created.append((received - row["created_at"]).total_seconds())
            last_received = max(last_received or received, received)
        if row.get("status") == "undeliverable":
            undeliverable += 1
        elif row.get("status") not in (None, "sent"):
            closed_loop.append((row["updated_at"] - s.due).total_seconds())
    errors = collections.Counter(s.error or str(s.status) for s in sent if s.status != 201)
    delivered_span = (last_received - sent[0].due).total_seconds() if last_received else 0.0
    cpu = {k: round(samples.cpu_end[k] - samples.cpu_start[k], 1) for k in samples.cpu_end}
    e2e_ms = summary_ms(e2e)
    kafka = floor["kafka_round_trip_ms"]
    return {
        "backend": backend,
        "broker": broker,
        "command": f"python -m bench.referral --rate {rate:g} --seconds {seconds:g} "
        f"--persons {n_persons} --backend {backend} --broker {brokers.option(broker)} "
        f"--fetch-max-wait-ms {fetch_max_wait_ms}" + (" --profile" if profiled else ""),
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "rate_per_s": rate,
        "seconds": seconds,
        "persons": n_persons,
        "consents_recorded_s": round(consents_s, 1),
        "sent": len(sent),
        "created": len(ok),
        "errors": dict(errors),
        "achieved_send_rate_per_s": round(len(sent) / issued, 1),
        "answered_rate_per_s": round(len(ok) / elapsed, 1),
        "all_answered_s": round(elapsed, 1),
        "delivered": len(e2e),
        "delivered_rate_per_s": round(len(e2e) / delivered_span, 1) if delivered_span else 0.0,
        "lost": lost,
        "lost_note": "201 at Region, not filed at Växjö when deliveries stopped (drained: "
        "every one filed and reported back; else no progress for 60 s)",
        "drained": drained,
        "filed_at_vaxjo_total": filed_total,
        "undeliverable": undeliverable,
        "drain_s": round(drain_s, 1),
        "end_to_end_ms": e2e_ms,
        "end_to_end_note": "POST due -> incoming.received_at at Växjö (filed in the worklist)",
        "sender_created_to_received_ms": summary_ms(from_created),
        "post_latency_ms": summary_ms([s.post_s for s in ok]),
        "closed_loop_ms": summary_ms(closed_loop),
        "closed_loop_note": "POST due -> Region's recipient row updated to delivered",
        "timeline": timeline(by_due),
        "timeline_note": "per second of sending: referrals due then, their end to end",
        "floor": floor,
        "ratio_p50_to_kafka_floor": round(e2e_ms["p50"] / max(0.01, kafka["p50"]), 1),
        "cpu_s_load_and_drain": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_delivered_referral": round(1000 * sum(cpu.values()) / max(1, len(e2e)), 1),
        "cpu_share_of_machine": round(
            sum(cpu.values()) / max(0.01, (elapsed + drain_s) * (os.cpu_count() or 1)), 2
        ),
        "load_generator_cpu_s": round(loadgen_cpu, 1),
        "max_rss_mb": {k: round(v, 1) for k, v in sorted(samples.rss_max.items())},
        "server_side_ms": server_side,
        "server_side_note": "each API's own histogram of its request time (warm-up included); "
        "the POST's client-side latency minus this is time waiting to be read",
        "profile_20s": profiled,
        "target": TARGET,
        "met": {
            "rate": len(ok) / elapsed >= TARGET["rate_per_s"] * 0.98
            and delivered_span > 0
            and len(e2e) / delivered_span >= TARGET["rate_per_s"] * 0.98,
            "duration": seconds >= TARGET["seconds"],
            "p99": e2e_ms["p99"] <= TARGET["e2e_p99_ms"],
            "nothing_lost": lost == 0 and not errors,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    }


def markdown(r: dict[str, Any]) -> str:
    e, k = r["end_to_end_ms"], r["floor"]["kafka_round_trip_ms"]
    return (
        f"| {r['backend']} | {r['rate_per_s']:g}/s x {r['seconds']:g} s | sent {r['sent']} "
        f"at {r['achieved_send_rate_per_s']}/s | delivered {r['delivered']} at "
        f"{r['delivered_rate_per_s']}/s | errors {sum(r['errors'].values())} | lost {r['lost']} "
        f"| e2e p50 {e['p50']} / p99 {e['p99']} / max {e['max']} ms | POST p99 "
        f"{r['post_latency_ms']['p99']} ms | Kafka floor p50 {k['p50']} ms | DB commit p50 "
        f"{r['floor']['db_commit_ms']['p50']} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--persons", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="py-spy the busiest processes")
    parser.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        help=f"consumers' fetch wait (Tansu: {TANSU_FETCH_MAX_WAIT_MS} ms, the federation's "
        "default: Tansu answers only when it expires, so each hop waits up to this long, and "
        "a shorter wait costs idle CPU; Apache Kafka: the broker's client setting, as it "
        "answers as soon as data arrives)",
    )
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
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
                args.persons,
                args.profile,
                args.fetch_max_wait_ms,
                args.broker,
            )
        )
        (RESULTS / f"referral-{backend}.json").write_text(json.dumps(r, indent=2, default=str))
        print(markdown(r), flush=True)


if __name__ == "__main__":
    main()
