"""Owners stay owners in the referral service (issue 19): its copy of the directory's units
and its mirrors of referrals held by another member are bound to their first owner; an
event of any other member is refused (``not_owner``) and a forged version changes nothing.
The referral worker's own handlers, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from services.referral.handlers import consumers
from services.referral.models import Incoming, KnownUnit, Recipient, Referral
from shared.data.db import Database
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import (
    REFERRAL_TRANSITIONED_V1,
    UNIT_CHANGED_V1,
    ReferralTransitionedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import Delivery, Handler, Reject
from shared.messaging.kafka import ReceivedRecord
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, make_settings

SPEC = load_spec("referral")
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
PERSON = "198005172386"


@pytest.fixture
async def handlers(db_url: str) -> AsyncIterator[tuple[Database, dict[str, Handler]]]:
    """Region Kronoberg's referral worker handlers on a fresh database."""
    app = create_app(SPEC, make_settings(service="referral", orgnr=ORG_REGION, db_url=db_url))
    ctx = app.state.ctx
    async with ctx.db.engine.begin() as conn:
        await conn.run_sync(SPEC.metadata.create_all)
    found: dict[str, Handler] = {}
    for spec in consumers(ctx):
        found.update(spec.handlers)
    yield ctx.db, found
    await ctx.db.dispose()


def delivery(type_: str, payload: BaseModel, sender: str) -> Delivery:
    event = CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:referral",
        type=type_,
        data=payload.model_dump(mode="json"),
    )
    return Delivery(event, payload, ReceivedRecord("t", 0, 0, None, b"", []))


async def handle(
    handlers: tuple[Database, dict[str, Handler]], type_: str, payload: BaseModel, sender: str
) -> None:
    db, found = handlers
    async with db.transaction() as session:
        await found[type_](session, delivery(type_, payload, sender))


async def refused(
    handlers: tuple[Database, dict[str, Handler]], type_: str, payload: BaseModel, sender: str
) -> str:
    with pytest.raises(Reject) as info:
        await handle(handlers, type_, payload, sender)
    return info.value.rule


def unit(
    owner: str = ORG_ALVESTA, *, version: int = 1, name: str = "Mottagningen"
) -> UnitChangedV1:
    return UnitChangedV1(
        unit_id="alv-soc",
        owner_orgnr=owner,
        name=name,
        kind="socialtjanstens_mottagning",
        kommunkoder=["0764"],
        referral_kinds=["kontaktbegaran"],
        status="active",
        version=version,
        changed_at=NOW,
    )


async def known(db: Database) -> tuple[str, int, str] | None:
    async with db.sessionmaker() as session:
        row = await session.get(KnownUnit, "alv-soc")
        return None if row is None else (row.owner_orgnr, row.version, row.name)


class TestTheUnitCopy:
    async def test_a_member_publishes_only_its_own_units(
        self, handlers: tuple[Database, dict[str, Handler]]
    ) -> None:
        assert await refused(handlers, UNIT_CHANGED_V1, unit(), ORG_VAXJO) == "sender_not_owner"
        assert await known(handlers[0]) is None

    async def test_another_member_cannot_take_a_unit_over(
        self, handlers: tuple[Database, dict[str, Handler]]
    ) -> None:
        await handle(handlers, UNIT_CHANGED_V1, unit(), ORG_ALVESTA)
        takeover = unit(ORG_VAXJO, version=2, name="Växjö tar över")
        assert await refused(handlers, UNIT_CHANGED_V1, takeover, ORG_VAXJO) == "not_owner"
        assert await known(handlers[0]) == (ORG_ALVESTA, 1, "Mottagningen")

    async def test_a_forged_version_changes_nothing_and_the_owner_goes_on(
        self, handlers: tuple[Database, dict[str, Handler]]
    ) -> None:
        await handle(handlers, UNIT_CHANGED_V1, unit(), ORG_ALVESTA)
        forged = unit(ORG_VAXJO, version=1000)
        assert await refused(handlers, UNIT_CHANGED_V1, forged, ORG_VAXJO) == "not_owner"
        await handle(handlers, UNIT_CHANGED_V1, unit(version=2, name="Nytt namn"), ORG_ALVESTA)
        assert await known(handlers[0]) == (ORG_ALVESTA, 2, "Nytt namn")


def step(by: str, *, version: int, actor: str = "holder", to: str = "acknowledged") -> Any:
    return ReferralTransitionedV1(
        task_id="task-1",
        referral_id="ref-1",
        kind="kontaktbegaran",
        from_status="delivered",
        to_status=to,
        actor=actor,
        by_orgnr=by,
        receiver_version=version,
        at=NOW,
    )


class TestTheSendersMirror:
    """Region Kronoberg sent task-1 to Växjö: only Växjö reports on it."""

    @pytest.fixture
    async def sent(self, handlers: tuple[Database, dict[str, Handler]]) -> Database:
        db = handlers[0]
        async with db.transaction() as session:
            session.add(
                Referral(
                    id="ref-1",
                    kind="kontaktbegaran",
                    personnummer=PERSON,
                    person_key="k",
                    sender_unit_id="rk-port",
                    created_by="tester",
                )
            )
            await session.flush()
            session.add(
                Recipient(
                    id="task-1",
                    referral_id="ref-1",
                    orgnr=ORG_VAXJO,
                    unit_id="vx-soc",
                    status="delivered",
                    basis={"kind": "consent"},
                    acknowledge_by=NOW.date(),
                    remote_version=1,
                )
            )
        return db

    async def status(self, db: Database) -> tuple[str, int]:
        async with db.sessionmaker() as session:
            row = await session.get(Recipient, "task-1")
            assert row is not None
            return row.status, row.remote_version

    async def test_another_member_cannot_report_on_the_task(
        self, handlers: tuple[Database, dict[str, Handler]], sent: Database
    ) -> None:
        forged = step(ORG_ALVESTA, version=1000, to="declined")
        rule = await refused(handlers, REFERRAL_TRANSITIONED_V1, forged, ORG_ALVESTA)
        assert rule == "not_owner"
        assert await self.status(sent) == ("delivered", 1)
        # The holder's next report still applies: the forged version moved nothing.
        await handle(handlers, REFERRAL_TRANSITIONED_V1, step(ORG_VAXJO, version=2), ORG_VAXJO)
        assert await self.status(sent) == ("acknowledged", 2)


class TestTheReceiversCopy:
    """Växjö sent task-1 to Region Kronoberg, where it is filed: the id is Växjö's."""

    @pytest.fixture
    async def filed(self, handlers: tuple[Database, dict[str, Handler]]) -> Database:
        db = handlers[0]
        async with db.transaction() as session:
            session.add(
                Incoming(
                    id="task-1",
                    referral_id="ref-1",
                    kind="kontaktbegaran",
                    personnummer=PERSON,
                    person_key="k",
                    sender_orgnr=ORG_VAXJO,
                    sender_unit_id="vx-soc",
                    unit_id="rk-port",
                    status="delivered",
                    basis={"kind": "consent"},
                    acknowledge_by=NOW.date(),
                )
            )
        return db

    async def test_another_member_cannot_withdraw_the_task(
        self, handlers: tuple[Database, dict[str, Handler]], filed: Database
    ) -> None:
        withdrawal = step(ORG_ALVESTA, version=0, actor="sender", to="withdrawn")
        rule = await refused(handlers, REFERRAL_TRANSITIONED_V1, withdrawal, ORG_ALVESTA)
        assert rule == "not_owner"
        async with filed.sessionmaker() as session:
            row = await session.get(Incoming, "task-1")
            assert row is not None
            assert row.status == "delivered"
