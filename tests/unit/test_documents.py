"""Attached documents (ADR 0023): a document's type is told from its bytes, a declared type
must agree, a title must be a file name, and the limits answer 413 and 415 naming the field
and the rule."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from pydantic import ValidationError

from services.referral.attachments import AttachmentTooLarge, UnsupportedAttachment, checked
from services.referral.schemas import AttachmentIn, ReferralCreate
from services.referral.spec import SPEC, body_limits
from shared.config import ReferralSettings
from shared.domain import documents
from shared.domain.documents import DocumentType, declared_type, sniff, title_problem
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_ATTACHMENT_CHUNK_V1,
    ReferralAttachmentChunkV1,
)
from tests.conftest import ORG_REGION, ORG_VAXJO, make_settings
from tests.helpers.signed import opened, signed

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 13
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 8 + b"\xff\xd9"
TEXT = "Läkemedelslista:\tAlvedon 500 mg vid behov.\r\n\f".encode()


class TestTheTypeIsToldFromTheBytes:
    @pytest.mark.parametrize(
        ("data", "kind"),
        [
            (PDF, DocumentType.PDF),
            (PNG, DocumentType.PNG),
            (JPEG, DocumentType.JPEG),
            (TEXT, DocumentType.TEXT),
        ],
    )
    def test_each_kind_by_its_signature(self, data: bytes, kind: DocumentType) -> None:
        assert sniff(data) is kind

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"MZ\x90\x00\x03\x00",  # a Windows executable
            b"PK\x03\x04zip",  # a zip (or an office document)
            b"GIF89a\x01\x00",  # a GIF
            b"text with a NUL\x00 inside",
            b"\x1b[31mANSI escape\x1b[0m",
            b"\xff\xfeL\x00a\x00",  # UTF-16
            "Latin-1 på svenska".encode("latin-1"),
            b"\x89PNG\r\n",  # a truncated signature
            b"\xff\xd8",  # a truncated JPEG marker
        ],
    )
    def test_anything_else_is_no_document(self, data: bytes) -> None:
        assert sniff(data) is None

    def test_the_signature_starts_the_document(self) -> None:
        assert sniff(b"%PDF- is how a PDF starts") is DocumentType.PDF
        assert sniff(b" %PDF-1.4") is DocumentType.TEXT  # text that mentions one

    @pytest.mark.parametrize(
        ("value", "kind"),
        [
            ("application/pdf", DocumentType.PDF),
            ("Application/PDF", DocumentType.PDF),
            ("image/png", DocumentType.PNG),
            ("image/jpeg", DocumentType.JPEG),
            ("text/plain", DocumentType.TEXT),
            ("text/plain; charset=utf-8", DocumentType.TEXT),
            ('text/plain;charset="UTF-8"', DocumentType.TEXT),
            ("text/plain; charset=iso-8859-1", None),
            ("application/pdf; name=x", None),
            ("image/jpg", None),
            ("text/html", None),
            ("application/octet-stream", None),
        ],
    )
    def test_a_declared_type(self, value: str, kind: DocumentType | None) -> None:
        assert declared_type(value) is kind


class TestTitles:
    @pytest.mark.parametrize(
        "title", ["Epikris 2026-11-20.pdf", "Läkemedelslista", "a", "Remiss (kopia) #2.txt"]
    )
    def test_file_names_are_titles(self, title: str) -> None:
        assert title_problem(title) is None
        assert AttachmentIn(title=title, content_type="text/plain", content="aGVq").title == title

    @pytest.mark.parametrize(
        ("title", "rule"),
        [
            ("", "title_length"),
            ("x" * 201, "title_length"),
            ("../../etc/passwd", "title_path_separator"),
            ("C:\\Windows\\x.pdf", "title_path_separator"),
            ("rad\nbrytning", "title_control_character"),
            ("tab\there", "title_control_character"),
            ("faktura\u202efdp.exe", "title_control_character"),  # right-to-left override
            ("noll\u200bbredd", "title_control_character"),  # zero-width space
            (".", "title_not_a_name"),
            ("..", "title_not_a_name"),
            (" Epikris", "title_not_a_name"),
        ],
    )
    def test_what_no_file_name_may_be(self, title: str, rule: str) -> None:
        assert title_problem(title) == rule
        with pytest.raises(ValidationError) as refused:
            AttachmentIn(title=title, content_type="text/plain", content="aGVq")
        assert [e["loc"] for e in refused.value.errors()] == [("title",)]
        assert title not in str(refused.value) or not title.strip()  # never echoed

    def test_the_download_name_ends_in_the_type_s_extension(self) -> None:
        assert documents.file_name("Epikris", DocumentType.PDF) == "Epikris.pdf"
        assert documents.file_name("Epikris.PDF", DocumentType.PDF) == "Epikris.PDF"
        assert documents.file_name("Röntgen.jpeg", DocumentType.JPEG) == "Röntgen.jpeg"
        assert documents.file_name("sida.html", DocumentType.TEXT) == "sida.html.txt"

    def test_the_disposition_is_ascii_with_the_full_name_encoded(self) -> None:
        header = documents.content_disposition('Remiss "Åsa"; v2', DocumentType.PDF)
        assert header.isascii()
        assert header.startswith('attachment; filename="Remiss __sa__ v2.pdf"; ')
        assert header.endswith("filename*=UTF-8''Remiss%20%22%C3%85sa%22%3B%20v2.pdf")


def upload(data: bytes, content_type: str, title: str = "Dokument") -> AttachmentIn:
    return AttachmentIn(
        title=title, content_type=content_type, content=base64.b64encode(data).decode()
    )


class TestTheLimitsOfAnUpload:
    settings = ReferralSettings(attachment_max_bytes=2048, attachment_max_referral_bytes=4096)

    def test_a_document_within_the_limit_passes_with_its_type(self) -> None:
        kind, data = checked(self.settings, upload(PDF, "application/pdf"))
        assert (kind, data) == (DocumentType.PDF, PDF)

    def test_one_byte_over_the_limit_is_413_naming_the_field_and_rule(self) -> None:
        assert checked(self.settings, upload(b"a" * 2048, "text/plain"))[1] == b"a" * 2048
        with pytest.raises(AttachmentTooLarge) as refused:
            checked(self.settings, upload(b"a" * 2049, "text/plain"))
        assert refused.value.status == 413
        assert [(e.field, e.rule) for e in refused.value.errors or []] == [
            ("content", "max_document_bytes")
        ]

    @pytest.mark.parametrize(
        ("data", "declared", "field", "rule"),
        [
            (PDF, "application/zip", "content_type", "type_not_allowed"),
            (PDF, "text/html", "content_type", "type_not_allowed"),
            (b"MZ\x90\x00", "application/pdf", "content", "content_not_allowed"),
            (b"\xff\xfe\x00\x00", "text/plain", "content", "content_not_allowed"),
            (PNG, "application/pdf", "content_type", "type_mismatch"),
            (TEXT, "image/jpeg", "content_type", "type_mismatch"),
            (PDF, "text/plain", "content_type", "type_mismatch"),
        ],
    )
    def test_a_refused_type_is_415_naming_the_field_and_rule(
        self, data: bytes, declared: str, field: str, rule: str
    ) -> None:
        with pytest.raises(UnsupportedAttachment) as refused:
            checked(self.settings, upload(data, declared))
        assert refused.value.status == 415
        assert [(e.field, e.rule) for e in refused.value.errors or []] == [(field, rule)]

    def test_content_must_be_strict_base64(self) -> None:
        for bad in ("aGVq\n", "aGV", "a GVq", "%%%%"):
            with pytest.raises(ValidationError):
                AttachmentIn(title="x", content_type="text/plain", content=bad)

    def test_a_referral_names_each_upload_once(self) -> None:
        body = {
            "kind": "kontaktbegaran",
            "children_in_household": "no",
            "person": {"personnummer": "19121212-1212"},
            "needs": ["boendestod"],
            "recipients": [{"orgnr": ORG_VAXJO, "unit_id": "vx-soc"}],
            "kontaktbegaran": {"kommunkod": "0780"},
        }
        assert ReferralCreate.model_validate({**body, "attachment_ids": ["a", "b"]})
        with pytest.raises(ValidationError) as refused:
            ReferralCreate.model_validate({**body, "attachment_ids": ["a", "a"]})
        assert refused.value.errors()[0]["type"] == "unique"

    def test_the_settings_keep_one_document_within_a_referral(self) -> None:
        with pytest.raises(ValidationError):
            ReferralSettings(attachment_max_bytes=4096, attachment_max_referral_bytes=2048)
        with pytest.raises(ValidationError):
            ReferralSettings(attachment_max_bytes=65 * documents.MIB)
        with pytest.raises(ValidationError):
            ReferralSettings(attachment_chunk_bytes=600 * documents.KIB)

    def test_the_upload_s_body_limit_follows_the_largest_document(self) -> None:
        settings = make_settings(service="referral")
        largest = settings.referral.attachment_max_bytes
        limit = body_limits(settings)["POST /v1/attachments"]
        as_json = len(upload(b"a" * largest, "text/plain").model_dump_json())
        assert as_json < limit  # a document at the limit reaches the operation
        named = settings.model_copy(
            update={"http": settings.http.model_copy(update={"body_limits": {}})}
        )
        assert SPEC.body_limits_of(named)["POST /v1/attachments"] == limit


class TestChunks:
    def test_a_document_in_chunks_and_back(self) -> None:
        data = bytes(range(256)) * 1000
        pieces = list(documents.chunks(data, 16 * 1024))
        assert len(pieces) == documents.chunk_count(len(data), 16 * 1024) == 16
        assert b"".join(pieces) == data
        assert documents.chunk_count(1, 16 * 1024) == 1

    def chunk(self, **over: object) -> dict[str, object]:
        data = b"%PDF-1.7 hello"
        return {
            "task_id": "t-1",
            "referral_id": "r-1",
            "attachment_id": "a-1",
            "sender_orgnr": ORG_REGION,
            "recipient_orgnr": ORG_VAXJO,
            "index": 0,
            "count": 1,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": "application/pdf",
            "title": "Epikris",
            "data": base64.b64encode(data).decode(),
            "sent_at": "2026-12-07T10:00:00+00:00",
            **over,
        }

    def test_a_valid_chunk(self) -> None:
        assert ReferralAttachmentChunkV1.model_validate(self.chunk()).chunk().startswith(b"%PDF")

    @pytest.mark.parametrize(
        "over",
        [
            {"index": 1},  # not below count
            {"content_type": "text/html"},
            {"title": "../x"},
            {"title": "a\u202eb"},
            {"data": "not base64!"},
            {"data": "A" * (documents.MAX_CHUNK_TEXT + 4)},
            {"sha256": "ABC"},
            {"size": documents.MAX_DOCUMENT_BYTES + 1},
        ],
    )
    def test_a_chunk_that_says_what_no_sender_may_is_invalid(self, over: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            ReferralAttachmentChunkV1.model_validate(self.chunk(**over))

    def test_the_largest_chunk_sealed_stays_under_a_record_and_opens_at_its_recipient(
        self,
    ) -> None:
        biggest = base64.b64encode(os.urandom(documents.MAX_CHUNK_BYTES)).decode()
        payload = ReferralAttachmentChunkV1.model_validate(self.chunk(data=biggest))
        event = CloudEvent(
            source="urn:vardkedja:2321000065:referral",
            type=REFERRAL_ATTACHMENT_CHUNK_V1,
            subject="t-1",
            partitionkey="t-1",
            data=payload.model_dump(mode="json"),
        )
        topic = topics.inbound(ORG_VAXJO)
        record = signed(event, topic)
        assert len(record.value or b"") < 1_000_000  # Kafka's default largest record
        back = opened(topic, record.key, record.value, record.headers)
        assert ReferralAttachmentChunkV1.model_validate(back.data).chunk() == payload.chunk()
