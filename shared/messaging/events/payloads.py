"""Versioned payloads of every event, registered in the catalogue.

Each docstring says when the event is sent and what it means. Payloads on broadcast topics
carry organisational data only; ``personal_data=True`` marks those that may carry personal
data (they travel only on per-member topics, after a sharing decision).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from shared.domain import documents
from shared.domain.content import ReferralContent
from shared.domain.kinds import KIND_PATTERN
from shared.messaging.events.catalogue import EventPayload, event_type
from shared.messaging.events.topics import DIRECTORY

UNIT_CHANGED_V1 = "se.vardkedja.unit.changed.v1"


@event_type(UNIT_CHANGED_V1, topics=(DIRECTORY,), personal_data=False)
class UnitChangedV1(EventPayload):
    """A unit (function) in a member's directory was created or changed.

    Sent by the owning member's directory service on ``vardkedja.directory`` (compacted, key =
    unit id) with the unit's whole public state, so the latest event per key *is* the unit.
    Every member's directory keeps a read replica from it. ``version`` grows with every
    change; a replica ignores a version it has already passed. Organisational data only:
    functions and their functional contact paths, never named persons. The nested objects
    (target groups, contact paths, opening hours, capacity) follow the directory API's
    schemas and are validated again by every receiving directory.
    """

    unit_id: str = Field(max_length=64)
    owner_orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(max_length=64)
    mission: str = Field("", max_length=2000)
    target_groups: list[dict[str, Any]] = Field(default_factory=list, max_length=10)
    interventions: list[str] = Field(default_factory=list, max_length=100)
    kommunkoder: list[str] = Field(default_factory=list, max_length=290)
    contact_paths: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    opening_hours: dict[str, Any] | None = None
    referral_kinds: list[str] = Field(default_factory=list, max_length=10)
    status: str = Field(max_length=32)
    status_message: str | None = Field(None, max_length=500)
    parent_unit_id: str | None = Field(None, max_length=64)
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    reviewed_at: dt.datetime | None = None
    reviewed_by: str | None = Field(None, max_length=100)
    capacity: dict[str, Any] | None = None
    hsa_id: str | None = Field(
        None,
        max_length=31,
        pattern=r"^SE[0-9]{10}-[A-Za-z0-9]{1,18}$",
        description="the unit's HSA-id, if it has one (absent in events sent before it existed)",
    )
    version: int = Field(ge=1)
    changed_at: dt.datetime


MEMBER_CHANGED_V1 = "se.vardkedja.member.changed.v1"


@event_type(MEMBER_CHANGED_V1, topics=(DIRECTORY,), personal_data=False)
class MemberChangedV1(EventPayload):
    """A member (huvudman) described itself: its name, kind, county and the kommuner it
    serves.

    Sent by the member's own directory service on ``vardkedja.directory`` (compacted, key =
    ``member:<orgnr>``) when its administrator sets the record, with the whole record. Every
    member's directory keeps the latest version: overviews show the member's name, and
    routing falls back to the intake of the member serving a kommun when no unit names
    it. Organisational data only.
    """

    orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    name: str = Field(min_length=2, max_length=200)
    kind: str = Field(max_length=32)
    county_code: str = Field(pattern=r"^[0-9]{2}$")
    kommunkoder: list[str] = Field(min_length=1, max_length=290)
    version: int = Field(ge=1)
    changed_at: dt.datetime


RELAY_MARKER_V1 = "se.vardkedja.relay.marker.v1"


@event_type(RELAY_MARKER_V1, topics=("vardkedja.member.<orgnr>.internal",), personal_data=False)
class RelayMarkerV1(EventPayload):
    """A relay's marker, written to its own member's internal topic when the relay holds
    none (its first broker check after it starts, and after each replay) and every hour
    after, to stay ahead of the topic's retention. A reconnect does not write a new one:
    the old one must still be there (ADR 0005 addendum).

    The relay later reads the record at the marker's offset back: if it is gone or another
    record stands there, the broker lost its log and the relay re-publishes its replay
    window. Consumers skip it. Carries no personal data.
    """

    relay: str = Field(max_length=100, description="<orgnr digits>-<service>")


DEAD_LETTER_V1 = "se.vardkedja.infra.dead_letter.v1"


@event_type(DEAD_LETTER_V1, topics=("vardkedja.member.<orgnr>.deadletter",), personal_data=True)
class DeadLetterV1(EventPayload):
    """A record one of this member's consumers refused or kept failing on, as it arrived.

    Written by the inbox to the member's own dead-letter topic, sealed for the member: the
    record (key, headers, body, base64) may be anything a sender wrote, personal data
    included, so nothing of it is readable on the bus. The ``vk_dlt_*`` headers say why and
    where it was read (reason, consumer, topic, partition, offset, attempts). The member's
    database keeps the same record in ``dead_letter``. Nothing consumes it.
    """

    key: str | None = Field(None, description="the record's Kafka key, base64")
    headers: list[tuple[str, str]] = Field(default_factory=list, description="name, base64 value")
    body: str = Field("", description="the record's body as it arrived, base64")

    @classmethod
    def of(cls, record: Any) -> DeadLetterV1:
        import base64

        def b64(value: bytes) -> str:
            return base64.b64encode(value).decode("ascii")

        return cls(
            key=b64(record.key) if record.key is not None else None,
            headers=[(k, b64(v)) for k, v in record.headers],
            body=b64(record.value or b""),
        )


UNIT_REVIEW_DUE_V1 = "se.vardkedja.unit.review_due.v1"


@event_type(UNIT_REVIEW_DUE_V1, topics=("vardkedja.member.<orgnr>.internal",), personal_data=False)
class UnitReviewDueV1(EventPayload):
    """A unit of this member has not been reviewed within the review period.

    Sent once per unit and due date by the directory worker on the member's own internal
    topic; the notify service turns it into a reminder to the unit (and its coordinator).
    """

    unit_id: str = Field(max_length=64)
    unit_name: str = Field(max_length=200)
    last_reviewed_at: dt.datetime | None = None
    due_since: dt.date


INBOUND = "vardkedja.member.<orgnr>.inbound"


class ConsentPartyRef(EventPayload):
    """A party of a consent: a member and, optionally, one of its units."""

    orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    unit_id: str | None = Field(None, max_length=64)


CONSENT_VERSION_MAX = 2**31 - 1
"""A consent's version is an INTEGER column at the owner and at every party: a larger one is
no version any member could have sent, and is refused as an invalid payload."""

CONSENT_RECORDED_V1 = "se.vardkedja.consent.recorded.v1"


@event_type(CONSENT_RECORDED_V1, topics=(INBOUND,), personal_data=True)
class ConsentRecordedV1(EventPayload):
    """A member recorded a consent that names the receiving member as a party.

    Sent by the recording member's consent service to the inbound topic of every member
    the consent names (its own included), key = consent id. The parties keep a copy to
    show the basis and to check a referral when it arrives. **Personal data**: the
    personnummer, because person keys are per-member secrets and the receiver must match
    incoming referrals; the receiver stores only its own key of it. Nothing else about the
    person (no giver, notes or signed-form reference) leaves the recording member.
    """

    consent_id: str = Field(max_length=36)
    owner_orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    personnummer: str = Field(pattern=r"^[0-9]{12}$")
    protected_identity: bool = False
    parties: list[ConsentPartyRef] = Field(min_length=1, max_length=50)
    purposes: list[str] = Field(min_length=1, max_length=20)
    categories: list[str] = Field(min_length=1, max_length=20)
    valid_from: dt.date
    valid_to: dt.date
    recorded_by_unit: str | None = Field(None, max_length=64)
    recorded_at: dt.datetime
    version: int = Field(ge=1, le=CONSENT_VERSION_MAX)


CONSENT_ENDED_V1 = "se.vardkedja.consent.ended.v1"


@event_type(CONSENT_ENDED_V1, topics=(INBOUND,), personal_data=True)
class ConsentEndedV1(EventPayload):
    """A consent stopped applying: withdrawn, expired or superseded by a new one.

    Sent by the recording member's consent service to the inbound topic of every member
    the consent names, key = consent id, the moment it happens (withdrawal at once, expiry
    by the worker's check). Parties mark their copy ended; their referral services stop
    sending on it and their notify services tell the named units. Carries the consent id
    (which a party links to the person), the parties and purposes, never the personnummer
    or the withdrawal's free-text reason: pseudonymous **personal data**.
    """

    consent_id: str = Field(max_length=36)
    owner_orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    reason: str = Field(pattern=r"^(withdrawn|expired|superseded)$")
    ended_at: dt.datetime
    parties: list[ConsentPartyRef] = Field(min_length=1, max_length=50)
    purposes: list[str] = Field(min_length=1, max_length=20)
    superseded_by: str | None = Field(None, max_length=36)
    version: int = Field(ge=1, le=CONSENT_VERSION_MAX)


CONSENT_NARROWED_V1 = "se.vardkedja.consent.narrowed.v1"


@event_type(CONSENT_NARROWED_V1, topics=(INBOUND,), personal_data=True)
class ConsentNarrowedV1(EventPayload):
    """The person withdrew some of a consent's purposes; it stays in force for the rest.

    Sent by the recording member's consent service to the inbound topic of every member
    the consent names (its own included), key = consent id, the moment the partial
    withdrawal is recorded; ``version`` is the consent's after it, so a party ignores a
    version at or below the one it holds. ``purposes`` are those still in force,
    ``withdrawn_purposes`` every purpose withdrawn so far (a party that missed an earlier
    narrowing still ends right). Parties narrow their copy; their referral services cancel
    the open tasks whose kind's purpose was withdrawn, close the plan copies shared for it
    and tell the units holding tasks on the consent what it still covers. Withdrawing the
    last purposes in force ends the consent (``consent.ended``, withdrawn), never this.
    Carries the consent id (which a party links to the person), the parties and purposes,
    never the personnummer or the withdrawal's free-text reason: pseudonymous **personal
    data**.
    """

    consent_id: str = Field(max_length=36)
    owner_orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    parties: list[ConsentPartyRef] = Field(min_length=1, max_length=50)
    purposes: list[str] = Field(min_length=1, max_length=20)
    withdrawn_purposes: list[str] = Field(min_length=1, max_length=20)
    narrowed_at: dt.datetime
    version: int = Field(ge=2, le=CONSENT_VERSION_MAX)


AUDIT_RECORDED_V1 = "se.vardkedja.audit.recorded.v1"


@event_type(AUDIT_RECORDED_V1, topics=("vardkedja.member.<orgnr>.internal",), personal_data=True)
class AuditRecordedV1(EventPayload):
    """A service of this member audited an access to a person's data.

    Sent on the member's own internal topic by every service other than consent, in the
    same transaction as the audit record itself (so it exists if and only if the record
    does); the consent service keeps a copy for the person's audit extract (loggutdrag,
    ADR 0011). **Personal data**: the personnummer of the person whose data was accessed.
    """

    service: str = Field(max_length=20)
    occurred_at: dt.datetime
    actor_sub: str = Field(max_length=255)
    actor_org: str = Field(max_length=11)
    actor_unit: str | None = Field(None, max_length=64)
    action: str = Field(max_length=100)
    person_id: str = Field(pattern=r"^[0-9]{12}$")
    purpose: str | None = Field(None, max_length=100)
    outcome: str = Field(max_length=20)
    resource_type: str | None = Field(None, max_length=50)
    resource_id: str | None = Field(None, max_length=64)


# --- Referral service -> notify, on the member's own internal topic (issue 6) ------------
# Contract first: the referral service emits these once it exists. They carry ids, kinds,
# unit ids, statuses and deadlines only — never a name, personnummer or free text — so
# notify can render notifications that are safe to send to mailboxes and case systems.

INTERNAL = "vardkedja.member.<orgnr>.internal"
_ID = r"^[A-Za-z0-9._:-]{1,64}$"
_ORGNR = r"^[0-9]{6}-[0-9]{4}$"
_KIND = KIND_PATTERN  # every kind of the registry (shared/domain/kinds.py)
_STATUS = r"^[a-z_]{1,32}$"

REFERRAL_RECEIVED_V1 = "se.vardkedja.referral.received.v1"


@event_type(REFERRAL_RECEIVED_V1, topics=(INTERNAL,), personal_data=False)
class ReferralReceivedV1(EventPayload):
    """A referral or invitation from another member (or unit) arrived in one of this
    member's unit inboxes.

    Sent by the receiving member's referral service on its own internal topic when it has
    registered the incoming referral, key = referral id. Notify tells the receiving unit
    (inbox, case system, functional mailbox) and schedules the acknowledgement reminders
    and escalation; ``acknowledge_by`` absent means notify computes it from its settings
    for the kind. No personal data: ids, kind, unit, urgency and the deadline only.
    """

    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID, description="the receiving unit")
    sender_orgnr: str = Field(pattern=_ORGNR)
    sender_unit_id: str | None = Field(None, pattern=_ID)
    urgency: str = Field("normal", pattern=r"^(normal|urgent|acute)$")
    acknowledge_by: dt.datetime | None = None
    received_at: dt.datetime
    protected_identity: bool = Field(
        False, description="about a person with protected identity: mark the notification"
    )


REFERRAL_STATUS_CHANGED_V1 = "se.vardkedja.referral.status_changed.v1"


@event_type(REFERRAL_STATUS_CHANGED_V1, topics=(INTERNAL,), personal_data=False)
class ReferralStatusChangedV1(EventPayload):
    """A referral this member sent (or holds) changed status; ``unit_id`` is the unit of this
    member to tell (for an outgoing referral: its sender unit).

    Sent by the referral service on its own internal topic at every step of the closed loop
    (delivered, acknowledged, accepted, declined, closed, ...), key = referral id,
    ``version`` = the referral's version after the change. A status ``acknowledged`` of an
    incoming referral also stops notify's acknowledgement reminders. No personal data.
    """

    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID)
    direction: str = Field("outgoing", pattern=r"^(outgoing|incoming)$")
    old_status: str | None = Field(None, pattern=_STATUS)
    new_status: str = Field(pattern=_STATUS)
    changed_at: dt.datetime
    version: int = Field(1, ge=1)


REFERRAL_BASIS_NARROWED_V1 = "se.vardkedja.referral.basis_narrowed.v1"


@event_type(REFERRAL_BASIS_NARROWED_V1, topics=(INTERNAL,), personal_data=False)
class ReferralBasisNarrowedV1(EventPayload):
    """The consent an open task rests on was narrowed (some of its purposes withdrawn);
    ``unit_id`` is the unit of this member holding the task (for an outgoing one: its
    sender unit).

    Sent by the referral service on its own internal topic when it hears
    ``consent.narrowed``, once for every task on that consent that was open then, on this
    member's side (the receiving unit's task, the sending unit's mirror), key = referral
    id. ``covers`` are the kinds of referral the consent still covers; ``cancelled`` says
    whether this task was cancelled because its own kind's purpose was withdrawn (its
    status change is told as well). Notify tells the unit what changed. No personal data:
    ids, kinds and units only.
    """

    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID)
    direction: str = Field(pattern=r"^(outgoing|incoming)$")
    counterpart_orgnr: str = Field(pattern=_ORGNR)
    covers: list[Annotated[str, Field(pattern=_KIND)]] = Field(max_length=10)
    cancelled: bool
    narrowed_at: dt.datetime


REFERRAL_DEADLINE_V1 = "se.vardkedja.referral.deadline.v1"


_ESCALATED = frozenset({"action_start", "action_end", "acknowledge", "answer"})
"""The deadlines a plan's coordinating units are alerted of (audience coordinator)."""


@event_type(REFERRAL_DEADLINE_V1, topics=(INTERNAL,), personal_data=False)
class ReferralDeadlineV1(EventPayload):
    """A deadline of a referral is near, has passed, or has been met.

    Sent by the referral service on its own internal topic when a deadline (``deadline``:
    acknowledge, first_meeting, plan, discharge, answer — to accept or decline a task, or
    answer an invitation, once acknowledged; information — the sending unit's answer to the
    holder's request for more information; action_start, action_end — a plan's action
    not started by its ``start_by`` or not ended by its ``end_by``; sip — the SIP the
    sending member owes for a referral it sent, an HVB notification, not convened by its
    ``sip_by``, told to the sending unit) enters its warning window
    (``near``), passes (``overdue``) or is met (``met``), key = referral id (a task's or
    plan's id), once per unit, deadline and state (an action's: per action, ``action_id``).
    ``audience`` says who ``unit_id`` is: the unit that must act (``actor``: notify reminds
    it, and escalates an overdue task to the coordinating function after the configured
    grace), the unit that sent the task or convened the meeting and waits for the other's
    answer (``sender``: told once the deadline has passed, never escalated), or a
    coordinating unit of the plan whose action is overdue, or whose follow-up meeting's
    invitation is unanswered past its deadline (``coordinator``: the escalation itself).
    Notify cancels pending reminders on ``met``. No personal data.
    """

    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID)
    deadline: str = Field(
        pattern=r"^(acknowledge|first_meeting|plan|discharge|answer|information|action_start|"
        r"action_end|sip)$"
    )
    due_at: dt.datetime
    state: str = Field(pattern=r"^(near|overdue|met)$")
    audience: str = Field(
        "actor",
        pattern=r"^(actor|sender|coordinator)$",
        description="actor: the unit must act; sender: the unit waits for another's answer; "
        "coordinator: the unit coordinates the plan whose action is overdue (or whose "
        "follow-up meeting's invitation is unanswered)",
    )
    action_id: str | None = Field(
        None, pattern=_ID, description="action_start, action_end: the plan's action"
    )

    @model_validator(mode="after")
    def _action_deadline_names_action(self) -> Self:
        is_action = self.deadline in ("action_start", "action_end")
        if is_action != (self.action_id is not None):
            raise ValueError("an action's deadline names its action, and only it")
        if self.audience == "coordinator" and self.deadline not in _ESCALATED:
            raise ValueError(
                "only an action's deadline or an unanswered invitation is escalated to the "
                "coordinators"
            )
        return self


PLAN_ACTION_CHANGED_V1 = "se.vardkedja.plan.action_changed.v1"


@event_type(PLAN_ACTION_CHANGED_V1, topics=(INTERNAL,), personal_data=False)
class PlanActionChangedV1(EventPayload):
    """A planned action (insats) of a SIP or care-chain plan was assigned to a unit, or it
    started, ended or was cancelled.

    Sent by the referral service on its own internal topic, key = plan id: ``assigned`` once
    to the owning unit of this member when the action becomes its own; every step once per
    unit of this member that takes part in the plan (``unit_id``), so no party is left
    uninformed (domain problem 5). No personal data: ids, the owner unit and the step.
    """

    plan_id: str = Field(pattern=_ID)
    action_id: str = Field(pattern=_ID)
    unit_id: str = Field(pattern=_ID, description="the unit of this member to tell")
    change: str = Field(pattern=r"^(assigned|started|ended|cancelled)$")
    owner_orgnr: str | None = Field(None, pattern=_ORGNR, description="none: an outside actor")
    owner_unit_id: str | None = Field(None, pattern=_ID)
    outcome: str | None = Field(None, pattern=r"^(completed|replaced|interrupted)$")
    at: dt.datetime


REFERRAL_DISCHARGED_V1 = "se.vardkedja.referral.discharged.v1"


@event_type(REFERRAL_DISCHARGED_V1, topics=(INTERNAL,), personal_data=False)
class ReferralDischargedV1(EventPayload):
    """The person of a discharge planning has been discharged: the ward that sent it recorded
    the day (``referral.discharge_recorded``); ``unit_id`` is the unit of this member to
    tell.

    Sent by the referral service on its own internal topic, key = ``referral_id``: at a
    receiving member once for the unit holding the planning's task (``audience``
    ``recipient``; ``referral_id`` is the task's id), and for each coordinating unit here of
    the plan of the SIP linked to the planning (``coordinator``; ``referral_id`` is the
    plan's id) — at the ward's own member by the ward's service itself. ``unplanned``: the
    discharge was not the one planned. Notify tells the unit (``referral.discharged``). No
    personal data: ids, the kind and whether it was planned.
    """

    referral_id: str = Field(pattern=_ID, description="the task's id (recipient) or the plan's")
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID, description="the unit of this member to tell")
    audience: str = Field(pattern=r"^(recipient|coordinator)$")
    sender_orgnr: str = Field(pattern=_ORGNR, description="the ward's member")
    unplanned: bool
    at: dt.datetime


REFERRAL_DOCUMENT_ADDED_V1 = "se.vardkedja.referral.document_added.v1"


@event_type(REFERRAL_DOCUMENT_ADDED_V1, topics=(INTERNAL,), personal_data=False)
class ReferralDocumentAddedV1(EventPayload):
    """A document the sending unit added to a referral after sending it has arrived whole
    and been checked here, for the task's receiving unit (ADR 0023).

    Sent by the referral service on its own internal topic, key = ``referral_id`` (the
    task's id), once per document stored. Notify tells the unit
    (``referral.document_added``). No personal data: ids, the kind and the document's type
    (never its title).
    """

    referral_id: str = Field(pattern=_ID, description="the task's id")
    kind: str = Field(pattern=_KIND)
    unit_id: str = Field(pattern=_ID, description="the unit of this member to tell")
    sender_orgnr: str = Field(pattern=_ORGNR)
    content_type: str = Field(pattern=documents.TYPE_PATTERN)
    at: dt.datetime


# --- referrals between members (the referral service; personal data, per-member topics) --


class ReferralPersonV1(EventPayload):
    """The person a referral is about."""

    personnummer: str = Field(pattern=r"^[0-9]{12}$")
    protected_identity: bool = False


class ReferralBasisV1(EventPayload):
    """Why the referral may cross: a consent (its id), a stated legal basis, or
    ``same_member`` (both units belong to the sending member: nothing crosses)."""

    kind: str = Field(pattern=r"^(consent|legal_basis|same_member)$")
    consent_id: str | None = Field(None, max_length=64)
    legal_basis: str | None = Field(None, max_length=32)
    ground: str | None = Field(None, max_length=32)
    justification: str | None = Field(None, max_length=2000)


REFERRAL_SENT_V1 = "se.vardkedja.referral.sent.v1"


@event_type(REFERRAL_SENT_V1, topics=(INBOUND,), personal_data=True)
class ReferralSentV1(ReferralContent, EventPayload):
    """A unit of the sending member sent a referral or invitation to a unit of the receiving
    member.

    Sent by the sending member's referral service on the receiving member's inbound topic
    once its consent service allowed the sharing, one event per receiving unit (``task_id``
    is that unit's task, the same id at both members), key = task id. The receiver checks
    the basis again with its own consent service, files the referral in the unit's inbox and
    answers with ``referral.transitioned`` (``delivered``, or ``undeliverable`` with a
    reason). Carries personal data: the person, needs, summary and the person's wish, and
    only the categories the decision allowed (no contact data for a protected identity).
    """

    task_id: str = Field(pattern=_ID)
    referral_id: str = Field(pattern=_ID)
    sender_orgnr: str = Field(pattern=_ORGNR)
    sender_unit_id: str = Field(pattern=_ID)
    recipient_orgnr: str = Field(pattern=_ORGNR)
    recipient_unit_id: str = Field(pattern=_ID)
    person: ReferralPersonV1
    # kind, needs, summary, urgency, children_in_household, persons_wish, drug_free,
    # attachments, details: the referral's content (shared/domain/content.py)
    basis: ReferralBasisV1
    acknowledge_by: dt.date
    sent_at: dt.datetime


class ReferralResultV1(EventPayload):
    """The holder's structured result of a completed or declined referral: its decision,
    the intervention it gave (and the day it started), and a note (free text)."""

    decision: str = Field(pattern=r"^(granted|refused|referred_on|person_declined)$")
    intervention: str | None = Field(None, pattern=r"^[a-z_]{1,64}$")
    started_on: dt.date | None = None
    text: str | None = Field(None, max_length=2000)


REFERRAL_TRANSITIONED_V1 = "se.vardkedja.referral.transitioned.v1"


@event_type(REFERRAL_TRANSITIONED_V1, topics=(INBOUND,), personal_data=True)
class ReferralTransitionedV1(EventPayload):
    """A referral task moved to another status, told to the other member (closed loop).

    Sent by the receiving member's referral service on the sender's inbound topic at every
    step the receiving unit takes (delivered, acknowledged, accepted, declined, forwarded,
    in progress, completed, returned, undeliverable, cancelled), with ``receiver_version``
    (the task's version there: the sender ignores an older one); and by the sending member
    on the receiver's inbound topic when the sender withdraws (``actor`` = sender). Key =
    task id. May carry personal data in ``reason``, ``outcome``, ``question`` (the holder's
    request for more information, with ``information_requested``) and ``result`` (the
    structured result of a completed or declined referral, whose note is free text), so it
    travels only on per-member topics.
    """

    task_id: str = Field(pattern=_ID)
    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    from_status: str | None = Field(None, pattern=_STATUS)
    to_status: str = Field(pattern=_STATUS)
    actor: str = Field(pattern=r"^(holder|sender|system)$")
    by_orgnr: str = Field(pattern=_ORGNR)
    by_unit_id: str | None = Field(None, pattern=_ID)
    reason: str | None = Field(None, max_length=2000)
    outcome: str | None = Field(None, max_length=4000)
    case_reference: str | None = Field(None, max_length=100)
    forwarded_to: dict[str, str] | None = None
    proposed_at: dt.datetime | None = Field(
        None, description="an invited unit declining proposes another time"
    )
    receiver_version: int = Field(0, ge=0)
    at: dt.datetime
    question: str | None = Field(
        None, max_length=2000, description="information_requested: what the holder asks"
    )
    result: ReferralResultV1 | None = Field(
        None, description="completed or declined: the structured result"
    )


REFERRAL_INFORMATION_SUPPLIED_V1 = "se.vardkedja.referral.information_supplied.v1"


@event_type(REFERRAL_INFORMATION_SUPPLIED_V1, topics=(INBOUND,), personal_data=True)
class ReferralInformationSuppliedV1(EventPayload):
    """The sending unit answered the holder's request for more information (komplettering).

    Sent by the sending member's referral service on the receiving member's inbound topic
    when the sending unit answers round ``round`` of a task waiting for information
    (``information_requested``), key = task id, after the chunks of any document that came
    with the answer (``attachment_ids``: documents of the referral sent the usual way). The
    receiver applies it only from the task's sending member, to a task of that referral
    still waiting for that round's answer: it keeps the answer with the round and gives the
    task back to its unit (``acknowledged``), reporting that step to the sender like any
    other. **Personal data**: the answer (free text).
    """

    task_id: str = Field(pattern=_ID)
    referral_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=_KIND)
    by_orgnr: str = Field(pattern=_ORGNR)
    by_unit_id: str | None = Field(None, pattern=_ID)
    round: int = Field(ge=1, le=1000, description="the round answered (1: the first question)")
    answer: str | None = Field(None, max_length=4000)
    attachment_ids: list[Annotated[str, Field(pattern=_ID)]] = Field(
        default_factory=list, max_length=50
    )
    at: dt.datetime


REFERRAL_ATTACHMENT_CHUNK_V1 = "se.vardkedja.referral.attachment_chunk.v1"


@event_type(REFERRAL_ATTACHMENT_CHUNK_V1, topics=(INBOUND,), personal_data=True)
class ReferralAttachmentChunkV1(EventPayload):
    """A piece of a document the sending unit attached to a referral (ADR 0023).

    Sent by the sending member's referral service on the receiving member's inbound topic,
    key = task id (so the pieces keep their order with ``referral.sent``): after
    ``referral.sent`` for every document attached when the referral was sent, and later
    for a document added to a sent referral, to every recipient whose task is still open.
    A document of ``size`` bytes travels as ``count`` chunks (``index`` 0 to count − 1,
    ``data`` base64, each at most 512 KiB raw), every chunk naming the whole document's
    SHA-256, size, type and title. The receiver keeps the chunks until it holds all of
    them and the task, then stores the document for the task's receiving unit only after
    checking its size, digest and type (from the bytes) again; a task it never filed, or
    has closed, gets nothing. ``added_later``: the document was added to the referral after
    it was sent (not with a komplettering answer, which is told as its own step): once it is
    stored, the receiver tells the holding unit (``referral.document_added``).
    **Personal data**: the document and its title.
    """

    task_id: str = Field(pattern=_ID)
    referral_id: str = Field(pattern=_ID)
    attachment_id: str = Field(pattern=_ID)
    sender_orgnr: str = Field(pattern=_ORGNR)
    recipient_orgnr: str = Field(pattern=_ORGNR)
    index: int = Field(ge=0, lt=documents.MAX_CHUNKS)
    count: int = Field(ge=1, le=documents.MAX_CHUNKS)
    size: int = Field(ge=1, le=documents.MAX_DOCUMENT_BYTES, description="the whole document")
    sha256: str = Field(pattern=documents.SHA256_PATTERN, description="of the whole document")
    content_type: str = Field(pattern=documents.TYPE_PATTERN)
    title: str = Field(pattern=documents.TITLE_PATTERN)
    data: str = Field(
        min_length=4, max_length=documents.MAX_CHUNK_TEXT, description="the chunk, base64"
    )
    sent_at: dt.datetime
    added_later: bool = Field(
        False, description="added to the referral after it was sent: the holder is told"
    )

    @model_validator(mode="after")
    def _whole(self) -> Self:
        if self.index >= self.count:
            raise ValueError("index is not below count")
        if documents.title_problem(self.title) is not None:
            raise ValueError("title is no file name")
        if documents.b64decode(self.data) is None:
            raise ValueError("data is not base64")
        return self

    def chunk(self) -> bytes:
        """The chunk's bytes."""
        data = documents.b64decode(self.data)
        assert data is not None  # checked when the payload was validated
        return data


REFERRAL_DISCHARGE_RECORDED_V1 = "se.vardkedja.referral.discharge_recorded.v1"


@event_type(REFERRAL_DISCHARGE_RECORDED_V1, topics=(INBOUND,), personal_data=True)
class ReferralDischargeRecordedV1(EventPayload):
    """The ward that sent a discharge planning recorded the person's actual discharge.

    Sent by the sending member's referral service at once, on the inbound topic of every
    member holding a task of the planning that is still open, one event per such task
    (``task_id``), key = task id (after its ``referral.sent``); ``coordinators`` on one of
    them per member asks that member to tell its coordinating units of ``plan_id``, the
    plan of the SIP linked to the planning (a member holding no open task but coordinating
    the plan gets one event without ``task_id``, key = referral id). The receiver checks
    that the planning's sender (and the plan's owner) sent it, shows the discharge on the
    task and tells its units (``referral.discharged``). **Personal data**: the day a person
    left in-patient care, by the ids of their task and plan (the ward's note stays with the
    ward).
    """

    task_id: str | None = Field(None, pattern=_ID, description="the planning's task here")
    referral_id: str = Field(pattern=_ID)
    sender_orgnr: str = Field(pattern=_ORGNR)
    sender_unit_id: str = Field(pattern=_ID)
    recipient_orgnr: str = Field(pattern=_ORGNR)
    plan_id: str | None = Field(None, pattern=_ID, description="the linked SIP's plan")
    coordinators: bool = Field(False, description="tell this member's coordinators of plan_id")
    discharged_on: dt.date
    unplanned: bool
    recorded_at: dt.datetime

    @model_validator(mode="after")
    def _about_something(self) -> Self:
        if self.task_id is None and not (self.coordinators and self.plan_id):
            raise ValueError("an event without a task is for the plan's coordinators")
        if self.coordinators and self.plan_id is None:
            raise ValueError("the coordinators are told of a plan")
        return self


class PlanBasisV1(EventPayload):
    """The basis the plan's owner found for sharing it with one unit of the receiving
    member: a consent (its id) or a stated legal basis. A shared plan always crosses to
    another member, so the receiver refuses ``same_member`` (``no_basis``)."""

    orgnr: str = Field(pattern=_ORGNR)
    unit_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=r"^(consent|legal_basis|same_member)$")
    consent_id: str | None = Field(None, max_length=64)
    legal_basis: str | None = Field(None, max_length=32)
    ground: str | None = Field(None, max_length=32)
    justification: str | None = Field(None, max_length=2000)


PLAN_SHARED_V1 = "se.vardkedja.plan.shared.v1"


@event_type(PLAN_SHARED_V1, topics=(INBOUND,), personal_data=True)
class PlanSharedV1(EventPayload):
    """A meeting's plan (remissmöte or SIP) was recorded or changed by the member that owns
    it: the person's own goals and the others, the ordered actions each owned by a unit or
    an outside actor (with their status), the coordinating units, the follow-up date, who
    took part and whether the person agrees.

    Sent by the owning member's referral service to the inbound topic of every other member
    with a unit among ``viewers`` (participants who accepted, a vårdkedjeremiss's sender,
    the coordinating units and the actions' owner units) for which the owner's consent
    service allows the plan at that moment (``bases``), key = plan id, ``plan_version``
    growing with every change; receivers check their own copy of the basis, keep the newest
    copy from the plan's first owner and tell their units of every action assigned to them
    and every step taken. **Personal data**: the personnummer (so a party
    can place the plan with the person) and the plan itself.
    """

    plan_id: str = Field(pattern=_ID)
    owner_orgnr: str = Field(pattern=_ORGNR)
    owner_unit_id: str = Field(pattern=_ID)
    kind: str = Field(pattern=r"^(remissmote|sip)$")
    personnummer: str = Field(pattern=r"^[0-9]{12}$")
    own_goals: list[str] = Field(default_factory=list, max_length=10)
    goals: list[str] = Field(default_factory=list, max_length=20)
    actions: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    coordinators: list[dict[str, str]] = Field(min_length=1, max_length=2)
    follow_up_date: dt.date
    attendance: dict[str, Any] | None = None
    person_agrees: bool | None = None
    viewers: list[dict[str, str]] = Field(min_length=1, max_length=60)
    plan_version: int = Field(ge=1)
    at: dt.datetime
    protected_identity: bool = Field(
        False, description="skyddad identitet: only the role protected_identity sees the plan"
    )
    bases: list[PlanBasisV1] = Field(
        default_factory=list,
        max_length=60,
        description="the basis the owner found for each of the receiving member's units",
    )


PLAN_ACTION_STEP_REQUESTED_V1 = "se.vardkedja.plan.action_step_requested.v1"


@event_type(PLAN_ACTION_STEP_REQUESTED_V1, topics=(INBOUND,), personal_data=True)
class PlanActionStepRequestedV1(EventPayload):
    """A unit of another member took a step on an action in a plan this member owns: it
    started, ended or cancelled an action it owns (or, as a coordinating unit, one of an
    actor outside the federation).

    Sent by that unit's referral service to the plan owner's inbound topic, key = plan id.
    The owner checks the unit may take the step from the action's status, records it and
    shares the plan again, so every party is told (domain problem 5: no action ends or
    fails to start unnoticed). **Personal data**: a note or reason in free text.
    """

    plan_id: str = Field(pattern=_ID)
    action_id: str = Field(pattern=_ID)
    by_orgnr: str = Field(pattern=_ORGNR)
    by_unit_id: str = Field(pattern=_ID)
    step: str = Field(pattern=r"^(started|ended|cancelled)$")
    outcome: str | None = Field(None, pattern=r"^(completed|replaced|interrupted)$")
    note: str | None = Field(None, max_length=500)
    reason: str | None = Field(None, max_length=500)
    at: dt.datetime


PLAN_REVISION_REQUESTED_V1 = "se.vardkedja.plan.revision_requested.v1"


@event_type(PLAN_REVISION_REQUESTED_V1, topics=(INBOUND,), personal_data=True)
class PlanRevisionRequestedV1(EventPayload):
    """A coordinating unit of another member revised a plan this member owns.

    Sent by that unit's referral service to the plan owner's inbound topic, key = plan id,
    naming the version it revised (``based_on``). The owner applies it when the unit is
    still a coordinator and the plan is still at that version, then shares the new version
    with every party. **Personal data**: the plan's goals and actions.
    """

    plan_id: str = Field(pattern=_ID)
    by_orgnr: str = Field(pattern=_ORGNR)
    by_unit_id: str = Field(pattern=_ID)
    based_on: int = Field(ge=1)
    plan: dict[str, Any] = Field(description="the revised plan, as the plan API takes it")
    at: dt.datetime
