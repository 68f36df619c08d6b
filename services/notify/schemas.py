"""API contracts of the notify service."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from services.notify.content import Kind
from shared.config import NotifyRule
from shared.domain.contact import FunctionalEmail
from shared.web.fields import JsonBool, request_config

UNIT_ID = r"^[A-Za-z0-9._:-]{1,64}$"


class NotificationOut(BaseModel):
    """An item of a unit's (or role's) inbox: what happened, to what, by when, and a link.
    Ids, kinds and deadlines only — never personal data."""

    id: str
    kind: Kind
    title: str = Field(description="a fixed Swedish template filled with the fields below")
    subject_type: str = Field(description="referral | plan | consent | unit")
    subject_id: str
    unit_id: str | None = None
    referral_kind: str | None = None
    urgency: str | None = None
    status: str | None = None
    deadline: str | None = None
    due_at: dt.datetime | None = None
    counterpart_orgnr: str | None = Field(None, description="the other member, if any")
    covers: list[str] | None = Field(
        None,
        description="consent.narrowed: the kinds of referral the consent still covers",
    )
    recipient_kind: str = Field(description="unit | role")
    recipient: str
    created_at: dt.datetime
    read_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    link: str


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    unread: int = Field(description="unread notifications in this inbox")
    next_cursor: str | None = None


class AttemptOut(BaseModel):
    """One attempt of a delivery."""

    attempt: int
    started_at: dt.datetime
    duration_ms: int
    outcome: str = Field(
        description="ok | http_error | timeout | connect_error | refused_address | "
        "smtp_error | gone | error"
    )
    status_code: int | None = None
    error_type: str | None = None


class DeliveryOut(BaseModel):
    """One channel's delivery of a notification; ``id`` is the webhook-id / Message-ID."""

    id: str
    notification_id: str
    channel: str = Field(description="inbox | webhook | email")
    target: str = Field(description="subscription id, functional mailbox, or inbox")
    status: str = Field(description="pending | delivered | dead | skipped")
    attempts: int
    last_status_code: int | None = None
    last_outcome: str | None = None
    next_attempt_at: dt.datetime | None = None
    created_at: dt.datetime
    delivered_at: dt.datetime | None = None
    dead_at: dt.datetime | None = None
    redeliveries: int
    log: list[AttemptOut] = Field(default_factory=list)


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None


_SUBSCRIPTION_CONFIG = request_config(
    {
        "unit_id": "vaxjo-soc-mottagning",
        "url": "https://treserva.vaxjo.se/hooks/vardkedja",
        "event_types": ["referral.received", "deadline.overdue"],
    },
    {
        "unit_id": "vaxjo-soc-mottagning",
        "url": "https://treserva.vaxjo.se/hooks/fhir",
        "event_types": ["referral.status_changed"],
        "format": "fhir-backport-id-only",
        "fhir_base_url": "https://fhir.vaxjo.se/fhir/R4",
        "heartbeat_period_s": 3600,
    },
)
# A FHIR subscription names the facade's base and a task's status change only: in the
# schema too.
_SUBSCRIPTION_CONFIG["json_schema_extra"] = {
    **dict(_SUBSCRIPTION_CONFIG.get("json_schema_extra") or {}),  # type: ignore[arg-type]
    "if": {
        "properties": {"format": {"const": "fhir-backport-id-only"}},
        "required": ["format"],
    },
    "then": {
        "properties": {
            "fhir_base_url": {"type": "string"},
            "event_types": {"items": {"const": "referral.status_changed"}},
        },
        "required": ["fhir_base_url"],
    },
}


class SubscriptionCreate(BaseModel):
    """A webhook endpoint of a case system or EHR."""

    model_config = _SUBSCRIPTION_CONFIG

    unit_id: str | None = Field(
        None,
        pattern=UNIT_ID,
        description="the unit; omit for the whole member (admins only), or for a "
        "fhir-backport-id-only one the token's unit",
    )
    url: str = Field(min_length=8, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=20)
    secret: str | None = Field(
        None,
        max_length=200,
        description="`whsec_` + base64 of 24-64 bytes; omit to have one generated",
    )
    format: Literal["vardkedja", "fhir-backport-id-only"] = Field(
        "vardkedja",
        description="the body: `vardkedja` (notify's JSON) or `fhir-backport-id-only` (a FHIR "
        "Subscriptions R5 Backport notification Bundle, id-only: a unit's "
        "`referral.status_changed` only, with a handshake on creation)",
    )
    fhir_base_url: str | None = Field(
        None,
        min_length=8,
        max_length=500,
        pattern=r"^https?://[^?#\s]+$",
        description="fhir-backport-id-only: the member's FHIR facade base (full references)",
    )
    heartbeat_period_s: int | None = Field(
        None, ge=10, le=86400, description="fhir-backport-id-only: a heartbeat after this quiet"
    )


class SubscriptionUpdate(BaseModel):
    """A change to a subscription (any subset)."""

    model_config = request_config({"enabled": False})

    url: str | None = Field(None, min_length=8, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=20)
    enabled: JsonBool | None = None


class SecretRotation(BaseModel):
    """A new signing secret (omit to have one generated)."""

    model_config = request_config({})

    secret: str | None = Field(None, max_length=200)


class SubscriptionOut(BaseModel):
    id: str
    unit_id: str | None
    url: str
    event_types: list[str]
    enabled: bool
    version: int
    format: str = Field(description="vardkedja | fhir-backport-id-only")
    fhir_status: str | None = Field(
        None, description="fhir-backport-id-only: requested | active | error (the handshake)"
    )
    fhir_base_url: str | None = None
    heartbeat_period_s: int | None = None
    events_since_start: int = Field(0, description="event notifications sent so far (FHIR)")
    previous_secret_until: dt.datetime | None = Field(
        None, description="until then the previous secret signs too (rotation)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class SubscriptionWithSecret(SubscriptionOut):
    """Returned once, on creation and rotation: keep the secret to verify signatures."""

    secret: str


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    next_cursor: str | None = None


class UnitChannelUpdate(BaseModel):
    """The unit's functional mailbox (overrides the directory's) and whether it gets e-mail."""

    model_config = request_config(
        {"email": "socialtjanst.mottagning@vaxjo.se", "email_enabled": True}
    )

    email: FunctionalEmail | None = None
    email_enabled: JsonBool = True


class UnitChannelOut(BaseModel):
    unit_id: str
    name: str | None = None
    kind: str | None = None
    directory_email: str | None = Field(None, description="from the member's directory")
    email: str | None = Field(None, description="the admin's override")
    email_enabled: bool
    mailbox: str | None = Field(None, description="where e-mail goes")


class RulesOut(BaseModel):
    """The rules table in force (``VK_NOTIFY__RULES``) and the notification kinds."""

    rules: list[NotifyRule]
    kinds: list[str]
