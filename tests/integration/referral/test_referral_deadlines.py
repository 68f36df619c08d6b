"""Deadline events of the referral worker: a discharge date and a plan's follow-up date
coming near (in Swedish working days) and passing, each sent once per unit and state."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from services.referral import deadlines
from services.referral.models import Incoming, Plan, Recipient, Referral
from shared.data import migrations
from shared.data.db import Database
from shared.data.work import Work
from shared.messaging.events.payloads import REFERRAL_DEADLINE_V1
from shared.messaging.outbox import Outbox
from tests.conftest import ORG_REGION, DatabaseFactory, make_settings
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import new_person

from .conftest import REFERRAL

PNR = new_person()
DISCHARGE = dt.date(2026, 12, 23)  # a Wednesday before Christmas


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        s.add(
            Referral(
                id="r1", kind="utskrivningsplanering", personnummer=PNR, person_key="k",
                sender_unit_id="avd-12", created_by="u",
                details={"expected_discharge_date": DISCHARGE.isoformat()},
            )
        )  # fmt: skip
        await s.flush()
        s.add_all(
            [
                Recipient(
                    id="t1", referral_id="r1", orgnr="212000-0647", unit_id="vx-soc",
                    status="acknowledged", basis={"kind": "consent"},
                    acknowledge_by=dt.date(2026, 12, 1),
                ),
                Incoming(
                    id="i1", referral_id="x", kind="utskrivningsplanering", personnummer=PNR,
                    person_key="k", sender_orgnr="212000-0647", sender_unit_id="vx-hvb",
                    unit_id="rk-psyk", status="delivered", basis={"kind": "consent"},
                    acknowledge_by=dt.date(2026, 12, 1),
                    details={"expected_discharge_date": DISCHARGE.isoformat()},
                ),
                Incoming(  # closed: no deadline events
                    id="i2", referral_id="y", kind="utskrivningsplanering", personnummer=PNR,
                    person_key="k", sender_orgnr="212000-0647", sender_unit_id="vx-hvb",
                    unit_id="rk-psyk", status="completed", basis={"kind": "consent"},
                    acknowledge_by=dt.date(2026, 12, 1),
                    details={"expected_discharge_date": DISCHARGE.isoformat()},
                ),
                Plan(
                    id="p1", owner_orgnr=ORG_REGION, owner_unit_id="rk-port", kind="sip",
                    personnummer=PNR, person_key="k",
                    coordinators=[{"orgnr": ORG_REGION, "unit_id": "rk-koordinator"}],
                    follow_up_date=DISCHARGE, viewers=[],
                    actions=[{"id": "a", "status": "planned"}],
                ),
            ]
        )  # fmt: skip


async def events(db: Database) -> list[tuple[str, str, str, str]]:
    ob = REFERRAL.infra.outbox
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == REFERRAL_DEADLINE_V1))).all()
    out = [outbox_data(r) for r in rows]
    return sorted((e["referral_id"], e["unit_id"], e["deadline"], e["state"]) for e in out)


async def run(db: Database, today: dt.date) -> int:
    settings = make_settings(service="referral", orgnr=ORG_REGION, db_url=db.url)
    async with db.transaction() as s:
        assert settings.referral.near_working_days == 2  # the warning window the test expects
        return await deadlines.check(
            Work(s, Outbox(settings, REFERRAL.infra), settings), today=today
        )


async def test_near_then_overdue_once_each(databases: DatabaseFactory) -> None:
    url = await databases.new("referral")
    await migrations.upgrade(REFERRAL.migrations_dir, url)
    db = Database(url)
    try:
        await seed(db)
        assert await run(db, dt.date(2026, 12, 17)) == 0  # four working days before
        # Two working days before the 23rd is the 21st (Monday): near.
        assert await run(db, dt.date(2026, 12, 21)) == 3
        near = [
            ("i1", "rk-psyk", "discharge", "near"),
            ("p1", "rk-koordinator", "plan", "near"),
            ("t1", "avd-12", "discharge", "near"),
        ]
        assert await events(db) == near
        assert await run(db, dt.date(2026, 12, 22)) == 0, "each state is sent once"
        # The 24th to 28th are julafton, juldagen, annandag and a weekend: overdue on the 28th.
        assert await run(db, dt.date(2026, 12, 28)) == 3
        assert await events(db) == sorted([*near, *((s, u, d, "overdue") for s, u, d, _ in near)])
    finally:
        await db.dispose()
