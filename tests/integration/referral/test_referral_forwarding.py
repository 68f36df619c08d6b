"""Forwarding a meeting invitation, and the units a vårdkedjeremiss suggests (issue 21),
across two members over the real broker.

A SIP or remissmöte invitation forwarded to another unit answered 500: the forward
re-validated the stored details, which hold ``invitation`` and ``meeting_id``, against the
kind's block. Now the convener's meeting invites the unit named in the forwarder's place,
with its invitation exactly as stored: one more participant with its own task and answer,
who gets the plan when it accepts, while the forwarding unit's participation shows
``forwarded`` and where it went. The new unit passes the consent check of any participant:
a refusal the forwarding unit's member can see stores nothing and answers problem+json; one
only the convener's member can see is kept on the forwarding unit's participation.

The referral port reading a vårdkedjeremiss sees the units its sender suggests, named from
its copy of the directory, and convening the remissmöte without ``participants`` invites
them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from services.referral import units
from services.referral.models import Incoming
from shared.messaging.events.payloads import REFERRAL_STATUS_CHANGED_V1, UnitChangedV1
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
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
    VAXJO_OLD,
    VAXJO_SOC,
    Member,
    Pair,
    auth,
)
from .test_referral_flow import counts, step
from .test_referral_meetings import consent_for, copy_arrived_at, inbox

PORT = auth(ORG_REGION, REGION_PORT, RW)
BEROENDE = auth(ORG_REGION, REGION_BEROENDE, RW)
SOC = auth(ORG_VAXJO, VAXJO_SOC, RW)
BOENDE = auth(ORG_VAXJO, VAXJO_BOENDE, RW)
ALVESTA_SOC = "al-soc-vuxna"  # a unit of a member the person's consent does not name


async def with_alvesta(*members: Member) -> None:
    """Alvesta's intake in each member's copy of the directory (an active unit that may be
    invited, of a member the consents here do not name)."""
    for member in members:
        async with member.referral_db.transaction() as session:
            await units.apply_unit_changed(
                session=session,
                payload=UnitChangedV1(
                    unit_id=ALVESTA_SOC,
                    owner_orgnr=ORG_ALVESTA,
                    name="Socialtjänstens mottagning vuxna Alvesta",
                    kind="socialtjanstens_mottagning",
                    status="active",
                    referral_kinds=["kontaktbegaran", "sip_kallelse"],
                    interventions=["boendestod"],
                    kommunkoder=["0764"],
                    version=1,
                    changed_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                ),
            )


async def invitation(member: Member, headers: dict[str, str], kind: str) -> dict[str, Any]:
    """The unit's meeting invitation of ``kind``, once it has arrived."""
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        found[:] = [
            i
            for i in await inbox(member, headers)
            if i["kind"] == kind and i["details"].get("invitation")
        ]
        return bool(found)

    await eventually(arrived, within=30, what=f"a {kind} invitation")
    [one] = found
    return one


async def convene(member: Member, headers: dict[str, str], body: dict[str, Any]) -> str:
    async with member.referral() as c:
        r = await c.post("/v1/meetings", json=body, headers=headers)
    assert r.status_code == 201, r.text
    meeting_id: str = r.json()["id"]
    return meeting_id


def sip(person: str, *parts: tuple[str, str]) -> dict[str, Any]:
    return {
        "kind": "sip",
        "children_in_household": "no",
        "person": {"personnummer": person},
        "at": "2026-12-10T10:00:00+01:00",
        "place": "Avdelning 12, Centrallasarettet Växjö",
        "participants": [{"orgnr": o, "unit_id": u} for o, u in parts],
    }


async def participants(member: Member, headers: dict[str, str], meeting_id: str) -> list[Any]:
    async with member.referral() as c:
        r = await c.get(f"/v1/meetings/{meeting_id}", headers=headers)
    assert r.status_code == 200, r.text
    parts: list[dict[str, Any]] = r.json()["participants"]
    return parts


async def forward(
    member: Member, task_id: str, headers: dict[str, str], orgnr: str, unit_id: str
) -> Any:
    return await step(
        member, task_id, headers, to="forwarded", forward_to={"orgnr": orgnr, "unit_id": unit_id}
    )


async def incoming_row(member: Member, task_id: str) -> Incoming:
    async with member.referral_db.sessionmaker() as s:
        row = await s.get(Incoming, task_id)
    assert row is not None
    return row


async def status_changes(member: Member, task_id: str) -> list[tuple[str, str]]:
    """(unit, new status) of every status change of ``task_id`` told to the member's notify."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (
            await s.execute(select(ob).where(ob.c.event_type == REFERRAL_STATUS_CHANGED_V1))
        ).all()
    payloads = [outbox_data(r) for r in rows]
    return [(p["unit_id"], p["new_status"]) for p in payloads if p["referral_id"] == task_id]


async def consented(vaxjo: Member, region: Member, person: str, purpose: str) -> None:
    consent_id = await consent_for(vaxjo, person, [purpose])
    await eventually(lambda: copy_arrived_at(region, consent_id), within=30, what="copy")


async def vardkedjeremiss(vaxjo: Member, person: str, suggested: list[Any]) -> None:
    """Växjö's intake sends a vårdkedjeremiss to the region's referral port, suggesting
    ``suggested`` for the remissmöte."""
    async with vaxjo.referral() as c:
        sent = await c.post(
            "/v1/referrals",
            json={
                "kind": "vardkedjeremiss",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "needs": ["boendestod"],
                "summary": "Samlade behov: beroende och bostad.",
                "drug_free": "yes",
                "recipients": [{"orgnr": ORG_REGION, "unit_id": REGION_PORT}],
                "vardkedjeremiss": {"participants": suggested},
            },
            headers=SOC,
        )
    assert sent.status_code == 201, sent.text


class TestForwardingAnInvitation:
    async def test_forwarded_at_another_member_the_meeting_invites_the_unit(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        await consented(vaxjo, region, person, "sip")
        meeting_id = await convene(region, BEROENDE, sip(person, (ORG_VAXJO, VAXJO_SOC)))
        soc_inv = await invitation(vaxjo, SOC, "sip_kallelse")
        soc_task = soc_inv["task_id"]
        await step(vaxjo, soc_task, SOC, to="acknowledged")

        # The intake forwards the invitation to its boendestöd unit: it answered 500.
        r = await forward(vaxjo, soc_task, SOC, ORG_VAXJO, VAXJO_BOENDE)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "forwarded"

        # The convener's meeting invites boendestöd in the intake's place.
        async def followed() -> bool:
            return len(await participants(region, BEROENDE, meeting_id)) == 2

        await eventually(followed, within=30, what="the forwarded-to unit in the meeting")
        intake, joined = await participants(region, BEROENDE, meeting_id)
        assert (intake["task_id"], intake["status"]) == (soc_task, "forwarded")
        assert intake["forwarded_to"] == {
            "orgnr": ORG_VAXJO,
            "unit_id": VAXJO_BOENDE,
            "task_id": joined["task_id"],
        }
        assert (joined["orgnr"], joined["unit_id"]) == (ORG_VAXJO, VAXJO_BOENDE)
        assert joined["forwarded_from"] == soc_task
        assert joined["status"] in ("sent", "delivered")

        # Boendestöd gets the convener's invitation as it was stored (the same meeting,
        # time and place the intake had), from the convener.
        boende_inv = await invitation(vaxjo, BOENDE, "sip_kallelse")
        assert boende_inv["task_id"] == joined["task_id"]
        assert boende_inv["details"] == soc_inv["details"]
        assert boende_inv["details"]["meeting_id"] == meeting_id
        assert (boende_inv["sender_orgnr"], boende_inv["sender_unit_id"]) == (
            ORG_REGION,
            REGION_BEROENDE,
        )

        # The convener's unit was told of the forward (as of any forward).
        assert (REGION_BEROENDE, "forwarded") in await status_changes(region, soc_task)

        # The plan is recorded before boendestöd answers (it owns no action in it, so it is
        # not yet a party); it gets it when it accepts.
        plan_body = {
            "goals": ["Trygg utskrivning"],
            "actions": [
                {
                    "intervention": "lakemedelsassisterad_behandling",
                    "owner": {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
                }
            ],
            "coordinators": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
            "follow_up_date": "2027-01-15",
        }
        async with region.referral() as c:
            r = await c.put(f"/v1/meetings/{meeting_id}/plan", json=plan_body, headers=BEROENDE)
        assert r.status_code == 200, r.text
        assert {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE} not in r.json()["viewers"]
        await step(vaxjo, joined["task_id"], BOENDE, to="acknowledged")
        assert (await step(vaxjo, joined["task_id"], BOENDE, to="accepted")).status_code == 200

        async def accepted() -> bool:
            parts = await participants(region, BEROENDE, meeting_id)
            return [p["status"] for p in parts] == ["forwarded", "accepted"]

        await eventually(accepted, within=30, what="the acceptance at the convener")

        async def plan_at_boende() -> bool:
            async with vaxjo.referral() as c:
                got = await c.get(f"/v1/plans/{meeting_id}", headers=BOENDE)
            return got.status_code == 200

        await eventually(plan_at_boende, within=30, what="the plan at the forwarded-to unit")

    async def test_forwarded_at_the_conveners_member_the_meeting_follows_at_once(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        await consented(vaxjo, region, person, "vardkedjeremiss")
        await vardkedjeremiss(vaxjo, person, [])
        vkr = (await invitation_or_referral(region, PORT))["task_id"]
        await step(region, vkr, PORT, to="acknowledged")
        meeting_id = await convene(
            region,
            PORT,
            {
                "kind": "remissmote",
                "origin_task_id": vkr,
                "at": "2026-12-03T13:00:00+01:00",
                "video_link": "https://mote.example/remissmote-1",
                "participants": [
                    {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
                    {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
                ],
            },
        )
        ber_inv = await invitation(region, BEROENDE, "vardkedjeremiss")
        await step(region, ber_inv["task_id"], BEROENDE, to="acknowledged")
        # Not to itself.
        r = await forward(region, ber_inv["task_id"], BEROENDE, ORG_REGION, REGION_BEROENDE)
        assert field_rules(problem(r, 422)) == {"forward_to.unit_id": "not_another_unit"}
        # Nor back to the convener (that is declining it).
        r = await forward(region, ber_inv["task_id"], BEROENDE, ORG_REGION, REGION_PORT)
        assert field_rules(problem(r, 422)) == {"forward_to.unit_id": "the_convener"}

        # Beroende forwards its remissmöte invitation to Växjö's intake: it answered 500.
        r = await forward(region, ber_inv["task_id"], BEROENDE, ORG_VAXJO, VAXJO_SOC)
        assert r.status_code == 200, r.text

        # The convener is of this member: the meeting followed in the same step.
        beroende, boende, intake = await participants(region, PORT, meeting_id)
        assert beroende["forwarded_to"] == {
            "orgnr": ORG_VAXJO,
            "unit_id": VAXJO_SOC,
            "task_id": intake["task_id"],
        }
        assert intake["forwarded_from"] == ber_inv["task_id"]
        assert (boende["forwarded_to"], boende["forwarded_from"]) == (None, None)
        soc_inv = await invitation(vaxjo, SOC, "vardkedjeremiss")
        assert soc_inv["task_id"] == intake["task_id"]
        assert soc_inv["details"] == ber_inv["details"]
        await step(vaxjo, soc_inv["task_id"], SOC, to="acknowledged")
        await step(vaxjo, soc_inv["task_id"], SOC, to="accepted")

        async def answered() -> bool:
            parts = await participants(region, PORT, meeting_id)
            return [p["status"] for p in parts] == ["forwarded", "delivered", "accepted"]

        await eventually(answered, within=30, what="every answer at the port")
        # The report of the forward, arriving afterwards, changed nothing more.
        assert len(await participants(region, PORT, meeting_id)) == 3


async def invitation_or_referral(member: Member, headers: dict[str, str]) -> dict[str, Any]:
    """The first item in the unit's inbox, once there is one."""
    items: list[dict[str, Any]] = []

    async def arrived() -> bool:
        items[:] = await inbox(member, headers)
        return bool(items)

    await eventually(arrived, within=30, what="an item in the inbox")
    return items[0]


class TestARefusedForward:
    async def test_refused_where_the_forwarding_unit_is_nothing_is_stored(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        await with_alvesta(region, vaxjo)
        person = new_person()
        await consented(vaxjo, region, person, "sip")

        # Invited by another member: the forwarding unit's member checks its own basis.
        meeting_id = await convene(region, BEROENDE, sip(person, (ORG_VAXJO, VAXJO_SOC)))
        soc_task = (await invitation(vaxjo, SOC, "sip_kallelse"))["task_id"]
        await step(vaxjo, soc_task, SOC, to="acknowledged")
        before = await counts(vaxjo)
        version = (await incoming_row(vaxjo, soc_task)).version
        r = await forward(vaxjo, soc_task, SOC, ORG_ALVESTA, ALVESTA_SOC)
        problem(r, 403, "no-basis")
        r = await forward(vaxjo, soc_task, SOC, ORG_VAXJO, VAXJO_OLD)
        assert field_rules(problem(r, 422)) == {"forward_to.unit_id": "inactive_unit"}
        row = await incoming_row(vaxjo, soc_task)
        assert (row.status, row.version) == ("acknowledged", version)
        assert await counts(vaxjo) == before

        # Invited by its own member: the convener's consent check refuses at once.
        boende_meeting = await convene(vaxjo, SOC, sip(person, (ORG_VAXJO, VAXJO_BOENDE)))
        boende_task = (await invitation(vaxjo, BOENDE, "sip_kallelse"))["task_id"]
        await step(vaxjo, boende_task, BOENDE, to="acknowledged")
        before = await counts(vaxjo)
        r = await forward(vaxjo, boende_task, BOENDE, ORG_ALVESTA, ALVESTA_SOC)
        problem(r, 403, "no-basis")
        assert await counts(vaxjo) == before
        assert (await incoming_row(vaxjo, boende_task)).status == "acknowledged"
        parts = await participants(vaxjo, SOC, boende_meeting)
        assert [(p["unit_id"], p["forwarded_to"]) for p in parts] == [(VAXJO_BOENDE, None)]

        # Neither forward happened: each unit may still answer its invitation.
        assert (await step(vaxjo, soc_task, SOC, to="accepted")).status_code == 200
        assert (await step(vaxjo, boende_task, BOENDE, to="accepted")).status_code == 200

        async def accepted_at_region() -> bool:
            parts = await participants(region, BEROENDE, meeting_id)
            return [(p["status"], p["forwarded_to"]) for p in parts] == [("accepted", None)]

        await eventually(accepted_at_region, within=30, what="the acceptance at the convener")

    async def test_refused_at_the_conveners_member_it_is_kept_on_the_participation(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        # The person consents to the region and Växjö's intake only, not its boendestöd.
        today = dt.date.today()
        async with vaxjo.consent() as c:
            r = await c.post(
                "/v1/consents",
                json={
                    "person": {"personnummer": person},
                    "form": "written",
                    "signed_form_reference": "Treserva dok 2026-78",
                    "purposes": ["sip"],
                    "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
                    "categories": ["contact_details", "needs_summary", "plan"],
                    "valid_from": today.isoformat(),
                    "valid_to": (today + dt.timedelta(days=120)).isoformat(),
                    "person_informed": True,
                },
                headers=auth(ORG_VAXJO, VAXJO_SOC, CONSENT_RW),
            )
        assert r.status_code == 201, r.text
        consent_id = r.json()["id"]
        await eventually(lambda: copy_arrived_at(region, consent_id), within=30, what="copy")
        meeting_id = await convene(region, BEROENDE, sip(person, (ORG_VAXJO, VAXJO_SOC)))
        soc_task = (await invitation(vaxjo, SOC, "sip_kallelse"))["task_id"]
        await step(vaxjo, soc_task, SOC, to="acknowledged")
        # Within Växjö the intake may pass it on; the region may not invite boendestöd.
        r = await forward(vaxjo, soc_task, SOC, ORG_VAXJO, VAXJO_BOENDE)
        assert r.status_code == 200, r.text

        async def kept() -> bool:
            parts = await participants(region, BEROENDE, meeting_id)
            return parts[0]["forwarded_to"] is not None

        await eventually(kept, within=30, what="the forward's end at the convener")
        parts = await participants(region, BEROENDE, meeting_id)
        assert [(p["status"], p["forwarded_to"]) for p in parts] == [
            ("forwarded", {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE, "refused": "no_basis"})
        ]
        assert (REGION_BEROENDE, "forwarded") in await status_changes(region, soc_task)
        assert await inbox(vaxjo, BOENDE) == []


async def port_inbox(region: Member, n: int) -> list[dict[str, Any]]:
    """The port's inbox once it holds ``n`` referrals."""
    items: list[dict[str, Any]] = []

    async def arrived() -> bool:
        items[:] = await inbox(region, PORT)
        return len(items) == n

    await eventually(arrived, within=30, what=f"{n} referrals at the port")
    return items


def remissmote(origin: str, **more: Any) -> dict[str, Any]:
    return {
        "kind": "remissmote",
        "origin_task_id": origin,
        "at": "2026-12-03T13:00:00+01:00",
        "video_link": "https://mote.example/remissmote-2",
        **more,
    }


class TestSuggestedUnits:
    async def test_the_port_sees_the_suggested_units_and_the_remissmote_invites_them(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person = new_person()
        await consented(vaxjo, region, person, "vardkedjeremiss")
        boende = {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE}
        beroende = {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}
        closed = {"orgnr": ORG_VAXJO, "unit_id": VAXJO_OLD}
        await vardkedjeremiss(vaxjo, person, [boende, beroende, closed])

        # The port reads it: the suggested units, named from its copy of the directory.
        [listed] = await port_inbox(region, 1)
        first = listed["task_id"]
        async with region.referral() as c:
            item = (await c.get(f"/v1/incoming/{first}", headers=PORT)).json()
        want = [
            {**boende, "name": "Vx Boendestod", "invitable": True, "problem": None},
            {**beroende, "name": "Rk Beroende", "invitable": True, "problem": None},
            {**closed, "name": "Vx Gammal", "invitable": False, "problem": "inactive_unit"},
        ]
        assert item["suggested_participants"] == want
        assert listed["suggested_participants"] == want
        await step(region, first, PORT, to="acknowledged")
        async with region.referral() as c:
            # A suggested unit that cannot be invited is named; nothing is sent.
            before = await counts(region)
            r = await c.post("/v1/meetings", json=remissmote(first), headers=PORT)
            assert field_rules(problem(r, 422)) == {"invite_suggested": "inactive_unit"}
            assert VAXJO_OLD in r.json()["errors"][0]["message"]
            assert await counts(region) == before
            # Named participants alone, then.
            r = await c.post(
                "/v1/meetings",
                json=remissmote(first, participants=[{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}]),
                headers=PORT,
            )
            assert r.status_code == 201, r.text
            assert [p["unit_id"] for p in r.json()["participants"]] == [VAXJO_SOC]
            # A SIP names its participants.
            body = sip(person, (ORG_VAXJO, VAXJO_SOC))
            del body["participants"]
            problem(await c.post("/v1/meetings", json=body, headers=PORT), 422)

        # Without participants, the remissmöte invites the units the sender suggests.
        await vardkedjeremiss(vaxjo, person, [boende, beroende])
        [second] = [i["task_id"] for i in await port_inbox(region, 2) if i["task_id"] != first]
        await step(region, second, PORT, to="acknowledged")
        async with region.referral() as c:
            r = await c.post("/v1/meetings", json=remissmote(second), headers=PORT)
        assert r.status_code == 201, r.text
        assert [(p["orgnr"], p["unit_id"]) for p in r.json()["participants"]] == [
            (ORG_VAXJO, VAXJO_BOENDE),
            (ORG_REGION, REGION_BEROENDE),
        ]
        await invitation(vaxjo, BOENDE, "vardkedjeremiss")
        await invitation(region, BEROENDE, "vardkedjeremiss")

        # Named participants and the suggested ones together (each invited once).
        async with region.referral() as c:
            r = await c.post(
                "/v1/meetings",
                json=remissmote(
                    second,
                    participants=[{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}, beroende],
                    invite_suggested=True,
                ),
                headers=PORT,
            )
        assert r.status_code == 201, r.text
        assert [p["unit_id"] for p in r.json()["participants"]] == [
            VAXJO_SOC,
            REGION_BEROENDE,
            VAXJO_BOENDE,
        ]
