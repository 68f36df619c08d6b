"""How a task moves: its status, a step in its history, and who is told.

A task is one referral at one recipient, held under the same id by both members: the
receiver holds it (``Incoming``) and is the authority on its status; the sender keeps a
mirror (``Recipient``). Every move writes a step of the history on its side, tells this
member's notify service (no personal data), and — at the receiver — reports the step to
the sender with the task's version there (:func:`tell_sender`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.referral.codes import Actor, Status
from services.referral.models import Incoming, Recipient, Referral, Transition
from services.referral.repository import ReferralRepository
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_STATUS_CHANGED_V1,
    REFERRAL_TRANSITIONED_V1,
    ReferralResultV1,
    ReferralSentV1,
    ReferralStatusChangedV1,
    ReferralTransitionedV1,
)


@dataclass(frozen=True)
class Step:
    """A step of a task: to which status, by which actor and why. Taken by the work's
    caller when it has one; else by ``by_orgnr`` (default: this member) and its unit."""

    to: Status
    actor: Actor
    reason: str | None = None
    by_orgnr: str | None = None
    by_unit_id: str | None = None
    sets_reason: bool = True
    """False: ``reason`` goes in the history only, never in the task's own ``reason`` (a
    komplettering's question, the answer's summary)."""


@dataclass(frozen=True)
class Report:
    """What the receiver tells the sender about a step of a task it holds."""

    frm: Status | None
    to: Status
    actor: Actor
    unit_id: str | None
    reason: str | None
    version: int
    outcome: str | None = None
    case_reference: str | None = None
    forwarded_to: dict[str, str] | None = None
    proposed_at: dt.datetime | None = None
    question: str | None = None
    result: dict[str, Any] | None = None


def history(work: Work, *, task_id: str, side: str, frm: Status | None, step: Step) -> Transition:
    """A step of the task's history on ``side`` (``sender`` or ``receiver``)."""
    caller = work.caller
    return Transition(
        task_id=task_id,
        side=side,
        from_status=str(frm) if frm is not None else None,
        to_status=str(step.to),
        actor=step.actor.value,
        by_orgnr=caller.org if caller else step.by_orgnr or work.member,
        by_unit_id=caller.unit if caller else step.by_unit_id,
        by_sub=caller.sub if caller else None,
        reason=step.reason,
        at=work.now,
    )


async def _status_changed(
    work: Work, *, task: Incoming | Recipient, kind: str, unit_id: str, old: Status, new: Status
) -> None:
    """Tells this member's notify service (no personal data)."""
    await work.publish(
        topics.internal(work.member),
        REFERRAL_STATUS_CHANGED_V1,
        ReferralStatusChangedV1(
            referral_id=task.id,
            kind=kind,
            unit_id=unit_id,
            direction="incoming" if isinstance(task, Incoming) else "outgoing",
            old_status=old.value,
            new_status=new.value,
            changed_at=work.now,
            version=max(1, task.version),
        ),
        subject=task.id,
        key=task.id,
    )


async def move_incoming(work: Work, incoming: Incoming, step: Step) -> Status:
    """Moves a task held here: its status (and reason), a step in its history, and the
    news to this member's notify. Returns the status it had."""
    old = Status(incoming.status)
    incoming.status = step.to.value
    if step.sets_reason:
        incoming.reason = step.reason or incoming.reason
    await work.session.flush()  # the version grows (optimistic concurrency)
    work.session.add(history(work, task_id=incoming.id, side="receiver", frm=old, step=step))
    await _status_changed(
        work, task=incoming, kind=incoming.kind, unit_id=incoming.unit_id, old=old, new=step.to
    )
    return old


async def move_recipient(
    work: Work, recipient: Recipient, step: Step, *, notify: bool = True
) -> tuple[Status, Referral]:
    """Moves the sender's view of a task: status, reason, a step in its history and
    (``notify``) the news to the sending unit. Returns the old status and the referral."""
    old = Status(recipient.status)
    recipient.status = step.to.value
    if step.sets_reason:
        recipient.reason = step.reason or recipient.reason
    await work.session.flush()
    work.session.add(history(work, task_id=recipient.id, side="sender", frm=old, step=step))
    referral = await ReferralRepository(work.session).get(recipient.referral_id)
    assert referral is not None
    if notify:
        await _status_changed(
            work,
            task=recipient,
            kind=referral.kind,
            unit_id=referral.sender_unit_id,
            old=old,
            new=step.to,
        )
    return old, referral


async def tell_sender(work: Work, task: ReferralSentV1 | Incoming, report: Report) -> None:
    """Reports a step of a task held here to the member that sent it (closed loop)."""
    task_id = task.task_id if isinstance(task, ReferralSentV1) else task.id
    await work.publish(
        topics.inbound(task.sender_orgnr),
        REFERRAL_TRANSITIONED_V1,
        ReferralTransitionedV1(
            task_id=task_id,
            referral_id=task.referral_id,
            kind=task.kind,
            from_status=report.frm.value if report.frm else None,
            to_status=report.to.value,
            actor=report.actor.value,
            by_orgnr=work.member,
            by_unit_id=report.unit_id,
            reason=report.reason,
            outcome=report.outcome,
            case_reference=report.case_reference,
            forwarded_to=report.forwarded_to,
            proposed_at=report.proposed_at,
            receiver_version=report.version,
            at=work.now,
            question=report.question,
            result=ReferralResultV1.model_validate(report.result) if report.result else None,
        ),
        subject=task_id,
        key=task_id,
        aggversion=report.version,
    )
