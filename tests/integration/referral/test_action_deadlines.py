"""A plan's actions have deadlines (issue 21): the owner unit is reminded as ``start_by``
and ``end_by`` come near and pass, and once passed every coordinating unit of the plan is
alerted (an escalation) — each by its own member, from the copy of the plan it holds,
whichever member owns the plan or the action. Each is sent once; the indicators count the
escalations by the member owning the late action; and the coordinator's worklist shows the
invitations to the plan's follow-up meeting not answered yet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from services.referral import deadlines
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.messaging.events.payloads import REFERRAL_DEADLINE_V1
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.signed import outbox_data

from .conftest import (
    REFERRAL,
    REGION_BEROENDE,
    REGION_PORT,
    VAXJO_BOENDE,
    VAXJO_SOC,
    Member,
    Pair,
)
from .test_plan_actions import BEROENDE, PORT, SOC, a_sip_with_its_plan, get
from .test_referral_flow import step
from .test_referral_meetings import action_step, inbox

Row = tuple[str, str, str, str, str]


async def check(member: Member, today: dt.date) -> int:
    """The member's deadline check, as its worker runs it, on ``today``."""
    ctx = member.referral_app.state.ctx
    async with ctx.db.transaction() as session:
        return await deadlines.check(Work(session, ctx.outbox, ctx.settings), today=today)


async def action_deadlines(member: Member) -> list[Row]:
    """(action, unit, deadline, state, audience) of every action deadline event the member
    sent, each checked to name its plan."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == REFERRAL_DEADLINE_V1))).all()
    out = [outbox_data(r) for r in rows]
    return sorted(
        (e["action_id"], e["unit_id"], e["deadline"], e["state"], e["audience"])
        for e in out
        if e.get("action_id")
    )


async def has_copy(member: Member, plan_id: str, headers: dict[str, str]) -> bool:
    return (await get(member, f"/v1/plans/{plan_id}", headers)).status_code == 200


def today() -> dt.date:
    return to_local(dt.datetime.now(dt.UTC)).date()


async def test_late_actions_remind_their_owner_and_escalate_to_every_coordinator(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)  # owned by Växjö; both members coordinate
    plan_id = plan["id"]
    boende, port, outside = (a["id"] for a in plan["actions"])
    await eventually(
        lambda: has_copy(region, plan_id, PORT), within=30, what="the plan's copy at the region"
    )
    on = today()

    # Both actions should have started yesterday. Each member tells its own units: the
    # owner (Växjö's housing support; the region's port) and, as escalations, its own
    # coordinating unit for each late action, whoever owns it. Försäkringskassan's action
    # has no dates: nothing.
    assert await check(vaxjo, on) == 3
    assert await action_deadlines(vaxjo) == sorted(
        [
            (boende, VAXJO_BOENDE, "action_start", "overdue", "actor"),
            (boende, VAXJO_SOC, "action_start", "overdue", "coordinator"),
            (port, VAXJO_SOC, "action_start", "overdue", "coordinator"),
        ]
    )
    assert await check(region, on) == 3
    assert await action_deadlines(region) == sorted(
        [
            (boende, REGION_BEROENDE, "action_start", "overdue", "coordinator"),
            (port, REGION_PORT, "action_start", "overdue", "actor"),
            (port, REGION_BEROENDE, "action_start", "overdue", "coordinator"),
        ]
    )
    assert (await check(vaxjo, on), await check(region, on)) == (0, 0), "each is sent once"

    # The port starts its action: its next deadline is to end it (in 30 days). Near it, the
    # port is reminded; once passed, it and both coordinators are told — Växjö's by Växjö —
    # once the step has come back from the owner to the region's copy.
    version = int((await get(region, f"/v1/plans/{plan_id}", PORT)).json()["version"])
    r = await action_step(region, plan_id, port, PORT, version, to="started")
    assert r.status_code == 202, r.text  # asked of the plan's owner, Växjö

    async def started(member: Member, headers: dict[str, str]) -> bool:
        got = (await get(member, f"/v1/plans/{plan_id}", headers)).json()
        return bool({a["id"]: a["status"] for a in got["actions"]}[port] == "started")

    await eventually(lambda: started(vaxjo, SOC), within=30, what="the step at the owner")
    await eventually(lambda: started(region, PORT), within=30, what="the step at the copy")
    end_by = dt.date.fromisoformat(plan["actions"][1]["end_by"])
    assert await check(region, end_by) == 1
    assert (port, REGION_PORT, "action_end", "near", "actor") in await action_deadlines(region)
    after = end_by + dt.timedelta(days=1)
    assert await check(region, after) == 2
    assert await check(vaxjo, after) == 1
    assert (port, VAXJO_SOC, "action_end", "overdue", "coordinator") in await action_deadlines(
        vaxjo
    )
    # The housing support never started: still its start date, never its end; the outside
    # actor's action has none.
    assert not [row for row in await action_deadlines(vaxjo) if row[0] == outside]

    # The escalations are counted by the member owning the late action: at Växjö, one of
    # its own actions and two of the region's (not started, then not ended).
    r = await get(vaxjo, f"/v1/indicators?from={on}&to={after}", SOC)
    assert r.status_code == 200, r.text
    escalations = r.json()["escalations"]
    assert escalations["total"] == 3
    assert escalations["by_kind"] == {"action_start": 2, "action_end": 1}
    assert escalations["by_owner_member"] == {
        ORG_REGION: {"action_start": 1, "action_end": 1},
        ORG_VAXJO: {"action_start": 1, "action_end": 0},
    }


async def test_the_coordinator_sees_who_has_not_answered_the_follow_up(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    plan = await a_sip_with_its_plan(members)
    plan_id = plan["id"]
    await eventually(
        lambda: has_copy(region, plan_id, BEROENDE), within=30, what="the plan at the region"
    )
    # The region's coordinator convenes a samordningsmöte about Växjö's plan with the
    # region's port; the port has not answered yet.
    body: dict[str, Any] = {
        "kind": "samordningsmote",
        "children_in_household": "no",
        "follow_up_of": plan_id,
        "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat(),
        "video_link": "https://mote.example/samordning-1",
        "participants": [{"orgnr": ORG_REGION, "unit_id": REGION_PORT}],
        "person_invited": False,
    }
    async with region.referral() as c:
        r = await c.post("/v1/meetings", json=body, headers=BEROENDE)
    assert r.status_code == 201, r.text
    meeting_id = r.json()["id"]

    async def invited() -> bool:
        return len(await inbox(region, PORT)) == 1

    await eventually(invited, within=30, what="the invitation in the port's inbox")
    worklist = (await get(region, "/v1/coordination", BEROENDE)).json()
    [waiting] = worklist["invitations_unanswered"]
    assert (waiting["plan_id"], waiting["meeting_id"], waiting["meeting_kind"]) == (
        plan_id,
        meeting_id,
        "samordningsmote",
    )
    assert (waiting["orgnr"], waiting["unit_id"]) == (ORG_REGION, REGION_PORT)
    assert waiting["status"] in ("sent", "delivered")  # as the convener last heard
    assert waiting["overdue"] is False
    # Växjö's coordinator does not see the region's meeting (it is followed where convened).
    assert (await get(vaxjo, "/v1/coordination", SOC)).json()["invitations_unanswered"] == []

    # Once the port answers, it leaves the list.
    task_id = (await inbox(region, PORT))[0]["task_id"]
    await step(region, task_id, PORT, to="acknowledged")
    assert (await step(region, task_id, PORT, to="accepted")).status_code == 200

    async def answered() -> bool:
        worklist = (await get(region, "/v1/coordination", BEROENDE)).json()
        return worklist["invitations_unanswered"] == []

    await eventually(answered, within=30, what="the answer at the convener")
