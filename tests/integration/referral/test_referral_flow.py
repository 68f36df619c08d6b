"""A referral between two members over the real broker: the sender's consent service
decides, the receiver checks again with its copy of the consent, files the referral in the
receiving unit's own inbox, and every step comes back to the sender (closed loop)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from services.referral.models import Incoming, KnownUnit, Recipient, Referral
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.integration.consent.helpers import new_person

from .conftest import (
    CONSENT_RW,
    REGION_BEROENDE,
    RW,
    VAXJO_BOENDE,
    VAXJO_OLD,
    VAXJO_SOC,
    Member,
    Pair,
    auth,
)

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
RECEIVER = auth(ORG_VAXJO, VAXJO_SOC, RW)


async def record_consent(
    member: Member, person: str, purposes: list[str], categories: list[str] | None = None
) -> str:
    today = dt.date.today()
    body = {
        "person": {"personnummer": person},
        "form": "written",
        "signed_form_reference": "Journal dok 2026-4711",
        "purposes": purposes,
        "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
        "categories": categories or ["contact_details", "needs_summary", "plan"],
        "valid_from": today.isoformat(),
        "valid_to": (today + dt.timedelta(days=90)).isoformat(),
        "person_informed": True,
    }
    async with member.consent() as c:
        r = await c.post(
            "/v1/consents", json=body, headers=auth(member.orgnr, REGION_BEROENDE, CONSENT_RW)
        )
    assert r.status_code == 201, r.text
    consent_id: str = r.json()["id"]
    return consent_id


async def copy_arrived(member: Member, consent_id: str) -> bool:
    async with member.consent() as c:
        r = await c.get(
            f"/v1/consent-copies/{consent_id}",
            headers=auth(member.orgnr, VAXJO_SOC, ["consent:read"]),
        )
    return r.status_code == 200


def kontaktbegaran(person: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "kontaktbegaran",
        "person": {"personnummer": person},
        "needs": ["boendestod"],
        "summary": "Skrivs ut inom två veckor och saknar bostad.",
        "urgency": "urgent",
        "children_in_household": "no",
        "persons_wish": "Jag vill bo kvar i Växjö.",
        "recipients": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
        "kontaktbegaran": {"kommunkod": "0780"},
    }
    body.update(over)
    return body


async def counts(member: Member) -> tuple[int, int]:
    async with member.referral_db.sessionmaker() as s:
        referrals = await s.scalar(select(func.count()).select_from(Referral))
        recipients = await s.scalar(select(func.count()).select_from(Recipient))
    return int(referrals or 0), int(recipients or 0)


async def recipient_status(member: Member, referral_id: str) -> dict[str, Any]:
    async with member.referral() as c:
        r = await c.get(f"/v1/referrals/{referral_id}", headers=SENDER)
    assert r.status_code == 200, r.text
    recipient: dict[str, Any] = r.json()["recipients"][0]
    return recipient


async def step(
    member: Member, task_id: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    async with member.referral() as c:
        current = await c.get(f"/v1/incoming/{task_id}", headers=headers)
        assert current.status_code == 200, current.text
        return await c.post(
            f"/v1/incoming/{task_id}/transitions",
            json=body,
            headers={**headers, "If-Match": current.headers["ETag"]},
        )


async def test_a_kontaktbegaran_goes_round_the_closed_loop(
    members: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own loggers at every level; libraries at INFO (configure_logging keeps aiosqlite,
    # which logs statement parameters at DEBUG, at WARNING in every process).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="vardkedja")
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")

    async with region.referral() as c:
        sent = await c.post(
            "/v1/referrals",
            json=kontaktbegaran(person),
            headers={**SENDER, "Idempotency-Key": "kontaktbegaran-1"},
        )
    assert sent.status_code == 201, sent.text
    referral = sent.json()
    task = referral["recipients"][0]
    assert task["basis"] == {"kind": "consent", "consent_id": consent_id, "legal_basis": None}
    assert task["status"] == "sent"

    async def delivered() -> bool:
        return (await recipient_status(region, referral["id"]))["status"] == "delivered"

    await eventually(delivered, within=30, what="delivered reported back to the sender")

    # Filed in the receiving unit's own inbox, not in any other unit's.
    async with vaxjo.referral() as c:
        inbox = (await c.get("/v1/incoming", headers=RECEIVER)).json()["items"]
        other = (await c.get("/v1/incoming", headers=auth(ORG_VAXJO, VAXJO_BOENDE, RW))).json()[
            "items"
        ]
    assert [i["task_id"] for i in inbox] == [task["task_id"]]
    assert inbox[0]["person"]["personnummer"] == person
    assert inbox[0]["allowed_transitions"] == ["acknowledged", "returned"]
    assert other == []

    ack = await step(vaxjo, task["task_id"], RECEIVER, to="acknowledged", case_reference="SOC-1")
    assert ack.status_code == 200, ack.text
    for body in (
        {"to": "accepted"},
        {"to": "in_progress"},
        {
            "to": "completed",
            "outcome": "Boendestöd beviljat.",
            "result": {"decision": "granted", "intervention": "boendestod"},
        },
    ):
        r = await step(vaxjo, task["task_id"], RECEIVER, **body)
        assert r.status_code == 200, r.text

    async def completed() -> bool:
        status = await recipient_status(region, referral["id"])
        return status["status"] == "completed"

    await eventually(completed, within=30, what="completed reported back")
    final = await recipient_status(region, referral["id"])
    assert (final["case_reference"], final["outcome"]) == ("SOC-1", "Boendestöd beviljat.")
    async with region.referral() as c:
        history = (await c.get(f"/v1/tasks/{task['task_id']}/history", headers=SENDER)).json()
    assert [h["to_status"] for h in history] == [
        "sent",
        "delivered",
        "acknowledged",
        "accepted",
        "in_progress",
        "completed",
    ]

    # The retried POST with the same key answers the same referral; nothing new is sent.
    async with region.referral() as c:
        again = await c.post(
            "/v1/referrals",
            json=kontaktbegaran(person),
            headers={**SENDER, "Idempotency-Key": "kontaktbegaran-1"},
        )
    assert again.json()["id"] == referral["id"]
    assert await counts(region) == (1, 1)

    # Staff with the scope find every referral about the person, named in a body only.
    async with region.referral() as c:
        denied = await c.post("/v1/person-search", json={"personnummer": person}, headers=SENDER)
        found = await c.post(
            "/v1/person-search",
            json={"personnummer": person},
            headers=auth(ORG_REGION, REGION_BEROENDE, ["referral:person"]),
        )
    problem(denied, 403)
    assert [x["id"] for x in found.json()] == [referral["id"]]
    # The personnummer never reached a log line (of any service or worker here).
    assert caplog.records
    assert person not in caplog.text
    assert person[2:] not in caplog.text


async def test_a_burst_of_referrals_is_filed_or_refused_one_by_one(members: Pair) -> None:
    # Sent together, they reach the receiver's worker in one run (its receive-time
    # decisions asked at once); each still gets its own outcome. The receiver's replica
    # says boendestöd is inactive (the sender's does not yet): that one is undeliverable.
    region, vaxjo = members.region, members.vaxjo
    async with vaxjo.referral_db.transaction() as s:
        await s.execute(
            update(KnownUnit).where(KnownUnit.unit_id == VAXJO_BOENDE).values(status="inactive")
        )
    people = [new_person() for _ in range(5)]
    consents = [await record_consent(region, p, ["kontaktbegaran"]) for p in people]
    for consent_id in consents:
        await eventually(lambda c=consent_id: copy_arrived(vaxjo, c), within=30, what="copy")
    units = [VAXJO_SOC, VAXJO_SOC, VAXJO_BOENDE, VAXJO_SOC, VAXJO_SOC]
    async with region.referral() as c:
        answers = await asyncio.gather(
            *(
                c.post(
                    "/v1/referrals",
                    json=kontaktbegaran(p, recipients=[{"orgnr": ORG_VAXJO, "unit_id": u}]),
                    headers=SENDER,
                )
                for p, u in zip(people, units, strict=True)
            )
        )
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    ids = [a.json()["id"] for a in answers]

    async def settled() -> bool:
        statuses = [(await recipient_status(region, i))["status"] for i in ids]
        return "sent" not in statuses

    await eventually(settled, within=30, what="every referral answered by the receiver")
    statuses = [await recipient_status(region, i) for i in ids]
    assert [s["status"] for s in statuses] == [
        "delivered",
        "delivered",
        "undeliverable",
        "delivered",
        "delivered",
    ]
    assert statuses[2]["reason"] == "inactive_unit"
    async with vaxjo.referral() as c:
        inbox = (await c.get("/v1/incoming", headers=RECEIVER)).json()["items"]
    assert sorted(i["person"]["personnummer"] for i in inbox) == sorted(
        p for p, u in zip(people, units, strict=True) if u == VAXJO_SOC
    )


async def test_without_a_basis_nothing_is_stored_or_sent(members: Pair) -> None:
    region = members.region
    person = new_person()
    async with region.referral() as c:
        r = await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)
    body = problem(r, 403, "no-basis")
    assert VAXJO_SOC in body["detail"]
    assert person not in body["detail"]
    assert await counts(region) == (0, 0)


async def test_bad_recipients_are_refused_by_field_and_rule(members: Pair) -> None:
    region = members.region
    person = new_person()
    recipients = [
        {"orgnr": ORG_VAXJO, "unit_id": "finns-inte"},
        {"orgnr": ORG_VAXJO, "unit_id": VAXJO_OLD},
        {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},  # does not receive kontaktbegäran
    ]
    async with region.referral() as c:
        r = await c.post(
            "/v1/referrals", json=kontaktbegaran(person, recipients=recipients), headers=SENDER
        )
    assert field_rules(problem(r, 422)) == {
        "recipients.0.unit_id": "unknown_unit",
        "recipients.1.unit_id": "inactive_unit",
        "recipients.2.unit_id": "kind_not_received",
    }
    assert await counts(region) == (0, 0)


async def test_steps_need_the_holder_the_right_order_and_the_current_version(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    async with region.referral() as c:
        sent = (await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)).json()
    task_id = sent["recipients"][0]["task_id"]

    async def filed() -> bool:
        async with vaxjo.referral() as c:
            return (await c.get(f"/v1/incoming/{task_id}", headers=RECEIVER)).status_code == 200

    await eventually(filed, within=30, what="filed at Växjö")
    async with vaxjo.referral() as c:
        # Another unit of the same member does not see it.
        other = await c.get(f"/v1/incoming/{task_id}", headers=auth(ORG_VAXJO, VAXJO_BOENDE, RW))
        problem(other, 404, "referral-not-found")
        # No If-Match: 428; a stale one: 412.
        r = await c.post(
            f"/v1/incoming/{task_id}/transitions", json={"to": "acknowledged"}, headers=RECEIVER
        )
        problem(r, 428)
        r = await c.post(
            f"/v1/incoming/{task_id}/transitions",
            json={"to": "acknowledged"},
            headers={**RECEIVER, "If-Match": '"7"'},
        )
        problem(r, 412, "referral-version-mismatch")
    # Completing before acknowledging: 409 naming the allowed steps.
    r = await step(vaxjo, task_id, RECEIVER, to="completed", outcome="Klart.")
    body = problem(r, 409, "transition-not-allowed")
    assert "acknowledged, returned" in body["detail"]
    # Declining needs a reason (beside its structured result).
    await step(vaxjo, task_id, RECEIVER, to="acknowledged")
    r = await step(vaxjo, task_id, RECEIVER, to="declined", result={"decision": "refused"})
    assert field_rules(problem(r, 422)) == {"reason": "reason_required"}


async def test_the_sender_withdraws_and_the_receiver_confirms(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    async with region.referral() as c:
        sent = (await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)).json()
    task_id = sent["recipients"][0]["task_id"]

    async def status_is(status: str) -> bool:
        return (await recipient_status(region, sent["id"]))["status"] == status

    await eventually(lambda: status_is("delivered"), within=30, what="delivered")
    version = (await recipient_status(region, sent["id"]))["version"]
    async with region.referral() as c:
        r = await c.post(
            f"/v1/referrals/{task_id}/withdraw",
            json={"reason": "Personen vill inte längre.", "by_person": True},
            headers={**SENDER, "If-Match": f'"{version}"'},
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"

    async def withdrawn_at_vaxjo() -> bool:
        async with vaxjo.referral_db.sessionmaker() as s:
            row = await s.get(Incoming, task_id)
        return row is not None and row.status == "withdrawn"

    await eventually(withdrawn_at_vaxjo, within=30, what="withdrawn at the receiver")

    async def confirmed() -> bool:
        async with region.referral() as c:
            steps = (await c.get(f"/v1/tasks/{task_id}/history", headers=SENDER)).json()
        return steps[-1]["reason"] == "confirmed by the receiver"

    await eventually(confirmed, within=30, what="the receiver's confirmation at the sender")
    async with vaxjo.referral() as c:
        r = await step(vaxjo, task_id, RECEIVER, to="acknowledged")
    assert r.status_code == 409


async def test_a_consent_withdrawn_mid_flight_cancels_on_both_sides(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    async with region.referral() as c:
        sent = (await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)).json()
    task_id = sent["recipients"][0]["task_id"]

    async def status_is(status: str) -> bool:
        return (await recipient_status(region, sent["id"]))["status"] == status

    await eventually(lambda: status_is("delivered"), within=30, what="delivered")
    assert (await step(vaxjo, task_id, RECEIVER, to="acknowledged")).status_code == 200

    async with region.consent() as c:
        r = await c.post(
            f"/v1/consents/{consent_id}/withdraw",
            json={
                "reason": "Personen tar tillbaka sitt samtycke.",
                "withdrawn_by": {"kind": "person"},
            },
            headers=auth(ORG_REGION, REGION_BEROENDE, CONSENT_RW),
        )
    assert r.status_code == 200, r.text

    async def cancelled_at_vaxjo() -> bool:
        async with vaxjo.referral_db.sessionmaker() as s:
            row = await s.get(Incoming, task_id)
        return row is not None and row.status == "cancelled"

    await eventually(cancelled_at_vaxjo, within=30, what="cancelled at the receiver")
    await eventually(lambda: status_is("cancelled"), within=30, what="cancelled at the sender")
    assert (await recipient_status(region, sent["id"]))["reason"] == "the consent was withdrawn"
    # No further step is possible, and a new referral on the same person is refused.
    r = await step(vaxjo, task_id, RECEIVER, to="accepted")
    assert r.status_code == 409
    async with region.referral() as c:
        again = await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)
    problem(again, 403, "no-basis")


async def test_forwarded_to_another_unit_and_returned_as_wrongly_sent(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    async with region.referral() as c:
        first = (await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)).json()
        second = (await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)).json()
    task_1, task_2 = first["recipients"][0]["task_id"], second["recipients"][0]["task_id"]

    async def filed(task: str) -> bool:
        async with vaxjo.referral() as c:
            return (await c.get(f"/v1/incoming/{task}", headers=RECEIVER)).status_code == 200

    await eventually(lambda: filed(task_1), within=30, what="first filed")
    await eventually(lambda: filed(task_2), within=30, what="second filed")

    # The intake forwards the first to the boendestöd unit (a new task, basis checked again).
    await step(vaxjo, task_1, RECEIVER, to="acknowledged")
    r = await step(
        vaxjo,
        task_1,
        RECEIVER,
        to="forwarded",
        forward_to={"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
    )
    assert r.status_code == 200, r.text
    boende = auth(ORG_VAXJO, VAXJO_BOENDE, RW)

    async def at_boende() -> bool:
        async with vaxjo.referral() as c:
            items = (await c.get("/v1/incoming", headers=boende)).json()["items"]
        return len(items) == 1 and items[0]["person"]["personnummer"] == person

    await eventually(at_boende, within=30, what="the forwarded referral at boendestöd")
    # The second was wrongly sent: returned with a reason.
    r = await step(vaxjo, task_2, RECEIVER, to="returned", reason="Fel kommun.")
    assert r.status_code == 200, r.text

    async def sender_sees() -> bool:
        a = await recipient_status(region, first["id"])
        b = await recipient_status(region, second["id"])
        return a["status"] == "forwarded" and b["status"] == "returned"

    await eventually(sender_sees, within=30, what="forwarded and returned at the sender")
    forwarded = await recipient_status(region, first["id"])
    assert forwarded["forwarded_to"]["unit_id"] == VAXJO_BOENDE
    assert (await recipient_status(region, second["id"]))["reason"] == "Fel kommun."


async def test_bad_input_is_refused_and_nothing_is_stored(members: Pair) -> None:
    region = members.region
    person = new_person()
    async with region.referral() as c:
        cases = {
            "person.personnummer": kontaktbegaran("19121212-1213"),  # wrong check digit
            "kontaktbegaran": kontaktbegaran(person, kontaktbegaran=None),
            "needs": kontaktbegaran(person, needs=[]),
            "needs.0": kontaktbegaran(person, needs=["trolldom"]),
        }
        for field, body in cases.items():
            r = await c.post("/v1/referrals", json=body, headers=SENDER)
            rules = field_rules(problem(r, 422))
            assert field in rules, (field, rules)
            assert "19121212-1213" not in r.text
        both = kontaktbegaran(person, resolve={"kommunkod": "0780"})
        r = await c.post("/v1/referrals", json=both, headers=SENDER)
        assert field_rules(problem(r, 422)) == {"resolve": "recipients_or_resolve"}
        # A token without a unit cannot send: a referral comes from a unit.
        r = await c.post(
            "/v1/referrals", json=kontaktbegaran(person), headers=auth(ORG_REGION, None, RW)
        )
        problem(r, 403, "no-unit")
    assert await counts(region) == (0, 0)


async def test_a_reused_idempotency_key_with_another_body_is_refused(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    headers = {**SENDER, "Idempotency-Key": "kontaktbegaran-reuse"}
    async with region.referral() as c:
        assert (
            await c.post("/v1/referrals", json=kontaktbegaran(person), headers=headers)
        ).status_code == 201
        other = await c.post(
            "/v1/referrals", json=kontaktbegaran(person, summary="Annat."), headers=headers
        )
    assert other.status_code == 422, other.text
    assert await counts(region) == (1, 1)


async def test_a_discharge_planning_confirmed_and_an_hvb_notification(members: Pair) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(
        region,
        person,
        ["utskrivningsplanering", "hvb_underrattelse"],
        ["contact_details", "needs_summary", "plan", "social_situation"],
    )
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    async with region.referral() as c:
        r = await c.post(
            "/v1/referrals",
            json={
                "kind": "utskrivningsplanering",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "summary": "Utskrivning planerad efter abstinensbehandling.",
                "recipients": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
                "discharge": {"expected_discharge_date": "2026-12-18", "sip_exists": "no"},
            },
            headers=SENDER,
        )
    assert r.status_code == 201, r.text
    discharge = r.json()
    assert discharge["discharge"] == {
        "expected_discharge_date": "2026-12-18",
        "sip_exists": "no",
        "confirmed_by": [],
        "all_confirmed": False,
        "ready_for_discharge": False,
        "missing": [{"what": "sip", "orgnr": None, "unit_id": None, "action_ids": []}],
        "discharged": None,
    }
    task_id = discharge["recipients"][0]["task_id"]

    async def filed() -> bool:
        async with vaxjo.referral() as c:
            return (await c.get(f"/v1/incoming/{task_id}", headers=RECEIVER)).status_code == 200

    await eventually(filed, within=30, what="the discharge planning at Växjö")
    await step(vaxjo, task_id, RECEIVER, to="acknowledged")

    async def confirmed() -> bool:
        async with region.referral() as c:
            got = (await c.get(f"/v1/referrals/{discharge['id']}", headers=SENDER)).json()
        return bool(got["discharge"]["all_confirmed"])

    await eventually(confirmed, within=30, what="the home kommun's confirmation")

    # Växjö places the person in an HVB and tells the region (the unit receiving them).
    async with vaxjo.referral() as c:
        hvb = await c.post(
            "/v1/referrals",
            json={
                "kind": "hvb_underrattelse",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "recipients": [{"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE}],
                "hvb": {
                    "placement_form": "sol_bistand",
                    "placement_date": "2026-12-19",
                    "open_ended": True,
                    "hvb_name": "Behandlingshemmet Gläntan",
                },
            },
            headers=RECEIVER,
        )
    assert hvb.status_code == 201, hvb.text

    async def at_region() -> bool:
        async with region.referral() as c:
            items = (await c.get("/v1/incoming", headers=SENDER)).json()["items"]
        return any(i["kind"] == "hvb_underrattelse" for i in items)

    await eventually(at_region, within=30, what="the HVB notification at the region")
