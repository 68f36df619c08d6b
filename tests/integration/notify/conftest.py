"""Fixtures of the notify tests: a migrated database per backend and module (emptied before
each test), the notify app of Växjö kommun, and the real servers at the outer edge."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import luhn

from services.notify.dispatch import Dispatcher
from services.notify.models import infra
from shared.config import NotifySettings, Settings
from shared.data import migrations
from shared.data.db import Database, new_id, utcnow
from shared.data.work import Work
from shared.identity.auth import Caller, mint_token
from shared.messaging.events.payloads import REFERRAL_RECEIVED_V1, ReferralReceivedV1
from shared.messaging.outbox import Outbox
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import BACKENDS, ORG_REGION, ORG_VAXJO, create_pg_database, drop_pg_database
from tests.conftest import make_settings as base_settings
from tests.integration.notify.servers import SmtpServer, WebhookReceiver

SPEC = load_spec("notify")
INTAKE = "vaxjo-soc-mottagning"  # Växjö's social-services intake
OTHER_UNIT = "vaxjo-boendestod"
COORDINATOR = "vaxjo-vardkedjekoordinator"
MAILBOX = "socialtjanst.mottagning@vaxjo.example"
SCOPES = ["notify:read", "notify:write"]


def random_orgnr() -> str:
    """A valid organisationsnummer of a test member of its own (own topics, own groups)."""
    import random

    head = [random.randint(0, 9) for _ in range(9)]
    head[0], head[2] = 2, random.randint(2, 9)
    digits = "".join(map(str, head))
    digits += luhn.calc_check_digit(digits)
    orgnr = f"{digits[:6]}-{digits[6:]}"
    # A member of the test federation: its keys join the session's trust list (ADR 0020).
    from shared.messaging.trust_keys import ensure_members
    from tests.helpers.signed import trust_dir

    ensure_members(trust_dir(), [(orgnr, "Testmedlem")])
    return orgnr


def work_of(session: AsyncSession, settings: Settings, caller: Caller | None = None) -> Work:
    """A step of notify in ``session`` (as a handler or router makes one)."""
    return Work(session, Outbox(settings, infra), settings, caller)


def notify_settings(db_url: str, *, orgnr: str = ORG_VAXJO, **notify: Any) -> Settings:
    """Settings of Växjö's notify on ``db_url``; ``notify`` overrides NotifySettings."""
    values: dict[str, Any] = {
        "webhook_allow_private": True,  # the receivers listen on loopback
        "webhook_backoff_base_s": 0.05,
        "webhook_backoff_max_s": 0.2,
        "webhook_timeout_s": 1.0,
        "webhook_max_attempts": 3,
        "email_max_attempts": 3,
        "dispatch_poll_interval_s": 0.05,
        "timer_poll_interval_s": 0.1,
        "sse_poll_interval_s": 0.05,
        "link_base_url": "https://notify.vaxjo.example",
        **notify,
    }
    kafka: dict[str, Any] = {}
    if "bootstrap" in values:
        kafka["bootstrap"] = values.pop("bootstrap")
    settings = base_settings(service="notify", orgnr=orgnr, db_url=db_url, **kafka)
    return settings.model_copy(update={"notify": NotifySettings.model_validate(values)})


def auth(
    *,
    unit: str | None = INTAKE,
    roles: tuple[str, ...] = (),
    org: str = ORG_VAXJO,
    scopes: list[str] | None = None,
) -> dict[str, str]:
    token = mint_token(
        sub="handlaggare-1",
        org=org,
        scopes=SCOPES if scopes is None else scopes,
        unit=unit,
        roles=roles,
    )
    return {"Authorization": f"Bearer {token}"}


ADMIN: dict[str, Any] = {"unit": None, "roles": ("member_admin",)}


def received(
    *,
    referral_id: str | None = None,
    unit_id: str = INTAKE,
    acknowledge_by: dt.datetime | None = None,
    kind: str = "kontaktbegaran",
) -> tuple[str, BaseModel]:
    """A referral.received event as the referral service will send it."""
    return REFERRAL_RECEIVED_V1, ReferralReceivedV1(
        referral_id=referral_id or new_id(),
        kind=kind,
        unit_id=unit_id,
        sender_orgnr=ORG_REGION,
        sender_unit_id="region-beroendemottagning",
        urgency="urgent",
        acknowledge_by=acknowledge_by or utcnow() + dt.timedelta(hours=48),
        received_at=utcnow(),
    )


@pytest.fixture(scope="module", params=BACKENDS)
async def migrated_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """One database per backend for this module, migrated once."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('notify') / 'notify.db'}"
    else:
        url = await create_pg_database()
    await migrations.upgrade(SPEC.migrations_dir, url)
    yield url
    if request.param == "postgres":
        await drop_pg_database(url)


@pytest.fixture
async def db_url(migrated_url: str) -> str:
    """The module's database, emptied before each test."""
    database = Database(migrated_url)
    try:
        async with database.transaction() as session:
            for table in reversed(SPEC.metadata.sorted_tables):
                if table is not SPEC.infra.audit:
                    await session.execute(table.delete())
    finally:
        await database.dispose()
    return migrated_url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return notify_settings(db_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(SPEC, settings)
    yield application
    await application.state.ctx.db.dispose()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def dispatcher(settings: Settings, db: Database) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(settings, db)
    yield d
    await d.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


async def handle(
    db: Database,
    settings: Settings,
    event: tuple[str, BaseModel],
    *,
    event_id: str | None = None,
) -> list[str]:
    """Apply one event as the worker's consumer does (one transaction); the new ids."""
    from services.notify.consume import notify_event

    event_type, payload = event
    async with db.transaction() as session:
        created = await notify_event(
            work_of(session, settings),
            event_id=event_id or new_id(),
            event_type=event_type,
            payload=payload,
        )
    return created.ids


async def subscribe(
    client: httpx.AsyncClient,
    url: str,
    *,
    unit_id: str | None = INTAKE,
    event_types: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "event_types": event_types or ["referral.received"]}
    if unit_id is not None:
        body["unit_id"] = unit_id
    r = await client.post(
        "/v1/webhook-subscriptions", json=body, headers=headers or auth(unit=unit_id)
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def own_unit_changed(unit_id: str, *, version: int = 1) -> Any:
    """The directory's announcement of ``unit_id`` as one of Växjö's own units."""
    from shared.messaging.events.payloads import UnitChangedV1

    return UnitChangedV1(
        unit_id=unit_id,
        owner_orgnr=ORG_VAXJO,
        name=unit_id,
        kind="socialtjanstens_mottagning",
        contact_paths=[{"reason": "Ansökan", "channel": "inbox"}],
        status="active",
        version=version,
        changed_at=utcnow(),
    )


async def announce_unit(app: FastAPI, unit_id: str) -> None:
    """Notify learns of ``unit_id`` as its member's own (as from the directory's
    ``unit.changed``), unless it already knows it."""
    from services.notify.channels import apply_units_changed
    from services.notify.repository import UnitChannelRepository

    ctx = app.state.ctx
    async with ctx.db.transaction() as session:
        known = await UnitChannelRepository(session).get(unit_id)
        if known is None or known.directory_version < 1:
            await apply_units_changed(
                Work(session, ctx.outbox, ctx.settings), [own_unit_changed(unit_id)]
            )


async def set_mailbox(client: httpx.AsyncClient, unit_id: str, email: str) -> None:
    # Only a unit the member's directory announced has channels to set.
    await announce_unit(client._transport.app, unit_id)  # type: ignore[attr-defined]
    r = await client.put(
        f"/v1/units/{unit_id}/channels", json={"email": email}, headers=auth(**ADMIN)
    )
    assert r.status_code == 200, r.text
