"""The handover out of 24-hour care across two members over the real broker (issue 22, points
4 and 5): an HVB notification with its placement, the SIP the kommun convenes for it by its
deadline (reminded, alerted, then met) and what the sender sees of it; a discharge planning
whose linked SIP's actions start (ready for discharge), the ward's record of an unplanned
discharge told at once to the kommun and the coordinators, forged records refused, and
every bad request refused with nothing stored."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import func, select

from services.referral import units
from services.referral.models import Discharge, Meeting, ReceivedDischarge
from shared.data.db import new_id
from shared.domain.calendar import add_working_days, to_local
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGE_RECORDED_V1,
    REFERRAL_DISCHARGED_V1,
    ReferralDischargeRecordedV1,
    UnitChangedV1,
)
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.helpers.signed import outbox_data, signed
from tests.integration.consent.helpers import new_person
from tests.integration.test_outbox_inbox import produce_raw

from .conftest import (
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
from .test_action_deadlines import check
from .test_plan_actions import get
from .test_referral_attachments import dead_letters
from .test_referral_flow import copy_arrived, record_consent, step
from .test_referral_meetings import action_step, days_ahead

# The ward that plans the discharge, and out-patient care (both the region's).
WARD = "rk-avdelning-12"
OPPENVARD = "rk-oppenvard"
WARD_H = auth(ORG_REGION, WARD, RW)
OPPENVARD_H = auth(ORG_REGION, OPPENVARD, RW)
PORT_H = auth(ORG_REGION, REGION_PORT, RW)
BEROENDE_H = auth(ORG_REGION, REGION_BEROENDE, RW)
SOC_H = auth(ORG_VAXJO, VAXJO_SOC, RW)
BOENDE_H = auth(ORG_VAXJO, VAXJO_BOENDE, RW)
NOTE = "Avbröt vården på egen begäran."


async def with_ward(members: Pair) -> None:
    """The ward and out-patient care in both members' copies of the directory."""
    for member in (members.region, members.vaxjo):
        async with member.referral_db.transaction() as session:
            for unit_id, kind, kinds in (
                (WARD, "heldygnsvard", []),
                (OPPENVARD, "vuxenpsykiatri", ["utskrivningsplanering"]),
            ):
                payload = UnitChangedV1(
                    unit_id=unit_id, owner_orgnr=ORG_REGION, name=unit_id, kind=kind,
                    status="active", referral_kinds=kinds, interventions=[],
                    kommunkoder=["0780"], version=1,
                    changed_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                )  # fmt: skip
                await units.apply_unit_changed(session=session, payload=payload)


CATEGORIES = ["contact_details", "needs_summary", "plan", "social_situation"]


async def consent(member: Member, person: str, purposes: list[str]) -> str:
    """A consent of ``member`` for ``purposes`` between the two members."""
    return await record_consent(member, person, purposes, CATEGORIES)


def hvb_body(person: str, **block: Any) -> dict[str, Any]:
    """Växjö's intake notifies the region's beroendemottagning of a placement (``block``)."""
    return {
        "kind": "hvb_underrattelse",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "recipients": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
        "hvb": block,
    }


async def post(member: Member, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    async with member.referral() as c:
        return await c.post(path, json=body, headers=headers)


async def outbox(member: Member, event_type: str) -> list[dict[str, Any]]:
    """The data of every event of ``event_type`` in the member's referral outbox."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == event_type))).all()
    return [outbox_data(r) for r in rows]


async def count(member: Member, model: Any) -> int:
    async with member.referral_db.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def filed(member: Member, task_id: str, headers: dict[str, str]) -> dict[str, Any] | None:
    r = await get(member, f"/v1/incoming/{task_id}", headers)
    return r.json() if r.status_code == 200 else None


def owned(intervention: str, orgnr: str, unit_id: str) -> dict[str, Any]:
    return {"intervention": intervention, "owner": {"orgnr": orgnr, "unit_id": unit_id}}


def sip_body(person: str, participants: list[tuple[str, str]], **more: Any) -> dict[str, Any]:
    return {
        "kind": "sip",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(),
        "place": "Avdelning 12, Centrallasarettet Växjö",
        "participants": [{"orgnr": o, "unit_id": u} for o, u in participants],
        **more,
    }


async def answer(member: Member, task_id: str, headers: dict[str, str]) -> None:
    """The invited unit acknowledges and accepts (once its invitation has arrived)."""

    async def arrived() -> bool:
        return await filed(member, task_id, headers) is not None

    await eventually(arrived, within=30, what="the invitation in the unit's inbox")
    assert (await step(member, task_id, headers, to="acknowledged")).status_code == 200
    assert (await step(member, task_id, headers, to="accepted")).status_code == 200


async def accepted_by_all(member: Member, meeting_id: str, headers: dict[str, str]) -> None:
    async def all_accepted() -> bool:
        got = (await get(member, f"/v1/meetings/{meeting_id}", headers)).json()
        return all(p["status"] == "accepted" for p in got["participants"])

    await eventually(all_accepted, within=30, what="every answer at the convener")


# --- an HVB notification and its SIP -----------------------------------------------------


async def sip_events(member: Member, referral_id: str) -> list[tuple[str, str, str]]:
    """(unit, state, audience) of the SIP deadline's events of ``referral_id``."""
    return sorted(
        (e["unit_id"], e["state"], e["audience"])
        for e in await outbox(member, REFERRAL_DEADLINE_V1)
        if e["deadline"] == "sip" and e["referral_id"] == referral_id
    )


class TestAnHvbNotificationWithItsSip:
    async def test_the_kommun_is_chased_until_it_convenes_the_sip_and_then_sees_it(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        consent_id = await consent(vaxjo, person, ["hvb_underrattelse", "sip"])
        await eventually(lambda: copy_arrived(region, consent_id), within=30, what="copy")
        today = to_local(dt.datetime.now(dt.UTC)).date()
        # Placed in six working days: before the ten working days run out, so the SIP is
        # due by the placement day.
        placement = add_working_days(today, 6)
        body = hvb_body(
            person,
            placement_form="lvm_27",
            placement_date=placement.isoformat(),
            open_ended=True,
            hvb_name="Behandlingshemmet Gläntan",
        )
        r = await post(vaxjo, "/v1/referrals", body, SOC_H)
        assert r.status_code == 201, r.text
        sent = r.json()
        rid, task_id = sent["id"], sent["recipients"][0]["task_id"]
        assert sent["hvb"] == {
            "placement_form": "lvm_27",
            "placement_form_label": "Vård enligt LVM i annan form än LVM-hem (27 § LVM)",
            "placement_date": placement.isoformat(),
            "expected_end_date": None,
            "open_ended": True,
            "sip_by": placement.isoformat(),
            "sip_convened": False,
            "sip_overdue": False,
        }
        assert sent["linked_sip"] is None

        # The deadline check: nothing while far; reminded on the day; alerted once passed.
        await check(vaxjo, today)
        assert await sip_events(vaxjo, rid) == []
        await check(vaxjo, placement)
        await check(vaxjo, placement + dt.timedelta(days=1))
        await check(vaxjo, placement + dt.timedelta(days=1))
        assert await sip_events(vaxjo, rid) == [
            (VAXJO_SOC, "near", "actor"),
            (VAXJO_SOC, "overdue", "actor"),
        ]

        # The region answers: acknowledged, then accepted.
        await eventually(
            lambda: _filed_at(region, task_id), within=30, what="the notification at the region"
        )
        await step(region, task_id, BEROENDE_H, to="acknowledged")
        assert (await step(region, task_id, BEROENDE_H, to="accepted")).status_code == 200

        # The kommun convenes the SIP for it, with the region's unit.
        meeting = sip_body(person, [(ORG_REGION, REGION_BEROENDE)], for_referral_id=rid)
        r = await post(vaxjo, "/v1/meetings", meeting, SOC_H)
        assert r.status_code == 201, r.text
        assert r.json()["for_referral_id"] == rid
        meeting_id = r.json()["id"]
        # The deadline is met: notify's pending escalation is cancelled; nothing more comes.
        assert (VAXJO_SOC, "met", "actor") in await sip_events(vaxjo, rid)
        await check(vaxjo, placement + dt.timedelta(days=3))
        assert len(await sip_events(vaxjo, rid)) == 3

        async def answered() -> bool:
            view = (await get(vaxjo, f"/v1/referrals/{rid}", SOC_H)).json()
            return bool(view["recipients"][0]["status"] == "accepted")

        await eventually(answered, within=30, what="the region's answer at the kommun")
        view = (await get(vaxjo, f"/v1/referrals/{rid}", SOC_H)).json()
        assert view["linked_sip"]["meeting_id"] == meeting_id
        assert (view["linked_sip"]["status"], view["linked_sip"]["plan_recorded"]) == (
            "planned",
            False,
        )
        assert (view["hvb"]["sip_convened"], view["hvb"]["sip_overdue"]) == (True, False)

        # The SIP is held: its plan recorded, the sender sees it.
        [invitation] = (await get(vaxjo, f"/v1/meetings/{meeting_id}", SOC_H)).json()[
            "participants"
        ]
        await answer(region, invitation["task_id"], BEROENDE_H)
        await accepted_by_all(vaxjo, meeting_id, SOC_H)
        plan = {
            "goals": ["Stabil vistelse på HVB"],
            "actions": [
                {"intervention": "boendestod", "owner": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}}
            ],
            "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
            "follow_up_date": days_ahead(30),
        }
        async with vaxjo.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=plan, headers=SOC_H)
        assert r.status_code == 200, r.text
        view = (await get(vaxjo, f"/v1/referrals/{rid}", SOC_H)).json()
        assert (view["linked_sip"]["status"], view["linked_sip"]["plan_recorded"]) == (
            "held",
            True,
        )

    async def test_a_sip_answers_only_its_own_members_hvb_or_discharge_of_the_same_person(
        self, members: Pair
    ) -> None:
        vaxjo = members.vaxjo
        person = new_person()
        await consent(vaxjo, person, ["hvb_underrattelse", "sip"])
        hvb = hvb_body(
            person,
            placement_form="sol_bistand",
            placement_date=days_ahead(10),
            expected_end_date=days_ahead(100),
            hvb_name="Novus",
        )
        rid = (await post(vaxjo, "/v1/referrals", hvb, SOC_H)).json()["id"]
        before = await count(vaxjo, Meeting)
        someone_else = sip_body(new_person(), [(ORG_REGION, REGION_BEROENDE)])
        cases = [
            ({**someone_else, "for_referral_id": rid}, "not_the_referrals_person"),
            (
                sip_body(person, [(ORG_REGION, REGION_BEROENDE)], for_referral_id=new_id()),
                "not_an_hvb_notification_or_discharge_planning",
            ),
            (
                sip_body(person, [(ORG_REGION, REGION_BEROENDE)], for_referral_id=rid,
                         follow_up_of=str(uuid.uuid4())),
                "only_for_a_first_sip",
            ),
        ]  # fmt: skip
        for body, rule in cases:
            r = await post(vaxjo, "/v1/meetings", body, SOC_H)
            assert field_rules(problem(r, 422)) == {"for_referral_id": rule}, body
        assert await count(vaxjo, Meeting) == before

        # A placement's period: an end after the placement, or open-ended, never both.
        for period, rule in (
            ({}, ("hvb.open_ended", "period_required")),
            (
                {"expected_end_date": days_ahead(5)},
                ("hvb.expected_end_date", "end_after_placement"),
            ),
            (
                {"expected_end_date": days_ahead(50), "open_ended": True},
                ("hvb.open_ended", "end_date_or_open_ended"),
            ),
        ):
            block = {
                "placement_form": "annan",
                "placement_date": days_ahead(10),
                "hvb_name": "X-hem",
            }
            r = await post(vaxjo, "/v1/referrals", {**hvb, "hvb": {**block, **period}}, SOC_H)
            assert field_rules(problem(r, 422)) == dict([rule]), period


async def _filed_at(member: Member, task_id: str) -> bool:
    return await filed(member, task_id, BEROENDE_H) is not None


# --- a discharge planning, its SIP and the discharge --------------------------------------


async def a_discharge_planning(members: Pair, *, to_oppenvard: bool = True) -> dict[str, Any]:
    """The ward sends a discharge planning to Växjö's intake (and out-patient care), about a
    person with a consent for it and a SIP; the planning's JSON, with ``person_nr``."""
    region, vaxjo = members.region, members.vaxjo
    await with_ward(members)
    person = new_person()
    consent_id = await consent(region, person, ["utskrivningsplanering", "sip"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="copy")
    recipients = [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]
    if to_oppenvard:
        recipients.append({"orgnr": ORG_REGION, "unit_id": OPPENVARD})
    body = {
        "kind": "utskrivningsplanering",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "summary": "Utskrivning efter abstinensbehandling.",
        "recipients": recipients,
        "discharge": {"expected_discharge_date": days_ahead(10), "sip_exists": "no"},
    }
    r = await post(region, "/v1/referrals", body, WARD_H)
    assert r.status_code == 201, r.text
    planning: dict[str, Any] = r.json()
    planning["person_nr"] = person
    return planning


def task_of(planning: dict[str, Any], unit_id: str) -> str:
    return str(next(t["task_id"] for t in planning["recipients"] if t["unit_id"] == unit_id))


def gaps(view: dict[str, Any]) -> dict[str | None, tuple[str, list[str]]]:
    """What the discharge planning misses, by recipient unit."""
    return {
        m["unit_id"]: (m["what"], sorted(m["action_ids"])) for m in view["discharge"]["missing"]
    }


class TestADischargeHandover:
    async def test_ready_once_the_actions_start_then_an_unplanned_discharge_is_told_at_once(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        planning = await a_discharge_planning(members)
        rid, person = planning["id"], planning["person_nr"]
        soc_task, oppen_task = task_of(planning, VAXJO_SOC), task_of(planning, OPPENVARD)
        assert planning["discharge"]["ready_for_discharge"] is False
        assert gaps(planning) == {None: ("sip", [])}

        # The ward convenes the SIP for the planning with the kommun and out-patient care.
        participants = [(ORG_VAXJO, VAXJO_SOC), (ORG_REGION, OPPENVARD)]
        r = await post(
            region, "/v1/meetings", sip_body(person, participants, for_referral_id=rid), WARD_H
        )
        assert r.status_code == 201, r.text
        meeting = r.json()
        view = (await get(region, f"/v1/referrals/{rid}", WARD_H)).json()
        assert view["linked_sip"]["meeting_id"] == meeting["id"]
        assert gaps(view) == {None: ("plan", [])}
        invited = {p["unit_id"]: p["task_id"] for p in meeting["participants"]}
        await answer(vaxjo, invited[VAXJO_SOC], SOC_H)
        await answer(region, invited[OPPENVARD], OPPENVARD_H)
        await accepted_by_all(region, meeting["id"], WARD_H)

        # The plan: housing support by Växjö (not the intake itself), an assessment by
        # out-patient care, and the ward's own action (which does not count).
        plan_body = {
            "goals": ["Trygg utskrivning"],
            "actions": [
                owned("boendestod", ORG_VAXJO, VAXJO_BOENDE),
                owned("psykiatrisk_bedomning", ORG_REGION, OPPENVARD),
                owned("abstinensbehandling", ORG_REGION, WARD),
            ],
            "coordinators": [
                {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC},
                {"orgnr": ORG_REGION, "unit_id": OPPENVARD},
            ],
            "follow_up_date": days_ahead(40),
        }
        async with region.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting['id']}/plan", json=plan_body, headers=WARD_H)
        assert r.status_code == 200, r.text
        plan = r.json()
        boende, oppen, _ward = (a["id"] for a in plan["actions"])
        view = (await get(region, f"/v1/referrals/{rid}", WARD_H)).json()
        assert view["linked_sip"]["plan_recorded"] is True
        assert view["discharge"]["ready_for_discharge"] is False
        assert gaps(view) == {
            VAXJO_SOC: ("not_started", [boende]),
            OPPENVARD: ("not_started", [oppen]),
        }

        # Out-patient care starts its action here; the housing support starts its own from
        # Växjö (it goes to the region, the plan's owner).
        r = await action_step(region, plan["id"], oppen, OPPENVARD_H, plan["version"], to="started")
        assert r.status_code == 200, r.text
        current = (await get(region, f"/v1/plans/{plan['id']}", WARD_H)).json()["version"]

        # Växjö's copy must be the current version: a step on an older one is refused by
        # the owner (the copy of the plan as recorded can arrive before the start's).
        async def copy_at_vaxjo() -> bool:
            r = await get(vaxjo, f"/v1/plans/{plan['id']}", BOENDE_H)
            return r.status_code == 200 and r.json()["version"] == current

        await eventually(copy_at_vaxjo, within=30, what="the plan's current copy at Växjö")
        version = (await get(vaxjo, f"/v1/plans/{plan['id']}", BOENDE_H)).json()["version"]
        r = await action_step(vaxjo, plan["id"], boende, BOENDE_H, version, to="started")
        assert r.status_code == 202, r.text

        async def ready() -> bool:
            view = (await get(region, f"/v1/referrals/{rid}", WARD_H)).json()
            return bool(view["discharge"]["ready_for_discharge"])

        await eventually(ready, within=30, what="ready for discharge at the ward")
        assert gaps((await get(region, f"/v1/referrals/{rid}", WARD_H)).json()) == {}

        # The person leaves today, earlier than planned: the ward records it (once).
        today = to_local(dt.datetime.now(dt.UTC)).date()
        discharge = {"discharged_on": today.isoformat(), "unplanned": True, "note": NOTE}
        key = {**WARD_H, "Idempotency-Key": f"discharge-{rid}"}
        r = await post(region, f"/v1/referrals/{rid}/discharge", discharge, key)
        assert r.status_code == 201, r.text
        assert r.headers["Location"] == f"/v1/referrals/{rid}"
        recorded = r.json()["discharged"]
        assert (recorded["discharged_on"], recorded["unplanned"], recorded["note"]) == (
            today.isoformat(),
            True,
            NOTE,
        )
        assert recorded["actions_started"] is True
        again = await post(region, f"/v1/referrals/{rid}/discharge", discharge, key)
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        problem(
            await post(region, f"/v1/referrals/{rid}/discharge", discharge, WARD_H),
            409,
            "discharge-already-recorded",
        )
        assert await count(region, Discharge) == 1

        # Every open task's member is told, one event per task; Växjö is asked to tell its
        # coordinator too. The ward's note goes nowhere.
        told = await outbox(region, REFERRAL_DISCHARGE_RECORDED_V1)
        assert sorted(
            (e["recipient_orgnr"], e["task_id"], e["coordinators"], e["plan_id"]) for e in told
        ) == sorted(
            [(ORG_VAXJO, soc_task, True, plan["id"]), (ORG_REGION, oppen_task, False, None)]
        )
        assert all(e["discharged_on"] == today.isoformat() and e["unplanned"] for e in told)
        assert NOTE not in json.dumps(told)

        # The kommun's task shows the discharge; its unit and its coordinator are told.
        async def seen_at_vaxjo() -> bool:
            task = await filed(vaxjo, soc_task, SOC_H)
            return task is not None and task["discharge"]["discharged_on"] == today.isoformat()

        await eventually(seen_at_vaxjo, within=30, what="the discharge on the kommun's task")
        task = await filed(vaxjo, soc_task, SOC_H)
        assert task is not None
        assert task["discharge"]["unplanned"] is True
        assert task["discharge"]["expected_discharge_date"] == days_ahead(10)

        async def notified(member: Member, wanted: set[tuple[str, str, str]]) -> bool:
            events = await outbox(member, REFERRAL_DISCHARGED_V1)
            return {(e["referral_id"], e["unit_id"], e["audience"]) for e in events} == wanted

        at_vaxjo = {(soc_task, VAXJO_SOC, "recipient"), (plan["id"], VAXJO_SOC, "coordinator")}
        await eventually(
            lambda: notified(vaxjo, at_vaxjo), within=30, what="the kommun's unit and coordinator"
        )
        here = {(oppen_task, OPPENVARD, "recipient"), (plan["id"], OPPENVARD, "coordinator")}
        await eventually(
            lambda: notified(region, here), within=30, what="out-patient care, in both roles"
        )
        assert all(e["unplanned"] for e in await outbox(vaxjo, REFERRAL_DISCHARGED_V1))

        # The indicators count it: one discharge, unplanned, with the actions started.
        r = await get(region, f"/v1/indicators?from={today}&to={today}", WARD_H)
        assert r.json()["discharges"] == {
            "recorded": 1,
            "unplanned": 1,
            "with_actions_started": 1,
            "share_with_actions_started": 1.0,
        }

    async def test_a_forged_discharge_is_refused(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        planning = await a_discharge_planning(members, to_oppenvard=False)
        rid, soc_task = planning["id"], task_of(planning, VAXJO_SOC)
        await eventually(
            lambda: _filed_soc(vaxjo, soc_task), within=30, what="the planning at Växjö"
        )

        def forged(signer: str, **over: Any) -> CloudEvent:
            payload = ReferralDischargeRecordedV1(
                task_id=soc_task, referral_id=rid, sender_orgnr=signer, sender_unit_id=WARD,
                recipient_orgnr=ORG_VAXJO, discharged_on=dt.date.today(), unplanned=True,
                recorded_at=dt.datetime.now(dt.UTC),
            ).model_copy(update=over)  # fmt: skip
            return CloudEvent(
                source=f"urn:vardkedja:{signer.replace('-', '')}:referral",
                type=REFERRAL_DISCHARGE_RECORDED_V1,
                subject=soc_task,
                partitionkey=soc_task,
                data=payload.model_dump(mode="json"),
            )

        events = [
            # Alvesta, signing as itself, tells of the region's planning.
            forged(ORG_ALVESTA),
            # Alvesta claims to be the region.
            forged(ORG_ALVESTA, sender_orgnr=ORG_REGION),
            # The region names the task under another planning.
            forged(ORG_REGION, referral_id=str(uuid.uuid4())),
        ]
        inbound = topics.inbound(ORG_VAXJO)
        bootstrap = region.referral_app.state.settings.kafka.bootstrap_servers
        await produce_raw(bootstrap, [signed(e, inbound) for e in events])

        async def all_refused() -> bool:
            return len(await dead_letters(vaxjo)) == len(events)

        await eventually(all_refused, within=30, what="every forged record dead-lettered")
        reasons = {d["event_id"]: d["reason"] for d in await dead_letters(vaxjo)}
        assert [reasons[e.id] for e in events] == [
            "sender_not_owner",
            "sender_not_owner",
            "not_a_discharge_planning",
        ]
        assert await count(vaxjo, ReceivedDischarge) == 0
        assert await outbox(vaxjo, REFERRAL_DISCHARGED_V1) == []
        task = await filed(vaxjo, soc_task, SOC_H)
        assert task is not None
        assert task["discharge"]["discharged_on"] is None

    async def test_bad_requests_are_refused_with_nothing_stored(self, members: Pair) -> None:
        region = members.region
        planning = await a_discharge_planning(members, to_oppenvard=False)
        rid = planning["id"]
        path = f"/v1/referrals/{rid}/discharge"
        today = to_local(dt.datetime.now(dt.UTC)).date()
        ok = {"discharged_on": today.isoformat(), "unplanned": False}

        problem(await post(region, path, ok, PORT_H), 403, "not-the-sending-unit")
        unknown = f"/v1/referrals/{uuid.uuid4()}/discharge"
        problem(await post(region, unknown, ok, WARD_H), 404, "referral-not-found")
        for body, field, rule in (
            ({**ok, "discharged_on": (today + dt.timedelta(days=1)).isoformat()},
             "discharged_on", "not_in_future"),
            ({**ok, "discharged_on": (today - dt.timedelta(days=1)).isoformat()},
             "discharged_on", "before_planning"),
            ({**ok, "discharged_on": today.strftime("%d/%m/%Y")}, "discharged_on", None),
            ({"discharged_on": today.isoformat()}, "unplanned", "missing"),
            ({**ok, "note": "x"}, "note", "string_too_short"),
        ):  # fmt: skip
            rules = field_rules(problem(await post(region, path, body, WARD_H), 422))
            assert list(rules) == [field], (body, rules)
            if rule is not None:  # (a date that is no ISO date: as the field type says)
                assert rules == {field: rule}

        # Withdrawn from its only recipient, the planning is closed: no discharge to tell.
        async def delivered() -> bool:
            view = (await get(region, f"/v1/referrals/{rid}", WARD_H)).json()
            return bool(view["recipients"][0]["status"] == "delivered")

        await eventually(delivered, within=30, what="delivered, as the ward hears it")
        task = (await get(region, f"/v1/referrals/{rid}", WARD_H)).json()["recipients"][0]
        r = await post(
            region,
            f"/v1/referrals/{task['task_id']}/withdraw",
            {"reason": "Personen flyttar."},
            {**WARD_H, "If-Match": f'"{task["version"]}"'},
        )
        assert r.status_code == 200, r.text
        problem(await post(region, path, ok, WARD_H), 409, "discharge-planning-closed")
        assert await count(region, Discharge) == 0
        assert await outbox(region, REFERRAL_DISCHARGE_RECORDED_V1) == []
        assert await outbox(region, REFERRAL_DISCHARGED_V1) == []


async def _filed_soc(member: Member, task_id: str) -> bool:
    return await filed(member, task_id, SOC_H) is not None
