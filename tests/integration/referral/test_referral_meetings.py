"""A vårdkedjeremiss with its joint referral meeting and ordered plan, across two members
over the real broker: the drug-free rule, invitations answered in each unit's inbox, the
plan shared with every participant and the sender, and an ended action told to all."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from shared.messaging.events.payloads import PLAN_ACTION_CHANGED_V1
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import new_person

from .conftest import (
    CONSENT_RW,
    REFERRAL,
    REGION_BEROENDE,
    REGION_PORT,
    RW,
    VAXJO_BOENDE,
    VAXJO_SOC,
    Member,
    Pair,
    auth,
)
from .test_referral_flow import copy_arrived, step

PORT = auth(ORG_REGION, REGION_PORT, RW)
BEROENDE = auth(ORG_REGION, REGION_BEROENDE, RW)
SOC = auth(ORG_VAXJO, VAXJO_SOC, RW)
BOENDE = auth(ORG_VAXJO, VAXJO_BOENDE, RW)


async def consent_for(member: Member, person: str, purposes: list[str]) -> str:
    today = dt.date.today()
    async with member.consent() as c:
        r = await c.post(
            "/v1/consents",
            json={
                "person": {"personnummer": person},
                "form": "written",
                "signed_form_reference": "Treserva dok 2026-77",
                "purposes": purposes,
                "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
                "categories": ["contact_details", "needs_summary", "plan"],
                "valid_from": today.isoformat(),
                "valid_to": (today + dt.timedelta(days=120)).isoformat(),
                "person_informed": True,
            },
            headers=auth(member.orgnr, VAXJO_SOC, CONSENT_RW),
        )
    assert r.status_code == 201, r.text
    consent_id: str = r.json()["id"]
    return consent_id


async def inbox(member: Member, headers: dict[str, str]) -> list[dict[str, Any]]:
    async with member.referral() as c:
        r = await c.get("/v1/incoming", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def action_notices(member: Member, change: str) -> list[tuple[str, str]]:
    """(unit, action) of every plan-action event of ``change`` for notify in the member's
    outbox."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        stmt = select(ob).where(ob.c.event_type == PLAN_ACTION_CHANGED_V1)
        rows = (await s.execute(stmt)).all()
    payloads = [outbox_data(r) for r in rows]
    return sorted((p["unit_id"], p["action_id"]) for p in payloads if p["change"] == change)


async def ended_notices(member: Member) -> list[tuple[str, str]]:
    """(unit, action) of every plan-action-ended event for notify in the member's outbox."""
    return await action_notices(member, "ended")


def days_ahead(n: int) -> str:
    """The date ``n`` days from today (a follow-up date is never in the past)."""
    return (dt.date.today() + dt.timedelta(days=n)).isoformat()


async def action_step(
    member: Member,
    plan_id: str,
    action_id: str,
    headers: dict[str, str],
    version: int,
    **body: str,
) -> Any:
    """A step on a plan's action, taken on the plan ``version`` the unit read."""
    async with member.referral() as c:
        return await c.post(
            f"/v1/plans/{plan_id}/actions/{action_id}/transitions",
            json=body,
            headers={**headers, "If-Match": f'"{version}"'},
        )


async def test_a_vardkedjeremiss_meeting_and_its_ordered_plan(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await consent_for(vaxjo, person, ["vardkedjeremiss"])
    await eventually(lambda: copy_arrived_at(region, consent_id), within=30, what="copy")

    # Växjö's social services send a vårdkedjeremiss to psychiatry's referral port.
    async with vaxjo.referral() as c:
        sent = await c.post(
            "/v1/referrals",
            json={
                "kind": "vardkedjeremiss",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "needs": ["abstinensbehandling", "boendestod"],
                "summary": "Samlade behov: beroende, psykisk ohälsa, bostad.",
                "drug_free": "no",
                "recipients": [{"orgnr": ORG_REGION, "unit_id": REGION_PORT}],
                "vardkedjeremiss": {"treatment_requires_drug_free": True},
            },
            headers=SOC,
        )
    assert sent.status_code == 201, sent.text

    async def at_port() -> bool:
        return len(await inbox(region, PORT)) == 1

    await eventually(at_port, within=30, what="the vårdkedjeremiss at the port")
    task_id = (await inbox(region, PORT))[0]["task_id"]
    assert (await step(region, task_id, PORT, to="acknowledged")).status_code == 200

    meeting: dict[str, Any] = {
        "kind": "remissmote",
        "origin_task_id": task_id,
        "at": "2026-12-03T13:00:00+01:00",
        "video_link": "https://mote.example/remissmote-1",
        "participants": [
            {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
            {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
        ],
    }
    async with region.referral() as c:
        # The drug-free rule: no unit for drug-free interventions invited → refused.
        r = await c.post("/v1/meetings", json=meeting, headers=PORT)
        assert field_rules(problem(r, 422)) == {"participants": "drug_free_unit_required"}
        meeting["participants"].insert(0, {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE})
        r = await c.post("/v1/meetings", json=meeting, headers=PORT)
    assert r.status_code == 201, r.text
    meeting_id = r.json()["id"]

    # Each invited unit answers in its own inbox (a boendestöd unit does not receive
    # vårdkedjeremisser, but may be invited to the meeting).
    async def invited(member: Member, headers: dict[str, str]) -> bool:
        return len(await inbox(member, headers)) == 1

    async def invitation_at_soc() -> bool:
        items = await inbox(vaxjo, SOC)
        return any(i["kind"] == "vardkedjeremiss" for i in items)

    await eventually(lambda: invited(region, BEROENDE), within=30, what="invitation at beroende")
    await eventually(lambda: invited(vaxjo, BOENDE), within=30, what="invitation at boendestöd")
    await eventually(invitation_at_soc, within=30, what="invitation at the intake")
    beroende_task = (await inbox(region, BEROENDE))[0]["task_id"]
    boende_task = (await inbox(vaxjo, BOENDE))[0]["task_id"]
    soc_task = next(i for i in await inbox(vaxjo, SOC) if i["kind"] == "vardkedjeremiss")["task_id"]
    assert (await inbox(vaxjo, BOENDE))[0]["details"]["meeting_id"] == meeting_id
    await step(region, beroende_task, BEROENDE, to="acknowledged")
    assert (await step(region, beroende_task, BEROENDE, to="accepted")).status_code == 200
    await step(vaxjo, boende_task, BOENDE, to="acknowledged")
    assert (await step(vaxjo, boende_task, BOENDE, to="accepted")).status_code == 200
    await step(vaxjo, soc_task, SOC, to="acknowledged")
    r = await step(
        vaxjo,
        soc_task,
        SOC,
        to="declined",
        reason="Kan inte den tiden.",
        proposed_at="2026-12-04T09:00:00+01:00",
    )
    assert r.status_code == 200, r.text

    async def answered() -> bool:
        async with region.referral() as c:
            parts = (await c.get(f"/v1/meetings/{meeting_id}", headers=PORT)).json()["participants"]
        return [p["status"] for p in parts] == ["accepted", "accepted", "declined"]

    await eventually(answered, within=30, what="every answer at the port")
    async with region.referral() as c:
        parts = (await c.get(f"/v1/meetings/{meeting_id}", headers=PORT)).json()["participants"]
    assert parts[2]["proposed_at"].startswith("2026-12-04T08:00")

    # The meeting's ordered plan, shared with every participant and the sender.
    plan_body = {
        "goals": ["Drogfrihet", "Eget boende"],
        "actions": [
            {
                "intervention": "abstinensbehandling",
                "owner": {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
            },
            {"intervention": "boendestod", "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE}},
        ],
        "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
        "follow_up_date": days_ahead(60),
    }
    async with region.referral() as c:
        r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=plan_body, headers=PORT)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert [a["intervention"] for a in plan["actions"]] == ["abstinensbehandling", "boendestod"]

    async def plan_at(member: Member, headers: dict[str, str], version: int) -> bool:
        async with member.referral() as c:
            got = await c.get(f"/v1/plans/{plan['id']}", headers=headers)
        return got.status_code == 200 and got.json()["version"] == version

    await eventually(lambda: plan_at(vaxjo, BOENDE, 1), within=30, what="plan at boendestöd")
    assert await plan_at(vaxjo, SOC, 1), "the vårdkedjeremiss's sender sees the plan"
    async with vaxjo.referral() as c:
        hidden = await c.get(
            f"/v1/plans/{plan['id']}", headers=auth(ORG_VAXJO, "vx-annan-enhet", RW)
        )
    problem(hidden, 404, "plan-not-found")

    # Växjö's boendestöd starts, then ends its action: the plan's owner (the region)
    # records each step and shares the plan, and every party is told.
    boende_action = plan["actions"][1]["id"]
    r = await action_step(vaxjo, plan["id"], boende_action, BOENDE, 1, to="started")
    assert r.status_code == 202, r.text  # to the plan's owner
    # Only the owning unit takes an action's steps.
    other = await action_step(vaxjo, plan["id"], plan["actions"][0]["id"], BOENDE, 1, to="started")
    problem(other, 403, "not-action-owner")
    await eventually(lambda: plan_at(vaxjo, BOENDE, 2), within=30, what="the start shared")
    # Ending needs the version read: the first one is stale now.
    stale = await action_step(
        vaxjo, plan["id"], boende_action, BOENDE, 1, to="ended", outcome="completed"
    )
    problem(stale, 412, "referral-version-mismatch")
    r = await action_step(
        vaxjo, plan["id"], boende_action, BOENDE, 2, to="ended", outcome="completed"
    )
    assert r.status_code == 202, r.text

    await eventually(lambda: plan_at(vaxjo, SOC, 3), within=30, what="the ended action shared")
    async with region.referral() as c:
        final = (await c.get(f"/v1/plans/{plan['id']}", headers=BEROENDE)).json()
    assert [a["status"] for a in final["actions"]] == ["planned", "ended"]

    async def everyone_told() -> bool:
        return await ended_notices(region) == sorted(
            [(REGION_PORT, boende_action), (REGION_BEROENDE, boende_action)]
        ) and await ended_notices(vaxjo) == sorted(
            [(VAXJO_BOENDE, boende_action), (VAXJO_SOC, boende_action)]
        )

    await eventually(everyone_told, within=30, what="every party's units told")


async def copy_arrived_at(member: Member, consent_id: str) -> bool:
    return await copy_arrived(member, consent_id)


async def test_a_sip_with_relatives_and_a_follow_up_meeting(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await consent_for(vaxjo, person, ["sip"])
    await eventually(lambda: copy_arrived_at(region, consent_id), within=30, what="copy")
    sip: dict[str, Any] = {
        "kind": "sip",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "at": "2026-12-10T10:00:00+01:00",
        "place": "Avdelning 12, Centrallasarettet Växjö",
        "participants": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
        "relatives": [{"name": "Mamma", "phone": "070-123 45 67"}],
    }
    async with vaxjo.referral() as c:
        r = await c.post("/v1/meetings", json=sip, headers=SOC)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["relatives"] == [{"name": "Mamma", "phone": "070-123 45 67"}]

    async def invited() -> bool:
        return len(await inbox(region, BEROENDE)) == 1

    await eventually(invited, within=30, what="SIP invitation at the region")
    invitation = (await inbox(region, BEROENDE))[0]
    assert invitation["kind"] == "sip_kallelse"
    assert "Mamma" not in str(invitation), "relatives' contacts stay with the convener"
    # Only a participant that accepted sees the plan.
    await step(region, invitation["task_id"], BEROENDE, to="acknowledged")
    assert (await step(region, invitation["task_id"], BEROENDE, to="accepted")).status_code == 200

    async def accepted_at_convener() -> bool:
        async with vaxjo.referral() as c:
            got = (await c.get(f"/v1/meetings/{first['id']}", headers=SOC)).json()
        return [p["status"] for p in got["participants"]] == ["accepted"]

    await eventually(accepted_at_convener, within=30, what="the acceptance at the convener")

    plan_body = {
        "goals": ["Trygg utskrivning"],
        "actions": [
            {"intervention": "boendestod", "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}},
        ],
        "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
        "follow_up_date": days_ahead(40),
    }
    async with vaxjo.referral() as c:
        r = await c.put(f"/v1/meetings/{first['id']}/plan", json=plan_body, headers=SOC)
        assert r.status_code == 200, r.text
        # A follow-up meeting revises the same plan.
        follow = await c.post(
            "/v1/meetings",
            json={**sip, "at": "2027-01-15T10:00:00+01:00", "follow_up_of": first["id"]},
            headers=SOC,
        )
        assert follow.status_code == 201, follow.text
        assert follow.json()["follow_up_of"] == first["id"]
        revised = {
            **plan_body,
            "actions": [
                *plan_body["actions"],
                {
                    "intervention": "sysselsattning",
                    "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                },
            ],
        }
        r = await c.put(
            f"/v1/meetings/{follow.json()['id']}/plan",
            json=revised,
            headers={**SOC, "If-Match": '"1"'},
        )
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["version"]) == (first["id"], 2)

    async def revised_at_region() -> bool:
        async with region.referral() as c:
            got = await c.get(f"/v1/plans/{first['id']}", headers=BEROENDE)
        return got.status_code == 200 and got.json()["version"] == 2

    await eventually(revised_at_region, within=30, what="the revised plan at the region")
