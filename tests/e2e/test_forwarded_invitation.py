"""A forwarded invitation across two members with every service a process of its own (issue
21): Region Kronoberg's heldygnsvård convenes a SIP and invites Växjö's intake, which
forwards the invitation to Växjö's boendestöd. The meeting at the region gains boendestöd as
a participant with its own invitation task — the convener's invitation as stored — while the
intake's participation shows where it went; the plan, recorded before boendestöd answers,
reaches it when it accepts. Driven through the APIs as the docs pages show them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (
    Site,
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


async def test_a_forwarded_sip_invitation_brings_the_unit_into_the_meeting(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    assert len({p.process.pid for p in federation.procs}) == len(federation.procs) == 16
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

        person = synthetic_person(515_151)
        consent_id = await consent(vaxjo, person, ids[SOC])

        await consent_copy_arrives(region, ORG_REGION, ids[AVDELNING], consent_id)

        # The region convenes a SIP and invites Växjö's intake.
        r = await avdelning.post(
            "/v1/meetings",
            {
                "kind": "sip",
                "children_in_household": "no",
                "person": {"personnummer": person},
                "at": "2026-12-10T10:00:00+01:00",
                "place": "Beroendeavdelningen, Centrallasarettet Växjö",
                "participants": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
            },
        )
        assert r.status_code == 201, r.text
        meeting_id = r.json()["id"]
        at_intake = await soc.wait_for("sip_kallelse")
        await soc.step(at_intake["task_id"], to="acknowledged")

        # The intake forwards it to boendestöd (a 500 before issue 21).
        forwarded = await soc.step(
            at_intake["task_id"],
            to="forwarded",
            forward_to={"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
        )
        assert forwarded["status"] == "forwarded"

        # The region's meeting invites boendestöd in the intake's place.
        parts: list[dict[str, Any]] = []

        async def followed() -> bool:
            got = await avdelning.get(f"/v1/meetings/{meeting_id}")
            assert got.status_code == 200, got.text
            parts[:] = got.json()["participants"]
            return len(parts) == 2 and parts[0]["status"] == "forwarded"

        await eventually(followed, within=60, what="the forwarded-to unit in the meeting")
        intake, joined = parts
        assert intake["forwarded_to"] == {
            "orgnr": ORG_VAXJO,
            "unit_id": ids[BOENDE],
            "task_id": joined["task_id"],
        }
        assert (joined["unit_id"], joined["forwarded_from"]) == (ids[BOENDE], intake["task_id"])
        at_boende = await boende.wait_for("sip_kallelse")
        assert at_boende["task_id"] == joined["task_id"]
        assert at_boende["details"] == at_intake["details"]
        assert at_boende["sender_unit_id"] == ids[AVDELNING]

        # The plan, recorded before boendestöd answers, reaches it when it accepts.
        r = await avdelning.put(
            f"/v1/meetings/{meeting_id}/plan",
            {
                "goals": ["Trygg utskrivning"],
                "actions": [
                    {
                        "intervention": "boendestod",
                        "owner": {"orgnr": ORG_VAXJO, "unit_id": ids[BOENDE]},
                    }
                ],
                "coordinators": [{"orgnr": ORG_VAXJO, "unit_id": ids[SOC]}],
                "follow_up_date": "2027-01-15",
            },
        )
        assert r.status_code == 200, r.text
        await boende.step(at_boende["task_id"], to="acknowledged")
        await boende.step(at_boende["task_id"], to="accepted")

        async def accepted() -> bool:
            got = (await avdelning.get(f"/v1/meetings/{meeting_id}")).json()
            return [p["status"] for p in got["participants"]] == ["forwarded", "accepted"]

        await eventually(accepted, within=60, what="boendestöd's acceptance at the region")

        async def plan_at_boende() -> bool:
            return (await boende.get(f"/v1/plans/{meeting_id}")).status_code == 200

        await eventually(plan_at_boende, within=60, what="the plan at boendestöd")
