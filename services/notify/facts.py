"""Events -> facts: what a consumed event says that notify may repeat, one item per unit to
tell (pure; no state is read)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from services.notify.content import Facts
from shared.domain.kinds import ReferralKind
from shared.messaging.events.payloads import (
    ConsentEndedV1,
    PlanActionChangedV1,
    ReferralBasisNarrowedV1,
    ReferralDeadlineV1,
    ReferralDischargedV1,
    ReferralDocumentAddedV1,
    ReferralReceivedV1,
    ReferralStatusChangedV1,
    UnitReviewDueV1,
)


def _one(
    kind: str, about: dict[str, Any], counterpart: str | None = None, **more: Any
) -> list[Facts]:
    """One item of facts: its kind, its subject, the other member (if any) and the rest."""
    return [Facts(kind=kind, **about, counterpart_orgnr=counterpart, **more)]


def _about(
    subject_type: str, subject_id: str, unit_id: str | None, kind: ReferralKind | None = None
) -> dict[str, Any]:
    """The subject of a notification: what it is about, at which unit, of which kind."""
    return {
        "subject_type": subject_type,
        "subject_id": subject_id,
        "unit_id": unit_id,
        "referral_kind": kind,
    }


def _referral(payload: Any) -> dict[str, Any]:
    return _about("referral", payload.referral_id, payload.unit_id, ReferralKind(payload.kind))


def facts_of(*, event_type: str, payload: BaseModel, own_orgnr: str) -> list[Facts]:
    """What an event says that notify may repeat, one item per unit to tell (pure)."""
    if isinstance(payload, ReferralReceivedV1):
        urgency, sender = payload.urgency, payload.sender_orgnr
        return _one(
            "referral.received", _referral(payload), sender, urgency=urgency, deadline="acknowledge"
        )
    if isinstance(payload, ReferralStatusChangedV1):
        return _one("referral.status_changed", _referral(payload), status=payload.new_status)
    if isinstance(payload, ReferralDeadlineV1):
        if payload.state == "met":
            return []
        # ``information`` (the sending unit owes the holder a komplettering) is the unit's
        # own deadline (audience actor): reminded, overdue and escalated like any other.
        if payload.audience == "sender":
            kind = "deadline.unanswered"  # the other party has not answered the sender
        elif payload.audience == "coordinator":
            kind = "deadline.escalated"  # an action of a plan the unit coordinates is late
        elif payload.state == "near":
            kind = "deadline.reminder"
        else:
            kind = "deadline.overdue"
        about = (
            _about("plan", payload.referral_id, payload.unit_id)
            if payload.action_id is not None
            else _referral(payload)
        )
        return _one(kind, about, deadline=payload.deadline, due_at=payload.due_at)
    if isinstance(payload, ReferralDischargedV1):
        # The task of the receiving unit, or the plan a coordinating unit coordinates.
        subject = "plan" if payload.audience == "coordinator" else "referral"
        about = _about(subject, payload.referral_id, payload.unit_id, ReferralKind(payload.kind))
        fate = "unplanned" if payload.unplanned else "planned"
        return _one("referral.discharged", about, payload.sender_orgnr, status=fate)
    if isinstance(payload, ReferralDocumentAddedV1):
        return _one("referral.document_added", _referral(payload), payload.sender_orgnr)
    if isinstance(payload, PlanActionChangedV1):
        plan = _about("plan", payload.plan_id, payload.unit_id)
        status = payload.outcome if payload.change == "ended" else None
        return _one(f"plan.action_{payload.change}", plan, payload.owner_orgnr, status=status)
    if isinstance(payload, ConsentEndedV1):
        units = sorted({p.unit_id or "" for p in payload.parties if p.orgnr == own_orgnr})
        owner, reason = payload.owner_orgnr, payload.reason
        out: list[Facts] = []
        for u in units:
            about = _about("consent", payload.consent_id, u or None)
            out += _one("consent.ended", about, owner, status=reason)
        return out
    if isinstance(payload, ReferralBasisNarrowedV1):
        fate = "cancelled" if payload.cancelled else "kept"
        covers = tuple(ReferralKind(k) for k in payload.covers)
        other = payload.counterpart_orgnr
        return _one("consent.narrowed", _referral(payload), other, status=fate, covers=covers)
    if isinstance(payload, UnitReviewDueV1):
        due = dt.datetime.combine(payload.due_since, dt.time(0), tzinfo=dt.UTC)
        unit = _about("unit", payload.unit_id, payload.unit_id)
        return _one("unit.review_due", unit, deadline="review", due_at=due)
    return []
