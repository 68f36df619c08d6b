"""Tables of the consent service.

Every record about a person carries ``person_key`` (an HMAC of the normalised
personnummer with this member's secret, see :mod:`services.consent.person`), indexed, so a
decision is a few indexed lookups; the personnummer itself is kept only where this member
recorded the data and must show it. Copies of other members' consents and audit records
received from this member's other services keep the key only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.data.db import IdMixin, TimestampMixin, UTCDateTime, make_metadata, utcnow
from shared.data.infra import SeqType, define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)
# Reads of a party's copy are audited by copy id (the copy holds no personnummer): the
# audit extract finds them through this index.
Index(None, infra.audit.c.resource_id)


class PersonFields:
    """Who a record is about, and who at this member recorded it."""

    owner_orgnr: Mapped[str] = mapped_column(String(11))
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    personnummer: Mapped[str] = mapped_column(String(12))
    recorded_by_user: Mapped[str] = mapped_column(String(255))
    recorded_by_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ConsentTermsFields:
    """The terms a decision reads; shared by the owner's consent and a party's copy."""

    protected_identity: Mapped[bool] = mapped_column(Boolean, default=False)
    parties: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    purposes: Mapped[list[str]] = mapped_column(JSON)
    # Purposes the person withdrew while the consent stays in force for the rest (they are
    # no longer in ``purposes``): a decision names them as withdrawn, not as never given.
    withdrawn_purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Consent(IdMixin, TimestampMixin, PersonFields, ConsentTermsFields, Base):
    """A consent (secrecy waiver, OSL 12 kap. 2 §) recorded by this member."""

    __tablename__ = "consent"

    given_by_kind: Mapped[str] = mapped_column(String(20))
    given_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    given_by_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    form: Mapped[str] = mapped_column(String(20))
    form_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    signed_form_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    person_informed: Mapped[bool] = mapped_column(Boolean)
    supersedes_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    superseded_by_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    withdrawn_by_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    withdrawn_by_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    withdrawn_by_user: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Each withdrawal of some purposes: {purposes, at, by_kind, by_reference, reason,
    # by_user, by_unit}, oldest first (the whole consent's withdrawal is in the columns above).
    purpose_withdrawals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class ConsentCopy(ConsentTermsFields, Base):
    """A party's copy of a consent another member recorded (no personnummer, no notes)."""

    __tablename__ = "consent_copy"

    consent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11))
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    recorded_by_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)
    end_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source_event_id: Mapped[str] = mapped_column(String(64))


class ConsentTombstone(Base):
    """The end (or narrowing) of a consent that reached this member before its copy did
    (ADR 0016): the copy is stored ended (or narrowed) when it arrives, and the tombstone
    goes. One that waits longer than ``VK_KAFKA__INBOX_RETENTION_DAYS`` is pruned. Holds
    ids, dates and purposes only (no person key: neither event carries a personnummer)."""

    __tablename__ = "consent_tombstone"

    consent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11))
    reason: Mapped[str] = mapped_column(String(20))  # withdrawn | expired | superseded | narrowed
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # or narrowed at
    # A narrowing's purposes still in force and withdrawn (None for an end).
    purposes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    withdrawn_purposes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    source_event_id: Mapped[str] = mapped_column(String(64))


class Refusal(IdMixin, TimestampMixin, PersonFields, Base):
    """The person said no to sharing with some parties (for some or every purpose)."""

    __tablename__ = "refusal"

    refused_on: Mapped[dt.date] = mapped_column(Date)
    parties: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    purposes: Mapped[list[str]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by_user: Mapped[str | None] = mapped_column(String(255), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Block(IdMixin, TimestampMixin, PersonFields, Base):
    """A block (spärr): a member or unit receives nothing about the person."""

    __tablename__ = "block"

    blocked_orgnr: Mapped[str] = mapped_column(String(11))
    blocked_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    removed_by_user: Mapped[str | None] = mapped_column(String(255), nullable=True)


class BlockLift(IdMixin, Base):
    """A temporary lift of a block (at most ``VK_CONSENT__BLOCK_LIFT_MAX_DAYS``)."""

    __tablename__ = "block_lift"

    block_id: Mapped[str] = mapped_column(ForeignKey("block.id"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    lifted_by_user: Mapped[str] = mapped_column(String(255))
    lifted_by_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LegalBasisUse(IdMixin, Base):
    """A decision asked on a legal basis instead of consent: stated, justified, kept."""

    __tablename__ = "legal_basis_use"

    owner_orgnr: Mapped[str] = mapped_column(String(11))
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    basis: Mapped[str] = mapped_column(String(30))
    ground: Mapped[str | None] = mapped_column(String(40), nullable=True)
    justification: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(40))
    categories: Mapped[list[str]] = mapped_column(JSON)
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    sender_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipient_orgnr: Mapped[str] = mapped_column(String(11))
    recipient_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))
    decided_by_user: Mapped[str] = mapped_column(String(255))
    decided_by_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChangeLogEntry(Base):
    """One change of a consent, copy, refusal or block: the history a person search shows.

    ``details`` never holds the personnummer (the key links the entry to the person).
    """

    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_org: Mapped[str] = mapped_column(String(11))
    actor_user: Mapped[str | None] = mapped_column(String(255), nullable=True)
    actor_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditCopy(Base):
    """An audit record of another service of this member, received on the internal topic
    (ADR 0011), kept for the person's audit extract. Append-only like ``audit_record``."""

    __tablename__ = "audit_copy"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    source_event_id: Mapped[str] = mapped_column(String(64), unique=True)
    service: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    actor_sub: Mapped[str] = mapped_column(String(255))
    actor_org: Mapped[str] = mapped_column(String(11))
    actor_unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(100), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    resource_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class KnownUnit(Base):
    """A unit of any member as last seen on ``vardkedja.directory``: the name the person's
    audit extract shows for the unit an access came from (ADR 0011, second amendment)."""

    __tablename__ = "known_unit"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    # The unit's HSA-id, when its directory gives one: a token's unit claim may name it.
    hsa_id: Mapped[str | None] = mapped_column(String(31), nullable=True, index=True)


class KnownMember(Base):
    """A member (huvudman) as it last described itself on ``vardkedja.directory``: the
    name the audit extract shows beside a unit's."""

    __tablename__ = "known_member"

    orgnr: Mapped[str] = mapped_column(String(11), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
