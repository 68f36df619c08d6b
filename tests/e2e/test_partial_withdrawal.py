"""Issue 21's partial withdrawal across processes: Region Kronoberg and Växjö kommun each run
directory, consent, referral and notify (API and worker each its own process) over the real
broker. One consent covers a kontaktbegäran and SIP; the kommun registers the kontaktbegäran
as an application and is invited to a SIP. The person then declines joint planning only
("att avstå från gemensam planering behöver inte innebära att individen tackar nej till
insatser"): the region withdraws the consent's SIP purpose. The SIP invitation is cancelled
on both sides, the kontaktbegäran stays with the kommun, and both the kommun's receiving
unit and the sending unit are told what the consent still covers, without personal data.
Runs on SQLite and, when reachable, on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from services.notify.content import looks_like_personnummer
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (  # the fixture and helpers of the federation
    INTAKE,
    SENDER_UNIT,
    Site,
    auth,
    demo_units,
    federation,
    kontaktbegaran,
    smtp,
    synthetic_person,
    unit_id,
)
from tests.e2e.test_referral_processes import Staff
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]

CONSENT_RW = ["consent:read", "consent:write"]
WISH = "Jag vill ha hjälp med boende i Växjö."


async def notifications(site: Site, orgnr: str, unit: str) -> list[dict[str, Any]]:
    r = await site.get(
        "notify", f"/v1/units/{unit}/notifications?limit=100", auth(orgnr, unit, ["notify:read"])
    )
    assert r.status_code == 200, r.text
    assert not looks_like_personnummer(r.text)
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_partial_withdrawal_keeps_the_kontaktbegaran(federation: Federation) -> None:
    region_m, vaxjo_m = federation.members
    person = synthetic_person(2121)
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        sender_unit = unit_id(replica, ORG_REGION, SENDER_UNIT)
        intake = unit_id(replica, ORG_VAXJO, INTAKE)
        beroende = Staff(region, ORG_REGION, sender_unit)
        soc = Staff(vaxjo, ORG_VAXJO, intake)

        # One consent, recorded at the region, to a kontaktbegäran and to SIP.
        today = dt.datetime.now(dt.UTC).date()
        r = await region.post(
            "consent",
            "/v1/consents",
            {
                "person": {"personnummer": person},
                "form": "written",
                "signed_form_reference": "Journal dok 2026-2121",
                "purposes": ["kontaktbegaran", "sip"],
                "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
                "categories": ["contact_details", "needs_summary", "plan"],
                "valid_from": today.isoformat(),
                "valid_to": (today + dt.timedelta(days=90)).isoformat(),
                "person_informed": True,
            },
            auth(ORG_REGION, sender_unit, CONSENT_RW),
        )
        assert r.status_code == 201, r.text
        consent_id = r.json()["id"]
        copy_path = f"/v1/consent-copies/{consent_id}"
        copy_reader = auth(ORG_VAXJO, intake, ["consent:read"])

        async def copy_at_vaxjo() -> bool:
            got = await vaxjo.get("consent", copy_path, copy_reader)
            assert got.status_code in (200, 404), got.text
            return got.status_code == 200

        await eventually(copy_at_vaxjo, within=60, what="the consent copy at Växjö")

        # The kontaktbegäran, registered by the kommun as an application.
        r = await beroende.post(
            "/v1/referrals",
            kontaktbegaran(person, persons_wish=WISH),
            **{"Idempotency-Key": f"e2e-partial-{consent_id}"},
        )
        assert r.status_code == 201, r.text
        referral_id = r.json()["id"]
        [task] = r.json()["recipients"]
        assert task["unit_id"] == intake
        kontakt = task["task_id"]
        await soc.wait_for("kontaktbegaran")
        await soc.step(kontakt, to="acknowledged", case_reference="SOC-2026-2121")

        # A SIP the region convenes, with the kommun's intake invited.
        meeting_at = dt.datetime.combine(today + dt.timedelta(days=7), dt.time(10), tzinfo=dt.UTC)
        r = await beroende.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": meeting_at.isoformat(),
                "place": "Beroendemottagningen Växjö",
                "participants": [{"orgnr": ORG_VAXJO, "unit_id": intake}],
            },
        )
        assert r.status_code == 201, r.text
        meeting_id = r.json()["id"]
        [participant] = r.json()["participants"]
        invitation = participant["task_id"]
        assert (await soc.wait_for("sip_kallelse"))["task_id"] == invitation

        async def acknowledged_at_region() -> bool:
            got = (await beroende.get(f"/v1/referrals/{referral_id}")).json()
            return bool(got["recipients"][0]["status"] == "acknowledged")

        await eventually(acknowledged_at_region, within=60, what="the application at Region")

        # The person declines joint planning, and only that.
        r = await region.post(
            "consent",
            f"/v1/consents/{consent_id}/withdraw",
            {
                "reason": "Personen avstår från SIP men vill ha stöd med boende.",
                "withdrawn_by": {"kind": "person"},
                "purposes": ["sip"],
            },
            auth(ORG_REGION, sender_unit, CONSENT_RW),
        )
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["purposes"]) == ("active", ["kontaktbegaran"])

        # The SIP invitation is cancelled at the kommun, and at the convener.
        async def invitation_cancelled_at_vaxjo() -> bool:
            got = (await soc.get(f"/v1/incoming/{invitation}")).json()
            return bool(got["status"] == "cancelled")

        await eventually(invitation_cancelled_at_vaxjo, within=60, what="the invitation at Växjö")

        async def invitation_cancelled_at_region() -> bool:
            got = (await beroende.get(f"/v1/meetings/{meeting_id}")).json()
            return bool(got["participants"][0]["status"] == "cancelled")

        await eventually(invitation_cancelled_at_region, within=60, what="at the convener")

        # The kontaktbegäran stays: the kommun's application, whole, still to be worked.
        kept = (await soc.get(f"/v1/incoming/{kontakt}")).json()
        assert (kept["status"], kept["case_reference"]) == ("acknowledged", "SOC-2026-2121")
        assert kept["person"]["personnummer"] == person
        assert kept["persons_wish"] == WISH
        assert "accepted" in kept["allowed_transitions"]
        sent = (await beroende.get(f"/v1/referrals/{referral_id}")).json()
        assert sent["recipients"][0]["status"] == "acknowledged"

        # Both sides' consent services: SIP no longer, the kontaktbegäran still.
        copy = (await vaxjo.get("consent", copy_path, copy_reader)).json()
        assert (copy["status"], copy["purposes"], copy["withdrawn_purposes"]) == (
            "active",
            ["kontaktbegaran"],
            ["sip"],
        )
        for site, orgnr in ((region, ORG_REGION), (vaxjo, ORG_VAXJO)):
            for purpose, verdict in (("sip", "denied"), ("kontaktbegaran", "allowed")):
                r = await site.post(
                    "consent",
                    "/v1/decisions",
                    {
                        "person": {"personnummer": person},
                        "sender": {"orgnr": ORG_REGION, "unit_id": sender_unit},
                        "recipient": {"orgnr": ORG_VAXJO, "unit_id": intake},
                        "purpose": purpose,
                        "categories": ["needs_summary"],
                    },
                    auth(orgnr, None, ["consent:read", "consent:person"]),
                )
                assert r.json()["verdict"] == verdict, (orgnr, purpose, r.text)
                if verdict == "denied":
                    assert r.json()["reasons"][0]["code"] == "purpose_withdrawn"

        # Both parties are told what changed: the kommun's receiving unit and the sender.
        told: dict[str, dict[str, dict[str, Any]]] = {}

        async def both_told() -> bool:
            for key, site, orgnr, unit in (
                ("vaxjo", vaxjo, ORG_VAXJO, intake),
                ("region", region, ORG_REGION, sender_unit),
            ):
                items = await notifications(site, orgnr, unit)
                told[key] = {n["subject_id"]: n for n in items if n["kind"] == "consent.narrowed"}
            return all(set(t) == {kontakt, invitation} for t in told.values()) and len(told) == 2

        await eventually(both_told, within=60, what="both units told of the narrowed consent")
        for key, counterpart in (("vaxjo", ORG_REGION), ("region", ORG_VAXJO)):
            about_kontakt, about_invitation = told[key][kontakt], told[key][invitation]
            assert (about_kontakt["status"], about_kontakt["covers"]) == (
                "kept",
                ["kontaktbegaran"],
            )
            assert about_kontakt["referral_kind"] == "kontaktbegaran"
            assert about_kontakt["counterpart_orgnr"] == counterpart
            assert (about_invitation["status"], about_invitation["referral_kind"]) == (
                "cancelled",
                "sip_kallelse",
            )
            assert about_kontakt["title"] == (
                "Samtycket för Kontaktbegäran har ändrats (ärendet står kvar); "
                "det omfattar nu Kontaktbegäran"
            )
            for n in (about_kontakt, about_invitation):
                for personal in (person, person[2:], "boende i Växjö", "avstår"):
                    assert personal not in str(n)
