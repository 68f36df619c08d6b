"""Two members' consent and referral services, in this process, over a real broker.

Each member (Region Kronoberg, Växjö kommun) has its own consent and referral databases,
apps and workers (relay and consumers); the referral service calls its own member's consent
app over HTTP (in-process transport). The broker is private to each test (the referral
topics are per member, and a test's events must not reach another test's members).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.referral import siblings, units
from shared.data import migrations
from shared.data.db import Database
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.events.payloads import UnitChangedV1
from shared.messaging.worker import Worker
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.clients import ServiceClient
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, DatabaseFactory, make_settings

CONSENT = load_spec("consent")
REFERRAL = load_spec("referral")
FEDERATION = [ORG_REGION, ORG_VAXJO, ORG_ALVESTA]

# Units of the scenario (as the directory would publish them).
REGION_BEROENDE = "rk-beroende"
REGION_PORT = "rk-remissport"
VAXJO_SOC = "vx-soc-vuxna"
VAXJO_BOENDE = "vx-boendestod"
VAXJO_OLD = "vx-gammal"
VAXJO_MYNDIGHET = "vx-myndighet-vuxna"
VAXJO_BARN = "vx-barn-och-familj"
VAXJO_BAD_BARN = "vx-vuxen-som-tar-oros"  # an adult function claiming orosanmälan
UNITS = [
    (REGION_BEROENDE, ORG_REGION, "beroendemottagning", "active", ["hvb_underrattelse"],
     ["abstinensbehandling", "nedtrappning"]),
    (REGION_PORT, ORG_REGION, "remissport", "active", ["vardkedjeremiss"], []),
    (VAXJO_SOC, ORG_VAXJO, "socialtjanstens_mottagning", "active",
     ["kontaktbegaran", "sip_kallelse", "utskrivningsplanering"], ["boendestod"]),
    (VAXJO_BOENDE, ORG_VAXJO, "boendestod", "active", ["kontaktbegaran"], ["boendestod"]),
    (VAXJO_OLD, ORG_VAXJO, "boendestod", "inactive", ["kontaktbegaran"], []),
    (VAXJO_MYNDIGHET, ORG_VAXJO, "myndighetsutovning_vuxna", "active", ["lvm_anmalan"],
     ["utredning_sol"]),
    (VAXJO_BARN, ORG_VAXJO, "barn_och_familj", "active", ["orosanmalan"], ["skyddsbedomning"]),
    # The directory refuses this unit; a hostile or outdated member may still publish it.
    (VAXJO_BAD_BARN, ORG_VAXJO, "myndighetsutovning_vuxna", "active", ["orosanmalan"], []),
]  # fmt: skip


# How the housing support is reached (what a person's Min plan prints for it).
CONTACTS: dict[str, dict[str, Any]] = {
    VAXJO_BOENDE: {
        "contact_paths": [
            {"reason": "Frågor om boendestöd", "channel": "phone", "phone": "+46470410000"},
            {
                "reason": "Frågor om boendestöd",
                "channel": "functional_email",
                "email": "boendestod@vaxjo.example",
            },
        ],
        "opening_hours": {
            "weekly": [
                {"day": d, "opens": "08:00", "closes": "16:30"}
                for d in ("mon", "tue", "wed", "thu", "fri")
            ]
        },
    },
}


@dataclass
class Member:
    """One member's consent and referral services (apps and workers)."""

    orgnr: str
    consent_app: FastAPI
    referral_app: FastAPI
    workers: list[Worker] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def client(self, app: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def consent(self) -> httpx.AsyncClient:
        return self.client(self.consent_app)

    def referral(self) -> httpx.AsyncClient:
        return self.client(self.referral_app)

    @property
    def referral_db(self) -> Database:
        db: Database = self.referral_app.state.ctx.db
        return db


def auth(
    org: str, unit: str | None, scopes: list[str], roles: list[str] | None = None
) -> dict[str, str]:
    token = mint_token(sub=f"user-{unit}", org=org, unit=unit, scopes=scopes, roles=roles or [])
    return {"Authorization": f"Bearer {token}"}


RW = ["referral:read", "referral:write"]
CONSENT_RW = ["consent:read", "consent:write"]


@contextlib.asynccontextmanager
async def seeded_app(
    databases: DatabaseFactory, orgnr: str, seed: Callable[[Database], Awaitable[None]]
) -> AsyncIterator[FastAPI]:
    """The referral service of ``orgnr`` (in process, no broker) on a new migrated database
    ``seed`` wrote its rows to: a known scenario, written directly."""
    url = await databases.new("referral")
    await migrations.upgrade(REFERRAL.migrations_dir, url)
    db = Database(url)
    try:
        await seed(db)
    finally:
        await db.dispose()
    application = create_app(REFERRAL, make_settings(service="referral", orgnr=orgnr, db_url=url))
    try:
        yield application
    finally:
        await application.state.ctx.db.dispose()


async def asgi_get(
    app: FastAPI, path: str, headers: dict[str, str], **params: Any
) -> httpx.Response:
    """``GET path`` of an in-process service."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.get(path, params=params, headers=headers)


def _settings(service: str, orgnr: str, url: str, bootstrap: str) -> Any:
    settings = make_settings(service=service, orgnr=orgnr, db_url=url, bootstrap=bootstrap)
    return settings.model_copy(update={"federation_members": list(FEDERATION)})


async def seed_units(db: Database) -> None:
    """The scenario's units in a referral service's copy of the directory."""
    async with db.transaction() as session:
        for unit_id, owner, kind, status, kinds, interventions in UNITS:
            await units.apply_unit_changed(
                session=session,
                payload=UnitChangedV1(
                    unit_id=unit_id,
                    owner_orgnr=owner,
                    name=unit_id.replace("-", " ").title(),
                    kind=kind,
                    status=status,
                    referral_kinds=kinds,
                    interventions=interventions,
                    kommunkoder=["0780"],
                    version=1,
                    changed_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                    **CONTACTS.get(unit_id, {}),
                ),
            )


async def start_member(orgnr: str, databases: DatabaseFactory, bootstrap: str) -> Member:
    consent_url = await databases.new(f"consent-{orgnr}")
    referral_url = await databases.new(f"referral-{orgnr}")
    await migrations.upgrade(CONSENT.migrations_dir, consent_url)
    await migrations.upgrade(REFERRAL.migrations_dir, referral_url)
    consent_settings = _settings("consent", orgnr, consent_url, bootstrap)
    referral_settings = _settings("referral", orgnr, referral_url, bootstrap)
    member = Member(
        orgnr=orgnr,
        consent_app=create_app(CONSENT, consent_settings),
        referral_app=create_app(REFERRAL, referral_settings),
    )
    # The referral service reaches its own member's consent service over HTTP.
    clients = siblings.Clients(
        consent=ServiceClient(
            base_url="http://consent",
            service="referral",
            org=orgnr,
            scopes=["consent:read"],
            transport=httpx.ASGITransport(app=member.consent_app),
        ),
        directory=ServiceClient(
            base_url="http://directory", service="referral", org=orgnr, scopes=["directory:read"]
        ),
    )
    member.referral_app.state.ctx.extras["clients"] = clients
    await seed_units(member.referral_db)
    for spec, settings in ((CONSENT, consent_settings), (REFERRAL, referral_settings)):
        worker = Worker(spec, settings)
        worker.ctx.extras["clients"] = clients
        member.workers.append(worker)
        member.tasks.append(asyncio.create_task(worker.relay.run()))
        member.tasks += [asyncio.create_task(c.run()) for c in worker.consumers]
    return member


async def stop_member(member: Member) -> None:
    for worker in member.workers:
        worker.relay.stop()
        for c in worker.consumers:
            c.stop()
    for t in member.tasks:
        t.cancel()
    await asyncio.gather(*member.tasks, return_exceptions=True)
    for worker in member.workers:
        await worker.ctx.db.dispose()
    for app in (member.consent_app, member.referral_app):
        await app.state.ctx.db.dispose()


@dataclass
class Pair:
    region: Member
    vaxjo: Member


@pytest.fixture
async def members(private_broker: Broker, databases: DatabaseFactory) -> AsyncIterator[Pair]:
    region = await start_member(ORG_REGION, databases, private_broker.bootstrap)
    vaxjo = await start_member(ORG_VAXJO, databases, private_broker.bootstrap)
    try:
        yield Pair(region, vaxjo)
    finally:
        with contextlib.suppress(Exception):
            await stop_member(region)
        with contextlib.suppress(Exception):
            await stop_member(vaxjo)
