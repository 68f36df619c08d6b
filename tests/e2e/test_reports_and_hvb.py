"""Reports under a duty to report and an HVB notification with its SIP, across processes
(issue 22, points 2 and 4): Region Kronoberg's ward reports under 6 § LVM to Växjö's adult
investigation and reports concern for a child, letting the directory route it to Växjö's
children-and-family function, each on its legal basis and never on a consent; an adult
function is refused as the orosanmälan's recipient. Växjö's intake then notifies the
region of an HVB placement and convenes the SIP that answers it, which the region attends.
Every service a process of its own, driven through the APIs as the docs pages show them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from shared.domain.calendar import to_local
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (
    Site,
    auth,
    consent_copy_arrives,  # the fixture and helpers of the federation
    demo_units,
    federation,
    smtp,
    synthetic_person,
    unit_id,
)
from tests.e2e.test_referral_processes import AVDELNING, BEROENDE, SOC, Staff, consent
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules
from vardkedja.federation import Federation
from vardkedja.walkthrough.steps import BARN, MYNDIGHET

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]


def _lvm(person: str, unit: str) -> dict[str, Any]:
    return {
        "kind": "lvm_anmalan",
        "person": {"personnummer": person},
        "needs": ["utredning_sol"],
        "summary": "Upprepade intoxikationer under vårdtiden; avböjer frivillig vård.",
        "urgency": "urgent",
        "children_in_household": "yes",
        "recipients": [{"orgnr": ORG_VAXJO, "unit_id": unit}],
        "legal_basis": {
            "basis": "lvm_anmalan",
            "justification": "Anmälan enligt 6 § LVM från beroendeavdelningen.",
        },
        "lvm": {
            "kommunkod": "0780",
            "grounds": ["halsa_i_fara", "forstora_livet"],
            "reporter_role": "läkare",
        },
    }


def _oros(child: str, **routing: Any) -> dict[str, Any]:
    return {
        "kind": "orosanmalan",
        "person": {"personnummer": child},
        "summary": "Förälder inlagd efter intoxikation; barnet bor hos en släkting.",
        "urgency": "urgent",
        "children_in_household": "yes",
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
        **routing,
    }


async def test_reports_under_a_duty_and_an_hvb_with_its_sip_across_processes(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [
                (ORG_REGION, AVDELNING),
                (ORG_REGION, BEROENDE),
                (ORG_VAXJO, SOC),
                (ORG_VAXJO, MYNDIGHET),
                (ORG_VAXJO, BARN),
            ]
        }
        avdelning = Staff(region, ORG_REGION, ids[AVDELNING])
        beroende = Staff(region, ORG_REGION, ids[BEROENDE])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        myndighet = Staff(vaxjo, ORG_VAXJO, ids[MYNDIGHET])
        barn = Staff(vaxjo, ORG_VAXJO, ids[BARN])
        person, child = synthetic_person(626_262), synthetic_person(727_272)

        # 1. An LVM report: no consent exists for the person anywhere; the basis carries it.
        r = await avdelning.post("/v1/referrals", _lvm(person, ids[MYNDIGHET]))
        assert r.status_code == 201, r.text
        [task] = r.json()["recipients"]
        assert task["basis"] == {
            "kind": "legal_basis",
            "consent_id": None,
            "legal_basis": "lvm_anmalan",
        }
        report = await myndighet.wait_for("lvm_anmalan")
        assert report["task_id"] == task["task_id"]
        assert report["details"]["grounds"] == ["halsa_i_fara", "forstora_livet"]
        # Children were answered yes: the investigation is prompted about them.
        assert {p["code"] for p in report["children_prompts"]} == {
            "barn_som_anhoriga",
            "orosanmalan",
        }
        # The region's consent service recorded the use of the basis, with its justification.
        r = await region.post(
            "consent",
            "/v1/persons/search",
            {"personnummer": person},
            auth(ORG_REGION, ids[AVDELNING], ["consent:read", "consent:person"]),
        )
        assert r.status_code == 200, r.text
        assert [
            (u["basis"], u["purpose"], u["verdict"], u["recipient"]["unit_id"])
            for u in r.json()["legal_basis_uses"]
        ] == [("lvm_anmalan", "lvm_anmalan", "allowed", ids[MYNDIGHET])]
        assert r.json()["consents"] == []

        # 2. An orosanmälan to an adult function is refused, nothing sent.
        r = await avdelning.post(
            "/v1/referrals",
            _oros(child, recipients=[{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}]),
        )
        assert r.status_code == 422, r.text
        assert field_rules(r.json()) == {"recipients.0.unit_id": "kind_not_received"}
        outgoing = (await avdelning.get("/v1/outgoing?kind=orosanmalan")).json()["items"]
        assert outgoing == []

        # Routed by the directory, it reaches barn och familj, due within four hours.
        r = await avdelning.post(
            "/v1/referrals", _oros(child, resolve={"kommunkod": "0780", "age": 8})
        )
        assert r.status_code == 201, r.text
        [oros_task] = r.json()["recipients"]
        assert (oros_task["orgnr"], oros_task["unit_id"]) == (ORG_VAXJO, ids[BARN])
        item = await barn.wait_for("orosanmalan")
        received = dt.datetime.fromisoformat(item["received_at"])
        due = dt.datetime.fromisoformat(item["acknowledge_due_at"])
        assert due - received == dt.timedelta(hours=4)
        assert item["children_prompts"] == []  # the report is itself the path
        acknowledged = await barn.step(item["task_id"], to="acknowledged")
        assert acknowledged["status"] == "acknowledged"
        assert await soc.inbox() == []  # the adult intake never saw either report

        # 3. An HVB notification from the kommun, then the SIP that answers it.
        consent_id = await consent(vaxjo, person, ids[SOC])
        await consent_copy_arrives(region, ORG_REGION, ids[BEROENDE], consent_id)
        placement = to_local(dt.datetime.now(dt.UTC)).date() + dt.timedelta(days=7)
        r = await soc.post(
            "/v1/referrals",
            {
                "kind": "hvb_underrattelse",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "recipients": [{"orgnr": ORG_REGION, "unit_id": ids[BEROENDE]}],
                "hvb": {
                    "placement_form": "sol_bistand",
                    "placement_date": placement.isoformat(),
                    "expected_end_date": (placement + dt.timedelta(days=90)).isoformat(),
                    "hvb_name": "Novus",
                },
            },
        )
        assert r.status_code == 201, r.text
        hvb_id = r.json()["id"]
        assert r.json()["hvb"]["sip_by"] is not None
        assert r.json()["hvb"]["sip_convened"] is False
        notification = await beroende.wait_for("hvb_underrattelse")
        assert notification["details"]["placement_form"] == "sol_bistand"
        await beroende.step(notification["task_id"], to="acknowledged")
        await beroende.step(notification["task_id"], to="accepted")

        r = await soc.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "for_referral_id": hvb_id,
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": dt.datetime.combine(placement, dt.time(10), tzinfo=dt.UTC).isoformat(),
                "place": "Socialtjänsten Växjö",
                "participants": [{"orgnr": ORG_REGION, "unit_id": ids[BEROENDE]}],
            },
        )
        assert r.status_code == 201, r.text
        sip_id = r.json()["id"]
        assert r.json()["for_referral_id"] == hvb_id
        invitation = await beroende.wait_for("sip_kallelse")
        await beroende.step(invitation["task_id"], to="acknowledged")
        await beroende.step(invitation["task_id"], to="accepted")

        async def followed() -> bool:
            view = (await soc.get(f"/v1/referrals/{hvb_id}")).json()
            meeting = (await soc.get(f"/v1/meetings/{sip_id}")).json()
            return view["recipients"][0]["status"] == "accepted" and [
                p["status"] for p in meeting["participants"]
            ] == ["accepted"]

        await eventually(followed, within=60, what="the region's answers at the kommun")
        view = (await soc.get(f"/v1/referrals/{hvb_id}")).json()
        assert view["linked_sip"]["meeting_id"] == sip_id
        assert (view["hvb"]["sip_convened"], view["hvb"]["sip_overdue"]) == (True, False)
