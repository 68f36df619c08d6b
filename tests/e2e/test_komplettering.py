"""Issue 22, points 6 and 7, across processes: Region Kronoberg and Växjö kommun each run
directory, consent, referral and notify (API and worker each its own process) over the
broker. Växjö's social-services intake acknowledges a kontaktbegäran from the region's
addiction clinic and asks for more information instead of declining (komplettering); the
clinic answers with a text and a document; the intake sees both, holds the task again,
accepts it and completes it with a structured result, which the clinic sees."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (  # the fixture and helpers of the federation
    Site,
    auth,
    demo_units,
    federation,
    kontaktbegaran,
    smtp,
    synthetic_person,
    unit_id,
    written_consent,
)
from tests.e2e.test_referral_processes import Staff
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]

BEROENDE = "Beroendemottagningen Växjö"
SOC = "Socialtjänstens mottagning vuxna Växjö"
QUESTION = "Har personen någon bostad i dag, och vem är kontaktperson på avdelningen?"
ANSWER = "Ingen egen bostad; kontaktperson är avdelningens sjuksköterska, se bifogat."
RESULT = {"decision": "granted", "intervention": "boendestod", "started_on": "2026-12-14"}


async def sent_task(staff: Staff, referral_id: str) -> dict[str, Any]:
    """The sending unit's view of its one recipient."""
    r = await staff.get(f"/v1/referrals/{referral_id}")
    assert r.status_code == 200, r.text
    recipient: dict[str, Any] = r.json()["recipients"][0]
    return recipient


async def until(staff: Staff, path: str, status: str, key: str = "status") -> dict[str, Any]:
    """``path`` as ``staff`` reads it, once its ``key`` (a task's status) is ``status``."""
    seen: dict[str, Any] = {}

    async def there() -> bool:
        r = await staff.get(path)
        if r.status_code != 200:
            return False
        body = r.json()
        seen.clear()
        seen.update(body["recipients"][0] if "recipients" in body else body)
        return bool(seen[key] == status)

    await eventually(there, within=60, what=f"{status} at {staff.unit}")
    return seen


async def test_the_kommun_asks_the_region_answers_and_the_kommun_completes(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    async with httpx.AsyncClient(timeout=15) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        beroende = Staff(region, ORG_REGION, unit_id(replica, ORG_REGION, BEROENDE))
        soc = Staff(vaxjo, ORG_VAXJO, unit_id(replica, ORG_VAXJO, SOC))

        # A written consent of the person, its copy at Växjö; the kontaktbegäran sent.
        person = synthetic_person(515_151)
        consent_rw = auth(ORG_REGION, beroende.unit, ["consent:read", "consent:write"])
        r = await region.post("consent", "/v1/consents", written_consent(person), consent_rw)
        assert r.status_code == 201, r.text
        consent_id = r.json()["id"]

        async def copy_at_vaxjo() -> bool:
            r = await vaxjo.get(
                "consent",
                f"/v1/consent-copies/{consent_id}",
                auth(ORG_VAXJO, soc.unit, ["consent:read"]),
            )
            return r.status_code == 200

        await eventually(copy_at_vaxjo, within=60, what="the consent copy at Växjö")
        body = kontaktbegaran(
            person,
            urgency="normal",
            resolve=None,
            recipients=[{"orgnr": ORG_VAXJO, "unit_id": soc.unit}],
        )
        r = await beroende.post("/v1/referrals", body)
        assert r.status_code == 201, r.text
        referral_id, task_id = r.json()["id"], r.json()["recipients"][0]["task_id"]

        # The intake acknowledges it and asks instead of declining.
        await soc.wait_for("kontaktbegaran")
        await soc.step(task_id, to="acknowledged", case_reference="SOC-2026-0707")
        waiting = await soc.step(task_id, to="information_requested", question=QUESTION)
        assert waiting["allowed_transitions"] == ["declined"]
        assert waiting["komplettering"][0]["question"] == QUESTION

        # The clinic sees the question and its own day to answer by, and answers with a
        # text and a document.
        asked = await until(beroende, f"/v1/referrals/{referral_id}", "information_requested")
        assert asked["komplettering"][0]["question"] == QUESTION
        assert asked["information_by"] is not None
        upload = {
            "title": "Kontaktuppgifter avdelningen",
            "content_type": "text/plain",
            "content": base64.b64encode("Avdelning 12, sjuksköterska.\n".encode()).decode(),
        }
        r = await beroende.post("/v1/attachments", upload)
        assert r.status_code == 201, r.text
        document = r.json()["id"]
        r = await beroende.post(
            f"/v1/referrals/{referral_id}/recipients/{task_id}/information",
            {"text": ANSWER, "attachment_ids": [document]},
            **{"If-Match": f'"{asked["version"]}"', "Idempotency-Key": "komplettering-e2e"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acknowledged"

        # The intake holds the task again, with the answer and its document.
        held = await until(soc, f"/v1/incoming/{task_id}", "acknowledged")
        [round_] = held["komplettering"]
        assert (round_["question"], round_["answer"]) == (QUESTION, ANSWER)
        assert round_["attachment_ids"] == [document]

        async def document_there() -> bool:
            r = await soc.get(f"/v1/incoming/{task_id}")
            return [d["id"] for d in r.json()["documents"]] == [document]

        await eventually(document_there, within=60, what="the answer's document at Växjö")
        r = await soc.get(f"/v1/incoming/{task_id}/attachments/{document}")
        assert r.status_code == 200, r.text
        assert r.content == "Avdelning 12, sjuksköterska.\n".encode()

        # ... and goes on: accepted, then completed with its structured result.
        await soc.step(task_id, to="accepted")
        done = await soc.step(
            task_id, to="completed", outcome="Boendestöd beviljat från 14 december.", result=RESULT
        )
        assert done["result"] == {**RESULT, "text": None}
        seen = await until(beroende, f"/v1/referrals/{referral_id}", "completed")
        assert seen["result"] == {**RESULT, "text": None}
        assert seen["outcome"] == "Boendestöd beviljat från 14 december."
        assert seen["komplettering"][0]["answer"] == ANSWER
        r = await soc.get(f"/v1/tasks/{task_id}/history")
        assert [h["to_status"] for h in r.json()] == [
            "delivered",
            "acknowledged",
            "information_requested",
            "acknowledged",
            "accepted",
            "completed",
        ]
