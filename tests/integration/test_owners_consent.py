"""Owners stay owners in the consent service (issue 19): a party's copy of another
member's consent is bound to its first owner; an event of any other member about that
consent id is refused (``not_owner``), a forged version changes nothing, and the owner's
next change still applies. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from services.consent.handlers import consumers
from services.consent.models import ConsentCopy
from shared.config import ConsentSettings
from shared.data import migrations
from shared.data.db import Database
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    CONSENT_RECORDED_V1,
    ConsentEndedV1,
    ConsentRecordedV1,
)
from shared.messaging.inbox import Delivery, Handler, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.integration.consent.helpers import new_person, settings_for, today

SPEC = load_spec("consent")
CONSENT_ID = "00000000-0000-0000-0000-00000000c0de"
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
Handlers = tuple[Database, dict[str, Handler]]


@pytest.fixture
async def region(db_url: str) -> AsyncIterator[Handlers]:
    """Region Kronoberg's consent worker handlers (a party to Alvesta's consents)."""
    await migrations.upgrade(SPEC.migrations_dir, db_url)
    settings = settings_for(db_url, ORG_REGION).model_copy(
        update={"consent": ConsentSettings(person_key_secret="region-kronoberg-secret")}
    )
    ctx = create_app(SPEC, settings).state.ctx
    found: dict[str, Handler] = {}
    for spec in consumers(ctx):
        found.update(spec.handlers)
    yield ctx.db, found
    await ctx.db.dispose()


def recorded(owner: str, *, version: int = 1) -> ConsentRecordedV1:
    return ConsentRecordedV1(
        consent_id=CONSENT_ID,
        owner_orgnr=owner,
        personnummer=new_person(),
        parties=[{"orgnr": owner}, {"orgnr": ORG_REGION}],
        purposes=["sip"],
        categories=["plan"],
        valid_from=today(),
        valid_to=today() + dt.timedelta(days=90),
        recorded_at=NOW,
        version=version,
    )


def ended(owner: str, *, version: int) -> ConsentEndedV1:
    return ConsentEndedV1(
        consent_id=CONSENT_ID,
        owner_orgnr=owner,
        reason="withdrawn",
        ended_at=NOW,
        parties=[{"orgnr": owner}, {"orgnr": ORG_REGION}],
        purposes=["sip"],
        version=version,
    )


async def handle(region: Handlers, type_: str, payload: BaseModel, sender: str) -> None:
    db, found = region
    event = CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:consent",
        type=type_,
        data=payload.model_dump(mode="json"),
    )
    record = ReceivedRecord("t", 0, 0, None, b"", [])
    async with db.transaction() as session:
        await found[type_](session, Delivery(event, payload, record))


async def refused(region: Handlers, type_: str, payload: BaseModel, sender: str) -> str:
    with pytest.raises(Reject) as info:
        await handle(region, type_, payload, sender)
    return info.value.rule


async def copy(region: Handlers) -> tuple[str, int, str]:
    async with region[0].sessionmaker() as session:
        row = await session.get(ConsentCopy, CONSENT_ID)
        assert row is not None
        return row.owner_orgnr, row.version, row.status


class TestTheConsentCopy:
    async def test_another_member_cannot_take_a_copy_over(self, region: Handlers) -> None:
        await handle(region, CONSENT_RECORDED_V1, recorded(ORG_ALVESTA), ORG_ALVESTA)
        takeover = recorded(ORG_VAXJO, version=2)
        assert await refused(region, CONSENT_RECORDED_V1, takeover, ORG_VAXJO) == "not_owner"
        assert await copy(region) == (ORG_ALVESTA, 1, "active")

    async def test_a_forged_end_changes_nothing_and_the_owners_end_applies(
        self, region: Handlers
    ) -> None:
        await handle(region, CONSENT_RECORDED_V1, recorded(ORG_ALVESTA), ORG_ALVESTA)
        forged = ended(ORG_VAXJO, version=1000)
        assert await refused(region, CONSENT_ENDED_V1, forged, ORG_VAXJO) == "not_owner"
        assert await copy(region) == (ORG_ALVESTA, 1, "active")
        await handle(region, CONSENT_ENDED_V1, ended(ORG_ALVESTA, version=2), ORG_ALVESTA)
        assert await copy(region) == (ORG_ALVESTA, 2, "withdrawn")

    async def test_an_end_kept_before_its_copy_binds_the_id_too(self, region: Handlers) -> None:
        await handle(region, CONSENT_ENDED_V1, ended(ORG_ALVESTA, version=2), ORG_ALVESTA)
        takeover = recorded(ORG_VAXJO, version=5)
        assert await refused(region, CONSENT_RECORDED_V1, takeover, ORG_VAXJO) == "not_owner"
