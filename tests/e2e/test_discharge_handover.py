"""The discharge handover across processes (issue 22, point 5): Region Kronoberg's ward
plans a discharge to Växjö's intake, convenes the SIP that answers the planning, the
housing support starts its action (ready for discharge), the person leaves early and the
ward records the unplanned discharge; Växjö's task shows it and its notify tells the intake
and the plan's coordinator — without personal data. Every service a process of its own,
driven through the APIs as the docs pages show them."""

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
from tests.e2e.test_referral_processes import AVDELNING, BOENDE, SOC, Staff, consent
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]


async def test_a_discharge_planning_its_sip_and_an_unplanned_discharge_across_processes(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        ids = {
            name: unit_id(replica, orgnr, name)
            for orgnr, name in [(ORG_REGION, AVDELNING), (ORG_VAXJO, SOC), (ORG_VAXJO, BOENDE)]
        }
        avdelning = Staff(region, ORG_REGION, ids[AVDELNING])
        soc = Staff(vaxjo, ORG_VAXJO, ids[SOC])
        boende = Staff(vaxjo, ORG_VAXJO, ids[BOENDE])
        person = synthetic_person(525_252)
        consent_id = await consent(vaxjo, person, ids[SOC])

        await consent_copy_arrives(region, ORG_REGION, ids[AVDELNING], consent_id)

        # The ward plans the discharge in ten days; the kommun's intake confirms it.
        today = to_local(dt.datetime.now(dt.UTC)).date()
        expected = today + dt.timedelta(days=10)
        r = await avdelning.post(
            "/v1/referrals",
            {
                "kind": "utskrivningsplanering",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "summary": "Utskrivning efter abstinensbehandling.",
                "recipients": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "discharge": {"expected_discharge_date": expected.isoformat()},
            },
        )
        assert r.status_code == 201, r.text
        planning_id = r.json()["id"]
        planning = await soc.wait_for("utskrivningsplanering")
        await soc.step(planning["task_id"], to="acknowledged", case_reference="VX-2026-99")

        # The SIP that answers the planning, with the intake and the housing support.
        sip_at = dt.datetime.combine(expected - dt.timedelta(days=3), dt.time(9), tzinfo=dt.UTC)
        r = await avdelning.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "for_referral_id": planning_id,
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

        async def both_accepted() -> bool:
            got = (await avdelning.get(f"/v1/meetings/{sip_id}")).json()
            return [p["status"] for p in got["participants"]] == ["accepted", "accepted"]

        await eventually(both_accepted, within=60, what="both answers at the ward")
        r = await avdelning.put(
            f"/v1/meetings/{sip_id}/plan",
            {
                "goals": ["Trygg utskrivning"],
                "actions": [
                    {
                        "intervention": "boendestod",
                        "owner": {"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
                        "start_by": expected.isoformat(),
                    }
                ],
                "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "follow_up_date": (expected + dt.timedelta(days=30)).isoformat(),
            },
        )
        assert r.status_code == 200, r.text
        action_id = r.json()["actions"][0]["id"]
        view: dict[str, Any] = (await avdelning.get(f"/v1/referrals/{planning_id}")).json()
        assert view["linked_sip"]["meeting_id"] == sip_id
        assert view["linked_sip"]["plan_recorded"] is True
        assert view["discharge"]["ready_for_discharge"] is False
        assert [(m["what"], m["action_ids"]) for m in view["discharge"]["missing"]] == [
            ("not_started", [action_id])
        ]

        # The housing support starts its action (the region owns the plan: 202).
        async def plan_at_boende() -> bool:
            return (await boende.get(f"/v1/plans/{sip_id}")).status_code == 200

        await eventually(plan_at_boende, within=60, what="the SIP's plan at the housing support")
        etag = (await boende.get(f"/v1/plans/{sip_id}")).headers["ETag"]
        r = await boende.post(
            f"/v1/plans/{sip_id}/actions/{action_id}/transitions",
            {"to": "started"},
            **{"If-Match": etag},
        )
        assert r.status_code == 202, r.text

        async def ready() -> bool:
            got = (await avdelning.get(f"/v1/referrals/{planning_id}")).json()
            return bool(got["discharge"]["ready_for_discharge"])

        await eventually(ready, within=60, what="ready for discharge at the ward")

        # The person leaves today, a week early: the ward records the unplanned discharge.
        r = await avdelning.post(
            f"/v1/referrals/{planning_id}/discharge",
            {"discharged_on": today.isoformat(), "unplanned": True, "note": "Gick hem tidigt."},
            **{"Idempotency-Key": f"e2e-discharge-{planning_id}"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["discharged"]["actions_started"] is True

        # Växjö's intake sees it on its task and is told; so is the plan's coordinator
        # (the same unit here): by its own notify, with no personal data.
        async def on_the_task() -> bool:
            task = (await soc.get(f"/v1/incoming/{planning['task_id']}")).json()
            return bool(task["discharge"]["discharged_on"] == today.isoformat())

        await eventually(on_the_task, within=60, what="the discharge on the kommun's task")
        task = (await soc.get(f"/v1/incoming/{planning['task_id']}")).json()
        assert task["discharge"]["unplanned"] is True
        notify_reader = auth(ORG_VAXJO, ids[SOC], ["notify:read"])
        told: list[dict[str, Any]] = []

        async def notified() -> bool:
            r = await vaxjo.get("notify", f"/v1/units/{ids[SOC]}/notifications", notify_reader)
            assert r.status_code == 200, r.text
            assert person not in r.text
            told[:] = [i for i in r.json()["items"] if i["kind"] == "referral.discharged"]
            return len(told) == 2

        await eventually(notified, within=60, what="the intake told, as recipient and coordinator")
        assert {(i["subject_type"], i["status"]) for i in told} == {
            ("referral", "unplanned"),
            ("plan", "unplanned"),
        }
        assert {i["subject_id"] for i in told} == {planning["task_id"], sip_id}
