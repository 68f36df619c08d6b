"""What a notification may say, and how each channel renders it (data minimisation in code).

Every channel renders from :class:`NotificationData`, a closed model whose fields are ids,
kinds, units, statuses, deadlines and a link — each constrained by a pattern or a fixed
vocabulary, so a name, a personnummer or free text cannot get in. Titles and e-mail texts
are fixed Swedish templates filled with those fields (and the unit's name, which is
organisational data from the directory).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain.kinds import REFERRAL_KIND_LABELS, ReferralKind

ID = r"^[A-Za-z0-9._:-]{1,64}$"
UUID = r"^[0-9a-f-]{36}$"
ORGNR = r"^[0-9]{6}-[0-9]{4}$"
WORD = r"^[a-z_]{1,32}$"
STOCKHOLM = ZoneInfo("Europe/Stockholm")

Kind = Literal[
    "referral.received",
    "referral.status_changed",
    "referral.discharged",
    "referral.document_added",
    "deadline.reminder",
    "deadline.overdue",
    "deadline.escalated",
    "deadline.unanswered",
    "plan.action_assigned",
    "plan.action_started",
    "plan.action_ended",
    "plan.action_cancelled",
    "consent.ended",
    "consent.narrowed",
    "unit.review_due",
]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
SubjectType = Literal["referral", "plan", "consent", "unit"]

# Notification ids and delivery ids are derived from what they are of, so handling an event
# twice computes the same ids (and the receiver sees the same webhook-id).
_NAMESPACE = uuid.UUID("5b0f8a52-52f8-4d5e-9b7e-6a0c2c1f4e11")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def derived_id(*parts: str) -> str:
    """A stable UUID for ``parts`` (the same input always gives the same id).

    ``str(uuid.uuid5(_NAMESPACE, "\\x1f".join(parts)))`` exactly, without the UUID object
    (several per event: a third of the cost of planning one)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode(), usedforsecurity=False).digest()
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# A number standing on its own: not part of a longer run of letters and digits (a UUID's
# hex groups would otherwise give false alarms now and then).
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{6}|[0-9]{8})[-+]?[0-9]{4}(?![0-9A-Za-z])")
# The ids every service makes (shared.data.db.new_id). A UUID's first two groups are 8 and 4 hex
# digits joined by a hyphen, the very shape of YYYYMMDD-NNNN: about 1 random UUID in 1.5
# million has decimal digits there that form a valid personnummer or samordningsnummer.
# Such an id is still an id: no system uses a personnummer as a UUID by accident.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def looks_like_personnummer(text: str) -> bool:
    """Whether ``text`` holds a valid personnummer or samordningsnummer as a number of its
    own (``191212121212``, ``pnr-19121212-1212``; not digits inside a longer token, and
    never in a canonical UUID)."""
    from shared.identity.identifiers import IdentifierError, normalise_personnummer

    if _UUID.fullmatch(text):
        return False
    for match in _DIGIT_RUN.finditer(text):
        try:
            normalise_personnummer(match.group(0))
        except IdentifierError:
            continue
        return True
    return False


class Facts(BaseModel):
    """What an event or timer says that notify may repeat (closed; patterns on every text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    subject_type: SubjectType
    subject_id: str = Field(pattern=ID)
    unit_id: str | None = Field(None, pattern=ID)
    referral_kind: ReferralKind | None = None
    urgency: Literal["normal", "urgent", "acute"] | None = None
    status: str | None = Field(None, pattern=WORD)
    deadline: str | None = Field(None, pattern=WORD)
    due_at: dt.datetime | None = None
    counterpart_orgnr: str | None = Field(None, pattern=ORGNR)
    covers: tuple[ReferralKind, ...] | None = Field(
        None, description="the kinds of referral a narrowed consent still covers"
    )

    @model_validator(mode="after")
    def _no_personnummer_as_id(self) -> Facts:
        # An id is the one free-form text a notification repeats: refuse a person's number.
        for value in (self.subject_id, self.unit_id):
            if value is not None and looks_like_personnummer(value):
                raise ValueError("an id must not be a personnummer")
        return self


class NotificationData(Facts):
    """A notification as every channel shows it: the facts plus its id, recipient and link."""

    notification_id: str = Field(pattern=UUID)
    recipient_kind: Literal["unit", "role"]
    recipient: str = Field(pattern=ID)
    created_at: dt.datetime
    link: str = Field(pattern=r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?$")


class WebhookMessage(BaseModel):
    """The Standard Webhooks body: ``type``, ``timestamp`` and the notification's data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Kind
    timestamp: dt.datetime
    data: NotificationData


@dataclass(frozen=True)
class EmailContent:
    """A rendered e-mail: only a subject and a text from the templates below."""

    subject: str
    text: str


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")


def _what(data: Facts) -> str:
    if data.referral_kind is not None:
        return REFERRAL_KIND_LABELS[data.referral_kind]
    return {
        "plan": "Planerad insats",
        "consent": "Samtycke",
        "unit": "Uppgifter i katalogen",
        "referral": "Remiss",
    }[data.subject_type]


_TITLES: dict[str, str] = {
    "referral.received": "Ny {what} i inkorgen",
    "referral.status_changed": "{what}: ny status ({status})",
    "referral.discharged": "Personen har skrivits ut ({fate}): {what}",
    "referral.document_added": "Ny bilaga till {what} i inkorgen",
    "deadline.reminder": "Påminnelse: {what} ska hanteras senast {due}",
    "deadline.overdue": "Försenad: {what} skulle ha hanterats senast {due}",
    "deadline.escalated": "Eskalering: {what} är försenad sedan {due}",
    "deadline.unanswered": "Inget svar: {what} har inte besvarats av mottagaren senast {due}",
    "plan.action_assigned": "En planerad insats har lagts på er enhet",
    "plan.action_started": "En planerad insats har påbörjats",
    "plan.action_ended": "En planerad insats har avslutats ({status})",
    "plan.action_cancelled": "En planerad insats har ställts in",
    "consent.ended": "Ett samtycke gäller inte längre ({status})",
    "consent.narrowed": "Samtycket för {what} har ändrats ({fate}); det omfattar nu {covers}",
    "unit.review_due": "Enhetens uppgifter i katalogen behöver ses över",
}
# Titles of a deadline of its own kind: the SIP a sending unit owes (an HVB notification),
# and the sending unit's answer to a request for more information (komplettering).
_DEADLINE_TITLES: dict[tuple[str, str], str] = {
    ("deadline.reminder", "sip"): "Påminnelse: kalla till SIP senast {due} ({what})",
    ("deadline.overdue", "sip"): "Försenad: ingen SIP kallad senast {due} ({what})",
    ("deadline.escalated", "sip"): "Eskalering: ingen SIP kallad senast {due} ({what})",
    ("deadline.reminder", "information"): "Komplettering: {what} ska kompletteras senast {due}",
    ("deadline.overdue", "information"): (
        "Försenad komplettering: {what} skulle ha kompletterats senast {due}"
    ),
    ("deadline.escalated", "information"): (
        "Eskalering: {what} har inte kompletterats, försenad sedan {due}"
    ),
}
# What a narrowed consent meant for the task a notification is about; whether a discharge
# was the one planned.
_FATES = {
    "kept": "ärendet står kvar",
    "cancelled": "ärendet är inställt",
    "planned": "planerat",
    "unplanned": "oplanerat",
}


def _covers(data: Facts) -> str:
    kinds = data.covers or ()
    return ", ".join(REFERRAL_KIND_LABELS[k] for k in kinds) if kinds else "ingen remisstyp"


def title(data: Facts) -> str:
    """The notification's one-line title (a fixed template; no personal data)."""
    template = _DEADLINE_TITLES.get((data.kind, data.deadline or ""), _TITLES[data.kind])
    return template.format(
        what=_what(data),
        status=data.status or "",
        due=_when(data.due_at),
        fate=_FATES.get(data.status or "", data.status or ""),
        covers=_covers(data),
    )


def webhook_body(data: NotificationData) -> bytes:
    """The JSON body of the webhook for ``data``."""
    message = WebhookMessage(type=data.kind, timestamp=data.created_at, data=data)
    return message.model_dump_json(exclude_none=True).encode()


def email_content(data: NotificationData, *, unit_name: str | None) -> EmailContent:
    """The e-mail for ``data``: what arrived, in which inbox, the deadline and a link."""
    inbox = unit_name or data.recipient
    lines = [
        f"{title(data)}.",
        "",
        f"Inkorg: {inbox}",
    ]
    if data.due_at is not None:
        lines.append(f"Senast: {_when(data.due_at)}")
    if data.urgency in ("urgent", "acute"):
        lines.append("Brådskande: ja")
    lines += [
        f"Öppna: {data.link}",
        "",
        "Meddelandet innehåller inga personuppgifter. Logga in i vårdkedjan för att läsa ärendet.",
    ]
    return EmailContent(subject=f"vårdkedja: {title(data)}", text="\n".join(lines) + "\n")


def email_message(content: EmailContent, *, sender: str, to: str, delivery_id: str) -> EmailMessage:
    """The MIME message; its Message-ID is derived from the delivery id (one per delivery)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = content.subject
    message["Message-ID"] = f"<{delivery_id}@vardkedja.notify>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    return message
