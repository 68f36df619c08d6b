"""Deadline events of the referral worker: a discharge date, a plan's follow-up date and an
acknowledged task's answer coming near (in Swedish working days) and passing, and a sent
task past its deadline at the receiver, each sent once per unit and state."""

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


async def seed_answers(db: Database) -> None:
    """Tasks owing an answer on both sides, and some that do not."""

    def task(id_: str, status: str, answer_by: dt.date | None) -> Incoming:
        return Incoming(
            id=id_, referral_id=f"r-{id_}", kind="kontaktbegaran", personnummer=PNR,
            person_key="k", sender_orgnr="212000-0647", sender_unit_id="vx-soc",
            unit_id="rk-beroende", status=status, basis={"kind": "consent"},
            acknowledge_by=dt.date(2026, 12, 1), answer_by=answer_by,
        )  # fmt: skip

    async with db.transaction() as s:
        s.add(
            Referral(
                id="r2", kind="sip_kallelse", personnummer=PNR, person_key="k",
                sender_unit_id="avd-12", created_by="u",
            )
        )  # fmt: skip
        await s.flush()

        def mirror(id_: str, status: str, answer_by: dt.date | None) -> Recipient:
            return Recipient(
                id=id_, referral_id="r2", orgnr="212000-0647", unit_id="vx-soc",
                status=status, basis={"kind": "consent"}, acknowledge_by=DISCHARGE,
                answer_by=answer_by,
            )  # fmt: skip

        s.add_all(
            [
                task("a1", "acknowledged", DISCHARGE),  # owes an answer by the 23rd
                task("a2", "accepted", DISCHARGE),  # answered: never chased
                task("a3", "acknowledged", None),  # acknowledged before answer deadlines
                mirror("m1", "acknowledged", DISCHARGE),  # the other owes this member
                mirror("m2", "delivered", None),  # not acknowledged by the 23rd
                mirror("m3", "declined", DISCHARGE),  # answered
            ]
        )


async def test_answers_owed_are_chased_and_their_senders_alerted_once(
    databases: DatabaseFactory,
) -> None:
    url = await databases.new("referral")
    await migrations.upgrade(REFERRAL.migrations_dir, url)
    db = Database(url)
    try:
        await seed_answers(db)
        assert await run(db, dt.date(2026, 12, 17)) == 0  # four working days before
        assert await run(db, dt.date(2026, 12, 21)) == 1  # two working days before: near
        assert await events(db) == [("a1", "rk-beroende", "answer", "near")]
        assert await run(db, dt.date(2026, 12, 23)) == 0, "the last day is not overdue yet"
        # Julafton is the first day after: overdue for the unit that owes the answer, and the
        # unit that sent the tasks is alerted of both, the unacknowledged and the unanswered.
        assert await run(db, dt.date(2026, 12, 24)) == 3
        assert await events(db) == [
            ("a1", "rk-beroende", "answer", "near"),
            ("a1", "rk-beroende", "answer", "overdue"),
            ("m1", "avd-12", "answer", "overdue"),
            ("m2", "avd-12", "acknowledge", "overdue"),
        ]
        assert await audiences(db) == {"a1": {"actor"}, "m1": {"sender"}, "m2": {"sender"}}
        assert await run(db, dt.date(2027, 1, 20)) == 0, "each alert is sent once"
    finally:
        await db.dispose()


async def audiences(db: Database) -> dict[str, set[str]]:
    ob = REFERRAL.infra.outbox
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == REFERRAL_DEADLINE_V1))).all()
    out: dict[str, set[str]] = {}
    for data in (outbox_data(r) for r in rows):
        out.setdefault(data["referral_id"], set()).add(data["audience"])
    return out
