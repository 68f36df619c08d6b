"""A partial withdrawal of consent across two members over the real broker (issue 21): "att
avstå från gemensam planering behöver inte innebära att individen tackar nej till insatser".
The person withdraws the SIP purpose of a consent that also carries a kontaktbegäran: the SIP
invitation on it is cancelled on both sides, the kontaktbegäran — registered by the kommun
as an application or not yet acknowledged — stays, and the units holding the tasks are told
what the consent still covers. A plan copy closes only when its own purpose is withdrawn,
and a task of a withdrawn purpose arriving late is not filed even if the consent service
lags."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.consent.models import ConsentCopy
from services.referral.models import ConsentNarrowing, Incoming, Transition
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    CONSENT_NARROWED_V1,
    REFERRAL_BASIS_NARROWED_V1,
    REFERRAL_SENT_V1,
)
from tests.conftest import ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import problem
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import new_person
from tests.integration.test_basis_plans import PLAN_BODY, answer, get_plan, plan_version, sip

from .conftest import CONSENT_RW, REFERRAL, REGION_BEROENDE, VAXJO_SOC, Member, Pair, auth
from .test_referral_flow import (
    RECEIVER,
    SENDER,
    copy_arrived,
    kontaktbegaran,
    record_consent,
    step,
)
from .test_referral_order import hold, mirror, receiver_row, records

WISH = "Jag vill bo kvar i Växjö."


async def narrow(member: Member, consent_id: str, purposes: list[str]) -> dict[str, Any]:
    """The person withdraws ``purposes`` of the consent at the member that recorded it."""
    async with member.consent() as c:
        r = await c.post(
            f"/v1/consents/{consent_id}/withdraw",
            json={
                "reason": "Personen avstår från gemensam planering.",
                "withdrawn_by": {"kind": "person"},
                "purposes": purposes,
            },
            headers=auth(member.orgnr, REGION_BEROENDE, CONSENT_RW),
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "active"
    return body


async def send(member: Member, person: str) -> tuple[str, str]:
    """Region's kontaktbegäran to Växjö's intake: (referral id, task id)."""
    async with member.referral() as c:
        r = await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["recipients"][0]["task_id"]


async def status_at(member: Member, task_id: str) -> str | None:
    row = await receiver_row(member, Incoming, task_id)
    return None if row is None else str(row.status)


async def told(member: Member) -> dict[str, dict[str, Any]]:
    """What the member's referral service told its notify of narrowed consents, by task."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (
            await s.execute(select(ob).where(ob.c.event_type == REFERRAL_BASIS_NARROWED_V1))
        ).all()
    return {p["referral_id"]: p for p in (outbox_data(r) for r in rows)}


async def with_joint_consent(pair: Pair, purposes: list[str]) -> tuple[str, str]:
    """A person whose consent (recorded at Region for ``purposes``) has arrived at Växjö."""
    person = new_person()
    consent_id = await record_consent(pair.region, person, purposes)
    await eventually(lambda: copy_arrived(pair.vaxjo, consent_id), within=30, what="copy")
    return person, consent_id


async def accepted_sip(pair: Pair, person: str) -> tuple[str, str]:
    """Region convenes a SIP and Växjö's intake accepts: (meeting id, invitation task id)."""
    region, vaxjo = pair.region, pair.vaxjo
    meeting_id, [invitation] = await sip(
        region, vaxjo, person, [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]
    )
    await answer(vaxjo, invitation, RECEIVER, "accepted")

    async def accepted() -> bool:
        return (await mirror(region, invitation)).status == "accepted"

    await eventually(accepted, within=30, what="the acceptance at Region")
    return meeting_id, invitation


async def record_plan(region: Member, meeting_id: str) -> str:
    """Region records the SIP's plan (shared with the intake that accepted); its id."""
    body = {**PLAN_BODY, "actions": PLAN_BODY["actions"][:1]}
    async with region.referral() as c:
        r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=body, headers=SENDER)
    assert r.status_code == 200, r.text
    plan_id: str = r.json()["id"]
    return plan_id


class TestAPartialWithdrawalKeepsTheKontaktbegaran:
    async def test_the_sip_invitation_is_cancelled_and_both_parties_are_told(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_joint_consent(members, ["kontaktbegaran", "sip"])
        _, registered = await send(region, person)
        _, unregistered = await send(region, person)
        for task in (registered, unregistered):
            await eventually(lambda t=task: _is(vaxjo, t, "delivered"), within=30, what="delivered")
        r = await step(vaxjo, registered, RECEIVER, to="acknowledged", case_reference="SOC-2026-7")
        assert r.status_code == 200, r.text
        _, [invitation] = await sip(
            region, vaxjo, person, [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]
        )
        await eventually(lambda: _is(vaxjo, invitation, "delivered"), within=30, what="invited")

        await narrow(region, consent_id, ["sip"])

        await eventually(lambda: _is(vaxjo, invitation, "cancelled"), within=30, what="at Växjö")

        async def cancelled_at_region() -> bool:
            return (await mirror(region, invitation)).status == "cancelled"

        await eventually(cancelled_at_region, within=30, what="the invitation at Region")

        # The kontaktbegäran stays, registered or not, with the person, on both sides.
        kept = await receiver_row(vaxjo, Incoming, registered)
        assert (kept.status, kept.case_reference) == ("acknowledged", "SOC-2026-7")
        assert (kept.personnummer, kept.persons_wish) == (person, WISH)
        waiting = await receiver_row(vaxjo, Incoming, unregistered)
        assert (waiting.status, waiting.personnummer) == ("delivered", person)
        assert (await mirror(region, registered)).status == "acknowledged"
        assert (await mirror(region, unregistered)).status == "delivered"
        # The invitation keeps nothing about the person at Växjö (ADR 0021).
        gone = await receiver_row(vaxjo, Incoming, invitation)
        assert (gone.personnummer, gone.reason) == (None, "the consent was withdrawn for sip")
        assert (await mirror(region, invitation)).reason == "the consent was withdrawn for sip"
        # The kommun's receiving unit can still work the application.
        r = await step(vaxjo, registered, RECEIVER, to="accepted")
        assert r.status_code == 200, r.text

        # Both parties' units were told what the consent still covers, once per task.
        at_vaxjo = await told(vaxjo)
        assert {t: (p["unit_id"], p["direction"], p["cancelled"]) for t, p in at_vaxjo.items()} == {
            registered: (VAXJO_SOC, "incoming", False),
            unregistered: (VAXJO_SOC, "incoming", False),
            invitation: (VAXJO_SOC, "incoming", True),
        }

        async def region_told() -> bool:
            return set(await told(region)) == {registered, unregistered, invitation}

        await eventually(region_told, within=30, what="Region's units told")
        at_region = await told(region)
        assert {p["unit_id"] for p in at_region.values()} == {REGION_BEROENDE}
        assert at_region[invitation]["cancelled"]
        assert not at_region[registered]["cancelled"]
        for p in [*at_vaxjo.values(), *at_region.values()]:
            assert p["covers"] == ["kontaktbegaran"]
            assert person not in str(p)

        # From now on: another kontaktbegäran goes, another SIP invitation does not.
        _, third = await send(region, person)
        await eventually(lambda: _is(vaxjo, third, "delivered"), within=30, what="a new one")
        async with region.referral() as c:
            r = await c.post(
                "/v1/meetings",
                json={
                    "kind": "sip",
                    "children_in_household": "no",
                    "person": {"personnummer": person},
                    "at": "2026-12-20T10:00:00+01:00",
                    "place": "Beroendemottagningen",
                    "participants": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
                },
                headers=SENDER,
            )
        problem(r, 403, "no-basis")

    async def test_a_plan_copy_closes_only_when_its_own_purpose_is_withdrawn(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_joint_consent(
            members, ["kontaktbegaran", "sip", "vardkedjesamordning"]
        )
        _, kontakt = await send(region, person)
        meeting_id, invitation = await accepted_sip(members, person)
        plan_id = await record_plan(region, meeting_id)

        async def copy_at_vaxjo() -> bool:
            return await plan_version(vaxjo, plan_id, RECEIVER) == 1

        await eventually(copy_at_vaxjo, within=30, what="the plan at Växjö")

        # The kontaktbegäran's purpose goes: its task is cancelled, the SIP plan stays.
        await narrow(region, consent_id, ["kontaktbegaran"])
        await eventually(lambda: _is(vaxjo, kontakt, "cancelled"), within=30, what="cancelled")
        plan = (await get_plan(vaxjo, plan_id, RECEIVER)).json()
        assert (plan["status"], plan["person"]["personnummer"]) == ("active", person)
        assert await status_at(vaxjo, invitation) == "accepted"

        # The SIP purpose goes: the copy closes, the invitation is cancelled; the consent is
        # still in force for the coordination of the care chain.
        narrowed = await narrow(region, consent_id, ["sip"])
        assert narrowed["purposes"] == ["vardkedjesamordning"]

        async def closed() -> bool:
            got = (await get_plan(vaxjo, plan_id, RECEIVER)).json()
            return bool(got["status"] == "withdrawn")

        await eventually(closed, within=30, what="the plan copy closed")
        assert (await get_plan(vaxjo, plan_id, RECEIVER)).json()["person"]["personnummer"] is None
        await eventually(lambda: _is(vaxjo, invitation, "cancelled"), within=30, what="invitation")


class TestATaskOfAWithdrawnPurposeArrivingLate:
    async def test_it_is_not_filed_though_the_consent_service_lags_and_a_kept_one_is(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_joint_consent(members, ["kontaktbegaran", "sip"])
        await hold(vaxjo, "consent")  # Växjö's consent service will not hear of it
        at_vaxjo = await hold(vaxjo, "referral")
        _, kontakt = await send(region, person)
        _, [invitation] = await sip(
            region, vaxjo, person, [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]
        )
        await narrow(region, consent_id, ["sip"])
        [narrowed] = await records(
            region.consent_app.state.ctx.db,
            "consent",
            topics.inbound(ORG_VAXJO),
            CONSENT_NARROWED_V1,
        )
        sent = await records(
            region.referral_db, "referral", topics.inbound(ORG_VAXJO), REFERRAL_SENT_V1
        )
        assert len(sent) == 2

        assert await at_vaxjo.handle(narrowed) == "applied"
        assert await at_vaxjo.handle(narrowed) == "duplicate"
        heard = await receiver_row(vaxjo, ConsentNarrowing, consent_id)
        assert (heard.withdrawn_purposes, heard.version) == (["sip"], 2)
        for record in sent:
            assert await at_vaxjo.handle(record) == "applied"

        # Växjö's consent service still has the SIP purpose; its referral service knows better.
        async with vaxjo.consent_app.state.ctx.db.sessionmaker() as s:
            copy = await s.get(ConsentCopy, consent_id)
        assert copy is not None
        assert (copy.version, copy.purposes) == (1, ["kontaktbegaran", "sip"])
        assert await receiver_row(vaxjo, Incoming, invitation) is None
        async with vaxjo.referral_db.sessionmaker() as s:
            steps = list(
                await s.scalars(select(Transition).where(Transition.task_id == invitation))
            )
        assert [(t.to_status, t.reason) for t in steps] == [
            ("undeliverable", "no_basis_at_receiver: purpose_withdrawn")
        ]
        assert await status_at(vaxjo, kontakt) == "delivered"


async def _is(member: Member, task_id: str, status: str) -> bool:
    return await status_at(member, task_id) == status
