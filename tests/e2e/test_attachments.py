"""Issue 22's attachments across processes (ADR 0023): Region Kronoberg and Växjö kommun each
run the four services, API and worker each a process of its own. Region's
Beroendemottagningen uploads a PDF and sends it with a kontaktbegäran to Växjö's
social-services intake; the document crosses in sealed chunks on Växjö's inbound topic,
Växjö's referral worker puts it together and checks it, and the intake downloads it
byte for byte. Another unit of Växjö is refused as if there were nothing, and the
person's audit extract at Växjö shows the intake's download."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import httpx
import pytest

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.e2e.test_referral_federation import (  # the fixture and helpers of the federation
    INTAKE,
    REFERRAL_RW,
    SENDER_UNIT,
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
from tests.helpers.harness import eventually
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e
__all__ = ["federation", "smtp"]

BOENDE = "Boendestöd Växjö, inriktning skadligt bruk och beroende"


def a_pdf(size: int) -> bytes:
    """A document that is a PDF by its bytes: larger than one chunk (256 KiB)."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    return head + os.urandom(size - len(head) - 6) + b"%%EOF\n"


async def test_a_pdf_sent_by_the_region_is_downloaded_whole_by_the_intake_only(
    federation: Federation,
) -> None:
    region_m, vaxjo_m = federation.members
    person = synthetic_person(22_001)
    document = a_pdf(600 * 1024)
    async with httpx.AsyncClient(timeout=30) as client:
        region, vaxjo = Site(client, region_m), Site(client, vaxjo_m)
        replica = await demo_units(federation, client)
        sender_unit = unit_id(replica, ORG_REGION, SENDER_UNIT)
        intake = unit_id(replica, ORG_VAXJO, INTAKE)
        bystander = unit_id(replica, ORG_VAXJO, BOENDE)
        sender = auth(ORG_REGION, sender_unit, REFERRAL_RW)
        receiver = auth(ORG_VAXJO, intake, REFERRAL_RW)

        r = await region.post(
            "consent",
            "/v1/consents",
            written_consent(person),
            auth(ORG_REGION, sender_unit, ["consent:read", "consent:write"]),
        )
        assert r.status_code == 201, r.text
        consent_id = r.json()["id"]

        async def copy_at_vaxjo() -> bool:
            r = await vaxjo.get(
                "consent",
                f"/v1/consent-copies/{consent_id}",
                auth(ORG_VAXJO, intake, ["consent:read"]),
            )
            return r.status_code == 200

        await eventually(copy_at_vaxjo, within=60, what="the consent copy at Växjö")

        # The sending unit uploads the PDF, then sends it with the referral.
        r = await region.post(
            "referral",
            "/v1/attachments",
            {
                "title": "Epikris beroendeavdelningen",
                "content_type": "application/pdf",
                "content": base64.b64encode(document).decode(),
            },
            sender,
        )
        assert r.status_code == 201, r.text
        attachment_id = r.json()["id"]
        r = await region.post(
            "referral",
            "/v1/referrals",
            kontaktbegaran(
                person,
                resolve=None,
                recipients=[{"orgnr": ORG_VAXJO, "unit_id": intake}],
                attachment_ids=[attachment_id],
            ),
            sender,
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["recipients"][0]["task_id"]
        href = f"/v1/incoming/{task_id}/attachments/{attachment_id}"

        documents: list[dict[str, Any]] = []

        async def arrived() -> bool:
            r = await vaxjo.get("referral", f"/v1/incoming/{task_id}", receiver)
            if r.status_code != 200:
                return False
            documents[:] = r.json()["documents"]
            return bool(documents)

        await eventually(arrived, within=90, what="the document in the intake's inbox")
        assert [(d["id"], d["href"], d["size"], d["sha256"]) for d in documents] == [
            (attachment_id, href, len(document), hashlib.sha256(document).hexdigest())
        ]

        got = await vaxjo.get("referral", href, receiver)
        assert got.status_code == 200, got.text
        assert got.content == document
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"].startswith(
            'attachment; filename="Epikris beroendeavdelningen.pdf"'
        )
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["cache-control"] == "no-store"

        # Another unit of the kommun: nothing there, as for any task it cannot see.
        other = auth(ORG_VAXJO, bystander, REFERRAL_RW)
        refused = await vaxjo.get("referral", href, other)
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/problem+json"
        assert b"%PDF" not in refused.content

        # The person's audit extract at Växjö shows the intake's download.
        async def audited() -> bool:
            r = await vaxjo.post(
                "consent",
                "/v1/persons/audit-extract",
                {"personnummer": person},
                auth(ORG_VAXJO, None, ["consent:person"]),
            )
            assert r.status_code == 200, r.text
            return any(
                (e["action"], e["actor_unit"], e["resource_id"])
                == ("incoming.attachment_download", intake, attachment_id)
                for e in r.json()["entries"]
            )

        await eventually(audited, within=60, what="the download in Växjö's audit extract")

        # A document added later reaches the task, and the intake is told by its notify:
        # of the task and the type, never the title or the person.
        r = await region.post(
            "referral",
            "/v1/attachments",
            {
                "title": "Läkemedelslista Anna",
                "content_type": "text/plain",
                "content": base64.b64encode("Inga läkemedel.\n".encode()).decode(),
            },
            sender,
        )
        assert r.status_code == 201, r.text
        later = r.json()["id"]
        referral_id = (await region.get("referral", "/v1/outgoing", sender)).json()["items"][0][
            "id"
        ]
        r = await region.post(
            "referral",
            f"/v1/referrals/{referral_id}/attachments",
            {"attachment_ids": [later]},
            sender,
        )
        assert r.status_code == 200, r.text
        told: list[dict[str, Any]] = []

        async def notified() -> bool:
            r = await vaxjo.get(
                "notify",
                f"/v1/units/{intake}/notifications",
                auth(ORG_VAXJO, intake, ["notify:read"]),
            )
            assert r.status_code == 200, r.text
            assert person not in r.text
            assert "Anna" not in r.text
            told[:] = [i for i in r.json()["items"] if i["kind"] == "referral.document_added"]
            return bool(told)

        await eventually(notified, within=60, what="the later document told to the intake")
        assert [(i["subject_id"], i["title"]) for i in told] == [
            (task_id, "Ny bilaga till Kontaktbegäran i inkorgen")
        ]
