"""An unanswered SIP invitation chased across two members, every service a process of its
own (issue 21): Region Kronoberg's heldygnsvård convenes a SIP the next working day and asks
Växjö's intake to answer by that day. The intake acknowledges the invitation and does not
answer: its own member's deadline check finds the answer due within the near window and
Växjö's notify reminds the intake, while the convener's meeting shows the intake
acknowledged with its deadline and not (yet) overdue. No clock is moved, so the deadline
never passes here (the integration tests pass it on a fixed day). Once the plan is recorded,
its coordinator at the region convenes a samordningsmöte with Växjö's housing support, which
stays in the coordinator's worklist of unanswered invitations until it accepts. Driven
through the APIs as the docs pages show them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain.calendar import STOCKHOLM, add_working_days, to_local
from shared.messaging.broker import Broker
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory
from tests.e2e.test_referral_federation import (
    SERVICES,
    Site,
    auth,
    consent_copy_arrives,
    demo_units,
    synthetic_person,
    two_member_federation,
    unit_id,
)
from tests.e2e.test_referral_processes import AVDELNING, BOENDE, SOC, Staff
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e


@pytest.fixture
async def two(
    private_broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    """Region Kronoberg and Växjö kommun, each referral worker checking the deadlines every
    second (the default is every five minutes): no clock is moved, only the check is
    frequent."""
    urls = {
        (orgnr, s): await databases.new(f"{s}-{orgnr}")
        for orgnr in (ORG_REGION, ORG_VAXJO)
        for s in SERVICES
    }
    fed = two_member_federation(
        urls,
        tmp_path / "var",
        private_broker.bootstrap,
        VK_REFERRAL__DEADLINE_CHECK_INTERVAL_S="1",
    )
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=240)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


def ref(orgnr: str, unit: str) -> dict[str, str]:
    return {"orgnr": orgnr, "unit_id": unit}


async def consent_to_sip_and_coordination(site: Site, person: str, unit: str) -> str:
    """A written consent at Växjö to the SIP and the coordination between both members."""
    today = dt.datetime.now(dt.UTC).date()
    r = await site.post(
        "consent",
        "/v1/consents",
        {
            "person": {"personnummer": person},
            "form": "written",
            "signed_form_reference": "Treserva dok 2026-717",
            "purposes": ["sip", "vardkedjesamordning"],
            "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
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


async def test_an_acknowledged_sip_invitation_not_answered_is_chased(two: Federation) -> None:
    region_m, vaxjo_m = two.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(two, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [(ORG_REGION, AVDELNING), (ORG_VAXJO, SOC), (ORG_VAXJO, BOENDE)]
        }
        avdelning = Staff(region, ORG_REGION, ids[AVDELNING])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        boende = Staff(vaxjo, ORG_VAXJO, ids[BOENDE])

        person = synthetic_person(717_171)
        consent_id = await consent_to_sip_and_coordination(vaxjo, person, ids[SOC])

        await consent_copy_arrives(region, ORG_REGION, ids[AVDELNING], consent_id)

        # 1. The heldygnsvård convenes a SIP the next working day in Sweden (within the two
        #    working days a deadline counts as near) and asks for the answers by that day.
        today = to_local(dt.datetime.now(dt.UTC)).date()
        day = add_working_days(today, 1)
        at = dt.datetime.combine(day, dt.time(13, 0), tzinfo=STOCKHOLM)
        r = await avdelning.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": at.isoformat(),
                "place": "Beroendeavdelningen, Centrallasarettet Växjö",
                "participants": [ref(ORG_VAXJO, ids[SOC])],
                "answer_by": day.isoformat(),
                "summary": "SIP inför utskrivning.",
            },
        )
        assert r.status_code == 201, r.text
        meeting_id = r.json()["id"]

        # 2. Växjö's intake acknowledges the invitation and does not answer it.
        invitation = await soc.wait_for("sip_kallelse")
        task_id = invitation["task_id"]
        acknowledged = await soc.step(task_id, to="acknowledged")
        assert acknowledged["status"] == "acknowledged"
        held = (await soc.get(f"/v1/incoming/{task_id}")).json()
        assert (held["status"], held["answer_by"]) == ("acknowledged", day.isoformat())

        # 3. Växjö's own deadline check finds the answer near: its notify reminds the intake
        #    (not an acknowledgement reminder: the answer), about the invitation task.
        reminders: list[dict[str, Any]] = []
        inbox_text: list[str] = []

        async def reminded() -> bool:
            r = await vaxjo.get(
                "notify",
                f"/v1/units/{ids[SOC]}/notifications",
                auth(ORG_VAXJO, ids[SOC], ["notify:read"]),
            )
            assert r.status_code == 200, r.text
            inbox_text[:] = [r.text]
            reminders[:] = [
                n
                for n in r.json()["items"]
                if n["kind"] == "deadline.reminder" and n["deadline"] == "answer"
            ]
            return bool(reminders)

        await eventually(reminded, within=60, what="the reminder to answer at Växjö's intake")
        [reminder] = reminders
        assert (reminder["subject_type"], reminder["subject_id"]) == ("referral", task_id)
        assert (reminder["unit_id"], reminder["referral_kind"]) == (ids[SOC], "sip_kallelse")
        assert to_local(dt.datetime.fromisoformat(reminder["due_at"])).date() == day
        assert reminder["title"].startswith("Påminnelse:"), reminder["title"]
        for personal in (person, person[2:], "utskrivning"):
            assert personal not in inbox_text[0]

        # 4. The convener sees the intake acknowledged, with the day it must answer by; not
        #    past it, so the overdue filter does not list it.
        parts: list[dict[str, Any]] = []

        async def acknowledged_at_region() -> bool:
            r = await avdelning.get(f"/v1/meetings/{meeting_id}")
            assert r.status_code == 200, r.text
            parts[:] = r.json()["participants"]
            return [p["status"] for p in parts] == ["acknowledged"]

        await eventually(acknowledged_at_region, within=60, what="the acknowledgement at Region")
        [participant] = parts
        assert (participant["orgnr"], participant["unit_id"], participant["task_id"]) == (
            ORG_VAXJO,
            ids[SOC],
            task_id,
        )
        assert participant["answer_by"] == day.isoformat()
        assert participant["overdue"] is False
        for which in ("answer", "any"):
            r = await avdelning.get(f"/v1/meetings/{meeting_id}?overdue={which}")
            assert r.status_code == 200, r.text
            assert r.json()["participants"] == [], which
        # The convener is told only once the answer is late: not now.
        r = await region.get(
            "notify",
            f"/v1/units/{ids[AVDELNING]}/notifications",
            auth(ORG_REGION, ids[AVDELNING], ["notify:read"]),
        )
        assert r.status_code == 200, r.text
        assert not [n for n in r.json()["items"] if n["kind"] == "deadline.unanswered"]

        # 5. The intake accepts; the plan names the heldygnsvård and the intake as its
        #    coordinators and gives Växjö's housing support an action.
        await soc.step(task_id, to="accepted")

        async def accepted_at_region() -> bool:
            got = (await avdelning.get(f"/v1/meetings/{meeting_id}")).json()
            return [p["status"] for p in got["participants"]] == ["accepted"]

        await eventually(accepted_at_region, within=60, what="the acceptance at Region")
        r = await avdelning.put(
            f"/v1/meetings/{meeting_id}/plan",
            {
                "goals": ["Trygg utskrivning"],
                "actions": [{"intervention": "boendestod", "owner": ref(ORG_VAXJO, ids[BOENDE])}],
                "coordinators": [ref(ORG_REGION, ids[AVDELNING]), ref(ORG_VAXJO, ids[SOC])],
                "follow_up_date": (today + dt.timedelta(days=30)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        plan_id = r.json()["id"]

        # 6. The heldygnsvård, as coordinator, convenes a samordningsmöte about the plan
        #    with the housing support: it is in the coordinator's worklist, unanswered.
        r = await avdelning.post(
            "/v1/meetings",
            {
                "kind": "samordningsmote",
                "children_in_household": "no",
                "follow_up_of": plan_id,
                "at": (at + dt.timedelta(days=14)).isoformat(),
                "video_link": "https://mote.example/samordning-717",
                "participants": [ref(ORG_VAXJO, ids[BOENDE])],
                "person_invited": False,
            },
        )
        assert r.status_code == 201, r.text
        follow_up_id = r.json()["id"]
        [follow_up_task] = [p["task_id"] for p in r.json()["participants"]]

        async def unanswered() -> list[dict[str, Any]]:
            r = await avdelning.get("/v1/coordination")
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["invitations_unanswered"]
            return items

        [waiting] = await unanswered()
        assert (waiting["plan_id"], waiting["meeting_id"], waiting["meeting_kind"]) == (
            plan_id,
            follow_up_id,
            "samordningsmote",
        )
        assert (waiting["orgnr"], waiting["unit_id"], waiting["task_id"]) == (
            ORG_VAXJO,
            ids[BOENDE],
            follow_up_task,
        )
        assert waiting["overdue"] is False

        # The housing support acknowledges: still unanswered, now with its answer deadline.
        at_boende = await boende.wait_for("samordningsmote")
        assert at_boende["task_id"] == follow_up_task
        await boende.step(follow_up_task, to="acknowledged")

        async def acknowledged_in_worklist() -> bool:
            items = await unanswered()
            return [(i["task_id"], i["status"]) for i in items] == [
                (follow_up_task, "acknowledged")
            ] and items[0]["answer_by"] is not None

        await eventually(acknowledged_in_worklist, within=60, what="the acknowledgement")

        # It accepts: the coordinator's worklist has no unanswered invitation left.
        await boende.step(follow_up_task, to="accepted")

        async def none_left() -> bool:
            return await unanswered() == []

        await eventually(none_left, within=60, what="the acceptance in the worklist")
