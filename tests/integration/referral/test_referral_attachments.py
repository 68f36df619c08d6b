"""Documents attached to a referral between two members over the real broker (ADR 0023):
the sending unit uploads a document, sends it with a referral, and it crosses in sealed
chunks on the receiver's inbound topic; the receiver puts it together, checks it again and
keeps it for the receiving unit alone, and every read is audited. Limits answer 413 and a
refused type 415, with nothing stored; a piece from the wrong member, or one that does not
add up, is dead-lettered and nothing is kept; the documents go with the task's retention."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from services.referral import attachments
from services.referral.models import (
    Attachment,
    AttachmentChunk,
    Incoming,
    ReceivedAttachment,
    Referral,
)
from shared.data.work import Work
from shared.domain import documents
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_ATTACHMENT_CHUNK_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    REFERRAL_SENT_V1,
    ReferralAttachmentChunkV1,
)
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.helpers.signed import outbox_data, signed
from tests.integration.test_outbox_inbox import produce_raw

from .conftest import REGION_PORT, RW, VAXJO_BOENDE, VAXJO_SOC, Member, Pair, auth
from .test_referral_flow import (
    RECEIVER,
    SENDER,
    kontaktbegaran,
    recipient_status,
    step,
)
from .test_referral_order import hold, records, with_copy, withdraw, withdraw_consent

OTHER_AT_VAXJO = auth(ORG_VAXJO, VAXJO_BOENDE, RW)
OTHER_AT_REGION = auth(ORG_REGION, REGION_PORT, RW)


def pdf(size: int) -> bytes:
    """A document that is a PDF by its bytes, of ``size`` bytes."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    return head + os.urandom(size - len(head))


async def upload(
    member: Member,
    data: bytes,
    content_type: str = "application/pdf",
    title: str = "Epikris 2026-11-20",
    headers: dict[str, str] = SENDER,
) -> httpx.Response:
    body = {
        "title": title,
        "content_type": content_type,
        "content": base64.b64encode(data).decode(),
    }
    async with member.referral() as c:
        return await c.post("/v1/attachments", json=body, headers=headers)


async def uploaded(member: Member, data: bytes, **more: Any) -> str:
    r = await upload(member, data, **more)
    assert r.status_code == 201, r.text
    attachment_id: str = r.json()["id"]
    return attachment_id


async def send_with(member: Member, person: str, ids: list[str]) -> dict[str, Any]:
    async with member.referral() as c:
        r = await c.post(
            "/v1/referrals", json=kontaktbegaran(person, attachment_ids=ids), headers=SENDER
        )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def task_documents(
    member: Member, task_id: str, headers: dict[str, str] = RECEIVER
) -> list[dict[str, Any]]:
    async with member.referral() as c:
        r = await c.get(f"/v1/incoming/{task_id}", headers=headers)
    assert r.status_code == 200, r.text
    docs: list[dict[str, Any]] = r.json()["documents"]
    return docs


async def arrived(member: Member, task_id: str, n: int = 1) -> list[dict[str, Any]]:
    """The task's documents at the receiver once ``n`` are there."""
    found: list[dict[str, Any]] = []

    async def there() -> bool:
        async with member.referral_db.sessionmaker() as s:
            if await s.get(Incoming, task_id) is None:
                return False
        found[:] = await task_documents(member, task_id)
        return len(found) >= n

    await eventually(there, within=30, what=f"{n} documents at the receiver")
    return found


async def get(member: Member, path: str, headers: dict[str, str]) -> httpx.Response:
    async with member.referral() as c:
        return await c.get(path, headers=headers)


async def rows(member: Member, model: Any, *where: Any) -> int:
    async with member.referral_db.sessionmaker() as s:
        stmt = select(func.count()).select_from(model)
        if where:
            stmt = stmt.where(*where)
        return int(await s.scalar(stmt) or 0)


async def outbox_size(member: Member) -> int:
    return await rows(member, member.referral_app.state.ctx.spec.infra.outbox)


async def audit_of(member: Member, action: str) -> list[dict[str, Any]]:
    audit = member.referral_app.state.ctx.spec.infra.audit
    async with member.referral_db.sessionmaker() as s:
        found = (await s.execute(select(audit).where(audit.c.action == action))).all()
    return [dict(r._mapping) for r in found]


async def documents_told(member: Member) -> list[dict[str, Any]]:
    """What the member's referral service told its notify of documents added later."""
    ob = member.referral_app.state.ctx.spec.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        found = (
            await s.execute(select(ob).where(ob.c.event_type == REFERRAL_DOCUMENT_ADDED_V1))
        ).all()
    return [{k: v for k, v in outbox_data(r).items() if k != "at"} for r in found]


async def dead_letters(member: Member) -> list[dict[str, Any]]:
    table = member.referral_app.state.ctx.spec.infra.dead_letter
    async with member.referral_db.sessionmaker() as s:
        found = (await s.execute(select(table).order_by(table.c.id))).all()
    return [dict(r._mapping) for r in found]


def limits(member: Member, **values: int) -> None:
    """This member's referral service takes documents within ``values`` from now on."""
    ctx = member.referral_app.state.ctx
    referral = ctx.settings.referral.model_copy(update=values)
    ctx.settings = ctx.settings.model_copy(update={"referral": referral})


async def pruned(member: Member, at: dt.datetime) -> int:
    """The worker's pruning of documents, run at ``at``."""
    ctx = member.referral_app.state.ctx
    async with ctx.db.transaction() as session:
        return await attachments.prune(Work(session, ctx.outbox, ctx.settings, now=at))


class TestADocumentGoesWithItsReferral:
    async def test_the_receiving_unit_downloads_the_same_bytes_and_no_other_unit_can(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        data = pdf(40_000)
        r = await upload(region, data, title="Epikris från avd 12")
        assert r.status_code == 201, r.text
        draft = r.json()
        assert (draft["content_type"], draft["size"]) == ("application/pdf", len(data))
        assert draft["sha256"] == hashlib.sha256(data).hexdigest()
        hold_until = dt.datetime.fromisoformat(draft["hold_until"])
        assert (
            dt.timedelta(hours=23) < hold_until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
        )

        sent = await send_with(region, person, [draft["id"]])
        task_id = sent["recipients"][0]["task_id"]
        [listed] = sent["documents"]
        assert listed["href"] == f"/v1/referrals/{sent['id']}/attachments/{draft['id']}"

        [doc] = await arrived(vaxjo, task_id)
        assert {k: doc[k] for k in ("id", "title", "content_type", "size", "sha256")} == {
            "id": draft["id"],
            "title": "Epikris från avd 12",
            "content_type": "application/pdf",
            "size": len(data),
            "sha256": draft["sha256"],
        }
        got = await get(vaxjo, doc["href"], RECEIVER)
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"] == (
            'attachment; filename="Epikris fr_n avd 12.pdf"; '
            "filename*=UTF-8''Epikris%20fr%C3%A5n%20avd%2012.pdf"
        )
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["cache-control"] == "no-store"
        # Nothing waits once the document is whole; sent with the referral, it is told
        # with the referral (nothing of its own to notify).
        assert await rows(vaxjo, AttachmentChunk) == 0
        assert await documents_told(vaxjo) == []

        # Another unit of the kommun: as if there were no such task, or document.
        problem(await get(vaxjo, doc["href"], OTHER_AT_VAXJO), 404)
        problem(await get(vaxjo, f"/v1/incoming/{task_id}", OTHER_AT_VAXJO), 404)
        missing = f"/v1/incoming/{task_id}/attachments/{uuid.uuid4()}"
        problem(await get(vaxjo, missing, RECEIVER), 404, "attachment-not-found")

        # Audited at the kommun: the unit's download names the person and the document.
        [read] = await audit_of(vaxjo, "incoming.attachment_download")
        assert (read["actor_org"], read["actor_unit"], read["person_id"]) == (
            ORG_VAXJO,
            VAXJO_SOC,
            person.replace("-", ""),
        )
        assert (read["resource_type"], read["resource_id"], read["purpose"], read["outcome"]) == (
            "attachment",
            draft["id"],
            "kontaktbegaran",
            "allowed",
        )

        # The sending unit reads its own copy; another unit of the region cannot.
        own = await get(region, listed["href"], SENDER)
        assert own.status_code == 200
        assert own.content == data
        problem(await get(region, listed["href"], OTHER_AT_REGION), 404)
        async with region.referral() as c:
            again = await c.get(f"/v1/referrals/{sent['id']}", headers=SENDER)
        assert [d["id"] for d in again.json()["documents"]] == [draft["id"]]
        assert [r["action"] for r in await audit_of(region, "attachment.upload")] == [
            "attachment.upload"
        ]
        assert len(await audit_of(region, "referral.attachment_download")) == 1

        # An upload goes with one referral: naming it again is naming nothing.
        async with region.referral() as c:
            reused = await c.post(
                "/v1/referrals",
                json=kontaktbegaran(person, attachment_ids=[draft["id"]]),
                headers=SENDER,
            )
        assert field_rules(problem(reused, 422)) == {"attachment_ids.0": "unknown_attachment"}

    async def test_a_document_larger_than_one_chunk_arrives_whole(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        chunk = region.referral_app.state.ctx.settings.referral.attachment_chunk_bytes
        data = b"\x89PNG\r\n\x1a\n" + os.urandom(2 * chunk + 1000)  # three chunks
        attachment_id = await uploaded(region, data, content_type="image/png", title="Sår.png")
        sent = await send_with(region, person, [attachment_id])
        task_id = sent["recipients"][0]["task_id"]

        pieces = await records(
            region.referral_db, "referral", topics.inbound(ORG_VAXJO), REFERRAL_ATTACHMENT_CHUNK_V1
        )
        assert [p.key for p in pieces] == [task_id.encode()] * 3
        assert max(len(p.value or b"") for p in pieces) < 1_000_000  # sealed, under a record

        [doc] = await arrived(vaxjo, task_id)
        assert (doc["size"], doc["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        got = await get(vaxjo, doc["href"], RECEIVER)
        assert got.content == data
        assert got.headers["content-type"] == "image/png"
        assert await rows(vaxjo, AttachmentChunk) == 0

    async def test_a_forward_carries_the_documents_on_to_the_next_unit(self, members: Pair) -> None:
        """The intake forwards a referral with two documents to the boendestöd unit: the
        new task holds the same bytes (the intake's copies, sent by its audited forward),
        and only boendestöd downloads them there."""
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        epikris, lista = pdf(300_000), "Läkemedelslista: inga.\n".encode()
        ids = [
            await uploaded(region, epikris, title="Epikris"),
            await uploaded(region, lista, content_type="text/plain", title="Läkemedelslista"),
        ]
        task_id = (await send_with(region, person, ids))["recipients"][0]["task_id"]
        await arrived(vaxjo, task_id, 2)
        await step(vaxjo, task_id, RECEIVER, to="acknowledged")
        r = await step(
            vaxjo,
            task_id,
            RECEIVER,
            to="forwarded",
            forward_to={"orgnr": ORG_VAXJO, "unit_id": VAXJO_BOENDE},
        )
        assert r.status_code == 200, r.text

        found: list[dict[str, Any]] = []

        async def at_boende() -> bool:
            items = (await get(vaxjo, "/v1/incoming", OTHER_AT_VAXJO)).json()["items"]
            if len(items) != 1:
                return False
            found[:] = await task_documents(vaxjo, items[0]["task_id"], OTHER_AT_VAXJO)
            return len(found) == 2

        await eventually(at_boende, within=30, what="both documents at boendestöd")
        assert sorted((d["title"], d["sha256"]) for d in found) == [
            ("Epikris", hashlib.sha256(epikris).hexdigest()),
            ("Läkemedelslista", hashlib.sha256(lista).hexdigest()),
        ]
        by_title = {"Epikris": epikris, "Läkemedelslista": lista}
        for doc in found:  # (in the order they were whole at the receiver)
            data = by_title[doc["title"]]
            got = await get(vaxjo, doc["href"], OTHER_AT_VAXJO)
            assert (got.status_code, got.content) == (200, data)
            problem(await get(vaxjo, doc["href"], RECEIVER), 404)  # the intake's is its own
        # The forwarded task keeps its own copies; the forward, audited, sent the others.
        assert len(await task_documents(vaxjo, task_id)) == 2
        forwarded = await audit_of(vaxjo, "incoming.forwarded")
        assert [(a["actor_unit"], a["resource_id"]) for a in forwarded] == [(VAXJO_SOC, task_id)]


class TestLimitsAndTypes:
    async def test_over_a_limit_is_413_and_a_refused_type_415_with_nothing_stored(
        self, members: Pair
    ) -> None:
        region = members.region
        person, _ = await with_copy(members)
        limits(
            region,
            attachment_max_bytes=4096,
            attachment_max_referral_bytes=8192,
            attachment_max_count=3,
        )
        before = (await rows(region, Attachment), await outbox_size(region))

        too_big = problem(await upload(region, pdf(4097)), 413, "attachment-too-large")
        assert field_rules(too_big) == {"content": "max_document_bytes"}
        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
        refused = [
            (png, "application/pdf", {"content_type": "type_mismatch"}),
            (pdf(100), "application/zip", {"content_type": "type_not_allowed"}),
            (b"MZ\x90\x00\x03", "application/pdf", {"content": "content_not_allowed"}),
            (b"text\x00with NUL", "text/plain", {"content": "content_not_allowed"}),
        ]
        for data, declared, rules in refused:
            body = problem(await upload(region, data, declared), 415, "unsupported-attachment-type")
            assert field_rules(body) == rules
            assert "Epikris" not in str(body)  # the title is not echoed
        assert (await rows(region, Attachment), await outbox_size(region)) == before

        # Within one referral: at most 3 documents, 8192 bytes together.
        ids = [await uploaded(region, pdf(3000)) for _ in range(4)]
        counted = (await rows(region, Referral), await outbox_size(region))
        async with region.referral() as c:
            many = await c.post(
                "/v1/referrals", json=kontaktbegaran(person, attachment_ids=ids), headers=SENDER
            )
            heavy = await c.post(
                "/v1/referrals",
                json=kontaktbegaran(person, attachment_ids=ids[:3]),
                headers=SENDER,
            )
        assert field_rules(problem(many, 413, "attachment-too-large")) == {
            "attachment_ids": "max_documents"
        }
        assert field_rules(problem(heavy, 413, "attachment-too-large")) == {
            "attachment_ids": "max_referral_bytes"
        }
        assert (await rows(region, Referral), await outbox_size(region)) == counted
        assert await rows(region, Attachment, Attachment.referral_id.is_not(None)) == 0

        # Another unit's upload is not the caller's to send.
        theirs = await uploaded(region, pdf(100), headers=OTHER_AT_REGION)
        async with region.referral() as c:
            r = await c.post(
                "/v1/referrals",
                json=kontaktbegaran(person, attachment_ids=[ids[0], theirs]),
                headers=SENDER,
            )
        assert field_rules(problem(r, 422)) == {"attachment_ids.1": "unknown_attachment"}


def chunk_event(
    sender: str, task_id: str, referral_id: str, data: bytes, **over: Any
) -> CloudEvent:
    """A piece of a document as ``sender``'s referral service would write it."""
    payload = ReferralAttachmentChunkV1(
        task_id=task_id,
        referral_id=referral_id,
        attachment_id=str(uuid.uuid4()),
        sender_orgnr=sender,
        recipient_orgnr=ORG_VAXJO,
        index=0,
        count=1,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="application/pdf",
        title="Förfalskad",
        data=documents.b64encode(data),
        sent_at=dt.datetime.now(dt.UTC),
    ).model_copy(update=over)
    return CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:referral",
        type=REFERRAL_ATTACHMENT_CHUNK_V1,
        subject=task_id,
        partitionkey=task_id,
        data=payload.model_dump(mode="json"),
    )


class TestYourUnitsUploads:
    async def test_listed_for_the_unit_alone_and_deleted_until_a_referral_takes_one(
        self, members: Pair
    ) -> None:
        region = members.region
        person, _ = await with_copy(members)
        wrong = await uploaded(region, pdf(5_000), title="Fel patients epikris")
        kept = await uploaded(
            region, "Vårdplan.\n".encode(), content_type="text/plain", title="Plan"
        )

        async def listed(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
            r = await get(region, "/v1/attachments", headers)
            assert r.status_code == 200, r.text
            return {d["id"]: d for d in r.json()["items"]}

        mine = await listed(SENDER)
        assert set(mine) == {wrong, kept}
        assert (mine[kept]["title"], mine[kept]["content_type"]) == ("Plan", "text/plain")
        assert "content" not in mine[kept]
        assert mine[kept]["hold_until"]
        assert await listed(OTHER_AT_REGION) == {}  # another unit's uploads are not its own

        # Another unit cannot delete it (as if there were none); the unit itself can.
        async with region.referral() as c:
            problem(await c.delete(f"/v1/attachments/{wrong}", headers=OTHER_AT_REGION), 404)
            r = await c.delete(f"/v1/attachments/{wrong}", headers=SENDER)
            assert r.status_code == 204, r.text
            problem(await c.delete(f"/v1/attachments/{wrong}", headers=SENDER), 404)
        assert set(await listed(SENDER)) == {kept}
        assert await rows(region, Attachment, Attachment.id == wrong) == 0
        # Naming the deleted upload in a referral names nothing.
        async with region.referral() as c:
            r = await c.post(
                "/v1/referrals", json=kontaktbegaran(person, attachment_ids=[wrong]), headers=SENDER
            )
        assert field_rules(problem(r, 422)) == {"attachment_ids.0": "unknown_attachment"}

        # Once a referral took it, it is the referral's: neither listed nor deleted.
        sent = await send_with(region, person, [kept])
        assert await listed(SENDER) == {}
        async with region.referral() as c:
            problem(await c.delete(f"/v1/attachments/{kept}", headers=SENDER), 409)
        view = (await get(region, f"/v1/referrals/{sent['id']}", SENDER)).json()
        assert [d["id"] for d in view["documents"]] == [kept]
        actions = [a["action"] for a in await audit_of(region, "attachment.delete")]
        assert actions == ["attachment.delete"]
        assert len(await audit_of(region, "attachment.list")) == 3  # two, then one


class TestHostilePieces:
    async def test_a_piece_from_the_wrong_member_or_that_does_not_add_up_is_rejected(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        sent = await send_with(region, person, [await uploaded(region, pdf(2000))])
        task_id, referral_id = sent["recipients"][0]["task_id"], sent["id"]
        await arrived(vaxjo, task_id)
        inbound = topics.inbound(ORG_VAXJO)
        forged = [
            # Alvesta, signing as itself, adds a document to the region's task.
            chunk_event(ORG_ALVESTA, task_id, referral_id, pdf(500)),
            # The region's own piece whose bytes are not what it says.
            chunk_event(ORG_REGION, task_id, referral_id, pdf(500), sha256="0" * 64),
            chunk_event(
                ORG_REGION, task_id, referral_id, b"plain text", content_type="application/pdf"
            ),
        ]
        await produce_raw(region.referral_app.state.settings.kafka.bootstrap_servers, [
            signed(event, inbound) for event in forged
        ])  # fmt: skip

        async def all_refused() -> bool:
            return len(await dead_letters(vaxjo)) == len(forged)

        await eventually(all_refused, within=30, what="every forged piece dead-lettered")
        reasons = {d["event_id"]: d["reason"] for d in await dead_letters(vaxjo)}
        assert [reasons[e.id] for e in forged] == [
            "sender_not_owner",
            "digest_mismatch",
            "type_mismatch",
        ]
        assert await rows(vaxjo, ReceivedAttachment) == 1  # only the genuine document
        assert await rows(vaxjo, AttachmentChunk, AttachmentChunk.size == 500) == 0
        assert len(await task_documents(vaxjo, task_id)) == 1

    async def test_pieces_before_their_referral_wait_for_it(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        at_vaxjo = await hold(vaxjo, "referral")
        chunk = region.referral_app.state.ctx.settings.referral.attachment_chunk_bytes
        data = pdf(chunk + 10)
        sent = await send_with(region, person, [await uploaded(region, data)])
        task_id = sent["recipients"][0]["task_id"]
        inbound = topics.inbound(ORG_VAXJO)
        [referral] = await records(region.referral_db, "referral", inbound, REFERRAL_SENT_V1)
        first, second = await records(
            region.referral_db, "referral", inbound, REFERRAL_ATTACHMENT_CHUNK_V1
        )

        # The pieces overtake the referral (and each other): they wait, unread.
        assert await at_vaxjo.handle(second) == "applied"
        assert await at_vaxjo.handle(first) == "applied"
        assert await rows(vaxjo, AttachmentChunk) == 2
        assert await rows(vaxjo, ReceivedAttachment) == 0
        assert await at_vaxjo.handle(referral) == "applied"
        [doc] = await task_documents(vaxjo, task_id)
        assert (await get(vaxjo, doc["href"], RECEIVER)).content == data
        assert await rows(vaxjo, AttachmentChunk) == 0


class TestRetention:
    async def test_a_copy_closed_for_an_ended_consent_drops_its_documents(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_copy(members)
        sent = await send_with(region, person, [await uploaded(region, pdf(3000))])
        task_id = sent["recipients"][0]["task_id"]
        [doc] = await arrived(vaxjo, task_id)
        await withdraw_consent(region, consent_id)

        async def cancelled() -> bool:
            async with vaxjo.referral_db.sessionmaker() as s:
                row = await s.get(Incoming, task_id)
            return row is not None and row.status == "cancelled"

        await eventually(cancelled, within=30, what="the copy closed at the receiver")
        assert await rows(vaxjo, ReceivedAttachment, ReceivedAttachment.task_id == task_id) == 0
        assert await task_documents(vaxjo, task_id) == []
        problem(await get(vaxjo, doc["href"], RECEIVER), 404, "attachment-not-found")
        # The sender's own record of what it sent stays (until its retention).
        assert await rows(region, Attachment, Attachment.referral_id == sent["id"]) == 1

    async def test_added_after_sending_to_open_tasks_and_gone_with_a_withdrawal(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        sent = await send_with(region, person, [])
        task_id = sent["recipients"][0]["task_id"]
        later = await uploaded(region, b"Kompletterande uppgifter.\n", content_type="text/plain")
        async with region.referral() as c:
            r = await c.post(
                f"/v1/referrals/{sent['id']}/attachments",
                json={"attachment_ids": [later]},
                headers=SENDER,
            )
            problem(
                await c.post(
                    f"/v1/referrals/{sent['id']}/attachments",
                    json={"attachment_ids": [later]},
                    headers=OTHER_AT_REGION,
                ),
                404,
            )
        assert r.status_code == 200, r.text
        assert (r.json()["sent_to"], [d["id"] for d in r.json()["documents"]]) == (
            [task_id],
            [later],
        )
        [doc] = await arrived(vaxjo, task_id)
        got = await get(vaxjo, doc["href"], RECEIVER)
        assert got.content == b"Kompletterande uppgifter.\n"
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        assert len(await audit_of(region, "referral.attachments_add")) == 1
        # Added after sending: the kommun's notify is told, with the type, never the title.
        assert await documents_told(vaxjo) == [
            {
                "referral_id": task_id,
                "kind": "kontaktbegaran",
                "unit_id": VAXJO_SOC,
                "sender_orgnr": ORG_REGION,
                "content_type": "text/plain",
            }
        ]

        # The withdrawal is read and sent once the receiver's "delivered" report is in: a
        # report landing between the read and the withdrawal moves the version (412).
        async def delivered() -> bool:
            return (await recipient_status(region, sent["id"]))["status"] == "delivered"

        await eventually(delivered, within=30, what="the receiver's delivered report")
        await withdraw(region, sent["id"], task_id)

        async def gone() -> bool:
            return await rows(vaxjo, ReceivedAttachment, ReceivedAttachment.task_id == task_id) == 0

        await eventually(gone, within=30, what="the documents gone with the withdrawal")
        # Every task is closed now: nothing more is added, and the upload stays a draft.
        another = await uploaded(region, pdf(100))
        async with region.referral() as c:
            closed = await c.post(
                f"/v1/referrals/{sent['id']}/attachments",
                json={"attachment_ids": [another]},
                headers=SENDER,
            )
        problem(closed, 409, "no-open-task")
        assert await rows(region, Attachment, Attachment.referral_id.is_(None)) == 1

    async def test_drafts_and_the_documents_of_final_tasks_are_pruned_in_time(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        await uploaded(region, pdf(100))  # never sent
        sent = await send_with(region, person, [await uploaded(region, pdf(100))])
        task_id = sent["recipients"][0]["task_id"]
        await arrived(vaxjo, task_id)
        assert (await step(vaxjo, task_id, RECEIVER, to="acknowledged")).status_code == 200
        r = await step(
            vaxjo,
            task_id,
            RECEIVER,
            to="declined",
            reason="Bor i annan kommun.",
            result={"decision": "referred_on"},
        )
        assert r.status_code == 200, r.text

        async def declined_at_region() -> bool:
            return (await recipient_status(region, sent["id"]))["status"] == "declined"

        await eventually(declined_at_region, within=30, what="the decline at the sender")
        now = dt.datetime.now(dt.UTC)
        assert await pruned(region, now + dt.timedelta(hours=1)) == 0
        assert await pruned(vaxjo, now + dt.timedelta(days=1)) == 0
        # The draft's hold has passed: it goes, the sent document stays.
        assert await pruned(region, now + dt.timedelta(days=2)) == 1
        assert await rows(region, Attachment) == 1
        days = region.referral_app.state.ctx.settings.referral.attachment_retention_days
        after = now + dt.timedelta(days=days + 1)
        assert await pruned(vaxjo, after) == 1
        assert await pruned(region, after) == 1
        assert await rows(vaxjo, ReceivedAttachment) == await rows(region, Attachment) == 0
