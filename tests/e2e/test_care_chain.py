"""The care chain after the meeting across three members, every service a process of its
own (issue 21): a vårdkedjeremiss whose plan has actions at the region, at two kommuner and
at an actor outside the federation; an action owner never invited (Alvesta's housing
support) sees, starts and ends its action and every party knows; the coordinators of the
kommun and the region revise the plan from their own members, and one convenes a
professional meeting without the person. Driven through the APIs as the docs pages show
them — nothing ends or fails to start without the others knowing (004, around line 846).
An action that should have started yesterday is found late by every member from its own
copy of the plan, without moving any clock: the owner at its member is told it is overdue,
each coordinator at its own member that it is escalated, until the owner starts it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.notify.content import looks_like_personnummer
from shared.domain.calendar import to_local
from shared.messaging.broker import Broker
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.e2e.test_referral_federation import (
    SERVICES,
    Site,
    auth,
    demo_units,
    member_federation,
    synthetic_person,
    unit_id,
)
from tests.e2e.test_referral_processes import Staff
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e

PORT = "Psykiatrins remissport"
BEROENDE = "Beroendemottagningen Växjö"
SOC = "Socialtjänstens mottagning vuxna Växjö"
BOENDE = "Boendestöd Växjö, inriktning skadligt bruk och beroende"
ALVESTA_BOENDE = "Boendestöd Alvesta, inriktning missbruk"
MEMBERS = (ORG_REGION, ORG_VAXJO, ORG_ALVESTA)


@contextlib.asynccontextmanager
async def three_members(
    broker: Broker, databases: DatabaseFactory, tmp_path: Path, *, deadline_check_s: int = 300
) -> AsyncIterator[Federation]:
    """The three members, every service a process of its own; each referral worker checks
    the deadlines every ``deadline_check_s`` seconds (the default: five minutes)."""
    urls = {(orgnr, s): await databases.new(f"{s}-{orgnr}") for orgnr in MEMBERS for s in SERVICES}
    fed = member_federation(
        MEMBERS,
        urls,
        tmp_path / "var",
        broker.bootstrap,
        VK_REFERRAL__DEADLINE_CHECK_INTERVAL_S=str(deadline_check_s),
    )
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=300)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


@pytest.fixture
async def three(
    private_broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    async with three_members(private_broker, databases, tmp_path) as fed:
        yield fed


@pytest.fixture
async def three_checking_deadlines(
    private_broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    """The three members, each referral worker checking the deadlines every second (the
    default is every five minutes): no clock is moved, only the check is frequent."""
    async with three_members(private_broker, databases, tmp_path, deadline_check_s=1) as fed:
        yield fed


def ref(orgnr: str, unit: str) -> dict[str, str]:
    return {"orgnr": orgnr, "unit_id": unit}


async def consent_of_all_three(site: Site, person: str, unit: str) -> str:
    """A written consent at Växjö to the care chain between the three members."""
    today = dt.datetime.now(dt.UTC).date()
    r = await site.post(
        "consent",
        "/v1/consents",
        {
            "person": {"personnummer": person},
            "form": "written",
            "signed_form_reference": "Treserva dok 2026-314",
            "purposes": ["vardkedjeremiss", "sip", "vardkedjesamordning"],
            "parties": [{"orgnr": o} for o in MEMBERS],
            "categories": ["contact_details", "needs_summary", "plan"],
            "valid_from": today.isoformat(),
            "valid_to": (today + dt.timedelta(days=180)).isoformat(),
            "person_informed": True,
        },
        auth(ORG_VAXJO, unit, ["consent:read", "consent:write"]),
    )
    assert r.status_code == 201, r.text
    consent_id: str = r.json()["id"]
    return consent_id


async def plan_of(staff: Staff, plan_id: str) -> dict[str, Any] | None:
    r = await staff.get(f"/v1/plans/{plan_id}")
    return r.json() if r.status_code == 200 else None


async def step_action(staff: Staff, plan_id: str, action_id: str, **body: str) -> httpx.Response:
    """A step on an action, on the plan version the unit reads now."""
    current = await staff.get(f"/v1/plans/{plan_id}")
    assert current.status_code == 200, current.text
    return await staff.post(
        f"/v1/plans/{plan_id}/actions/{action_id}/transitions",
        body,
        **{"If-Match": current.headers["ETag"]},
    )


async def test_the_care_chain_after_the_meeting_across_three_members(three: Federation) -> None:
    region_m, vaxjo_m, alvesta_m = three.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo, alvesta = (Site(client, m) for m in three.members)
        replica = await demo_units(three, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [
                (ORG_REGION, PORT),
                (ORG_REGION, BEROENDE),
                (ORG_VAXJO, SOC),
                (ORG_VAXJO, BOENDE),
                (ORG_ALVESTA, ALVESTA_BOENDE),
            ]
        }
        port = Staff(region, ORG_REGION, ids[PORT])
        beroende = Staff(region, ORG_REGION, ids[BEROENDE])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        boende = Staff(vaxjo, ORG_VAXJO, ids[BOENDE])
        alvesta_boende = Staff(alvesta, ORG_ALVESTA, ids[ALVESTA_BOENDE])

        person = synthetic_person(515_151)
        consent_id = await consent_of_all_three(vaxjo, person, ids[SOC])
        for site, orgnr in ((region, ORG_REGION), (alvesta, ORG_ALVESTA)):

            async def copy_there(site: Site = site, orgnr: str = orgnr) -> bool:
                r = await site.get(
                    "consent",
                    f"/v1/consent-copies/{consent_id}",
                    auth(orgnr, None, ["consent:read"]),
                )
                return r.status_code == 200

            await eventually(copy_there, within=60, what=f"the consent copy at {orgnr}")

        # 1. Växjö's intake sends a vårdkedjeremiss to psychiatry's referral port, which
        #    convenes the remissmöte with the beroendemottagning and Växjö's housing support.
        r = await soc.post(
            "/v1/referrals",
            {
                "kind": "vardkedjeremiss",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "needs": ["abstinensbehandling", "boendestod"],
                "summary": "Behöver abstinensbehandling och boende; flyttar till Alvesta.",
                "drug_free": "no",
                "recipients": [ref(ORG_REGION, ids[PORT])],
            },
        )
        assert r.status_code == 201, r.text
        vkr = await port.wait_for("vardkedjeremiss")
        await port.step(vkr["task_id"], to="acknowledged")
        r = await port.post(
            "/v1/meetings",
            {
                "kind": "remissmote",
                "origin_task_id": vkr["task_id"],
                "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat(),
                "video_link": "https://mote.example/remissmote-515",
                "participants": [ref(ORG_REGION, ids[BEROENDE]), ref(ORG_VAXJO, ids[BOENDE])],
            },
        )
        assert r.status_code == 201, r.text
        meeting_id = r.json()["id"]
        for staff in (beroende, boende):
            invitation = await staff.wait_for("vardkedjeremiss")
            await staff.step(invitation["task_id"], to="acknowledged")
            await staff.step(invitation["task_id"], to="accepted")

        async def both_accepted() -> bool:
            got = (await port.get(f"/v1/meetings/{meeting_id}")).json()
            return [p["status"] for p in got["participants"]] == ["accepted", "accepted"]

        await eventually(both_accepted, within=60, what="both answers at the port")

        # 2. The plan: actions at the region, at Växjö, at Alvesta's housing support (never
        #    invited: the person moves there) and at Försäkringskassan; the coordinating
        #    function is Växjö's intake and the beroendemottagning.
        today = dt.datetime.now(dt.UTC).date()
        r = await port.put(
            f"/v1/meetings/{meeting_id}/plan",
            {
                "own_goals": ["Jag vill bo i Alvesta nära min syster."],
                "goals": ["Drogfrihet"],
                "actions": [
                    {
                        "intervention": "abstinensbehandling",
                        "owner": ref(ORG_REGION, ids[BEROENDE]),
                        "start_by": (today + dt.timedelta(days=7)).isoformat(),
                    },
                    {"intervention": "motivationssamtal", "owner": ref(ORG_VAXJO, ids[BOENDE])},
                    {
                        "intervention": "boendestod",
                        "owner": ref(ORG_ALVESTA, ids[ALVESTA_BOENDE]),
                        "start_by": (today + dt.timedelta(days=30)).isoformat(),
                    },
                    {"intervention": "sysselsattning", "outside_actor": "Försäkringskassan"},
                ],
                "coordinators": [ref(ORG_VAXJO, ids[SOC]), ref(ORG_REGION, ids[BEROENDE])],
                "follow_up_date": (today + dt.timedelta(days=60)).isoformat(),
                "attendance": {
                    "units": [ref(ORG_REGION, ids[PORT]), ref(ORG_REGION, ids[BEROENDE])],
                    "person": True,
                },
                "person_agrees": True,
            },
        )
        assert r.status_code == 200, r.text
        plan = r.json()
        plan_id = plan["id"]
        alvesta_action = plan["actions"][2]["id"]
        outside_action = plan["actions"][3]["id"]
        assert ref(ORG_ALVESTA, ids[ALVESTA_BOENDE]) in plan["viewers"]

        # 3. Alvesta's housing support, never invited, finds its action in its worklist
        #    (and a notification that it was assigned), starts it, later ends it.
        async def in_alvesta_worklist() -> bool:
            r = await alvesta_boende.get("/v1/plan-actions?open=true")
            return [i["action"]["id"] for i in r.json()] == [alvesta_action]

        await eventually(in_alvesta_worklist, within=60, what="the action at Alvesta")

        async def told_at_alvesta() -> bool:
            r = await alvesta.get(
                "notify",
                f"/v1/units/{ids[ALVESTA_BOENDE]}/notifications",
                auth(ORG_ALVESTA, ids[ALVESTA_BOENDE], ["notify:read"]),
            )
            return any(n["kind"] == "plan.action_assigned" for n in r.json()["items"])

        await eventually(told_at_alvesta, within=60, what="Alvesta told of its action")
        r = await step_action(alvesta_boende, plan_id, alvesta_action, to="started")
        assert r.status_code == 202, r.text

        async def started_everywhere() -> bool:
            copies = [await plan_of(s, plan_id) for s in (port, soc, alvesta_boende)]
            return all(c and c["actions"][2]["status"] == "started" for c in copies)

        await eventually(started_everywhere, within=60, what="the start at all three members")

        # 4. Växjö's coordinator records Försäkringskassan's step and revises the plan from
        #    its own member: both go to the region, which owns the plan.
        r = await step_action(soc, plan_id, outside_action, to="started")
        assert r.status_code == 202, r.text

        async def outside_started() -> bool:
            copies = [await plan_of(s, plan_id) for s in (port, soc)]
            return all(c and c["actions"][3]["status"] == "started" for c in copies)

        await eventually(outside_started, within=60, what="the outside actor's start")
        current = await soc.get(f"/v1/plans/{plan_id}")
        revised = {
            "own_goals": ["Jag vill bo i Alvesta nära min syster.", "Jag vill börja arbeta."],
            "goals": ["Drogfrihet"],
            "actions": [
                {
                    "intervention": a["intervention"],
                    **(
                        {"owner": ref(a["orgnr"], a["unit_id"])}
                        if a["unit_id"]
                        else {"outside_actor": a["outside_actor"]}
                    ),
                    **({"start_by": a["start_by"]} if a["start_by"] else {}),
                }
                for a in current.json()["actions"]
            ],
            "coordinators": [ref(ORG_VAXJO, ids[SOC]), ref(ORG_REGION, ids[BEROENDE])],
            "follow_up_date": (today + dt.timedelta(days=45)).isoformat(),
        }
        r = await soc.site.client.put(
            soc.site.url("referral", f"/v1/plans/{plan_id}"),
            json=revised,
            headers={**soc.headers, "If-Match": current.headers["ETag"]},
        )
        assert r.status_code == 202, r.text

        async def revised_everywhere() -> bool:
            copies = [await plan_of(s, plan_id) for s in (port, soc, alvesta_boende)]
            return all(c and c["own_goals"] == revised["own_goals"] for c in copies)

        await eventually(revised_everywhere, within=60, what="the revision at all three")
        kept = (await plan_of(port, plan_id)) or {}
        assert [a["status"] for a in kept["actions"]] == [
            "planned",
            "planned",
            "started",
            "started",
        ]

        # 5. The region's coordinator convenes a professional meeting without the person,
        #    with Alvesta's housing support.
        r = await beroende.post(
            "/v1/meetings",
            {
                "kind": "samordningsmote",
                "children_in_household": "no",
                "follow_up_of": plan_id,
                "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=9)).isoformat(),
                "video_link": "https://mote.example/samordning-515",
                "participants": [ref(ORG_ALVESTA, ids[ALVESTA_BOENDE])],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["person_invited"] is False
        await alvesta_boende.wait_for("samordningsmote")

        # 6. Alvesta ends its action: every party at every member sees it ended.
        r = await step_action(
            alvesta_boende, plan_id, alvesta_action, to="ended", outcome="completed"
        )
        assert r.status_code == 202, r.text

        async def ended_everywhere() -> bool:
            copies = [await plan_of(s, plan_id) for s in (port, soc, beroende, alvesta_boende)]
            return all(c and c["actions"][2]["status"] == "ended" for c in copies)

        await eventually(ended_everywhere, within=60, what="the end at all three members")

        async def soc_told() -> bool:
            r = await vaxjo.get(
                "notify",
                f"/v1/units/{ids[SOC]}/notifications",
                auth(ORG_VAXJO, ids[SOC], ["notify:read"]),
            )
            return any(n["kind"] == "plan.action_ended" for n in r.json()["items"])

        await eventually(soc_told, within=60, what="Växjö's coordinator told of the end")

        # 7. The region's indicators count it, with no personnummer.
        r = await port.get("/v1/indicators")
        assert r.status_code == 200, r.text
        assert r.json()["plan_actions"]["ended_without_notice"] == 0
        assert person not in r.text
    _ = (region_m, vaxjo_m, alvesta_m)


async def notifications(site: Site, orgnr: str, unit: str) -> httpx.Response:
    """The unit's inbox at its own member's notify service."""
    r = await site.get(
        "notify", f"/v1/units/{unit}/notifications", auth(orgnr, unit, ["notify:read"])
    )
    assert r.status_code == 200, r.text
    return r


async def test_a_late_action_escalates_to_the_coordinators_at_their_own_members(
    three_checking_deadlines: Federation,
) -> None:
    """Region Kronoberg's beroendemottagning holds a SIP with Växjö's intake; the plan gives
    Alvesta's housing support (never invited) an action that should have started yesterday,
    and names a coordinating unit at the region and one at Växjö. No clock is moved: each
    member's own deadline check finds the late start in the copy of the plan it holds and
    tells its own units — Alvesta the owner (overdue), the region and Växjö their coordinator
    (escalated) — without personal data. Alvesta starts the action from its own member; the
    step goes to the region, which owns the plan, and every party's copy shows it started:
    it leaves Växjö's coordinator's worklist of overdue actions."""
    fed = three_checking_deadlines
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo, alvesta = (Site(client, m) for m in fed.members)
        replica = await demo_units(fed, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [
                (ORG_REGION, BEROENDE),
                (ORG_VAXJO, SOC),
                (ORG_ALVESTA, ALVESTA_BOENDE),
            ]
        }
        beroende = Staff(region, ORG_REGION, ids[BEROENDE])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        alvesta_boende = Staff(alvesta, ORG_ALVESTA, ids[ALVESTA_BOENDE])

        person = synthetic_person(616_161)
        relative = "Karin Lindqvist"
        own_goal = "Jag vill bo i Alvesta nära min syster."
        consent_id = await consent_of_all_three(vaxjo, person, ids[SOC])
        for site, orgnr in ((region, ORG_REGION), (alvesta, ORG_ALVESTA)):

            async def copy_there(site: Site = site, orgnr: str = orgnr) -> bool:
                r = await site.get(
                    "consent",
                    f"/v1/consent-copies/{consent_id}",
                    auth(orgnr, None, ["consent:read"]),
                )
                return r.status_code == 200

            await eventually(copy_there, within=60, what=f"the consent copy at {orgnr}")

        # 1. The region's beroendemottagning convenes a SIP with Växjö's intake, which
        #    accepts; the person's sister (a relative) is invited, her contact kept there.
        r = await beroende.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(),
                "place": "Beroendemottagningen, Centrallasarettet Växjö",
                "participants": [ref(ORG_VAXJO, ids[SOC])],
                "relatives": [{"name": relative, "phone": "070-123 45 67"}],
            },
        )
        assert r.status_code == 201, r.text
        meeting_id = r.json()["id"]
        invitation = await soc.wait_for("sip_kallelse")
        await soc.step(invitation["task_id"], to="acknowledged")
        await soc.step(invitation["task_id"], to="accepted")

        # 2. The plan: Alvesta's housing support should have started yesterday (in Sweden);
        #    the beroendemottagning's own action is weeks away. The coordinating function
        #    is Växjö's intake and the beroendemottagning — neither at Alvesta.
        today = to_local(dt.datetime.now(dt.UTC)).date()
        yesterday = today - dt.timedelta(days=1)
        r = await beroende.put(
            f"/v1/meetings/{meeting_id}/plan",
            {
                "own_goals": [own_goal],
                "goals": ["Drogfrihet"],
                "actions": [
                    {
                        "intervention": "boendestod",
                        "owner": ref(ORG_ALVESTA, ids[ALVESTA_BOENDE]),
                        "start_by": yesterday.isoformat(),
                    },
                    {
                        "intervention": "abstinensbehandling",
                        "owner": ref(ORG_REGION, ids[BEROENDE]),
                        "start_by": (today + dt.timedelta(days=21)).isoformat(),
                    },
                ],
                "coordinators": [ref(ORG_VAXJO, ids[SOC]), ref(ORG_REGION, ids[BEROENDE])],
                "follow_up_date": (today + dt.timedelta(days=60)).isoformat(),
                "person_agrees": True,
            },
        )
        assert r.status_code == 200, r.text
        plan = r.json()
        plan_id, late = plan["id"], plan["actions"][0]["id"]
        for party in (ref(ORG_ALVESTA, ids[ALVESTA_BOENDE]), ref(ORG_VAXJO, ids[SOC])):
            assert party in plan["viewers"]

        # 3. Each member tells its own units, from its own copy of the plan: the owner at
        #    Alvesta that its action is overdue, each coordinator that it is escalated.
        told: dict[str, list[dict[str, Any]]] = {}

        async def told_of(site: Site, orgnr: str, unit: str, kind: str) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []

            async def arrived() -> bool:
                r = await notifications(site, orgnr, unit)
                told[unit] = r.json()["items"]
                found[:] = [
                    n for n in told[unit] if n["kind"] == kind and n["subject_id"] == plan_id
                ]
                return bool(found)

            await eventually(arrived, within=60, what=f"{kind} at {unit} of {orgnr}")
            return found

        [overdue] = await told_of(alvesta, ORG_ALVESTA, ids[ALVESTA_BOENDE], "deadline.overdue")
        [at_region] = await told_of(region, ORG_REGION, ids[BEROENDE], "deadline.escalated")
        [at_vaxjo] = await told_of(vaxjo, ORG_VAXJO, ids[SOC], "deadline.escalated")
        for note, unit in (
            (overdue, ids[ALVESTA_BOENDE]),
            (at_region, ids[BEROENDE]),
            (at_vaxjo, ids[SOC]),
        ):
            assert (note["subject_type"], note["deadline"], note["unit_id"]) == (
                "plan",
                "action_start",
                unit,
            )
            assert yesterday.isoformat() in note["title"], note["title"]
        assert overdue["title"].startswith("Försenad: Planerad insats")
        assert at_vaxjo["title"].startswith("Eskalering: Planerad insats")
        # The owner is not escalated to, the coordinators are not told as owners.
        assert not [n for n in told[ids[ALVESTA_BOENDE]] if n["kind"] == "deadline.escalated"]
        for unit in (ids[BEROENDE], ids[SOC]):
            assert not [n for n in told[unit] if n["kind"] == "deadline.overdue"], unit
        # No personal data in any of the three inboxes.
        for site, orgnr, unit in (
            (alvesta, ORG_ALVESTA, ids[ALVESTA_BOENDE]),
            (region, ORG_REGION, ids[BEROENDE]),
            (vaxjo, ORG_VAXJO, ids[SOC]),
        ):
            text = (await notifications(site, orgnr, unit)).text
            assert not looks_like_personnummer(text), unit
            for personal in (person, person[2:], relative, own_goal, "syster"):
                assert personal not in text, (unit, personal)

        # Växjö's coordinator also finds it among the overdue actions of its worklist.
        async def overdue_for_vaxjo() -> list[str]:
            r = await soc.get("/v1/coordination")
            assert r.status_code == 200, r.text
            return [
                i["action"]["id"]
                for i in r.json()["actions_overdue"]
                if i["plan_id"] == plan_id and i["overdue"] == "start"
            ]

        assert await overdue_for_vaxjo() == [late]

        # 4. Alvesta starts the action from its own member: asked of the region, which owns
        #    the plan (202), and every party's copy shows it started.
        r = await step_action(alvesta_boende, plan_id, late, to="started")
        assert r.status_code == 202, r.text

        async def started_everywhere() -> bool:
            copies = [await plan_of(s, plan_id) for s in (beroende, soc, alvesta_boende)]
            return all(
                c and {a["id"]: a["status"] for a in c["actions"]}[late] == "started"
                for c in copies
            )

        await eventually(started_everywhere, within=60, what="the start at all three members")

        async def off_the_worklist() -> bool:
            return await overdue_for_vaxjo() == []

        await eventually(off_the_worklist, within=60, what="the action off Växjö's worklist")
