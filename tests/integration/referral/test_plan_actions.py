"""The care chain after the meeting, across two members over the real broker: actions with
a lifecycle (planned → started → ended, or cancelled) owned by units never invited to the
meeting or by an actor outside the federation, the coordinating units of both members
with their mandate (read, revise, step an outside actor's action, their worklist), and
every bad request refused with nothing stored (issue 21)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.integration.consent.helpers import new_person

from .conftest import REGION_BEROENDE, REGION_PORT, RW, VAXJO_BOENDE, VAXJO_SOC, Member, Pair, auth
from .test_referral_flow import copy_arrived, step
from .test_referral_meetings import action_notices, action_step, consent_for, days_ahead, inbox

SOC = auth(ORG_VAXJO, VAXJO_SOC, RW)
BOENDE = auth(ORG_VAXJO, VAXJO_BOENDE, RW)
BEROENDE = auth(ORG_REGION, REGION_BEROENDE, RW)
PORT = auth(ORG_REGION, REGION_PORT, RW)

YESTERDAY = (dt.date.today() - dt.timedelta(days=1)).isoformat()


def plan_body() -> dict[str, Any]:
    """Three actions: Växjö's housing support and the region's referral port (neither was
    invited), and Försäkringskassan outside the federation; a coordinator per member."""
    return {
        "own_goals": ["Jag vill ha ett eget boende."],
        "goals": ["Drogfrihet"],
        "actions": [
            {
                "intervention": "boendestod",
                "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
                "start_by": YESTERDAY,
            },
            {
                "intervention": "psykiatrisk_bedomning",
                "owner": {"orgnr": ORG_REGION, "unit_id": REGION_PORT},
                "start_by": YESTERDAY,
                "end_by": days_ahead(30),
            },
            {
                "intervention": "sysselsattning",
                "outside_actor": "Försäkringskassan",
                "description": "Utreda rätt till aktivitetsersättning.",
            },
        ],
        "coordinators": [
            {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
            {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
        ],
        "follow_up_date": days_ahead(45),
        "attendance": {
            "units": [
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
            ],
            "person": True,
            "relatives": 1,
        },
        "person_agrees": True,
    }


async def get(member: Member, path: str, headers: dict[str, str]) -> Any:
    async with member.referral() as c:
        return await c.get(path, headers=headers)


async def version_at(member: Member, plan_id: str, headers: dict[str, str]) -> int | None:
    r = await get(member, f"/v1/plans/{plan_id}", headers)
    return int(r.json()["version"]) if r.status_code == 200 else None


async def a_sip_with_its_plan(members: Pair) -> dict[str, Any]:
    """Växjö's intake convenes a SIP with the region's beroendemottagning, which accepts;
    the plan is recorded (version 1)."""
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await consent_for(vaxjo, person, ["sip"])
    await eventually(lambda: copy_arrived(region, consent_id), within=30, what="consent copy")
    sip = {
        "kind": "sip",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(),
        "place": "Socialtjänsten, Västra Esplanaden",
        "participants": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
    }
    async with vaxjo.referral() as c:
        r = await c.post("/v1/meetings", json=sip, headers=SOC)
    assert r.status_code == 201, r.text
    meeting_id = r.json()["id"]

    async def invited() -> bool:
        return len(await inbox(region, BEROENDE)) == 1

    await eventually(invited, within=30, what="the invitation at the region")
    task_id = (await inbox(region, BEROENDE))[0]["task_id"]
    await step(region, task_id, BEROENDE, to="acknowledged")
    assert (await step(region, task_id, BEROENDE, to="accepted")).status_code == 200

    async def accepted() -> bool:
        got = (await get(vaxjo, f"/v1/meetings/{meeting_id}", SOC)).json()
        return [p["status"] for p in got["participants"]] == ["accepted"]

    await eventually(accepted, within=30, what="the acceptance at the convener")
    async with vaxjo.referral() as c:
        r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=plan_body(), headers=SOC)
    assert r.status_code == 200, r.text
    plan: dict[str, Any] = r.json()
    plan["person_nr"] = person
    return plan


async def test_owners_never_invited_see_take_and_are_told_every_step(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)
    plan_id = plan["id"]
    boende_action, port_action, outside_action = (a["id"] for a in plan["actions"])
    assert plan["own_goals"] == ["Jag vill ha ett eget boende."]
    assert (plan["attendance"]["person"], plan["person_agrees"]) == (True, True)
    # The parties: convener, the participant that accepted, both coordinators and both
    # owner units — neither owner was invited.
    assert {(v["orgnr"], v["unit_id"]) for v in plan["viewers"]} == {
        (ORG_VAXJO, VAXJO_SOC),
        (ORG_VAXJO, VAXJO_BOENDE),
        (ORG_REGION, REGION_BEROENDE),
        (ORG_REGION, REGION_PORT),
    }

    # Växjö's housing support: its action in its worklist, overdue to start, told it was
    # assigned; the other actions are not its to step.
    mine = (await get(vaxjo, "/v1/plan-actions", BOENDE)).json()
    assert [(i["plan_id"], i["action"]["id"], i["overdue"]) for i in mine] == [
        (plan_id, boende_action, "start")
    ]
    assert mine[0]["action"]["allowed_steps"] == ["started", "cancelled"]
    assert mine[0]["person"]["personnummer"] == plan["person_nr"]
    assert (VAXJO_BOENDE, boende_action) in await action_notices(vaxjo, "assigned")

    # The region's referral port, never invited: the plan reaches it, with its action.
    async def port_has_it() -> bool:
        items = (await get(region, "/v1/plan-actions?open=true", PORT)).json()
        return [i["action"]["id"] for i in items] == [port_action]

    await eventually(port_has_it, within=30, what="the action at the region's port")
    assert await action_notices(region, "assigned") == [(REGION_PORT, port_action)]

    # A step not allowed from "planned": 409 listing the allowed steps; nothing stored.
    r = await action_step(region, plan_id, port_action, PORT, 1, to="ended", outcome="completed")
    assert problem(r, 409, "transition-not-allowed")["allowed"] == ["started", "cancelled"]
    # Ending without its outcome, cancelling without a reason: 422 naming the rule.
    r = await action_step(region, plan_id, port_action, PORT, 1, to="ended")
    assert "outcome_required" in str(problem(r, 422))
    # Without If-Match: 428.
    async with region.referral() as c:
        r = await c.post(
            f"/v1/plans/{plan_id}/actions/{port_action}/transitions",
            json={"to": "started"},
            headers=PORT,
        )
    problem(r, 428)
    # Not its action: 403.
    r = await action_step(region, plan_id, boende_action, PORT, 1, to="started")
    problem(r, 403, "not-action-owner")
    assert await version_at(vaxjo, plan_id, SOC) == 1

    # The port starts its action: the step goes to Växjö (202), which records it; every
    # party's units at both members are told.
    r = await action_step(region, plan_id, port_action, PORT, 1, to="started")
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/plans/{plan_id}"

    async def started_everywhere() -> bool:
        return await version_at(vaxjo, plan_id, SOC) == 2 and (
            await version_at(region, plan_id, BEROENDE) == 2
        )

    await eventually(started_everywhere, within=30, what="the start at both members")
    shown = (await get(region, f"/v1/plans/{plan_id}", BEROENDE)).json()
    assert [a["status"] for a in shown["actions"]] == ["planned", "started", "planned"]
    assert shown["actions"][1]["started_at"] is not None

    async def everyone_told() -> bool:
        told_here = {u for u, a in await action_notices(vaxjo, "started") if a == port_action}
        told_there = {u for u, a in await action_notices(region, "started") if a == port_action}
        return told_here == {VAXJO_SOC, VAXJO_BOENDE} and told_there == {
            REGION_BEROENDE,
            REGION_PORT,
        }

    await eventually(everyone_told, within=30, what="every party's units told of the start")

    # The outside actor's action: only a coordinating unit records its steps — here the
    # region's coordinator, at the other member than the plan's owner.
    r = await action_step(vaxjo, plan_id, outside_action, BOENDE, 2, to="started")
    problem(r, 403, "not-action-owner")
    r = await action_step(region, plan_id, outside_action, BEROENDE, 2, to="started")
    assert r.status_code == 202, r.text
    await eventually(
        lambda: _is(version_at(region, plan_id, PORT), 3), within=30, what="outside step"
    )

    # The housing support cancels its action with a reason (at the owner: recorded now).
    r = await action_step(
        vaxjo, plan_id, boende_action, BOENDE, 3, to="cancelled", reason="Flyttat till HVB."
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["version"], body["actions"][0]["status"]) == (4, "cancelled")
    assert body["actions"][0]["reason"] == "Flyttat till HVB."
    assert body["actions"][0]["allowed_steps"] == []
    assert (VAXJO_SOC, boende_action) in await action_notices(vaxjo, "cancelled")


async def _is(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def test_coordinators_of_both_members_revise_and_follow_up(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)
    plan_id = plan["id"]
    await eventually(
        lambda: _is(version_at(region, plan_id, BEROENDE), 1), within=30, what="plan copy"
    )

    # The region's coordinator's worklist: the plan, and both actions overdue to start.
    work = (await get(region, "/v1/coordination", BEROENDE)).json()
    assert [p["id"] for p in work["plans"]] == [plan_id]
    assert work["plans"][0]["open_actions"] == 3
    overdue = {(i["action"]["id"], i["overdue"]) for i in work["actions_overdue"]}
    assert overdue == {(plan["actions"][0]["id"], "start"), (plan["actions"][1]["id"], "start")}
    assert work["follow_ups_due"] == []
    # A unit coordinating nothing has an empty worklist.
    assert (await get(region, "/v1/coordination", PORT)).json()["plans"] == []

    # A unit that does not coordinate cannot revise (403); a follow-up date in the past is
    # refused (422); nothing stored.
    revised = plan_body() | {"goals": ["Drogfrihet", "Sysselsättning"]}
    async with vaxjo.referral() as c:
        r = await c.put(f"/v1/plans/{plan_id}", json=revised, headers={**BOENDE, "If-Match": '"1"'})
        problem(r, 403, "not-coordinator")
        past = revised | {"follow_up_date": YESTERDAY}
        r = await c.put(f"/v1/plans/{plan_id}", json=past, headers={**SOC, "If-Match": '"1"'})
        assert field_rules(problem(r, 422)) == {"follow_up_date": "not_in_past"}
        two = revised | {"coordinators": [plan_body()["coordinators"][0]] * 2}
        r = await c.put(f"/v1/plans/{plan_id}", json=two, headers={**SOC, "If-Match": '"1"'})
        assert "one_coordinator_per_member" in field_rules(problem(r, 422)).values()
    assert await version_at(vaxjo, plan_id, SOC) == 1

    # The region's coordinator revises the plan Växjö owns: 202, applied by the owner,
    # shared back; the actions keep their ids.
    async with region.referral() as c:
        r = await c.put(
            f"/v1/plans/{plan_id}", json=revised, headers={**BEROENDE, "If-Match": '"1"'}
        )
    assert r.status_code == 202, r.text

    async def revised_everywhere() -> bool:
        here = (await get(vaxjo, f"/v1/plans/{plan_id}", SOC)).json()
        there = await get(region, f"/v1/plans/{plan_id}", BEROENDE)
        return here["goals"] == revised["goals"] and there.json()["version"] == 2

    await eventually(revised_everywhere, within=30, what="the revision at both members")
    again = (await get(region, f"/v1/plans/{plan_id}", BEROENDE)).json()
    assert [a["id"] for a in again["actions"]] == [a["id"] for a in plan["actions"]]

    # A stale revision is refused at once where the copy already knows (412).
    async with region.referral() as c:
        r = await c.put(
            f"/v1/plans/{plan_id}", json=revised, headers={**BEROENDE, "If-Match": '"1"'}
        )
    problem(r, 412)

    # Växjö's own coordinator revises at the owner (200), dropping the region's
    # coordinator: it no longer sees the plan in its worklist once the new version lands.
    only_vaxjo = revised | {"coordinators": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]}
    async with vaxjo.referral() as c:
        r = await c.put(f"/v1/plans/{plan_id}", json=only_vaxjo, headers={**SOC, "If-Match": '"2"'})
    assert r.status_code == 200, r.text
    assert r.json()["coordinators"] == [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]

    async def region_coordinates_nothing() -> bool:
        got = await get(region, "/v1/coordination", BEROENDE)
        return got.json()["plans"] == []

    await eventually(region_coordinates_nothing, within=30, what="the coordinator dropped")


async def test_a_coordinator_convenes_a_samordningsmote_about_another_members_plan(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)
    plan_id = plan["id"]
    await eventually(
        lambda: _is(version_at(region, plan_id, BEROENDE), 1), within=30, what="plan copy"
    )
    meeting = {
        "kind": "samordningsmote",
        "children_in_household": "no",
        "follow_up_of": plan_id,
        "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).isoformat(),
        "video_link": "https://mote.example/samordning-1",
        "participants": [{"orgnr": ORG_REGION, "unit_id": REGION_PORT}],
        "summary": "Insatserna har inte kommit igång.",
    }
    async with region.referral() as c:
        # Held without the person; only a coordinating unit convenes it: 422, nothing sent.
        r = await c.post("/v1/meetings", json=meeting | {"person_invited": True}, headers=BEROENDE)
        assert "without_the_person" in str(problem(r, 422))
        r = await c.post("/v1/meetings", json=meeting, headers=PORT)
        assert field_rules(problem(r, 422)) == {"follow_up_of": "not_a_held_meeting"}
        r = await c.post("/v1/meetings", json=meeting, headers=BEROENDE)
    assert r.status_code == 201, r.text
    held = r.json()
    assert (held["kind"], held["follow_up_of"], held["person_invited"]) == (
        "samordningsmote",
        plan_id,
        False,
    )
    assert held["person"]["personnummer"] == plan["person_nr"]  # from the plan

    # The port's invitation is a samordningsmöte's, for the coordination purpose.
    async def invited() -> bool:
        return [i["kind"] for i in await inbox(region, PORT)] == ["samordningsmote"]

    await eventually(invited, within=30, what="the invitation at the port")
    task = (await inbox(region, PORT))[0]
    await step(region, task["task_id"], PORT, to="acknowledged")
    assert (await step(region, task["task_id"], PORT, to="accepted")).status_code == 200

    # What the meeting decided revises Växjö's plan: sent there (202), recorded, shared.
    revised = plan_body() | {"goals": ["Drogfrihet", "Kontakt med Försäkringskassan"]}
    async with region.referral() as c:
        r = await c.put(f"/v1/meetings/{held['id']}/plan", json=revised, headers=BEROENDE)
    assert r.status_code == 202, r.text

    async def revised_at_owner() -> bool:
        got = (await get(vaxjo, f"/v1/plans/{plan_id}", SOC)).json()
        return bool(got["version"] == 2 and got["goals"] == revised["goals"])

    await eventually(revised_at_owner, within=30, what="the revision at the plan's owner")
    async with region.referral() as c:
        got = (await c.get(f"/v1/meetings/{held['id']}", headers=BEROENDE)).json()
    assert got["status"] == "held"


async def test_the_person_gets_a_plan_of_their_own_in_plain_swedish(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)
    plan_id = plan["id"]
    async with vaxjo.referral() as c:
        page = await c.get(f"/v1/plans/{plan_id}/min-plan", headers=SOC)
        pdf = await c.get(f"/v1/plans/{plan_id}/min-plan?format=pdf", headers=SOC)
        hidden = await c.get(
            f"/v1/plans/{plan_id}/min-plan", headers=auth(ORG_VAXJO, "vx-annan-enhet", RW)
        )
        bad = await c.get(f"/v1/plans/{plan_id}/min-plan?format=docx", headers=SOC)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    for shown in (
        "Jag vill ha ett eget boende.",  # the person's own goal
        "Boendestöd",  # the intervention's label, never its code
        "Försäkringskassan",
        "Växjö kommun",  # the unit's huvudman
        "0470-41 00 00",  # the housing support's phone, in national form
        "Mån–Fre 08:00–16:30",
        "boendestod@vaxjo.example",
        "Du har sagt att du håller med om planen.",
    ):
        assert shown in text, shown
    assert plan_id not in text
    assert VAXJO_BOENDE not in text  # no unit ids
    assert ">boendestod<" not in text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert 'filename="min-plan.pdf"' in pdf.headers["content-disposition"]
    problem(hidden, 404, "plan-not-found")
    assert field_rules(problem(bad, 422)) == {"format": "enum"}
    # At the region (a party's copy) the participant prints it too.
    await eventually(
        lambda: _is(version_at(region, plan_id, BEROENDE), 1), within=30, what="plan copy"
    )
    async with region.referral() as c:
        there = await c.get(f"/v1/plans/{plan_id}/min-plan", headers=BEROENDE)
    assert there.status_code == 200
    assert "Jag vill ha ett eget boende." in there.text
