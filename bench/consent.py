"""Benchmark of the consent service: sharing decisions over 100,000 consents, and how fast a
withdrawal reaches the other members.

1. **Decisions.** One consent API process and its worker of Växjö kommun (212000-0647) on a
   fresh database holding ``--consents`` written consents (Växjö and Region Kronoberg,
   kontaktbegäran, contact details and needs summary). The consents are seeded in bulk: the
   same ``consent`` and ``change_log`` rows :func:`services.consent.records.record_consent`
   writes (built from the API's own ``ConsentCreate``, checked column by column against one
   consent recorded through the API), without their copy events to the parties (the
   decision reads only the member's own tables). Then ``POST /v1/decisions`` at a fixed
   rate, open loop (each request timed from when it was due; at most ``IN_FLIGHT`` on the
   wire, the rest wait and that wait counts), for ``--seconds``, from :mod:`bench.loadgen`
   (pre-encoded requests over keep-alive connections, so that the client leaves the CPU to
   the API; httpx cost about as much as the API did): half the questions are
   allowed (a consented person, a covered purpose and categories), a quarter denied by
   purpose, a quarter about a person without a consent; every verdict is checked. Then a
   short closed loop (``--clients`` concurrent clients, each sending as soon as it has an
   answer) gives the most the process sustains. Reported: achieved rate, latency
   percentiles, errors, wrong verdicts, CPU per decision of the API, of the worker and of
   the load generator, peak RSS. (Each decision is audited in the consent service's own
   table, read there for the audit extract: the worker has nothing to do per decision.)
2. **Withdrawal propagation.** Region Kronoberg, Växjö kommun and Alvesta kommun each run
   the consent API and worker (6 processes) on a second broker. Växjö records
   ``--withdrawals`` consents naming all three (the copies are waited for), then withdraws
   them one by one at ``--withdraw-rate`` per second. Per withdrawal and other member: the
   time from the withdraw response (client wall clock) to the ``copy_withdrawn`` entry of the
   copy's history at that member (written in the unit of work that marks the copy
   withdrawn; the commit follows within milliseconds), and from the consent's ``ended_at``.

Each part starts its own broker: Apache Kafka (one KRaft node) by default, the embedded Tansu
broker with ``--broker tansu``. With ``--profile``, py-spy samples the API and the worker
during the open loop.

    make bench-consent                   # 1000/s x 20 s over 100,000 consents, SQLite (+ PG)
    python -m bench.consent --rate 1000 --seconds 20 --consents 100000 --backend sqlite
    python -m bench.consent --rate 1000 --seconds 20 --backend sqlite --broker tansu

Writes bench/results/consent-<backend>.json and prints a markdown line. Figures only.
Targets (issue 4): decisions p99 <= 5 ms and >= 1,000 decisions/s with 100,000 consents
stored; a withdrawal visible at the other members within 2 s p99.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from bench import brokers
from bench.loadgen import Answer, LoadGenerator, encode_post, verdict_check
from bench.notify import cpu_seconds
from bench.referral import Samples, cpu_now, profile, sample
from bench.stats import summary_ms, timeline
from services.consent.codes import ConsentStatus
from services.consent.models import ChangeLogEntry, Consent, ConsentCopy
from services.consent.person import key_of
from services.consent.schemas import ConsentCreate
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.messaging.broker import Broker, Engine

# Imported here, not inside a coroutine: tests.conftest probes PostgreSQL with asyncio.run.
from tests.conftest import (
    ORG_ALVESTA,
    ORG_REGION,
    ORG_VAXJO,
    POSTGRES,
    create_pg_database,
    drop_pg_database,
)
from tests.e2e.test_referral_federation import auth, port_base, synthetic_person, written_consent
from vardkedja.federation import Federation, Member

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IN_FLIGHT = 64  # concurrent requests at most (the client's connections)
UNIT = "bench-intake"  # the unit in the staff token (audited; decisions are not unit-scoped)
TARGET = {"decision_p99_ms": 5, "decisions_per_s": 1000, "consents": 100_000, "withdrawal_p99_s": 2}
MEMBERS = {
    ORG_REGION: ("Region Kronoberg", "region"),
    ORG_VAXJO: ("Växjö kommun", "kommun"),
    ORG_ALVESTA: ("Alvesta kommun", "kommun"),
}
# Like `make run` (vardkedja run) on Tansu, which answers a fetch only when the wait expires:
# consumers' fetch wait 100 ms. On Apache Kafka they use the broker's client setting.
TANSU_FETCH_MAX_WAIT_MS = 100
CONSENT_RW = ["consent:read", "consent:write"]
PAIR = [ORG_VAXJO, ORG_REGION]  # the decisions' consents: Växjö and Region
WITHDRAW = {"reason": "Personen återkallar samtycket.", "withdrawn_by": {"kind": "person"}}


def fetch_wait_ms(broker: Broker) -> int:
    """The consumers' fetch wait on ``broker``."""
    return brokers.fetch_wait_ms(broker, None, TANSU_FETCH_MAX_WAIT_MS)


def federation(
    orgnrs: list[str], urls: dict[str, str], data_dir: Path, broker: Broker
) -> Federation:
    """The consent service (API and worker) of ``orgnrs`` on free ports, clients of
    ``broker``."""
    taken: set[int] = set()
    members = [Member(o, *MEMBERS[o], port_base(taken)) for o in orgnrs]
    fetch_wait = fetch_wait_ms(broker)
    return Federation(
        members=members,
        services=("consent",),
        data_dir=data_dir,
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=fetch_wait,
        database_url_for={(o, "consent"): urls[o] for o in orgnrs},
        broker_env=brokers.client_env(broker, fetch_wait),
        extra_env={
            "VK_FEDERATION_MEMBERS": json.dumps(list(MEMBERS)),
            "VK_CONSENT__EXPIRY_CHECK_INTERVAL_S": "3600",
            "VK_LOG_LEVEL": "WARNING",
        },
    )


def consent_body(person: str, parties: list[str]) -> dict[str, Any]:
    """A written consent to kontaktbegäran naming ``parties`` (the recording member first)."""
    return {**written_consent(person), "parties": [{"orgnr": o} for o in parties]}


# ----------------------------------------------------------------------------- seeding


def consent_rows(
    settings: Settings, body: dict[str, Any], user: str, unit: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``consent`` and ``change_log`` rows ``record_consent`` writes for ``body`` (no
    supersedes, no refusal): from the API's own request model, so they are valid."""
    data = ConsentCreate.model_validate(body)
    key = key_of(settings=settings, personnummer=data.person.personnummer)
    consent_id = new_id()
    purposes = list(dict.fromkeys(str(p) for p in data.purposes))
    categories = list(dict.fromkeys(str(c) for c in data.categories))
    parties = [{"orgnr": p.orgnr, "unit_id": p.unit_id} for p in data.parties]
    now = utcnow()
    consent = {
        "id": consent_id,
        "owner_orgnr": settings.member.orgnr,
        "person_key": key,
        "personnummer": data.person.personnummer,
        "protected_identity": data.person.protected_identity,
        "recorded_by_user": user,
        "recorded_by_unit": unit,
        "given_by_kind": str(data.given_by.kind),
        "given_by_name": data.given_by.name,
        "given_by_reference": data.given_by.reference,
        "form": str(data.form),
        "form_note": data.form_note,
        "signed_form_reference": data.signed_form_reference,
        "person_informed": data.person_informed,
        "purposes": purposes,
        "parties": parties,
        "categories": categories,
        "valid_from": data.valid_from,
        "valid_to": data.valid_to,
        "status": str(ConsentStatus.ACTIVE),
        "supersedes_id": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    log = {
        "person_key": key,
        "subject_type": "consent",
        "subject_id": consent_id,
        "action": "recorded",
        "occurred_at": now,
        "actor_org": settings.member.orgnr,
        "actor_user": user,
        "actor_unit": unit,
        "details": {
            "version": 1,
            "purposes": purposes,
            "categories": categories,
            "parties": parties,
            "valid_from": data.valid_from.isoformat(),
            "valid_to": data.valid_to.isoformat(),
            "form": str(data.form),
            "supersedes": None,
        },
    }
    return consent, log


def member_settings(orgnr: str, db_url: str, data_dir: Path) -> Settings:
    name, kind = MEMBERS[orgnr]
    # The trust (VK_TRUST__DIR, set by tests.conftest) is the one the federation's processes
    # use (Federation.keys_dir): what is seeded here is signed with the same keys.
    return Settings(
        service="consent",
        member={"orgnr": orgnr, "name": name, "kind": kind},
        data_dir=data_dir,
        database_url=db_url,
    )


async def seed(settings: Settings, n: int, user: str, batch: int = 5000) -> float:
    """``n`` consents of Växjö for synthetic persons 0..n-1; returns the seconds."""
    db = Database(settings.db_url)
    t0 = time.perf_counter()
    try:
        for start in range(0, n, batch):
            rows = [
                consent_rows(settings, consent_body(synthetic_person(i), PAIR), user, UNIT)
                for i in range(start, min(n, start + batch))
            ]
            async with db.transaction() as s:
                await s.execute(insert(Consent), [c for c, _ in rows])
                await s.execute(insert(ChangeLogEntry), [log for _, log in rows])
        # Planner statistics, as a database in use has them (PostgreSQL's autovacuum would
        # gather them within a minute of the load): without them PostgreSQL plans a batch's
        # read of 64 people as a scan of the whole table (46 ms instead of 4.4 ms).
        async with db.transaction() as s:
            await s.execute(text("ANALYZE"))
    finally:
        await db.dispose()
    return time.perf_counter() - t0


SAME_AS_API = (
    "owner_orgnr", "protected_identity", "recorded_by_user", "recorded_by_unit", "given_by_kind",
    "given_by_name", "given_by_reference", "form", "form_note", "signed_form_reference",
    "person_informed", "purposes", "parties", "categories", "valid_from", "valid_to", "status",
    "ended_at", "supersedes_id", "superseded_by_id", "version",
)  # fmt: skip


async def check_seed_like_api(db_url: str, api_id: str) -> list[str]:
    """The columns where a seeded consent differs from one the API recorded (none expected)."""
    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            api = await s.get(Consent, api_id)
            seeded = await s.scalar(select(Consent).where(Consent.id != api_id).limit(1))
            assert api is not None
            assert seeded is not None
            logs = {
                row.subject_id: row
                for row in await s.scalars(
                    select(ChangeLogEntry).where(ChangeLogEntry.subject_id.in_([api_id, seeded.id]))
                )
            }
    finally:
        await db.dispose()
    differ = [c for c in SAME_AS_API if getattr(api, c) != getattr(seeded, c)]
    a, b = logs.get(api_id), logs.get(seeded.id)
    if a is None or b is None:
        differ.append("change_log")
    else:
        differ += [
            f"change_log.{c}"
            for c in ("subject_type", "action", "actor_org", "actor_user", "actor_unit", "details")
            if getattr(a, c) != getattr(b, c)
        ]
    return differ


# --------------------------------------------------------------------------- decisions


def questions(n: int, n_consents: int, seed_: int = 7) -> list[tuple[dict[str, Any], bool]]:
    """``n`` decision requests and whether each should be allowed: half allowed, a quarter
    for a purpose the consent does not cover, a quarter about a person without a consent."""
    rng = random.Random(seed_)
    out = []
    for i in range(n):
        kind = i % 4
        person = synthetic_person(
            n_consents + rng.randrange(100_000) if kind == 3 else rng.randrange(n_consents)
        )
        body = {
            "person": {"personnummer": person},
            "sender": {"orgnr": ORG_VAXJO},
            "recipient": {"orgnr": ORG_REGION},
            "purpose": "sip" if kind == 2 else "kontaktbegaran",
            "categories": ["needs_summary"] if kind == 1 else ["contact_details", "needs_summary"],
        }
        out.append((body, kind < 2))
    return out


def load_generator(
    ports: list[int], headers: dict[str, str], qs: list[tuple[dict[str, Any], bool]]
) -> LoadGenerator:
    """The questions pre-encoded as POSTs to ``/v1/decisions``, each checked for its
    verdict, over ``IN_FLIGHT`` keep-alive connections (spread over the API's ports)."""
    host = f"127.0.0.1:{ports[0]}"
    requests = [
        encode_post(host, "/v1/decisions", headers, json.dumps(body).encode()) for body, _ in qs
    ]
    checks = [verdict_check(ok) for _, ok in qs]
    return LoadGenerator("127.0.0.1", ports, requests, checks, connections=IN_FLIGHT)


def answers_summary(answers: list[Answer], elapsed: float) -> dict[str, Any]:
    ok = [a for a in answers if a.status == 200]
    errors = collections.Counter(a.error or str(a.status) for a in answers if a.status != 200)
    return {
        "sent": len(answers),
        "answered_200": len(ok),
        "answered_rate_per_s": round(len(ok) / max(elapsed, 1e-9), 1),
        "errors": dict(errors),
        "wrong_verdicts": sum(not a.right for a in ok),
        "latency_ms": summary_ms([a.latency_s for a in ok]),
        "timeline": timeline((a.at, a.latency_s) for a in ok),
    }


async def decisions(
    *,
    work: Path,
    db_url: str,
    rate: float,
    seconds: float,
    n_consents: int,
    clients: int,
    closed_seconds: float,
    with_profile: bool,
    api_processes: int = 1,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    broker = await brokers.start(engine, work, "broker-decisions")
    fed = federation([ORG_VAXJO], {ORG_VAXJO: db_url}, work / "var-d", broker)
    user = f"e2e-{UNIT}"  # the staff token's sub (tests.e2e auth)
    try:
        await asyncio.to_thread(fed.migrate)
        settings = member_settings(ORG_VAXJO, db_url, work / "var-d")
        seed_s = await seed(settings, n_consents, user)
        fed.spawn(fed.members[0], "consent", "serve")
        # More API processes of the same member (replicas on ports of their own, sharing
        # the database), as behind a load balancer; the client spreads its connections.
        taken = {fed.members[0].port(s) for s in ("directory", "consent", "referral", "notify")}
        replicas = [
            dataclasses.replace(fed.members[0], port_base=port_base(taken))
            for _ in range(api_processes - 1)
        ]
        for replica in replicas:
            fed.spawn(replica, "consent", "serve")
        fed.spawn(fed.members[0], "consent", "worker")
        await fed.wait_ready(timeout=300)
        base = f"http://127.0.0.1:{fed.members[0].port('consent')}"
        headers = auth(ORG_VAXJO, UNIT, CONSENT_RW)
        async with httpx.AsyncClient(timeout=60) as client:
            # One consent through the API, to compare with the seeded rows.
            r = await client.post(
                f"{base}/v1/consents",
                json=consent_body(synthetic_person(n_consents + 200_000), [ORG_VAXJO, ORG_REGION]),
                headers=headers,
            )
            if r.status_code != 201:
                raise RuntimeError(f"consent: {r.status_code} {r.text[:300]}")
        seed_differs = await check_seed_like_api(db_url, r.json()["id"])
        ports = [m.port("consent") for m in (fed.members[0], *replicas)]
        # The open loop's questions, then the closed loop's (another draw), in one list.
        n_open = int(rate * seconds)
        qs = questions(n_open, n_consents) + questions(20_000, n_consents, seed_=3)
        gen = load_generator(ports, headers, qs)
        await gen.connect()
        try:
            # Warm-up (connections, caches); not counted.
            await gen.open_loop(400, 100, first=n_open)
            await asyncio.sleep(2)

            apis = [p.process.pid for p in fed.procs if p.role == "serve"]
            samples = Samples(cpu_start=cpu_now(fed))
            api_cpu0 = sum(cpu_seconds(pid) for pid in apis)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(fed, samples, stop))
            loadgen0 = time.process_time()
            loading = asyncio.create_task(gen.open_loop(n_open, rate))
            profiled: dict[str, Any] = {}
            if with_profile and seconds >= 8:
                await asyncio.sleep(seconds / 4)
                names = [p.name for p in fed.procs]
                profiled = await profile(fed, names, int(min(10, seconds / 2)), work)
            answers, issued, elapsed = await loading
            loadgen_cpu = time.process_time() - loadgen0
            samples.cpu_end = cpu_now(fed)
            api_cpu = sum(cpu_seconds(pid) for pid in apis) - api_cpu0
            # The worker's share continues a little after the load (the audit events).
            await asyncio.sleep(2)
            worker_after = cpu_now(fed)

            closed_cpu0 = sum(cpu_seconds(pid) for pid in apis)
            closed_load0 = time.process_time()
            closed, closed_elapsed = await gen.closed_loop(
                closed_seconds, first=n_open, connections=clients
            )
            closed_cpu = sum(cpu_seconds(pid) for pid in apis) - closed_cpu0
            closed_load_cpu = time.process_time() - closed_load0
            stop.set()
            await sampler
        finally:
            await gen.close()
    finally:
        await asyncio.to_thread(fed.stop)
        await brokers.stop(broker)
    ok = sum(a.status == 200 for a in answers)
    worker_name = fed_name(ORG_VAXJO, "worker")
    worker_cpu = worker_after[worker_name] - samples.cpu_start[worker_name]
    closed_sum = answers_summary(closed, closed_elapsed)
    return {
        "broker": brokers.info(broker),
        "consents_stored": n_consents + 1,
        "seed_s": round(seed_s, 1),
        "seed_differs_from_api_record": seed_differs,
        "api_processes": api_processes,
        "open_loop": {
            "rate_per_s": rate,
            "seconds": seconds,
            "achieved_send_rate_per_s": round(len(answers) / max(issued, 1e-9), 1),
            **answers_summary(answers, elapsed),
            "latency_note": "from when the request was due (includes waiting for one of "
            f"{IN_FLIGHT} connections)",
            "all_answered_s": round(elapsed, 1),
            "api_cpu_ms_per_decision": round(1000 * api_cpu / max(1, ok), 2),
            "worker_cpu_ms_per_decision": round(1000 * worker_cpu / max(1, ok), 2),
            "api_cpu_share_of_one_core": round(api_cpu / max(elapsed, 1e-9), 2),
            "load_generator_cpu_s": round(loadgen_cpu, 1),
            "load_generator_cpu_ms_per_decision": round(1000 * loadgen_cpu / max(1, ok), 3),
            "max_rss_mb": {k: round(v, 1) for k, v in sorted(samples.rss_max.items())},
        },
        "closed_loop": {
            "clients": clients,
            "seconds": closed_seconds,
            **closed_sum,
            "latency_note": "from each request's send",
            "api_cpu_ms_per_decision": round(1000 * closed_cpu / max(1, closed_sum["sent"]), 2),
            "load_generator_cpu_ms_per_decision": round(
                1000 * closed_load_cpu / max(1, closed_sum["sent"]), 3
            ),
            "api_cpu_share_of_one_core": round(closed_cpu / max(closed_elapsed, 1e-9), 2),
        },
        "profile": profiled,
    }


def fed_name(orgnr: str, role: str) -> str:
    return f"{orgnr.replace('-', '')}-consent-{role}"


# ------------------------------------------------------------------------- withdrawals


async def count(db_url: str, stmt: Any) -> int:
    db = Database(db_url)
    try:
        async with db.sessionmaker() as s:
            return int(await s.scalar(stmt) or 0)
    finally:
        await db.dispose()


async def wait_copies(urls: list[str], n: int, status: str, stall_s: float) -> tuple[float, bool]:
    """Until every db in ``urls`` holds ``n`` copies in ``status``, or nothing moved for
    ``stall_s``; returns the seconds and whether done."""
    t0 = last_move = time.monotonic()
    stmt = select(func.count()).select_from(ConsentCopy).where(ConsentCopy.status == status)
    seen: tuple[int, ...] = ()
    while time.monotonic() - last_move < stall_s:
        now = tuple([await count(u, stmt) for u in urls])
        if min(now) >= n:
            return time.monotonic() - t0, True
        if now != seen:
            seen, last_move = now, time.monotonic()
        await asyncio.sleep(0.25)
    return time.monotonic() - t0, False


@dataclass
class Withdrawn:
    consent_id: str
    responded: dt.datetime | None = None  # client wall clock when the answer arrived
    ended_at: dt.datetime | None = None
    post_s: float = float("nan")
    status: int = 0
    seen: dict[str, dt.datetime] = field(default_factory=dict)


async def withdrawals(
    *,
    work: Path,
    urls: dict[str, str],
    n: int,
    rate: float,
    stall_s: float = 30.0,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    broker = await brokers.start(engine, work, "broker-withdrawals")
    orgnrs = [ORG_VAXJO, ORG_REGION, ORG_ALVESTA]
    others = orgnrs[1:]
    fed = federation(orgnrs, urls, work / "var-w", broker)
    try:
        await asyncio.to_thread(fed.start)
        await fed.wait_ready(timeout=300)
        vaxjo = fed.members[0]
        base = f"http://127.0.0.1:{vaxjo.port('consent')}/v1/consents"
        headers = auth(ORG_VAXJO, UNIT, CONSENT_RW)
        gate = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=60) as client:

            async def record(i: int) -> str:
                async with gate:
                    r = await client.post(
                        base, json=consent_body(synthetic_person(i), orgnrs), headers=headers
                    )
                if r.status_code != 201:
                    raise RuntimeError(f"consent: {r.status_code} {r.text[:300]}")
                return str(r.json()["id"])

            ids = await asyncio.gather(*(record(i) for i in range(n)))
            copies_s, copied = await wait_copies([urls[o] for o in others], n, "active", 60)
            if not copied:
                raise TimeoutError("the consent copies did not all reach the other members")
            await asyncio.sleep(1)  # let the consumers go idle
            cpu0 = cpu_now(fed)
            rows = [Withdrawn(consent_id=c) for c in ids]

            async def withdraw(w: Withdrawn) -> None:
                t = time.perf_counter()
                r = await client.post(
                    f"{base}/{w.consent_id}/withdraw", json=WITHDRAW, headers=headers
                )
                w.post_s = time.perf_counter() - t
                w.responded = dt.datetime.now(dt.UTC)
                w.status = r.status_code
                if r.status_code == 200:
                    w.ended_at = dt.datetime.fromisoformat(r.json()["ended_at"])

            tasks = []
            start = time.perf_counter()
            for i, w in enumerate(rows):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(withdraw(w)))
            await asyncio.gather(*tasks)
            done = sum(w.status == 200 for w in rows)
            others_urls = [urls[o] for o in others]
            drain_s, drained = await wait_copies(others_urls, done, "withdrawn", stall_s)
            cpu1 = cpu_now(fed)
        for orgnr in others:
            db = Database(urls[orgnr])
            try:
                async with db.sessionmaker() as s:
                    stmt = select(ChangeLogEntry.subject_id, ChangeLogEntry.occurred_at).where(
                        ChangeLogEntry.subject_type == "consent_copy",
                        ChangeLogEntry.action == "copy_withdrawn",
                    )
                    applied = {row.subject_id: row.occurred_at for row in await s.execute(stmt)}
            finally:
                await db.dispose()
            for w in rows:
                if w.consent_id in applied:
                    w.seen[orgnr] = applied[w.consent_id]
    finally:
        await asyncio.to_thread(fed.stop)
        await brokers.stop(broker)
    ok = [w for w in rows if w.status == 200]
    from_response, from_ended = [], []
    never: dict[str, int] = dict.fromkeys(others, 0)
    for w in ok:
        assert w.responded is not None
        assert w.ended_at is not None
        for orgnr in others:
            at = w.seen.get(orgnr)
            if at is None:
                never[orgnr] += 1
                continue
            from_response.append((at - w.responded).total_seconds())
            from_ended.append((at - w.ended_at).total_seconds())
    cpu = {k: round(cpu1[k] - cpu0[k], 1) for k in cpu1}
    return {
        "members": orgnrs,
        "consents": n,
        "copies_reached_others_s": round(copies_s, 1),
        "withdraw_rate_per_s": rate,
        "withdrawn_200": len(ok),
        "withdraw_errors": dict(
            collections.Counter(str(w.status) for w in rows if w.status != 200)
        ),
        "withdraw_post_ms": summary_ms([w.post_s for w in ok]),
        "visible_from_response_ms": summary_ms(from_response),
        "visible_from_response_note": "withdraw answer at the client -> copy_withdrawn in the "
        "copy's history at each other member (negative: applied there before the answer "
        "reached the client)",
        "visible_from_ended_at_ms": summary_ms(from_ended),
        "never_seen": never,
        "drained": drained,
        "drain_s": round(drain_s, 1),
        "cpu_s": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "fetch_max_wait_ms": fetch_wait_ms(broker),
    }


# --------------------------------------------------------------------------------- run


async def run(
    backend: str,
    *,
    rate: float,
    seconds: float,
    n_consents: int,
    clients: int,
    closed_seconds: float,
    n_withdrawals: int,
    withdraw_rate: float,
    with_profile: bool,
    api_processes: int = 1,
    engine: Engine = brokers.DEFAULT,
) -> dict[str, Any]:
    work = RESULTS / f".tmp-consent-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True, exist_ok=True)
    created: list[str] = []

    async def new_db(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{work / f'{name}.db'}"
        created.append(await create_pg_database())
        return created[-1]

    try:
        decided = await decisions(
            work=work,
            db_url=await new_db("decisions-vaxjo"),
            rate=rate,
            seconds=seconds,
            n_consents=n_consents,
            clients=clients,
            closed_seconds=closed_seconds,
            with_profile=with_profile,
            api_processes=api_processes,
            engine=engine,
        )
        withdrawn = None
        if n_withdrawals:
            urls = {o: await new_db(f"withdrawals-{o}") for o in MEMBERS}
            withdrawn = await withdrawals(
                work=work, urls=urls, n=n_withdrawals, rate=withdraw_rate, engine=engine
            )
    finally:
        for db_url in created:
            with contextlib.suppress(Exception):
                await drop_pg_database(db_url)
        shutil.rmtree(work, ignore_errors=True)
    o, c = decided["open_loop"], decided["closed_loop"]
    return {
        "backend": backend,
        "broker": decided["broker"],
        "command": f"python -m bench.consent --rate {rate:g} --seconds {seconds:g} --consents "
        f"{n_consents} --clients {clients} --withdrawals {n_withdrawals} --withdraw-rate "
        f"{withdraw_rate:g} --backend {backend} --broker {engine}"
        + (f" --api-processes {api_processes}" if api_processes != 1 else "")
        + (" --profile" if with_profile else ""),
        "decisions": decided,
        "withdrawals": withdrawn,
        "target": TARGET,
        "met": {
            "decision_p99": o["latency_ms"]["p99"] <= TARGET["decision_p99_ms"],
            "decision_rate": o["answered_rate_per_s"] >= TARGET["decisions_per_s"] * 0.98
            and not o["errors"],
            "closed_loop_rate": c["answered_rate_per_s"] >= TARGET["decisions_per_s"],
            "withdrawal_p99": None
            if withdrawn is None
            else withdrawn["visible_from_response_ms"]["p99"] <= TARGET["withdrawal_p99_s"] * 1000
            and not sum(withdrawn["never_seen"].values()),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    }


def markdown(r: dict[str, Any]) -> str:
    d = r["decisions"]
    o, c, w = d["open_loop"], d["closed_loop"], r["withdrawals"]
    lo, lc = o["latency_ms"], c["latency_ms"]
    withdrawn = "not run"
    if w is not None:
        v = w["visible_from_response_ms"]
        withdrawn = (
            f"withdrawal visible p50 {v['p50']} / p99 {v['p99']} / max {v['max']} ms, "
            f"never seen {sum(w['never_seen'].values())}"
        )
    return (
        f"| {r['backend']} | {d['consents_stored']} consents | {o['rate_per_s']:g}/s x "
        f"{o['seconds']:g} s: answered {o['answered_rate_per_s']}/s, p50 {lo['p50']} / p90 "
        f"{lo['p90']} / p99 {lo['p99']} / max {lo['max']} ms, errors "
        f"{sum(o['errors'].values())}, wrong {o['wrong_verdicts']}, API CPU "
        f"{o['api_cpu_ms_per_decision']} ms/decision, client CPU "
        f"{o['load_generator_cpu_ms_per_decision']} ms/decision | closed loop x{c['clients']}: "
        f"{c['answered_rate_per_s']}/s, p99 {lc['p99']} ms, API CPU "
        f"{c['api_cpu_ms_per_decision']} ms/decision | {withdrawn} | load "
        f"{r['machine']['load_average_1m']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="decisions per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--consents", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--closed-seconds", type=float, default=10)
    parser.add_argument("--withdrawals", type=int, default=200, help="0: skip that part")
    parser.add_argument("--withdraw-rate", type=float, default=10)
    parser.add_argument("--profile", action="store_true", help="py-spy the API and worker")
    parser.add_argument(
        "--api-processes", type=int, default=1, help="consent API processes (replicas)"
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
                rate=args.rate,
                seconds=args.seconds,
                n_consents=args.consents,
                clients=args.clients,
                closed_seconds=args.closed_seconds,
                n_withdrawals=args.withdrawals,
                withdraw_rate=args.withdraw_rate,
                with_profile=args.profile,
                api_processes=args.api_processes,
                engine=args.broker,
            )
        )
        (RESULTS / f"consent-{backend}.json").write_text(json.dumps(r, indent=2, default=str))
        print(markdown(r), flush=True)


if __name__ == "__main__":
    main()
