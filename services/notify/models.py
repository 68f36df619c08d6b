"""Tables of the notify service.

``notification`` is a unit's (or a role's) inbox item; ``delivery`` is one channel's
delivery of it (inbox, webhook, e-mail) with ``delivery_attempt`` as its log;
``webhook_subscription`` holds the case systems' endpoints; ``unit_channel`` the units'
functional mailboxes and kinds; ``timer`` the persistent reminders and escalations.
Nothing here holds personal data: ids, kinds, units, deadlines and links only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.data.db import UTCDateTime, make_metadata, utcnow
from shared.data.infra import SeqType, define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)


class Notification(Base):
    """One notification to one recipient (a unit, or a role of the member)."""

    __tablename__ = "notification"
    __table_args__ = (
        # One event (or timer) gives one notification per rule and recipient, however often
        # it is handled.
        UniqueConstraint("origin_id", "rule_id", "recipient_kind", "recipient"),
        Index(None, "recipient_kind", "recipient", "seq"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    origin_id: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(255))
    rule_id: Mapped[str] = mapped_column(String(64))
    recipient_kind: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    referral_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    urgency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    deadline: Mapped[str | None] = mapped_column(String(32), nullable=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    counterpart_orgnr: Mapped[str | None] = mapped_column(String(11), nullable=True)
    # The kinds of referral a narrowed consent still covers (consent.narrowed only).
    covers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Indexed for the retention clean-up, which deletes by age.
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    read_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Delivery(Base):
    """One channel's delivery of one notification to one target; its id is the
    ``webhook-id`` / e-mail Message-ID, the same on every retry."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "target"),
        Index(None, "status", "next_attempt_at"),
        # Retention finds old handshakes and heartbeats without reading every delivery.
        Index(None, "fhir_type", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    # The subscription id (webhook), the mailbox (e-mail) or the inbox's recipient.
    target: Mapped[str] = mapped_column(String(320))
    # pending | delivered | dead | skipped
    status: Mapped[str] = mapped_column(String(16))
    # A FHIR subscription's notification (services/notify/fhir_backport.py): handshake |
    # heartbeat | event-notification; NULL for every other delivery. A handshake's or a
    # heartbeat's ``notification_id`` is no notification's: it is derived from the
    # subscription and the moment.
    fhir_type: Mapped[str | None] = mapped_column(String(24), nullable=True)
    # The event-notification's number among the subscription's events (eventNumber).
    fhir_event: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dead_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    redeliveries: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryAttempt(Base):
    """One attempt of a delivery: when, how long, what the receiver answered."""

    __tablename__ = "delivery_attempt"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(36), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    # ok | http_error | timeout | connect_error | refused_address | smtp_error
    outcome: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(100), nullable=True)


class WebhookSubscription(Base):
    """A case system's or EHR's endpoint for one unit (or, unit_id NULL, the whole member)."""

    __tablename__ = "webhook_subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(200))
    # During a rotation both secrets sign (Standard Webhooks' multiple signatures).
    previous_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the body is: ``vardkedja`` (notify's own JSON) or ``fhir-backport-id-only`` (a
    # FHIR Subscriptions R5 Backport notification Bundle, services/notify/fhir_backport.py).
    format: Mapped[str] = mapped_column(String(32), default="vardkedja", server_default="vardkedja")
    # FHIR subscriptions only: requested | active | error (the handshake's outcome).
    fhir_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    fhir_base_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    heartbeat_period_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    events_since_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the last handshake, heartbeat or event was queued (the heartbeat's clock).
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UnitChannel(Base):
    """What notify knows of one of its member's units: kind and functional mailbox, from the
    directory feed (``directory_*``) and the member admin's override."""

    __tablename__ = "unit_channel"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    directory_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    directory_version: Mapped[int] = mapped_column(Integer, default=0)
    # The unit's HSA-id from the directory: a token's unit claim may name the unit by it.
    hsa_id: Mapped[str | None] = mapped_column(String(31), nullable=True, index=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def mailbox(self) -> str | None:
        """The address to write to: the admin's override, else the directory's."""
        return mailbox_of(self)


def mailbox_of(unit: UnitChannel | Any) -> str | None:
    """A unit's address to write to (of the model or a row of its table): the admin's
    override, else the directory's; none when the admin turned e-mail off."""
    if not unit.email_enabled:
        return None
    return unit.email or unit.directory_email


class Timer(Base):
    """A persistent reminder or escalation; the worker fires it once when it is due."""

    __tablename__ = "timer"
    __table_args__ = (
        UniqueConstraint("subject_id", "deadline", "action", "due_at"),
        Index(None, "state", "fire_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # remind | overdue | escalate
    fire_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|fired|cancelled
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[str] = mapped_column(String(64))
    referral_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    urgency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    deadline: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    counterpart_orgnr: Mapped[str | None] = mapped_column(String(11), nullable=True)
    source_event_id: Mapped[str] = mapped_column(String(64))
    # Indexed for the retention clean-up, which deletes by age.
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    fired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
