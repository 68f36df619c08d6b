"""Reports made under a duty to report are kinds of their own (issue 22): an LVM report
(6 § LVM) goes to the kommun's adult investigation function and an orosanmälan to its
children-and-family function, each on its legal basis — never on a consent — and an
orosanmälan is due within hours, day and night. Bad reports are refused with nothing
stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from shared.messaging.events.payloads import REFERRAL_RECEIVED_V1
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules
from tests.helpers.signed import outbox_data
from tests.integration.consent.helpers import new_person

from .conftest import (
    CONSENT_RW,
    REFERRAL,
    REGION_BEROENDE,
    RW,
    VAXJO_BAD_BARN,
    VAXJO_BARN,
    VAXJO_MYNDIGHET,
    Member,
    Pair,
    auth,
)
from .test_referral_flow import counts

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
MYNDIGHET = auth(ORG_VAXJO, VAXJO_MYNDIGHET, RW)
BARN = auth(ORG_VAXJO, VAXJO_BARN, RW)


def lvm(person: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "lvm_anmalan",
        "person": {"personnummer": person},
        "needs": ["utredning_sol"],
        "summary": "Upprepade intoxikationer; vägrar frivillig vård.",
        "urgency": "urgent",
        "children_in_household": "no",
        "recipients": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_MYNDIGHET}],
        "legal_basis": {
            "basis": "lvm_anmalan",
            "justification": "Anmälan enligt 6 § LVM efter akut intag.",
        },
        "lvm": {
            "kommunkod": "0780",
            "grounds": ["halsa_i_fara", "forstora_livet"],
            "reporter_role": "läkare",
        },
    }
    body.update(over)
    return body


def oros(child: str, unit: str = VAXJO_BARN, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "orosanmalan",
        "person": {"personnummer": child},
        "summary": "Förälder inlagd för intoxikation; barnet är hos en granne.",
        "urgency": "urgent",
        "children_in_household": "yes",
        "recipients": [{"orgnr": ORG_VAXJO, "unit_id": unit}],
        "legal_basis": {
            "basis": "orosanmalan",
            "justification": "Anmälningsskyldighet: oro för ett barn.",
        },
        "orosanmalan": {
            "kommunkod": "0780",
            "concerns": ["foralders_bruk"],
            "immediate_danger": False,
            "guardians_informed": "yes",
        },
    }
    body.update(over)
    return body


async def send(member: Member, body: dict[str, Any]) -> Any:
    async with member.referral() as c:
        return await c.post("/v1/referrals", json=body, headers=SENDER)


async def inbox(member: Member, headers: dict[str, str]) -> list[dict[str, Any]]:
    async with member.referral() as c:
        r = await c.get("/v1/incoming", headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def received_deadlines(member: Member) -> dict[str, str]:
    """The acknowledgement deadline each ``referral.received`` gave notify, by task id."""
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        rows = (await s.execute(select(ob).where(ob.c.event_type == REFERRAL_RECEIVED_V1))).all()
    return {e["referral_id"]: e["acknowledge_by"] for e in map(outbox_data, rows)}


async def test_an_lvm_report_travels_on_its_basis_to_the_adult_investigation(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()  # no consent recorded anywhere: none is needed
    r = await send(region, lvm(person))
    assert r.status_code == 201, r.text
    [task] = r.json()["recipients"]
    assert task["basis"] == {
        "kind": "legal_basis",
        "consent_id": None,
        "legal_basis": "lvm_anmalan",
    }

    async def arrived() -> bool:
        return [i["task_id"] for i in await inbox(vaxjo, MYNDIGHET)] == [task["task_id"]]

    await eventually(arrived, within=30, what="the LVM report in the investigation's inbox")
    [item] = await inbox(vaxjo, MYNDIGHET)
    assert (item["kind"], item["details"]["grounds"]) == (
        "lvm_anmalan",
        ["halsa_i_fara", "forstora_livet"],
    )
    assert item["acknowledge_due_at"] is None  # counted in working days


async def test_an_orosanmalan_goes_to_the_childrens_function_due_within_hours(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    child = new_person()
    r = await send(region, oros(child))
    assert r.status_code == 201, r.text
    [task] = r.json()["recipients"]
    sent_due = dt.datetime.fromisoformat(task["acknowledge_due_at"])
    assert (
        dt.timedelta(hours=3, minutes=59)
        < sent_due - dt.datetime.now(dt.UTC)
        <= dt.timedelta(hours=4)
    )

    async def arrived() -> bool:
        return len(await inbox(vaxjo, BARN)) == 1

    await eventually(arrived, within=30, what="the orosanmälan at barn och familj")
    [item] = await inbox(vaxjo, BARN)
    received = dt.datetime.fromisoformat(item["received_at"])
    due = dt.datetime.fromisoformat(item["acknowledge_due_at"])
    assert due - received == dt.timedelta(hours=4)  # urgent: four hours, whatever the day
    # Notify is given the hour, not the end of a working day.
    told = dt.datetime.fromisoformat((await received_deadlines(vaxjo))[item["task_id"]])
    assert told == due


async def test_bad_reports_are_refused_and_nothing_is_stored(members: Pair) -> None:
    region = members.region
    person = new_person()
    before = await counts(region)

    r = await send(region, lvm(person, legal_basis=None))
    assert r.status_code == 422
    assert field_rules(r.json()) == {"legal_basis": "legal_basis_required"}

    osl = {"basis": "osl_25_12", "ground": "persistent_misuse", "justification": "Fel grund."}
    r = await send(region, lvm(person, legal_basis=osl))
    assert r.status_code == 422
    assert field_rules(r.json()) == {"legal_basis": "legal_basis_not_for_kind"}

    r = await send(region, oros(person, legal_basis=None))
    assert r.status_code == 422
    assert field_rules(r.json()) == {"legal_basis": "legal_basis_required"}

    # To an adult function, even one whose (bad) directory entry claims it takes them.
    r = await send(region, oros(person, unit=VAXJO_BAD_BARN))
    assert r.status_code == 422, r.text
    assert "unit_kind_not_allowed" in field_rules(r.json()).values()
    assert await counts(region) == before


async def test_no_consent_is_recorded_for_a_report_and_none_allows_one(members: Pair) -> None:
    region = members.region
    person = new_person()
    today = dt.date.today()
    consent = {
        "person": {"personnummer": person},
        "form": "written",
        "signed_form_reference": "Journal dok 2026-4711",
        "purposes": ["kontaktbegaran", "orosanmalan"],
        "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
        "categories": ["contact_details", "social_situation"],
        "valid_from": today.isoformat(),
        "valid_to": (today + dt.timedelta(days=90)).isoformat(),
        "person_informed": True,
    }
    headers = auth(ORG_REGION, REGION_BEROENDE, CONSENT_RW)
    async with region.consent() as c:
        r = await c.post("/v1/consents", json=consent, headers=headers)
        assert r.status_code == 422
        assert field_rules(r.json()) == {"purposes": "legal_basis_only"}
        asked = {
            "person": {"personnummer": person},
            "sender": {"orgnr": ORG_REGION, "unit_id": REGION_BEROENDE},
            "recipient": {"orgnr": ORG_VAXJO, "unit_id": VAXJO_BARN},
            "purpose": "orosanmalan",
            "categories": ["social_situation"],
        }
        # With consent:person the reason is told (without it every denial reads the same).
        person_scope = auth(ORG_REGION, REGION_BEROENDE, [*CONSENT_RW, "consent:person"])
        r = await c.post("/v1/decisions", json=asked, headers=person_scope)
    assert r.status_code == 200, r.text
    decision = r.json()
    assert decision["allowed"] is False
    assert [reason["code"] for reason in decision["reasons"]] == ["legal_basis_required"]
