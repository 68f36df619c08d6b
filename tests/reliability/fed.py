"""A two-member federation of processes for the scenarios (and the soak), built on
``tests/e2e/test_referral_federation.py``'s ``two_member_federation``: Region Kronoberg and
Växjö kommun, each service's API and worker a process of its own, over a given broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx

from shared.messaging.events import topics
from tests.conftest import ORG_REGION, ORG_VAXJO, create_pg_database, drop_pg_database
from tests.e2e.test_referral_federation import (
    INTAKE,
    SENDER_UNIT,
    Site,
    auth,
    demo_units,
    two_member_federation,
    unit_id,
    written_consent,
)
from tests.helpers.harness import eventually
from vardkedja.federation import Federation, Proc

__all__ = [
    "ORG_REGION",
    "ORG_VAXJO",
    "Site",
    "auth",
    "consent_copy_status",
    "group_of",
    "pause",
    "record_consent",
    "respawn",
    "resume",
    "running_federation",
    "start",
    "stopped",
    "units",
]


@contextlib.asynccontextmanager
async def running_federation(
    work: Path,
    bootstrap: str,
    *,
    backend: str = "sqlite",
    services: Sequence[str] = ("directory", "consent", "referral"),
    fetch_max_wait_ms: int = 20,
    **env: str,
) -> AsyncIterator[Federation]:
    """Start both members' ``services`` (API and worker each a process), wait until every
    API is ready; stop everything (and drop PostgreSQL databases) afterwards."""
    created: list[str] = []
    urls: dict[tuple[str, str], str] = {}
    for orgnr in (ORG_REGION, ORG_VAXJO):
        for service in services:
            if backend == "postgres":
                created.append(await create_pg_database())
                urls[(orgnr, service)] = created[-1]
            else:
                path = work / f"{service}-{orgnr}.db"
                urls[(orgnr, service)] = f"sqlite+aiosqlite:///{path}"
    fed = two_member_federation(urls, work / "var", bootstrap, fetch_max_wait_ms=fetch_max_wait_ms)
    fed.extra_env.update({"VK_LOG_LEVEL": "WARNING", **env})
    fed.services = tuple(services)
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=300)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)
        for url in created:
            await drop_pg_database(url)


async def units(fed: Federation, client: httpx.AsyncClient) -> tuple[str, str]:
    """Seed the demo directory, wait until both referral services know every unit; the
    ids of Region's sending unit and Växjö's intake."""
    replica = await demo_units(fed, client)
    return unit_id(replica, ORG_REGION, SENDER_UNIT), unit_id(replica, ORG_VAXJO, INTAKE)


async def record_consent(
    client: httpx.AsyncClient, fed: Federation, person: str, unit: str, *, wait: bool = True
) -> str:
    """A written consent at Region covering both members; waits for Växjö's copy."""
    r = await Site(client, fed.members[0]).post(
        "consent",
        "/v1/consents",
        written_consent(person),
        auth(ORG_REGION, unit, ["consent:read", "consent:write"]),
    )
    assert r.status_code == 201, r.text
    consent_id = str(r.json()["id"])
    if wait:

        async def copied() -> bool:
            return await consent_copy_status(client, fed, consent_id) == "active"

        await eventually(copied, within=120, what="the consent copy at Växjö")
    return consent_id


async def consent_copy_status(
    client: httpx.AsyncClient, fed: Federation, consent_id: str
) -> str | None:
    """The status of Växjö's copy of ``consent_id`` (None while it has none)."""
    r = await Site(client, fed.members[1]).get(
        "consent", f"/v1/consent-copies/{consent_id}", auth(ORG_VAXJO, None, ["consent:read"])
    )
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


def group_of(orgnr: str, service: str, consumer: str) -> str:
    """The consumer group of a service's named consumer (as the worker names it)."""
    return topics.consumer_group(orgnr, service, consumer)


def pause(proc: Proc) -> None:
    """SIGSTOP: the process stalls (no CPU, no heartbeats), as on an overloaded host."""
    os.kill(proc.process.pid, signal.SIGSTOP)


def resume(proc: Proc) -> None:
    os.kill(proc.process.pid, signal.SIGCONT)


async def respawn(fed: Federation, proc: Proc, *, kill: bool = False) -> Proc:
    """Stop ``proc`` (SIGTERM, or SIGKILL as a crash) and start the same role again."""
    if kill:
        proc.process.kill()
    elif proc.process.poll() is None:
        proc.process.terminate()
    try:
        await asyncio.to_thread(proc.process.wait, 30)
    except subprocess.TimeoutExpired:
        proc.process.kill()
        await asyncio.to_thread(proc.process.wait)
    fed.procs.remove(proc)
    return fed.spawn(proc.member, proc.service, proc.role)


async def stopped(fed: Federation, proc: Proc) -> None:
    """Stop ``proc`` cleanly (its consumers leave their groups) and forget it."""
    proc.process.terminate()
    try:
        await asyncio.to_thread(proc.process.wait, 30)
    except subprocess.TimeoutExpired:
        proc.process.kill()
        await asyncio.to_thread(proc.process.wait)
    fed.procs.remove(proc)


def start(fed: Federation, orgnr: str, service: str, role: str) -> Proc:
    """Start one more process of ``orgnr``'s ``service`` in ``role``."""
    member = next(m for m in fed.members if m.orgnr == orgnr)
    return fed.spawn(member, service, role)
