"""Non-answers chased, across two members over the real broker: once a unit acknowledges a
task (a referral, or an invitation) it owes an answer — accept or decline — by ``answer_by``,
which each member sets for its own side (working days by kind and urgency, or the day a SIP
invitation names). The referral worker's deadline check (run here with ``today=``) reminds
the receiving unit as the day comes near and when it passes, and alerts the sending or
convening unit once the day has passed; an answered task is never chased."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from services.referral import deadlines
from shared.data.work import Work
from shared.domain.calendar import add_working_days, to_local
from shared.domain.kinds import spec
from shared.messaging.events.payloads import REFERRAL_DEADLINE_V1
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import new_person

from .conftest import REFERRAL, REGION_BEROENDE, RW, VAXJO_SOC, Member, Pair, auth
from .test_referral_flow import copy_arrived, kontaktbegaran, record_consent, step
from .test_referral_flow import recipient_status as mirror
from .test_referral_meetings import consent_for, inbox

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
RECEIVER = auth(ORG_VAXJO, VAXJO_SOC, RW)

Event = tuple[str, str, str, str, str]
"""(task, unit, deadline, state, audience) of a deadline event."""


async def deadline_events(member: Member) -> list[Event]:
    """Every deadline event the member's referral service has published for its notify."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == REFERRAL_DEADLINE_V1))).all()
    payloads = [outbox_data(r) for r in rows]
    return sorted(
        (p["referral_id"], p["unit_id"], p["deadline"], p["state"], p["audience"]) for p in payloads
    )


async def check(member: Member, today: dt.date) -> list[Event]:
    """The member's deadline check on ``today``; the events it sent."""
    before = await deadline_events(member)
    ctx = member.referral_app.state.ctx
    async with member.referral_db.transaction() as session:
        await deadlines.check(Work(session, ctx.outbox, ctx.settings), today=today)
    after = await deadline_events(member)
    return sorted(set(after) - set(before))


async def send(member: Member, person: str, key: str) -> dict[str, Any]:
    async with member.referral() as c:
        r = await c.post(
            "/v1/referrals",
            json=kontaktbegaran(person, urgency="normal"),
            headers={**SENDER, "Idempotency-Key": key},
        )
    assert r.status_code == 201, r.text
    referral: dict[str, Any] = r.json()
    return referral


class TestAnAcknowledgedReferral:
    async def test_is_chased_until_it_is_answered_and_the_sender_is_alerted_once(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        consent_id = await record_consent(region, person, ["kontaktbegaran"])
        await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="copy")
        waiting = await send(region, person, "answer-waiting")
        answered = await send(region, person, "answer-answered")
        task, done = waiting["recipients"][0]["task_id"], answered["recipients"][0]["task_id"]

        async def both_filed() -> bool:
            return len(await inbox(vaxjo, RECEIVER)) == 2

        await eventually(both_filed, within=30, what="both referrals in the unit's inbox")
        r = await step(vaxjo, task, RECEIVER, to="acknowledged", case_reference="SOC-1")
        assert r.status_code == 200, r.text
        acknowledged = r.json()
        assert (await step(vaxjo, done, RECEIVER, to="acknowledged")).status_code == 200
        assert (await step(vaxjo, done, RECEIVER, to="accepted")).status_code == 200

        async def mirrored() -> bool:
            statuses = (
                (await mirror(region, waiting["id"]))["status"],
                (await mirror(region, answered["id"]))["status"],
            )
            return statuses == ("acknowledged", "accepted")

        await eventually(mirrored, within=30, what="the steps at the sender")

        # One policy, set by each member for its own side: five working days after today.
        today = to_local(dt.datetime.now(dt.UTC)).date()
        due = spec("kontaktbegaran").answer_by("normal", today, {})
        assert due == add_working_days(today, 5)
        assert acknowledged["answer_by"] == due.isoformat()
        at_sender = await mirror(region, waiting["id"])
        assert (at_sender["answer_by"], at_sender["overdue"]) == (due.isoformat(), False)

        # Not yet near: nothing. Near (two working days before): the receiving unit, once.
        assert await check(vaxjo, today) == []
        assert await check(region, today) == []
        near = add_working_days(today, 3)
        assert await check(vaxjo, near) == [(task, VAXJO_SOC, "answer", "near", "actor")]
        assert await check(region, near) == [], "the sender waits until the day has passed"
        assert await check(vaxjo, near) == []
        # Passed: the receiving unit is reminded again, the sending unit alerted — once.
        passed = due + dt.timedelta(days=1)
        assert await check(vaxjo, passed) == [(task, VAXJO_SOC, "answer", "overdue", "actor")]
        assert await check(region, passed) == [
            (task, REGION_BEROENDE, "answer", "overdue", "sender")
        ]
        later = passed + dt.timedelta(days=7)
        assert await check(vaxjo, later) == []
        assert await check(region, later) == []
        # The answered one was never chased, on either side.
        everything = await deadline_events(vaxjo) + await deadline_events(region)
        assert [e for e in everything if e[0] == done] == []

        # Answered late: the chase stops (nothing new on a later day).
        declined = await step(
            vaxjo,
            task,
            RECEIVER,
            to="declined",
            reason="Fel kommun",
            result={"decision": "referred_on"},
        )
        assert declined.is_success, declined.text
        await eventually(
            lambda: _status_is(region, waiting["id"], "declined"), within=30, what="decline"
        )
        assert await check(vaxjo, later + dt.timedelta(days=30)) == []
        assert await check(region, later + dt.timedelta(days=30)) == []


async def _status_is(member: Member, referral_id: str, status: str) -> bool:
    return bool((await mirror(member, referral_id))["status"] == status)


class TestASipInvitation:
    async def test_its_own_answer_day_wins_and_the_convener_is_alerted(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        await eventually(lambda: copy_arrived(region, consent_id), within=30, what="copy")
        today = to_local(dt.datetime.now(dt.UTC)).date()
        meeting_on = today + dt.timedelta(days=21)
        answer_by = meeting_on - dt.timedelta(days=7)
        sip = {
            "kind": "sip",
            "children_in_household": "no",
            "person": {"personnummer": person},
            "at": f"{meeting_on.isoformat()}T10:00:00+01:00",
            "place": "Avdelning 12, Centrallasarettet Växjö",
            "participants": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
            "answer_by": answer_by.isoformat(),
        }
        async with vaxjo.referral() as c:
            late = await c.post(
                "/v1/meetings",
                json={**sip, "answer_by": (meeting_on + dt.timedelta(days=1)).isoformat()},
                headers=RECEIVER,
            )
            assert late.status_code == 422, late.text
            assert "answer_by_after_meeting" in late.text
            r = await c.post("/v1/meetings", json=sip, headers=RECEIVER)
        assert r.status_code == 201, r.text
        meeting = r.json()
        [participant] = meeting["participants"]
        assert participant["answer_by"] is None  # not acknowledged yet

        async def invited() -> bool:
            return len(await inbox(region, SENDER)) == 1

        await eventually(invited, within=30, what="the invitation at the region")
        [invitation] = await inbox(region, SENDER)
        ack = await step(region, invitation["task_id"], SENDER, to="acknowledged")
        assert ack.status_code == 200, ack.text
        assert ack.json()["answer_by"] == answer_by.isoformat()

        async def participants(**params: str) -> list[dict[str, Any]]:
            async with vaxjo.referral() as c:
                got = await c.get(f"/v1/meetings/{meeting['id']}", params=params, headers=RECEIVER)
            assert got.status_code == 200, got.text
            parts: list[dict[str, Any]] = got.json()["participants"]
            return parts

        async def acknowledged_at_convener() -> bool:
            return [p["status"] for p in await participants()] == ["acknowledged"]

        await eventually(acknowledged_at_convener, within=30, what="the acknowledgement")
        [participant] = await participants()
        assert (participant["answer_by"], participant["overdue"]) == (answer_by.isoformat(), False)
        assert await participants(overdue="answer") == []
        assert await participants(overdue="acknowledge") == []

        passed = answer_by + dt.timedelta(days=1)
        task = invitation["task_id"]
        assert await check(region, passed) == [
            (task, REGION_BEROENDE, "answer", "overdue", "actor")
        ]
        assert await check(vaxjo, passed) == [(task, VAXJO_SOC, "answer", "overdue", "sender")]
        assert await check(vaxjo, passed) == []
