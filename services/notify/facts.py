"""Events -> facts: what a consumed event says that notify may repeat, one item per unit to
tell (pure; no state is read)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from services.notify.content import Facts
from shared.domain.codes import ReferralKind
from shared.messaging.events.payloads import (
    ConsentEndedV1,
    PlanActionEndedV1,
    ReferralDeadlineV1,
    ReferralReceivedV1,
    ReferralStatusChangedV1,
    SipAnsweredV1,
    SipInvitationV1,
    UnitReviewDueV1,
)


def _one(kind: str, subject_type: str, subject_id: str, **more: Any) -> list[Facts]:
    return [Facts(kind=kind, subject_type=subject_type, subject_id=subject_id, **more)]


def _referral(kind: str, payload: Any, **more: Any) -> list[Facts]:
    """A referral's facts: its id, unit and kind, and what else the event says."""
    return _one(
        kind,
        "referral",
        payload.referral_id,
        unit_id=payload.unit_id,
        referral_kind=ReferralKind(payload.kind),
        **more,
    )


def _sip(kind: str, payload: Any, **more: Any) -> list[Facts]:
    """A SIP meeting's facts: its id and unit (the kind is always a SIP kallelse)."""
    return _one(
        kind,
        "sip",
        payload.sip_id,
        unit_id=payload.unit_id,
        referral_kind=ReferralKind.SIP_KALLELSE,
        **more,
    )


def facts_of(*, event_type: str, payload: BaseModel, own_orgnr: str) -> list[Facts]:
    """What an event says that notify may repeat, one item per unit to tell (pure)."""
    if isinstance(payload, ReferralReceivedV1):
        return _referral(
            "referral.received",
            payload,
            urgency=payload.urgency,
            deadline="acknowledge",
            counterpart_orgnr=payload.sender_orgnr,
        )
    if isinstance(payload, ReferralStatusChangedV1):
        return _referral("referral.status_changed", payload, status=payload.new_status)
    if isinstance(payload, ReferralDeadlineV1):
        if payload.state == "met":
            return []
        kind = "deadline.reminder" if payload.state == "near" else "deadline.overdue"
        return _referral(kind, payload, deadline=payload.deadline, due_at=payload.due_at)
    if isinstance(payload, SipInvitationV1):
        return _sip(
            "sip.invitation",
            payload,
            deadline="answer" if payload.answer_by else None,
            due_at=payload.answer_by,
            counterpart_orgnr=payload.inviting_orgnr,
        )
    if isinstance(payload, SipAnsweredV1):
        return _sip(
            "sip.answered",
            payload,
            status=payload.answer,
            counterpart_orgnr=payload.answering_orgnr,
        )
    if isinstance(payload, PlanActionEndedV1):
        return _one(
            "plan.action_ended",
            "plan",
            payload.plan_id,
            unit_id=payload.unit_id,
            status=payload.outcome,
            counterpart_orgnr=payload.owner_orgnr,
        )
    if isinstance(payload, ConsentEndedV1):
        units = sorted({p.unit_id or "" for p in payload.parties if p.orgnr == own_orgnr})
        return [
            fact
            for u in units
            for fact in _one(
                "consent.ended",
                "consent",
                payload.consent_id,
                unit_id=u or None,
                status=payload.reason,
                counterpart_orgnr=payload.owner_orgnr,
            )
        ]
    if isinstance(payload, UnitReviewDueV1):
        due = dt.datetime.combine(payload.due_since, dt.time(0), tzinfo=dt.UTC)
        return _one(
            "unit.review_due",
            "unit",
            payload.unit_id,
            unit_id=payload.unit_id,
            deadline="review",
            due_at=due,
        )
    return []
