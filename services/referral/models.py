"""Tables of the referral service.

The sending member keeps ``referral`` (what was sent, once) and ``recipient`` (one row per
receiving unit: the task that travels, with the status the receiver last reported). The
receiving member keeps ``incoming`` (the same task as filed in its unit's inbox; after
delivery it is the authority on the status). ``transition`` is the history on both sides.
``task_tombstone`` and ``consent_tombstone`` remember a withdrawal or a consent's end that
arrived before the task it concerns (ADR 0016); ``consent_narrowing`` the purposes withdrawn
from a consent that stays in force for the rest. ``known_unit`` is a light copy of every
member's units from ``vardkedja.directory`` (a service never reads another service's
tables), used to check recipients. Documents attached to referrals (ADR 0023) are kept in
``attachment`` by the sender (a unit's upload, then the referral it went with),
``received_attachment`` by the receiver (per task), and ``attachment_chunk`` holds the
pieces of a document still arriving. A ward's record of a discharge from a discharge
planning it sent is ``discharge``; what a receiving member was told of it, per task,
``received_discharge`` (ADR 0026).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.data.db import IdMixin, TimestampMixin, UTCDateTime, make_metadata, utcnow
from shared.data.infra import define_infra_tables


class Base(DeclarativeBase):
    metadata = make_metadata()


infra = define_infra_tables(Base.metadata)


class ReferralContent:
    """What a referral says about the person and the need (both sides keep it)."""

    kind: Mapped[str] = mapped_column(String(32), index=True)
    protected_identity: Mapped[bool] = mapped_column(Boolean, default=False)
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    children_in_household: Mapped[str] = mapped_column(String(8), default="unknown")
    children_unknown_reason: Mapped[str] = mapped_column(Text, default="")
    # How to reach the person (phone, via the ward until a date, best time, no fixed
    # address): personal data, for the holding unit only, never with protected identity.
    reachability: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    persons_wish: Mapped[str] = mapped_column(Text, default="")
    drug_free: Mapped[str | None] = mapped_column(String(8), nullable=True)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per kind


class Referral(IdMixin, TimestampMixin, ReferralContent, Base):
    """A referral or invitation sent by a unit of this member."""

    __tablename__ = "referral"

    personnummer: Mapped[str] = mapped_column(String(12))
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    sender_unit_id: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(200))


class Recipient(IdMixin, TimestampMixin, Base):
    """One receiving unit of a sent referral: the task that travels (its id is the same
    at both members) and the status the receiver last reported."""

    __tablename__ = "recipient"

    referral_id: Mapped[str] = mapped_column(ForeignKey("referral.id"), index=True)
    orgnr: Mapped[str] = mapped_column(String(11))
    unit_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    basis: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The consent the basis rests on (its end cancels the task); None for a legal basis.
    consent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    acknowledge_by: Mapped[dt.date] = mapped_column(Date)
    # The last day to accept or decline, set when the receiver reports its acknowledgement
    # (this member's policy: the sender times its own alert, trusting no other deadline).
    answer_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    routed: Mapped[bool] = mapped_column(Boolean, default=False)
    route_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    case_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    proposed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Where the receiver forwarded it: {orgnr, unit_id, task_id} (its new task there).
    forwarded_to: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The holder's structured result of a completed or declined task, as it reported it.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Komplettering rounds as the sender knows them (services/referral/komplettering.py).
    komplettering: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The sending unit's own last day to answer the holder's open question (this member's
    # policy, from the day the holder reports asking); None while no question is open.
    information_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # The receiver's version of the task as last reported (events older than it are stale).
    remote_version: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class Incoming(TimestampMixin, ReferralContent, Base):
    """A referral filed in the inbox of one of this member's units."""

    __tablename__ = "incoming"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the sender's task id
    # None once the task was cancelled because its basis ended, unless this member had
    # registered it as its own case (ADR 0021): nothing about the person is kept then.
    personnummer: Mapped[str | None] = mapped_column(String(12), nullable=True)
    person_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    referral_id: Mapped[str] = mapped_column(String(36))
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    sender_unit_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    basis: Mapped[dict[str, Any]] = mapped_column(JSON)
    consent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    acknowledge_by: Mapped[dt.date] = mapped_column(Date, index=True)
    # The last day to accept or decline, set when the unit acknowledges it.
    answer_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    case_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    proposed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The structured result of a completed or declined task (decision, intervention, the
    # day it started, a note): personal data in its note.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Komplettering rounds: [{round, question, asked_at, answer, answered_at,
    # attachment_ids}] (services/referral/komplettering.py); personal data in the texts.
    komplettering: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class Transition(Base):
    """One step in a task's history, on either side (kept; never changed)."""

    __tablename__ = "transition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    side: Mapped[str] = mapped_column(String(8))  # sender | receiver
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(8))
    by_orgnr: Mapped[str] = mapped_column(String(11))
    by_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    by_sub: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TaskTombstone(Base):
    """The sender's withdrawal of a task that reached this member before the task did
    (ADR 0016): the task is then never filed, and the tombstone goes. One that waits longer
    than ``VK_KAFKA__INBOX_RETENTION_DAYS`` is pruned. Holds ids and times only."""

    __tablename__ = "task_tombstone"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    by_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ConsentTombstone(Base):
    """A consent this member's referral service heard had ended (withdrawn or expired,
    ADR 0016): a task resting on it that arrives later is not filed, whatever a lagging
    consent service still says. Kept for ``VK_KAFKA__INBOX_RETENTION_DAYS``."""

    __tablename__ = "consent_tombstone"

    consent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11))
    reason: Mapped[str] = mapped_column(String(20))  # withdrawn | expired
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ConsentNarrowing(Base):
    """The purposes of a consent this member's referral service heard withdrawn while the
    consent stays in force for the rest (``consent.narrowed``): a task of a withdrawn
    purpose's kind resting on it that arrives later is not filed, whatever a lagging
    consent service still says; an older narrowing heard later changes nothing. Kept for
    ``VK_KAFKA__INBOX_RETENTION_DAYS``. Holds ids, purposes and the version only."""

    __tablename__ = "consent_narrowing"

    consent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11))
    withdrawn_purposes: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class KnownUnit(Base):
    """A unit of any member as last seen on ``vardkedja.directory`` (what routing a
    referral needs, and how the function is reached)."""

    __tablename__ = "known_unit"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_orgnr: Mapped[str] = mapped_column(String(11), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    referral_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    interventions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How the function is reached (the directory's contact paths and opening hours): what
    # a person's Min plan prints for each action and coordinator.
    contact_paths: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A token's unit claim may name the unit by it (ADR 0028).
    hsa_id: Mapped[str | None] = mapped_column(String(31), nullable=True, index=True)
    version: Mapped[int] = mapped_column(Integer)


class KnownMember(Base):
    """A member (huvudman) as it last described itself on ``vardkedja.directory``: the
    name a person reads beside a unit's."""

    __tablename__ = "known_member"

    orgnr: Mapped[str] = mapped_column(String(11), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)


class Meeting(IdMixin, TimestampMixin, Base):
    """A joint referral meeting (remissmöte, convened by the referral port from an incoming
    vårdkedjeremiss) or a SIP meeting, convened by a unit of this member. Each invited unit
    gets an invitation task (a ``recipient`` row, travelling like a referral)."""

    __tablename__ = "meeting"

    kind: Mapped[str] = mapped_column(String(16))  # remissmote | sip
    convener_unit_id: Mapped[str] = mapped_column(String(64), index=True)
    origin_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # A SIP follow-up meeting: the plan it revises (the first meeting's id).
    follow_up_of: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # A SIP answering a referral this member sent (an HVB notification, a discharge
    # planning): the sender follows it there (services/referral/handover.py).
    for_referral_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    personnummer: Mapped[str] = mapped_column(String(12))
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    protected_identity: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    place: Mapped[str | None] = mapped_column(String(300), nullable=True)
    video_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    person_invited: Mapped[bool] = mapped_column(Boolean, default=True)
    # Relatives chosen by the person: their contact details stay with the convener only.
    relatives: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{orgnr, unit_id, task_id}] for every invited unit.
    participants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    # Recorded with the plan: who took part {units, person, relatives}, and whether the
    # person agrees to the plan.
    attendance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    person_agrees: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's API


class Plan(TimestampMixin, Base):
    """The outcome of a meeting: goals, an ordered list of actions each owned by a unit,
    the coordinating function and the follow-up date. The convener's member owns it;
    every participating member (and the vårdkedjeremiss's sender) keeps a copy."""

    __tablename__ = "plan"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the meeting id
    owner_orgnr: Mapped[str] = mapped_column(String(11), index=True)
    owner_unit_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    # None in a party's copy closed because its basis ended (``status`` withdrawn).
    personnummer: Mapped[str | None] = mapped_column(String(12), nullable=True)
    person_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    protected_identity: Mapped[bool] = mapped_column(Boolean, default=False)
    # active | withdrawn (a party's copy whose basis ended: no personal data left in it)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Goals in the person's own words, and the others.
    own_goals: Mapped[list[str]] = mapped_column(JSON, default=list)
    goals: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{id, position, intervention, description, orgnr, unit_id, outside_actor, start_by,
    #   end_by, status, started_at, ended_at, outcome, note, reason}] (services/referral/actions.py)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The coordinating function: [{orgnr, unit_id}], one unit per huvudman.
    coordinators: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    follow_up_date: Mapped[dt.date] = mapped_column(Date)
    # The last meeting's attendance {units, person, relatives} and the person's agreement.
    attendance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    person_agrees: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Units that may see it: [{orgnr, unit_id}] (participants, convener, sender).
    viewers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    plan_version: Mapped[int] = mapped_column(Integer, default=1)  # the owner's version


class PlanAction(Base):
    """One action of a plan this member holds (its own or a party's copy), as the plan's
    JSON has it: written again whenever the plan is, so that a unit's actions, the overdue
    ones and the indicators are found by query. Ids, owners, dates and status only."""

    __tablename__ = "plan_action"

    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    intervention: Mapped[str] = mapped_column(String(64))
    orgnr: Mapped[str | None] = mapped_column(String(11), nullable=True)
    unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    start_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    end_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PlanCoordinator(Base):
    """A coordinating unit of a plan this member holds (written again with the plan)."""

    __tablename__ = "plan_coordinator"

    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    orgnr: Mapped[str] = mapped_column(String(11), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PlanBasis(Base):
    """A consent a plan's sharing rests on, per unit of another member: at the owner, the
    consent each party's unit had when the plan was last shared; at a party, the consent
    its own consent service found for each of its units when the copy arrived. Its end
    (``consent.ended``) closes a party's copy. Legal bases do not end that way and have no
    row."""

    __tablename__ = "plan_basis"

    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    orgnr: Mapped[str] = mapped_column(String(11), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consent_id: Mapped[str] = mapped_column(String(36), index=True)


class PlanNotice(Base):
    """A unit of this member was told that a plan action ended (the follow-up indicator
    "actions ended without notice" counts ended actions that lack one)."""

    __tablename__ = "plan_notice"

    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeadlineNotice(Base):
    """A deadline event already sent (one per task or plan, deadline and state)."""

    __tablename__ = "deadline_notice"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deadline: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(8), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DocumentColumns:
    """What is kept of a document on either side: its title (personal data, like the
    bytes), its kind as told from its bytes, its size and SHA-256, and the bytes (loaded
    only when read: ``deferred``)."""

    title: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class Attachment(DocumentColumns, Base):
    """A document a unit of this member uploaded: a draft of that unit until it goes with a
    referral (``referral_id``), pruned at ``hold_until`` if it never does."""

    __tablename__ = "attachment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    referral_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    hold_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ReceivedAttachment(DocumentColumns, Base):
    """A document that came with a task filed here, whole and checked again: the task's
    receiving unit alone reads it."""

    __tablename__ = "received_attachment"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    attachment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AttachmentChunk(Base):
    """A piece of a document still arriving (ADR 0023): kept until every piece and the task
    are here, then the document is put together, checked and stored, and its pieces go.
    Pieces of a task never filed here go with it (refused, withdrawn first) or after
    ``VK_KAFKA__INBOX_RETENTION_DAYS``."""

    __tablename__ = "attachment_chunk"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    attachment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # the chunk's index
    referral_id: Mapped[str] = mapped_column(String(36))
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    count: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Discharge(Base):
    """The discharge a ward recorded for a discharge planning it sent (once): the day, whether
    it was unplanned, its own note, and whether the recipients' actions in the linked SIP's
    plan had started by that day (as it stood when recorded)."""

    __tablename__ = "discharge"

    referral_id: Mapped[str] = mapped_column(ForeignKey("referral.id"), primary_key=True)
    discharged_on: Mapped[dt.date] = mapped_column(Date, index=True)
    unplanned: Mapped[bool] = mapped_column(Boolean)
    # The ward's own note (may name the person's circumstances): never sent.
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    actions_started: Mapped[bool] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReceivedDischarge(Base):
    """The discharge the sending ward recorded for a discharge planning filed here (one task):
    what the receiving unit is shown on its task. Ids and dates only."""

    __tablename__ = "received_discharge"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(36))
    sender_orgnr: Mapped[str] = mapped_column(String(11))
    discharged_on: Mapped[dt.date] = mapped_column(Date)
    unplanned: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
