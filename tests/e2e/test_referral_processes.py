"""The seed report's processes across two members with every service a process of its own
(issue 5's "done when", beside the kontaktbegäran of test_referral_federation): a
vårdkedjeremiss with its joint meeting and ordered plan; a discharge planning confirmed by
the home kommun with a SIP before discharge whose ended action every party sees; an HVB
notification. Driven through the APIs exactly as the docs pages show them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (
    REFERRAL_RW,
    Site,
    auth,
    consent_copy_arrives,  # the fixture and helpers of the federation
    demo_units,
    federation,
    smtp,
    synthetic_person,
    unit_id,
)
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]

PORT = "Psykiatrins remissport"
BEROENDE = "Beroendemottagningen Växjö"
AVDELNING = "Beroendeavdelningen, heldygnsvård Växjö"
SOC = "Socialtjänstens mottagning vuxna Växjö"
BOENDE = "Boendestöd Växjö, inriktning skadligt bruk och beroende"


class Staff:
    """A unit's user at its member's referral API."""

    def __init__(self, site: Site, orgnr: str, unit: str) -> None:
        self.site, self.orgnr, self.unit = site, orgnr, unit
        self.headers = auth(orgnr, unit, REFERRAL_RW)

    async def post(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.site.client.post(
            self.site.url("referral", path), json=body, headers={**self.headers, **headers}
        )

    async def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.site.client.put(
            self.site.url("referral", path), json=body, headers=self.headers
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.site.get("referral", path, self.headers)

    async def inbox(self) -> list[dict[str, Any]]:
        r = await self.get("/v1/incoming")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def wait_for(self, kind: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def arrived() -> bool:
            found[:] = [i for i in await self.inbox() if i["kind"] == kind]
            return bool(found)

        await eventually(arrived, within=60, what=f"a {kind} at {self.unit}")
        return found[-1]

    async def step(self, task_id: str, **body: Any) -> dict[str, Any]:
        current = await self.get(f"/v1/incoming/{task_id}")
        assert current.status_code == 200, current.text
        r = await self.post(
            f"/v1/incoming/{task_id}/transitions", body, **{"If-Match": current.headers["ETag"]}
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


async def consent(site: Site, person: str, unit: str) -> str:
    today = dt.datetime.now(dt.UTC).date()
    r = await site.post(
        "consent",
        "/v1/consents",
        {
            "person": {"personnummer": person},
            "form": "written",
            "signed_form_reference": "Treserva dok 2026-99",
            "purposes": ["vardkedjeremiss", "sip", "utskrivningsplanering", "hvb_underrattelse"],
            "parties": [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO}],
            "categories": ["contact_details", "needs_summary", "plan", "social_situation"],
            "valid_from": today.isoformat(),
            "valid_to": (today + dt.timedelta(days=180)).isoformat(),
            "person_informed": True,
        },
        auth(ORG_VAXJO, unit, ["consent:read", "consent:write"]),
    )
    assert r.status_code == 201, r.text
    consent_id: str = r.json()["id"]
    return consent_id


async def test_vardkedjeremiss_discharge_with_sip_and_hvb_across_processes(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [
                (ORG_REGION, PORT),
                (ORG_REGION, BEROENDE),
                (ORG_REGION, AVDELNING),
                (ORG_VAXJO, SOC),
                (ORG_VAXJO, BOENDE),
            ]
        }
        port = Staff(region, ORG_REGION, ids[PORT])
        beroende = Staff(region, ORG_REGION, ids[BEROENDE])
        avdelning = Staff(region, ORG_REGION, ids[AVDELNING])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        boende = Staff(vaxjo, ORG_VAXJO, ids[BOENDE])

        person = synthetic_person(424_242)
        consent_id = await consent(vaxjo, person, ids[SOC])

        await consent_copy_arrives(region, ORG_REGION, ids[PORT], consent_id)

        # 1. A vårdkedjeremiss to psychiatry's referral port, its remissmöte and plan.
        r = await soc.post(
            "/v1/referrals",
            {
                "kind": "vardkedjeremiss",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "needs": ["abstinensbehandling", "boendestod"],
                "summary": "Beroende, psykisk ohälsa och bostadslöshet samtidigt.",
                "drug_free": "no",
                "recipients": [{"orgnr": ORG_REGION, "unit_id": ids[PORT]}],
                "vardkedjeremiss": {"treatment_requires_drug_free": True},
            },
        )
        assert r.status_code == 201, r.text
        vkr = await port.wait_for("vardkedjeremiss")
        await port.step(vkr["task_id"], to="acknowledged")
        meeting = {
            "kind": "remissmote",
            "origin_task_id": vkr["task_id"],
            "at": "2026-12-03T13:00:00+01:00",
            "video_link": "https://mote.example/remissmote",
            "participants": [{"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]}],
        }
        refused = await port.post("/v1/meetings", meeting)
        assert refused.status_code == 422  # the drug-free rule
        meeting["participants"].insert(0, {"orgnr": ORG_REGION, "unit_id": ids[BEROENDE]})
        r = await port.post("/v1/meetings", meeting)
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
        plan = await port.put(
            f"/v1/meetings/{meeting_id}/plan",
            {
                "goals": ["Drogfrihet", "Eget boende"],
                "actions": [
                    {
                        "intervention": "abstinensbehandling",
                        "owner": {"orgnr": ORG_REGION, "unit_id": ids[BEROENDE]},
                    },
                    {
                        "intervention": "boendestod",
                        "owner": {"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
                    },
                ],
                "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "follow_up_date": "2027-02-01",
            },
        )
        assert plan.status_code == 200, plan.text
        plan_id = plan.json()["id"]

        async def sender_sees_plan() -> bool:
            return (await soc.get(f"/v1/plans/{plan_id}")).status_code == 200

        await eventually(sender_sees_plan, within=60, what="the plan at the sender")
        shown = (await soc.get(f"/v1/plans/{plan_id}")).json()
        assert [a["intervention"] for a in shown["actions"]] == [
            "abstinensbehandling",
            "boendestod",
        ]

        # 2. A discharge planning confirmed by the kommun, and a SIP before discharge.
        discharge_day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).date()
        r = await avdelning.post(
            "/v1/referrals",
            {
                "kind": "utskrivningsplanering",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "summary": "Utskrivning efter abstinensbehandling.",
                "recipients": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "discharge": {"expected_discharge_date": discharge_day.isoformat()},
            },
        )
        assert r.status_code == 201, r.text
        discharge_id = r.json()["id"]
        planning = await soc.wait_for("utskrivningsplanering")
        await soc.step(planning["task_id"], to="acknowledged", case_reference="VX-2026-88")

        async def confirmed() -> bool:
            got = (await avdelning.get(f"/v1/referrals/{discharge_id}")).json()
            return bool(got["discharge"]["all_confirmed"])

        await eventually(confirmed, within=60, what="the kommun's confirmation")
        sip_at = dt.datetime.combine(
            discharge_day - dt.timedelta(days=2), dt.time(10), tzinfo=dt.UTC
        )
        r = await avdelning.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": sip_at.isoformat(),
                "place": "Beroendeavdelningen, Centrallasarettet Växjö",
                "participants": [
                    {"orgnr": ORG_VAXJO, "unit_id": ids[SOC]},
                    {"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
                ],
            },
        )
        assert r.status_code == 201, r.text
        sip_id = r.json()["id"]
        for staff in (soc, boende):
            invitation = await staff.wait_for("sip_kallelse")
            await staff.step(invitation["task_id"], to="acknowledged")
            await staff.step(invitation["task_id"], to="accepted")
        r = await avdelning.put(
            f"/v1/meetings/{sip_id}/plan",
            {
                "goals": ["Trygg utskrivning"],
                "actions": [
                    {
                        "intervention": "boendestod",
                        "owner": {"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
                        "start_by": discharge_day.isoformat(),
                    }
                ],
                "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "follow_up_date": (discharge_day + dt.timedelta(days=30)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        action_id = r.json()["actions"][0]["id"]

        async def plan_at_boende() -> bool:
            return (await boende.get(f"/v1/plans/{sip_id}")).status_code == 200

        await eventually(plan_at_boende, within=60, what="the SIP plan at boendestöd")
        # The housing support cancels its action (the region owns the plan: 202); every
        # party sees it cancelled.
        etag = (await boende.get(f"/v1/plans/{sip_id}")).headers["ETag"]
        r = await boende.post(
            f"/v1/plans/{sip_id}/actions/{action_id}/transitions",
            {"to": "cancelled", "reason": "Personen har fått plats på HVB."},
            **{"If-Match": etag},
        )
        assert r.status_code == 202, r.text

        async def cancelled_everywhere() -> bool:
            at_region = (await avdelning.get(f"/v1/plans/{sip_id}")).json()
            at_soc = (await soc.get(f"/v1/plans/{sip_id}")).json()
            return all(p["actions"][0]["status"] == "cancelled" for p in (at_region, at_soc))

        await eventually(cancelled_everywhere, within=60, what="the cancelled action everywhere")

        # 3. An HVB notification from the kommun to the region.
        r = await soc.post(
            "/v1/referrals",
            {
                "kind": "hvb_underrattelse",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "recipients": [{"orgnr": ORG_REGION, "unit_id": ids[BEROENDE]}],
                "hvb": {
                    "placement_form": "sol_bistand",
                    "placement_date": discharge_day.isoformat(),
                    "open_ended": True,
                    "hvb_name": "Novus",
                },
            },
        )
        assert r.status_code == 201, r.text
        hvb = await beroende.wait_for("hvb_underrattelse")
        assert hvb["sender_unit_id"] == ids[SOC]

        # The indicators count it all, without a personnummer.
        r = await avdelning.get("/v1/indicators")
        assert r.status_code == 200
        assert r.json()["discharge_planning"]["with_sip_before_discharge"] == 1
        assert person not in r.text
