"""The closed loop: after delivery the receiving unit holds the task and is the authority on
its status; every step it takes is reported back to the sender with the task's version
there, and the sender's mirror only moves forward. The sender may withdraw; the receiver
confirms, or answers with the status that the withdrawal came too late for. An
acknowledgement starts the deadline to accept or decline (``answer_by``), which each side
sets for itself by its own member's policy (:func:`services.referral.sending.answer_by`).

Only the member a task binds moves it: its sender withdraws it, the member holding it
reports on it (``not_owner`` for anyone else).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.referral import attachment_receiving, attachments, invitations, komplettering
from services.referral.access import (
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
    caller_of,
    get_incoming,
)
from services.referral.codes import (
    AHEAD,
    DECLINE_DECISIONS,
    FINAL,
    NEEDS_OUTCOME,
    NEEDS_QUESTION,
    NEEDS_REASON,
    NEEDS_RESULT,
    NEEDS_TARGET,
    NOT_FOR_INVITATIONS,
    TRANSITIONS,
    Actor,
    Status,
    allowed_from,
)
from services.referral.details import UnitRef
from services.referral.models import Incoming, Recipient, Referral, TaskTombstone
from services.referral.moves import (
    Report,
    Step,
    history,
    move_incoming,
    move_recipient,
    tell_sender,
)
from services.referral.repository import (
    IncomingRepository,
    RecipientRepository,
    ReferralRepository,
    TaskTombstoneRepository,
    TransitionRepository,
)
from services.referral.schemas import PersonIn, ReferralCreate, TransitionIn
from services.referral.sending import answer_by, send_referral
from services.referral.siblings import Clients
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.domain.content import ReferralContent
from shared.domain.kinds import spec
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import REFERRAL_TRANSITIONED_V1, ReferralTransitionedV1
from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer, require_owner, require_sender
from shared.web.errors import Conflict, InvalidInput


async def check_step_owner(work: Work, event: CloudEvent, payload: ReferralTransitionedV1) -> None:
    """Only the member a copy binds may move it (``not_owner``): the sender of a task filed
    here (a withdrawal), or the member holding a task this member sent (a reported step),
    whose version (``receiver_version``) then only moves forward."""
    if payload.actor == Actor.SENDER:
        incoming = await IncomingRepository(work.session).get(payload.task_id)
        owner = None if incoming is None else incoming.sender_orgnr
    else:
        recipient = await RecipientRepository(work.session).get(payload.task_id)
        owner = None if recipient is None else recipient.orgnr
    require_owner(owner, event.sender_orgnr or "", "the task is held by another member")


def _refuse_step(
    current: Status, to: Status, actor: Actor, *, invitation: bool = False
) -> Conflict:
    allowed = [s.value for s in allowed_from(current, actor, invitation=invitation)]
    return TransitionNotAllowed(
        f"{current.value} → {to.value} is not allowed for the {actor.value}; allowed: "
        f"{', '.join(allowed) or 'none'}",
        allowed=allowed,
    )


def _check_transition(
    current: Status, data: TransitionIn, actor: Actor, *, invitation: bool = False
) -> None:
    if TRANSITIONS.get((current, data.to)) is not actor or (
        invitation and data.to in NOT_FOR_INVITATIONS
    ):
        raise _refuse_step(current, data.to, actor, invitation=invitation)
    problems = []
    if data.to in NEEDS_REASON and not data.reason:
        problems.append(("reason", "reason_required"))
    if data.to in NEEDS_OUTCOME and not data.outcome:
        problems.append(("outcome", "outcome_required"))
    if data.to in NEEDS_TARGET and data.forward_to is None:
        problems.append(("forward_to", "forward_to_required"))
    if data.to not in NEEDS_TARGET and data.forward_to is not None:
        problems.append(("forward_to", "only_when_forwarding"))
    if data.proposed_at is not None and (data.to is not Status.DECLINED or not invitation):
        problems.append(("proposed_at", "only_when_declining_an_invitation"))
    if data.to in NEEDS_QUESTION and not data.question:
        problems.append(("question", "question_required"))
    if data.to not in NEEDS_QUESTION and data.question is not None:
        problems.append(("question", "only_when_requesting_information"))
    problems += _result_problems(data, invitation=invitation)
    if problems:
        raise InvalidInput.fields(problems)


def _result_problems(data: TransitionIn, *, invitation: bool) -> list[tuple[str, str]]:
    """A referral (never an invitation) completed or declined states its structured result,
    and a declined one granted nothing; no other step has one."""
    needed = data.to in NEEDS_RESULT and not invitation
    if data.result is None:
        return [("result", "result_required")] if needed else []
    if not needed:
        return [("result", "only_when_completing_or_declining")]
    if data.to is Status.DECLINED and data.result.decision not in DECLINE_DECISIONS:
        return [("result.decision", "granted_only_when_completing")]
    return []


async def transition_incoming(
    work: Work, clients: Clients, *, task_id: str, data: TransitionIn, expected_version: int
) -> Incoming:
    """Moves an incoming referral on (the receiving unit holds it) and tells the sender."""
    incoming = await get_incoming(work, task_id)
    if incoming.version != expected_version:
        raise StaleVersion(f"the referral is at version {incoming.version}")
    current = Status(incoming.status)
    _check_transition(current, data, Actor.HOLDER, invitation=invitations.is_invitation(incoming))
    forwarded_to = None
    if data.to is Status.FORWARDED:
        assert data.forward_to is not None
        forward = invitations.forward if invitations.is_invitation(incoming) else _forward
        forwarded_to = await forward(work, clients, incoming, data.forward_to)
    incoming.outcome = data.outcome or incoming.outcome
    incoming.case_reference = data.case_reference or incoming.case_reference
    incoming.proposed_at = data.proposed_at or incoming.proposed_at
    result = data.result.model_dump(mode="json") if data.result else None
    incoming.result = result or incoming.result
    if data.to is Status.ACKNOWLEDGED:  # from now on the unit owes an answer
        today = to_local(work.now).date()
        incoming.answer_by = answer_by(settings=work.settings, task=incoming, acknowledged_on=today)
    step = Step(data.to, Actor.HOLDER, data.reason)
    if data.to is Status.INFORMATION_REQUESTED:
        assert data.question is not None  # checked above
        step = komplettering.ask(work, incoming, data.question)
    await move_incoming(work, incoming, step)
    await tell_sender(
        work,
        incoming,
        Report(
            current,
            data.to,
            Actor.HOLDER,
            incoming.unit_id,
            data.reason,
            version=incoming.version,
            outcome=data.outcome,
            case_reference=data.case_reference,
            forwarded_to=forwarded_to,
            proposed_at=data.proposed_at,
            question=data.question,
            result=result,
        ),
    )
    await work.session.flush()
    return incoming


UNKNOWN_BEFORE = "Okänt hos avsändaren."
FORWARDED_REPORT = "Anmälan vidarebefordrad till den enhet som ska handlägga den."


async def _forward(
    work: Work, clients: Clients, incoming: Incoming, target: UnitRef
) -> dict[str, str]:
    """Sends the referral on from the holding unit to ``target`` (a new referral of this
    member: the basis is checked again for the new recipient). An invitation to a meeting
    is forwarded through its meeting instead (:func:`.invitations.forward`)."""
    assert incoming.personnummer is not None  # an open task keeps its person
    content = ReferralContent.of(incoming).model_dump(exclude={"details"})
    if content["children_in_household"] == "unknown" and not content["children_unknown_reason"]:
        content["children_unknown_reason"] = UNKNOWN_BEFORE  # a task from before the reason
    kind = spec(incoming.kind)
    data = ReferralCreate.model_validate(
        {
            **content,
            "person": PersonIn(
                personnummer=incoming.personnummer,
                protected_identity=incoming.protected_identity,
            ).model_dump(),
            "recipients": [target.model_dump()],
            kind.details_field: incoming.details or None,
            # A report under a duty to report goes on on its own basis, stated again.
            "legal_basis": None
            if kind.consent_allowed
            else {"basis": kind.legal_bases[0], "justification": FORWARDED_REPORT},
            # The documents the task holds go on with it (ADR 0023).
            "attachment_ids": await attachments.carried_on(work, incoming),
        }
    )
    _referral, recipients = await send_referral(work, clients, data)
    return {"orgnr": target.orgnr, "unit_id": target.unit_id, "task_id": recipients[0].id}


async def prefetch_reported(work: Work, payloads: list[ReferralTransitionedV1]) -> None:
    """Loads what a run of reported steps will read, in three queries instead of up to
    three per step: the sender's mirrors of the tasks and their referrals, and the
    receiver's tasks (a withdrawal). The steps are then applied one by one as ever; their
    look-ups by id are answered from the session."""
    await IncomingRepository(work.session).load_many(
        p.task_id for p in payloads if p.actor == Actor.SENDER
    )
    mirrors = await RecipientRepository(work.session).load_many(
        p.task_id for p in payloads if p.actor != Actor.SENDER
    )
    await ReferralRepository(work.session).load_many(r.referral_id for r in mirrors)


async def apply_reported_transition(
    work: Work, event: CloudEvent, payload: ReferralTransitionedV1
) -> bool:
    """At the sender: the receiver reported a step; the mirror moves forward (True), or the
    report is older than what it already shows, or leads nowhere from it (False).

    A report is applied only when it is newer than the last one (``receiver_version``) and
    its status lies ahead of the mirror's in the state machine: a newer report may overtake
    older ones (steps are skipped, never taken back), and a final status is never left —
    not even the sender's own ``withdrawn`` or ``cancelled``, which an older report of the
    receiver may still be on its way to contradict (ADR 0016)."""
    session = work.session
    recipient = await RecipientRepository(session).get(payload.task_id)
    if recipient is None:
        raise Reject("unknown_task", "no referral of this member has this task id")
    require_owner(
        recipient.orgnr,
        event.sender_orgnr or "",
        "only the receiving member reports on a task",
        rule="sender_not_holder",
    )
    if not newer(recipient.remote_version, payload.receiver_version):
        return False
    old = Status(recipient.status)
    to = Status(payload.to_status)
    recipient.remote_version = payload.receiver_version
    by: dict[str, Any] = {"by_orgnr": payload.by_orgnr, "by_unit_id": payload.by_unit_id}
    if to is not old and to not in AHEAD[old]:
        if to in FINAL:  # the receiver's last word, e.g. a withdrawal that came too late
            await session.flush()
            why = f"the receiver reports {to.value}; the referral stays {old.value}"
            stays = Step(old, Actor.SYSTEM, why, **by)
            session.add(history(work, task_id=recipient.id, side="sender", frm=old, step=stays))
        await session.flush()
        return False
    recipient.outcome = payload.outcome or recipient.outcome
    recipient.case_reference = payload.case_reference or recipient.case_reference
    recipient.proposed_at = payload.proposed_at or recipient.proposed_at
    recipient.forwarded_to = payload.forwarded_to or recipient.forwarded_to
    if payload.result is not None:
        recipient.result = payload.result.model_dump(mode="json")
    # The answer deadline starts with the acknowledgement (not again when the holder takes
    # the task back after a komplettering: the wait moved it on then).
    resumed = old is Status.INFORMATION_REQUESTED or recipient.answer_by is not None
    if to in (Status.ACKNOWLEDGED, Status.INFORMATION_REQUESTED) and to is not old and not resumed:
        await _expect_answer(work, recipient, payload)
    if to is old:  # a confirmation (e.g. of a withdrawal, or of an answer to a question)
        await session.flush()
        confirmed = Step(old, Actor.SYSTEM, "confirmed by the receiver", **by)
        session.add(history(work, task_id=recipient.id, side="sender", frm=old, step=confirmed))
        await session.flush()
        return True
    step = Step(to, Actor(payload.actor), payload.reason, **by)
    if to is Status.INFORMATION_REQUESTED:
        referral = await ReferralRepository(session).get(recipient.referral_id)
        assert referral is not None
        step = komplettering.asked_at_sender(work, recipient, referral, payload)
    await move_recipient(work, recipient, step)
    await session.flush()
    return True


async def _expect_answer(work: Work, recipient: Recipient, payload: ReferralTransitionedV1) -> None:
    """The sender's own deadline for the receiver's answer, by this member's policy from
    the day the receiver acknowledged (as it reports it, never later than today here: a
    receiver cannot move the sender's alert further off)."""
    referral = await ReferralRepository(work.session).get(recipient.referral_id)
    assert referral is not None
    at = payload.at if payload.at.tzinfo is not None else payload.at.replace(tzinfo=dt.UTC)
    acknowledged_on = to_local(min(at, work.now)).date()
    recipient.answer_by = answer_by(
        settings=work.settings, task=referral, acknowledged_on=acknowledged_on
    )


async def withdraw(
    work: Work, *, task_id: str, reason: str, by_person: bool, expected_version: int
) -> tuple[Recipient, Referral]:
    """The sending unit withdraws its referral from one recipient (the receiver confirms,
    or answers with the status the withdrawal came too late for)."""
    caller = caller_of(work)
    recipient = await RecipientRepository(work.session).get(task_id)
    referral = (
        await ReferralRepository(work.session).get(recipient.referral_id) if recipient else None
    )
    if recipient is None or referral is None or referral.sender_unit_id != caller.unit:
        raise ReferralNotFound("no such referral sent by your unit")
    if recipient.version != expected_version:
        raise StaleVersion(f"the referral is at version {recipient.version}")
    current = Status(recipient.status)
    if TRANSITIONS.get((current, Status.WITHDRAWN)) is not Actor.SENDER:
        allowed = ", ".join(s.value for s in allowed_from(current, Actor.SENDER)) or "none"
        raise TransitionNotAllowed(
            f"{current.value} → withdrawn is not allowed; allowed for the sender: {allowed}"
        )
    why = f"the person declined: {reason}" if by_person else reason
    # notify=False: the sending unit did it itself.
    await move_recipient(work, recipient, Step(Status.WITHDRAWN, Actor.SENDER, why), notify=False)
    await work.publish(
        topics.inbound(recipient.orgnr),
        REFERRAL_TRANSITIONED_V1,
        ReferralTransitionedV1(
            task_id=recipient.id,
            referral_id=referral.id,
            kind=referral.kind,
            from_status=current.value,
            to_status=Status.WITHDRAWN.value,
            actor=Actor.SENDER.value,
            by_orgnr=caller.org,
            by_unit_id=caller.unit,
            reason=why,
            at=work.now,
        ),
        subject=recipient.id,
        key=recipient.id,
    )
    return recipient, referral


async def apply_withdrawal(work: Work, event: CloudEvent, payload: ReferralTransitionedV1) -> bool:
    """At the receiver: the sender withdrew. Applied if still open; either way the sender
    gets the task's status back (closed loop)."""
    incoming = await IncomingRepository(work.session).get(payload.task_id)
    if incoming is None:
        return await _remember_withdrawal(work, event, payload)
    require_sender(event, incoming.sender_orgnr, "only the sending member withdraws its referral")
    current = Status(incoming.status)
    applied = TRANSITIONS.get((current, Status.WITHDRAWN)) is Actor.SENDER
    if applied:
        step = Step(
            Status.WITHDRAWN,
            Actor.SENDER,
            payload.reason,
            by_orgnr=payload.by_orgnr,
            by_unit_id=payload.by_unit_id,
        )
        await move_incoming(work, incoming, step)
        await attachment_receiving.drop_task(work, incoming.id)  # withdrawn: its documents go
    await tell_sender(
        work,
        incoming,
        Report(
            current if applied else None,
            Status(incoming.status),
            Actor.SYSTEM,  # the receiver's answer (a step "by the sender" goes the other way)
            incoming.unit_id,
            payload.reason if applied else "the withdrawal came after the referral closed",
            version=incoming.version + (0 if applied else 1),
            outcome=incoming.outcome,
            case_reference=incoming.case_reference,
            result=incoming.result,
        ),
    )
    await work.session.flush()
    return applied


async def _remember_withdrawal(
    work: Work, event: CloudEvent, payload: ReferralTransitionedV1
) -> bool:
    """A withdrawal of a task not held here: refused at arrival (nothing to do), or not
    arrived yet — then a tombstone waits for it (ADR 0016). True if one was stored."""
    require_sender(event, payload.by_orgnr, "only the sending member withdraws its referral")
    if await TransitionRepository(work.session).answered_here(payload.task_id):
        return False  # refused at arrival: nothing held here
    if await TaskTombstoneRepository(work.session).get(payload.task_id) is not None:
        return False
    work.session.add(
        TaskTombstone(
            task_id=payload.task_id,
            sender_orgnr=payload.by_orgnr,
            by_unit_id=payload.by_unit_id,
            received_at=work.now,
        )
    )
    await work.session.flush()
    return True
