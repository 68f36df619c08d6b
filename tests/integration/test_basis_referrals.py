"""A referral whose basis ends, and a basis that is none (issue 19), over the real broker:
a kontaktbegäran cancelled before the receiving unit registered it keeps nothing about the
person at the receiver, one it registered as its own case stays its record (ADR 0021); and
``same_member`` on a referral from another member is refused, never taken as a reason to
skip the consent decision."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from services.referral.models import Incoming
from shared.data.db import new_id, utcnow
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_SENT_V1,
    ReferralBasisV1,
    ReferralPersonV1,
    ReferralSentV1,
)
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.helpers.harness import eventually
from tests.integration.consent.helpers import new_person
from tests.integration.referral.conftest import (
    CONSENT_RW,
    REFERRAL,
    REGION_BEROENDE,
    RW,
    VAXJO_SOC,
    Member,
    auth,
)
from tests.integration.referral.test_referral_flow import (
    copy_arrived,
    kontaktbegaran,
    record_consent,
    step,
)
from tests.integration.test_basis_plans import Trio, three_members

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
SOC = auth(ORG_VAXJO, VAXJO_SOC, RW)
PERSON_SEARCH = auth(ORG_VAXJO, VAXJO_SOC, ["referral:read", "referral:person"])


@pytest.fixture
async def trio(private_broker: Broker, databases: DatabaseFactory) -> AsyncIterator[Trio]:
    async with three_members(private_broker, databases) as members:
        yield members


WISH = "Jag vill bo kvar i Växjö."
SUMMARY = "Skrivs ut inom två veckor och saknar bostad."


async def incoming(member: Member, task_id: str) -> Any:
    async with member.referral() as c:
        r = await c.get(f"/v1/incoming/{task_id}", headers=SOC)
    assert r.status_code == 200, r.text
    return r


async def status_of(member: Member, task_id: str) -> str | None:
    async with member.referral_db.sessionmaker() as s:
        row = await s.get(Incoming, task_id)
    return None if row is None else row.status


class TestAReferralWhoseBasisEnded:
    async def test_the_receiver_keeps_nothing_of_the_person_unless_it_registered_it(
        self, trio: Trio
    ) -> None:
        region, vaxjo = trio.region, trio.vaxjo
        person = new_person()
        consent_id = await record_consent(region, person, ["kontaktbegaran"])
        await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="copy")
        tasks = []
        async with region.referral() as c:
            for _ in range(2):
                r = await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)
                assert r.status_code == 201, r.text
                tasks.append(r.json()["recipients"][0]["task_id"])
        unregistered, registered = tasks
        for task in tasks:
            await eventually(delivered(vaxjo, task), within=30, what="delivered at Växjö")
        # The intake registers the second as an application in its own case system.
        r = await step(vaxjo, registered, SOC, to="acknowledged", case_reference="SOC-2026-77")
        assert r.status_code == 200, r.text

        async with region.consent() as c:
            r = await c.post(
                f"/v1/consents/{consent_id}/withdraw",
                json={"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
                headers=auth(ORG_REGION, REGION_BEROENDE, CONSENT_RW),
            )
        assert r.status_code == 200, r.text
        for task in tasks:
            await eventually(status_is(vaxjo, task, "cancelled"), within=30, what="cancelled")

        # The one not yet acknowledged: nothing of the person in the item, the list or a
        # person search, and none in the table.
        item = (await incoming(vaxjo, unregistered)).json()
        assert item["status"] == "cancelled"
        assert item["person"]["personnummer"] is None
        assert (item["summary"], item["persons_wish"], item["needs"]) == ("", "", [])
        async with vaxjo.referral() as c:
            listed = (await c.get("/v1/incoming", headers=SOC)).json()["items"]
            found = await c.post(
                "/v1/person-search", json={"personnummer": person}, headers=PERSON_SEARCH
            )
        assert found.status_code == 200, found.text
        shown = {i["task_id"]: i for i in listed}
        assert person not in str(shown[unregistered])
        assert WISH not in str(shown[unregistered])
        assert SUMMARY not in str(shown[unregistered])
        assert [i["task_id"] for i in found.json()] == [registered]
        async with vaxjo.referral_db.sessionmaker() as s:
            row = await s.get(Incoming, unregistered)
            assert row is not None
            assert (row.personnummer, row.person_key, row.persons_wish) == (None, None, "")

        # The registered one stays the intake's own record (cancelled: nothing more crosses).
        kept = (await incoming(vaxjo, registered)).json()
        assert kept["status"] == "cancelled"
        assert (kept["person"]["personnummer"], kept["persons_wish"]) == (person, WISH)
        assert kept["case_reference"] == "SOC-2026-77"


def status_is(member: Member, task_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await status_of(member, task_id) == status

    return check


def delivered(member: Member, task_id: str) -> Callable[[], Awaitable[bool]]:
    return status_is(member, task_id, "delivered")


class TestSameMemberFromAnotherMember:
    async def test_a_referral_resting_on_same_member_is_refused(self, trio: Trio) -> None:
        vaxjo, alvesta = trio.vaxjo, trio.alvesta
        person = new_person()
        # Even a consent copy at Växjö naming Alvesta would not make same_member a basis.
        task_id = new_id()
        event = ReferralSentV1(
            task_id=task_id,
            referral_id=new_id(),
            kind="kontaktbegaran",
            sender_orgnr=ORG_ALVESTA,
            sender_unit_id="al-soc",
            recipient_orgnr=ORG_VAXJO,
            recipient_unit_id=VAXJO_SOC,
            person=ReferralPersonV1(personnummer=person),
            needs=["boendestod"],
            summary=SUMMARY,
            persons_wish=WISH,
            details={"kommunkod": "0780"},
            basis=ReferralBasisV1(kind="same_member"),
            acknowledge_by=dt.date.today() + dt.timedelta(days=3),
            sent_at=utcnow(),
        )
        ctx = alvesta.referral_app.state.ctx
        async with ctx.db.transaction() as session:
            await ctx.outbox.publish(
                session,
                topics.inbound(ORG_VAXJO),
                REFERRAL_SENT_V1,
                event,
                subject=task_id,
                key=task_id,
                aggversion=1,
            )

        async def refused() -> bool:
            dl = REFERRAL.infra.dead_letter
            async with vaxjo.referral_db.sessionmaker() as s:
                n = await s.scalar(
                    select(func.count())
                    .select_from(dl)
                    .where(dl.c.reason == "no_basis", dl.c.event_type == REFERRAL_SENT_V1)
                )
            return n == 1

        await eventually(refused, within=30, what="refused at Växjö as no_basis")
        assert await status_of(vaxjo, task_id) is None
