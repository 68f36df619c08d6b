"""Consuming events: what each consumed event asks of notify — notifications through the
rules table, deadline timers to schedule and to cancel — written in the inbox's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from services.notify.facts import facts_of
from services.notify.fanout import FanOut, Origin, Row, fan_out
from services.notify.repository import TimerRepository
from services.notify.timers import cancel_deadline, deadline_timers
from shared.data.work import Work
from shared.domain.calendar import end_of_day, to_local
from shared.domain.kinds import spec
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    PLAN_ACTION_CHANGED_V1,
    REFERRAL_BASIS_NARROWED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGED_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    REFERRAL_RECEIVED_V1,
    REFERRAL_STATUS_CHANGED_V1,
    UNIT_REVIEW_DUE_V1,
    ReferralDeadlineV1,
    ReferralReceivedV1,
    ReferralStatusChangedV1,
)

HANDLED_EVENTS: tuple[str, ...] = (
    REFERRAL_RECEIVED_V1,
    REFERRAL_STATUS_CHANGED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGED_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    PLAN_ACTION_CHANGED_V1,
    CONSENT_ENDED_V1,
    REFERRAL_BASIS_NARROWED_V1,
    UNIT_REVIEW_DUE_V1,
)


@dataclass
class _Plan:
    origin: Origin
    timers: list[Row]
    cancels: list[tuple[str, str | None]]


def _plan(work: Work, event_id: str, event_type: str, payload: BaseModel) -> _Plan:
    """What one event asks for: its notifications' facts, timers to schedule, to cancel."""
    cfg = work.settings.notify
    facts = facts_of(event_type=event_type, payload=payload, own_orgnr=work.member)
    timers: list[Row] = []
    cancels: list[tuple[str, str | None]] = []

    def schedule(deadline: str, due_at: dt.datetime, actions: Sequence[str]) -> None:
        timers.extend(
            deadline_timers(
                settings=cfg,
                facts=facts[0],
                deadline=deadline,
                due_at=due_at,
                actions=actions,
                source_event_id=event_id,
                now=work.now,
            )
        )

    if isinstance(payload, ReferralReceivedV1):
        due = payload.acknowledge_by or end_of_day(
            spec(payload.kind).acknowledge_by(
                payload.urgency,
                to_local(payload.received_at).date(),
                work.settings.referral.acknowledge_working_days,
            )
        )
        facts = [f.model_copy(update={"due_at": due}) for f in facts]
        schedule("acknowledge", due, ("remind", "overdue", "escalate"))
    elif isinstance(payload, ReferralDeadlineV1):
        if payload.state == "met":
            cancels.append((payload.referral_id, payload.deadline))
        elif payload.state == "overdue" and payload.audience == "actor" and not payload.action_id:
            # The unit that must act is escalated; one that waits for another is not. A
            # plan's late action is escalated by the referral service itself, to the plan's
            # coordinating units (audience coordinator).
            schedule(payload.deadline, payload.due_at, ("escalate",))
    elif (
        isinstance(payload, ReferralStatusChangedV1)
        and payload.direction == "incoming"
        and payload.new_status not in ("sent", "delivered")
    ):
        # Taken on (acknowledged), or beyond: accepted, declined, forwarded, withdrawn, ...
        cancels.append((payload.referral_id, None))
    return _Plan(Origin(event_id, event_type, event_type, facts), timers, cancels)


async def notify_events(
    work: Work,
    *,
    events: Sequence[tuple[str, str, BaseModel]],
    lease_token: str | None = None,
) -> FanOut:
    """Turns consumed events (id, type, payload) into notifications, deliveries and timers."""
    # One read per kind of row for the whole run, with the effect of one event at a time.
    plans = [_plan(work, eid, etype, payload) for eid, etype, payload in events]
    if len(plans) > 1 and any(p.cancels for p in plans):
        # Cancelling and scheduling must keep the events' order: one event at a time.
        out = FanOut()
        for one in events:
            out.extend(await notify_events(work, events=[one], lease_token=lease_token))
        return out
    for plan in plans:
        for subject_id, deadline in plan.cancels:
            await cancel_deadline(work, subject_id=subject_id, deadline=deadline)
    timers = {t["id"]: t for plan in plans for t in plan.timers}
    await TimerRepository(work.session).insert_new(list(timers.values()))
    return await fan_out(work, origins=[p.origin for p in plans], lease_token=lease_token)


async def notify_event(
    work: Work,
    *,
    event_id: str,
    event_type: str,
    payload: BaseModel,
    lease_token: str | None = None,
) -> FanOut:
    """Turns one consumed event into notifications, deliveries and timers."""
    return await notify_events(
        work, events=[(event_id, event_type, payload)], lease_token=lease_token
    )
