"""The FHIR facade's CarePlan interactions over the real referral services of two members: a
SIP convened at Växjö, accepted by the region and its plan recorded is read as a
``CarePlan`` (goals, care team, an activity per action), an action's step shows in the next
read with a new version, and the plans are found by the unit owning an action and by the
coordinator. Every answer parses as FHIR R4 with the model library."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan

from services.fhir.careplan import PLAN_KIND
from tests.conftest import ORG_REGION, ORG_VAXJO

from .conftest import REGION_BEROENDE, REGION_PORT, VAXJO_BOENDE, VAXJO_SOC, Member, Pair
from .test_fhir_consent_facade import fhir_facade
from .test_fhir_task_facade import issues, resource
from .test_plan_actions import BOENDE, SOC, a_sip_with_its_plan
from .test_referral_meetings import action_step

PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def facade(member: Member) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """``member``'s FHIR facade over its referral service."""
    return fhir_facade(member, "referral")


def contained(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in plan["contained"] if r["resourceType"] == kind]


async def plans(c: httpx.AsyncClient, headers: dict[str, str], **unit: str) -> list[str]:
    """The ids of the plans a ``CarePlan`` search finds (one parameter: a unit)."""
    [(name, unit_id)] = unit.items()
    r = await c.get("/fhir/R4/CarePlan", params={name: f"Organization/{unit_id}"}, headers=headers)
    return [e["resource"]["id"] for e in resource(r, Bundle).get("entry", [])]


class TestASipPlanAsACarePlan:
    async def test_read_with_its_activities_stepped_and_found(self, members: Pair) -> None:
        vaxjo = members.vaxjo
        plan = await a_sip_with_its_plan(members)
        plan_id = plan["id"]
        async with facade(vaxjo) as c:
            read = await c.get(f"/fhir/R4/CarePlan/{plan_id}", headers=SOC)
            care = resource(read, CarePlan)
            assert read.headers["etag"] == f'W/"{plan["version"]}"'
            assert care["meta"]["versionId"] == str(plan["version"])
            assert (care["status"], care["intent"]) == ("active", "plan")
            assert care["category"][0]["coding"][0] == {
                "system": PLAN_KIND,
                "code": "sip",
                "display": "Samordnad individuell plan (SIP)",
            }
            assert care["subject"]["identifier"] == {
                "system": PNR_SYSTEM,
                "value": plan["person_nr"].replace("-", ""),
            }
            assert care["author"]["reference"] == f"Organization/{VAXJO_SOC}"
            assert care["author"]["identifier"]["value"] == ORG_VAXJO

            [team] = contained(care, "CareTeam")
            roles = {
                p["member"]["reference"].split("/")[1]: {r["coding"][0]["code"] for r in p["role"]}
                for p in team["participant"]
            }
            assert {"convener", "coordinator"} <= roles[VAXJO_SOC]
            assert "coordinator" in roles[REGION_BEROENDE]
            assert "action-owner" in roles[VAXJO_BOENDE]
            assert "action-owner" in roles[REGION_PORT]

            goals = contained(care, "Goal")
            assert [(g["description"]["text"], "expressedBy" in g) for g in goals] == [
                ("Jag vill ha ett eget boende.", True),
                ("Drogfrihet", False),
            ]
            assert [g["reference"] for g in care["goal"]] == [f"#{g['id']}" for g in goals]

            boende, port, outside = care["activity"]
            assert [a["id"] for a in care["activity"]] == [a["id"] for a in plan["actions"]]
            assert {a["detail"]["status"] for a in care["activity"]} == {"not-started"}
            assert boende["detail"]["performer"][0]["reference"] == f"Organization/{VAXJO_BOENDE}"
            assert port["detail"]["performer"][0]["identifier"]["value"] == ORG_REGION
            assert port["detail"]["scheduledPeriod"] == {
                "start": plan["actions"][1]["start_by"],
                "end": plan["actions"][1]["end_by"],
            }
            assert outside["detail"]["performer"] == [{"display": "Försäkringskassan"}]
            assert outside["detail"]["code"]["coding"][0]["code"] == "sysselsattning"
            assert care["period"]["start"] == plan["actions"][0]["start_by"]

        # The housing support starts its action: the next read shows it, a new version.
        started = await action_step(
            vaxjo, plan_id, plan["actions"][0]["id"], BOENDE, plan["version"], to="started"
        )
        assert started.status_code == 200, started.text
        async with facade(vaxjo) as c:
            again = resource(await c.get(f"/fhir/R4/CarePlan/{plan_id}", headers=BOENDE), CarePlan)
            assert int(again["meta"]["versionId"]) > plan["version"]
            assert [a["detail"]["status"] for a in again["activity"]] == [
                "in-progress",
                "not-started",
                "not-started",
            ]

            # Found by the unit owning an action, and by the coordinator.
            owned = await plans(c, BOENDE, performer=VAXJO_BOENDE)
            assert owned == [plan_id]
            coordinated = await plans(c, SOC, coordinator=VAXJO_SOC)
            assert coordinated == [plan_id]
            # Another unit named: nothing of the caller's.
            other = await plans(c, BOENDE, performer=VAXJO_SOC)
            assert other == []


class TestOutcomes:
    async def test_unknown_plans_and_bad_searches(self, members: Pair) -> None:
        async with facade(members.vaxjo) as c:
            [missing] = issues(await c.get("/fhir/R4/CarePlan/no-such-plan", headers=SOC), 404)
            assert missing["code"] == "not-found"
            [neither] = issues(await c.get("/fhir/R4/CarePlan", headers=SOC), 400)
            assert neither["expression"] == ["performer"]
            [wrong] = issues(
                await c.get("/fhir/R4/CarePlan", params={"performer": "Patient/x"}, headers=SOC),
                400,
            )
            assert wrong["expression"] == ["performer"]
            issues(await c.get("/fhir/R4/CarePlan/no such", headers=SOC), 400)
