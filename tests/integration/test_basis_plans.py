"""A basis before every share of a plan (issue 19), across three members over the real
broker: a plan goes only to units that accepted their invitation and that the owner's
consent service allows now; the receiver checks its own copy of the basis; a consent's end
stops every share and closes the parties' copies; the first owner of a plan id keeps it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from services.referral.models import Incoming, Plan
from shared.data.db import utcnow
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.events.payloads import PLAN_SHARED_V1, PlanBasisV1, PlanSharedV1
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.helpers.harness import eventually
from tests.helpers.problems import problem
from tests.integration.consent.helpers import new_person
from tests.integration.referral.conftest import (
    CONSENT_RW,
    REFERRAL,
    REGION_BEROENDE,
    REGION_PORT,
    RW,
    VAXJO_BOENDE,
    VAXJO_SOC,
    Member,
    auth,
    start_member,
    stop_member,
)
from tests.integration.referral.test_referral_flow import copy_arrived, step
from tests.integration.referral.test_referral_meetings import consent_for, inbox

BEROENDE = auth(ORG_REGION, REGION_BEROENDE, RW)
PORT = auth(ORG_REGION, REGION_PORT, RW)
SOC = auth(ORG_VAXJO, VAXJO_SOC, RW)
BOENDE = auth(ORG_VAXJO, VAXJO_BOENDE, RW)


def alvesta_plan(
    plan_id: str,
    goal: str,
    more_viewers: list[dict[str, str]],
    *,
    version: int,
    basis: PlanBasisV1,
) -> PlanSharedV1:
    """A plan Alvesta shares as its own, to its intake and Växjö's (and ``more_viewers``),
    at ``version``, resting on ``basis`` for Växjö."""
    return PlanSharedV1(
        plan_id=plan_id,
        owner_orgnr=ORG_ALVESTA,
        owner_unit_id="al-soc",
        kind="sip",
        personnummer=new_person(),
        goals=[goal],
        actions=[],
        coordinators=[{"orgnr": ORG_ALVESTA, "unit_id": "al-soc"}],
        follow_up_date=dt.date(2027, 3, 1),
        viewers=[
            {"orgnr": ORG_ALVESTA, "unit_id": "al-soc"},
            {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
            *more_viewers,
        ],
        plan_version=version,
        at=utcnow(),
        bases=[basis],
    )


@dataclass
class Trio:
    region: Member
    vaxjo: Member
    alvesta: Member


@contextlib.asynccontextmanager
async def three_members(broker: Broker, databases: DatabaseFactory) -> AsyncIterator[Trio]:
    """Region Kronoberg, Växjö and Alvesta, each with its consent and referral services."""
    started: list[Member] = []
    try:
        for orgnr in (ORG_REGION, ORG_VAXJO, ORG_ALVESTA):
            started.append(await start_member(orgnr, databases, broker.bootstrap))
        yield Trio(*started)
    finally:
        for member in started:
            with contextlib.suppress(Exception):
                await stop_member(member)


@pytest.fixture
async def trio(private_broker: Broker, databases: DatabaseFactory) -> AsyncIterator[Trio]:
    async with three_members(private_broker, databases) as members:
        yield members


# --- helpers --------------------------------------------------------------------------


async def dead_letters(member: Member, reason: str, event_type: str) -> int:
    """Events of ``event_type`` the member's referral worker refused with ``reason``."""
    dl = REFERRAL.infra.dead_letter
    async with member.referral_db.sessionmaker() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(dl)
            .where(dl.c.reason == reason, dl.c.event_type == event_type)
        )
    return int(n or 0)


async def shares_in_outbox(member: Member) -> int:
    """Plan shares the member has written for other members (every one is sent)."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        n = await s.scalar(
            select(func.count()).select_from(ob).where(ob.c.event_type == PLAN_SHARED_V1)
        )
    return int(n or 0)


async def copies_showing_a_person(member: Member) -> int:
    """Plan copies of other members' plans held here that still name a person."""
    async with member.referral_db.sessionmaker() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(Plan)
            .where(Plan.owner_orgnr != member.orgnr, Plan.personnummer.is_not(None))
        )
    return int(n or 0)


async def publish(member: Member, event: Any, *, to: str, key: str, version: int) -> None:
    """``member`` writes ``event`` to ``to``'s inbound topic through its own outbox (its relay
    sends it as that member)."""
    ctx = member.referral_app.state.ctx
    async with ctx.db.transaction() as session:
        await ctx.outbox.publish(
            session,
            topics.inbound(to),
            PLAN_SHARED_V1,
            event,
            subject=key,
            key=key,
            aggversion=version,
        )


async def get_plan(member: Member, plan_id: str, headers: dict[str, str]) -> Any:
    async with member.referral() as c:
        return await c.get(f"/v1/plans/{plan_id}", headers=headers)


async def plan_version(member: Member, plan_id: str, headers: dict[str, str]) -> int | None:
    r = await get_plan(member, plan_id, headers)
    return int(r.json()["version"]) if r.status_code == 200 else None


PLAN_BODY: dict[str, Any] = {
    "goals": ["Trygg utskrivning till eget boende"],
    "actions": [
        {
            "intervention": "abstinensbehandling",
            "owner": {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
            "description": "Inskrivning på beroendemottagningen vecka 2.",
        },
        {
            "intervention": "boendestod",
            "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
            "description": "Boendestöd två gånger i veckan.",
        },
    ],
    "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
    "follow_up_date": (dt.date.today() + dt.timedelta(days=60)).isoformat(),
}


async def sip(
    region: Member, vaxjo: Member, person: str, participants: list[dict[str, str]]
) -> tuple[str, list[str]]:
    """The region's beroendemottagning convenes a SIP; (meeting id, invitation task ids)."""
    async with region.referral() as c:
        r = await c.post(
            "/v1/meetings",
            json={
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": "2026-12-10T10:00:00+01:00",
                "place": "Beroendemottagningen",
                "participants": participants,
            },
            headers=BEROENDE,
        )
    assert r.status_code == 201, r.text
    return r.json()["id"], [p["task_id"] for p in r.json()["participants"]]


async def answer(member: Member, task: str, headers: dict[str, str], to: str, **more: Any) -> None:
    async def filed() -> bool:
        return any(i["task_id"] == task for i in await inbox(member, headers))

    await eventually(filed, within=30, what="the invitation in the unit's inbox")
    assert (await step(member, task, headers, to="acknowledged")).status_code == 200
    if to != "acknowledged":
        r = await step(member, task, headers, to=to, **more)
        assert r.status_code == 200, r.text


async def statuses_at_convener(region: Member, meeting_id: str) -> list[str]:
    async with region.referral() as c:
        got = (await c.get(f"/v1/meetings/{meeting_id}", headers=BEROENDE)).json()
    return [p["status"] for p in got["participants"]]


# --- the tests ------------------------------------------------------------------------


class TestPlansAfterAWithdrawal:
    async def test_no_share_and_no_copy_with_personal_data_at_any_party(self, trio: Trio) -> None:
        region, vaxjo = trio.region, trio.vaxjo
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        await eventually(lambda: copy_arrived(region, consent_id), within=30, what="copy")
        meeting_id, (soc_task, boende_task) = await sip(
            region,
            vaxjo,
            person,
            [
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
            ],
        )
        await answer(vaxjo, soc_task, SOC, "accepted")
        await answer(vaxjo, boende_task, BOENDE, "accepted")

        async def both_accepted() -> bool:
            return await statuses_at_convener(region, meeting_id) == ["accepted", "accepted"]

        await eventually(both_accepted, within=30, what="both acceptances at the convener")
        async with region.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=PLAN_BODY, headers=BEROENDE)
        assert r.status_code == 200, r.text
        plan = r.json()

        async def at_both() -> bool:
            return (
                await plan_version(vaxjo, plan["id"], SOC),
                await plan_version(vaxjo, plan["id"], BOENDE),
            ) == (1, 1)

        await eventually(at_both, within=30, what="plan v1 at both Växjö units")
        assert (await get_plan(vaxjo, plan["id"], SOC)).json()["person"]["personnummer"] == person

        # The person withdraws the consent at Växjö.
        async with vaxjo.consent() as c:
            r = await c.post(
                f"/v1/consents/{consent_id}/withdraw",
                json={"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
                headers=auth(ORG_VAXJO, VAXJO_SOC, CONSENT_RW),
            )
        assert r.status_code == 200, r.text

        async def closed_at_vaxjo() -> bool:
            return bool((await get_plan(vaxjo, plan["id"], SOC)).json()["status"] == "withdrawn")

        await eventually(closed_at_vaxjo, within=30, what="the copy closed at Växjö")

        async def heard_at_region() -> bool:
            async with region.consent() as c:
                got = await c.get(
                    f"/v1/consent-copies/{consent_id}",
                    headers=auth(ORG_REGION, VAXJO_SOC, ["consent:read"]),
                )
            return bool(got.json()["status"] == "withdrawn")

        await eventually(heard_at_region, within=30, what="the end heard at the region")
        shares_before = await shares_in_outbox(region)

        # The owner revises the plan (v2), starts and ends an action (v3, v4): all recorded
        # there, none shared.
        revised = {**PLAN_BODY, "goals": ["Nytt mål efter återkallelsen"]}
        async with region.referral() as c:
            r = await c.put(
                f"/v1/meetings/{meeting_id}/plan",
                json=revised,
                headers={**BEROENDE, "If-Match": '"1"'},
            )
            assert r.status_code == 200, r.text
            assert r.json()["viewers"] == [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}]
            steps = ((2, {"to": "started"}), (3, {"to": "ended", "outcome": "completed"}))
            for version, body in steps:
                r = await c.post(
                    f"/v1/plans/{plan['id']}/actions/{plan['actions'][0]['id']}/transitions",
                    json=body,
                    headers={**BEROENDE, "If-Match": f'"{version}"'},
                )
                assert r.status_code == 200, r.text
                assert r.json()["version"] == version + 1
        shares_after = await shares_in_outbox(region) - shares_before

        # A lagging owner's share (v5, with the personnummer) is refused at the receiver by
        # its own copy of the consent.
        await publish(
            region,
            PlanSharedV1(
                plan_id=plan["id"],
                owner_orgnr=ORG_REGION,
                owner_unit_id=REGION_BEROENDE,
                kind="sip",
                personnummer=person,
                goals=["Skickat trots återkallelsen"],
                actions=[],
                coordinators=[{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
                follow_up_date=dt.date(2027, 2, 1),
                viewers=[
                    {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
                    {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                ],
                plan_version=5,
                at=utcnow(),
                bases=[
                    PlanBasisV1(
                        orgnr=ORG_VAXJO, unit_id=VAXJO_SOC, kind="consent", consent_id=consent_id
                    )
                ],
            ),
            to=ORG_VAXJO,
            key=plan["id"],
            version=5,
        )
        await eventually(
            lambda: dead_letters_are(vaxjo, "no_basis", 1),
            within=30,
            what="the lagging share refused at Växjö",
        )

        # Every party's copies: nothing about the person, through the API or in the table.
        shown = []
        for headers in (SOC, BOENDE):
            r = await get_plan(vaxjo, plan["id"], headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["status"], body["version"], body["goals"]) == ("withdrawn", 1, [])
            assert body["person"]["personnummer"] is None
            shown.append(r.text)
        for text in shown:
            for secret in (person, "Trygg utskrivning", "Inskrivning", "Boendestöd två", "trots"):
                assert secret not in text
        # Nor do the invitations (cancelled with the consent) at Växjö.
        for headers in (SOC, BOENDE):
            for item in await inbox(vaxjo, headers):
                assert item["status"] == "cancelled"
                assert person not in str(item)
        copies = await copies_showing_a_person(vaxjo) + await copies_showing_a_person(region)
        assert (shares_after, copies) == (0, 0)
        # The Växjö unit owning an action can no longer act on the closed copy.
        async with vaxjo.referral() as c:
            r = await c.post(
                f"/v1/plans/{plan['id']}/actions/{plan['actions'][1]['id']}/transitions",
                json={"to": "started"},
                headers={**BOENDE, "If-Match": '"1"'},
            )
        problem(r, 409, "transition-not-allowed")


async def dead_letters_are(member: Member, reason: str, n: int) -> bool:
    return bool(await dead_letters(member, reason, PLAN_SHARED_V1) == n)


class TestOnlyParticipantsThatAccepted:
    async def test_an_unanswered_or_declined_invitation_gets_no_plan(self, trio: Trio) -> None:
        region, vaxjo = trio.region, trio.vaxjo
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        await eventually(lambda: copy_arrived(region, consent_id), within=30, what="copy")
        meeting_id, (soc_task, boende_task, port_task) = await sip(
            region,
            vaxjo,
            person,
            [
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
                {"orgnr": ORG_REGION, "unit_id": REGION_PORT},
            ],
        )
        await answer(vaxjo, soc_task, SOC, "accepted")
        await answer(vaxjo, boende_task, BOENDE, "acknowledged")  # no answer yet
        await answer(region, port_task, PORT, "declined", reason="Inte vår målgrupp.")

        async def answered() -> bool:
            return await statuses_at_convener(region, meeting_id) == [
                "accepted",
                "acknowledged",
                "declined",
            ]

        await eventually(answered, within=30, what="the answers at the convener")
        # No action of boendestöd in this plan: only its invitation could make it a party.
        body = {**PLAN_BODY, "actions": PLAN_BODY["actions"][:1]}
        async with region.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=body, headers=BEROENDE)
        assert r.status_code == 200, r.text
        plan = r.json()
        assert {(v["orgnr"], v["unit_id"]) for v in plan["viewers"]} == {
            (ORG_REGION, REGION_BEROENDE),
            (ORG_VAXJO, VAXJO_SOC),
        }
        await eventually(
            lambda: plan_version_is(vaxjo, plan["id"], SOC, 1), within=30, what="plan at SOC"
        )
        # The same event reached Växjö for both of its units: only the one that accepted
        # sees it; the region's port, which declined, does not either.
        assert (await get_plan(vaxjo, plan["id"], BOENDE)).status_code == 404
        assert (await get_plan(region, plan["id"], PORT)).status_code == 404
        async with vaxjo.referral_db.sessionmaker() as s:
            copy = await s.get(Plan, plan["id"])
        assert copy is not None
        assert {v["unit_id"] for v in copy.viewers if v["orgnr"] == ORG_VAXJO} == {VAXJO_SOC}

        # Boendestöd accepts later: the owner shares the plan again, now with it.
        assert (await step(vaxjo, boende_task, BOENDE, to="accepted")).status_code == 200
        await eventually(
            lambda: plan_version_is(vaxjo, plan["id"], BOENDE, 2),
            within=30,
            what="the plan at boendestöd after its acceptance",
        )


async def plan_version_is(member: Member, plan_id: str, headers: dict[str, str], v: int) -> bool:
    return bool(await plan_version(member, plan_id, headers) == v)


class TestPlanOwners:
    async def test_a_takeover_and_a_version_jump_by_another_member_change_nothing(
        self, trio: Trio
    ) -> None:
        region, vaxjo, alvesta = trio.region, trio.vaxjo, trio.alvesta
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        await eventually(lambda: copy_arrived(region, consent_id), within=30, what="copy")
        meeting_id, (soc_task,) = await sip(
            region, vaxjo, person, [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]
        )
        await answer(vaxjo, soc_task, SOC, "accepted")
        await eventually(
            lambda: accepted(region, meeting_id), within=30, what="acceptance at the convener"
        )
        async with region.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=PLAN_BODY, headers=BEROENDE)
        assert r.status_code == 200, r.text
        plan_id = r.json()["id"]
        await eventually(
            lambda: plan_version_is(vaxjo, plan_id, SOC, 1), within=30, what="plan v1 at Växjö"
        )

        # Alvesta shares "its" plan under Kronoberg's plan id, at version 99, to Växjö and to
        # the region itself.
        forged = alvesta_plan(
            plan_id,
            "Övertagen av Alvesta",
            [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
            version=99,
            basis=PlanBasisV1(
                orgnr=ORG_VAXJO, unit_id=VAXJO_SOC, kind="consent", consent_id=consent_id
            ),
        )
        for to in (ORG_VAXJO, ORG_REGION):
            await publish(alvesta, forged, to=to, key=plan_id, version=99)
        await eventually(
            lambda: dead_letters_are(vaxjo, "not_owner", 1), within=30, what="refused at Växjö"
        )
        await eventually(
            lambda: dead_letters_are(region, "not_owner", 1), within=30, what="refused at owner"
        )
        for member, headers in ((vaxjo, SOC), (region, BEROENDE)):
            body = (await get_plan(member, plan_id, headers)).json()
            assert (body["owner_orgnr"], body["version"]) == (ORG_REGION, 1)
            assert body["goals"] == PLAN_BODY["goals"]

        # The owner's next version still applies at Växjö.
        async with region.referral() as c:
            r = await c.put(
                f"/v1/meetings/{meeting_id}/plan",
                json={**PLAN_BODY, "goals": ["Reviderat mål"]},
                headers={**BEROENDE, "If-Match": '"1"'},
            )
        assert r.status_code == 200, r.text
        await eventually(
            lambda: plan_version_is(vaxjo, plan_id, SOC, 2), within=30, what="v2 at Växjö"
        )
        body = (await get_plan(vaxjo, plan_id, SOC)).json()
        assert (body["owner_orgnr"], body["goals"]) == (ORG_REGION, ["Reviderat mål"])


async def accepted(region: Member, meeting_id: str) -> bool:
    return await statuses_at_convener(region, meeting_id) == ["accepted"]


class TestSameMemberFromAnotherMember:
    async def test_a_plan_resting_on_same_member_is_refused(self, trio: Trio) -> None:
        vaxjo, alvesta = trio.vaxjo, trio.alvesta
        plan_id = "alvesta-plan-1"
        await publish(
            alvesta,
            alvesta_plan(
                plan_id,
                "Utan grund",
                [],
                version=1,
                basis=PlanBasisV1(orgnr=ORG_VAXJO, unit_id=VAXJO_SOC, kind="same_member"),
            ),
            to=ORG_VAXJO,
            key=plan_id,
            version=1,
        )
        await eventually(
            lambda: dead_letters_are(vaxjo, "no_basis", 1), within=30, what="refused at Växjö"
        )
        async with vaxjo.referral_db.sessionmaker() as s:
            assert await s.get(Plan, plan_id) is None
            assert await s.scalar(select(func.count()).select_from(Incoming)) == 0
