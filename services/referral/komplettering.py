"""Komplettering — a request for more information (Inera's confirmation code KOM, NHS e-RS
"return to referrer"): instead of declining, the unit holding a task asks the sending unit
a question. The task waits (``information_requested``) until the sending unit answers with
text, documents or both; the answer gives the task back to the holder (``acknowledged``),
which goes on from there (or declines it when no answer comes). Both sides keep every round:
the question and when it was asked, the answer, when it came and which documents came with
it (documents of the referral, sent to this recipient only).

While a task waits, the holder's clocks stand still: it is overdue neither to be
acknowledged nor to be answered, and when the answer comes each side's ``answer_by`` moves
on by the working days the task waited. The sending unit has a deadline of its own instead,
``information_by``: its own member's working days by urgency
(``VK_REFERRAL__INFORMATION_WORKING_DAYS``) from the day the holder asked, as the holder
reports it, with a reminder as it comes near and an alert once it has passed
(:mod:`.deadlines`).

The receiving member treats an answer like any event of another member: it applies it only
from the task's sending member, for a task of that referral waiting for that round's
answer; anything else is refused (``Reject``), and nothing of it is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.referral import attachments, deadlines
from services.referral.access import (
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
    caller_of,
)
from services.referral.attachment_repository import AttachmentRepository
from services.referral.codes import TRANSITIONS, Actor, Status, allowed_from
from services.referral.models import Incoming, Recipient, Referral
from services.referral.moves import Report, Step, move_incoming, move_recipient, tell_sender
from services.referral.repository import (
    IncomingRepository,
    RecipientRepository,
    ReferralRepository,
)
from services.referral.schemas import InformationIn
from shared.config import INFORMATION_WORKING_DAYS, Settings
from shared.data.work import Work
from shared.domain.calendar import add_working_days, to_local, working_days_between
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_INFORMATION_SUPPLIED_V1,
    ReferralInformationSuppliedV1,
    ReferralTransitionedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import require_sender
from shared.web.errors import Forbidden

NotTheSender = Forbidden.kind(
    "not-the-sender", "Only the unit that sent the referral answers the holder's question"
)

INFORMATION = "information"
"""The sending unit's deadline to answer (``ReferralDeadlineV1.deadline``)."""

Round = dict[str, Any]


# --- the rounds ------------------------------------------------------------------------------


def _asked(rounds: list[Round], question: str | None, at: dt.datetime) -> list[Round]:
    """``rounds`` with a new one: ``question``, asked ``at``, not answered yet."""
    fresh: Round = {
        "round": len(rounds) + 1,
        "question": question,
        "asked_at": at.isoformat(),
        "answer": None,
        "answered_at": None,
        "attachment_ids": [],
    }
    return [*rounds, fresh]


def _answered(rounds: list[Round], answer: str | None, ids: list[str], at: dt.datetime) -> Round:
    """The last of ``rounds`` answered (``answer``, the documents ``ids``) ``at``."""
    return {**rounds[-1], "answer": answer, "answered_at": at.isoformat(), "attachment_ids": ids}


def _why(answered: Round) -> str:
    """The answer's step in the history (no free text: the answer stays with its round)."""
    n = len(answered["attachment_ids"])
    documents = f", {n} document{'s' * (n != 1)}" if n else ""
    return f"komplettering {answered['round']} answered{documents}"


def information_by(settings: Settings, urgency: str, asked_on: dt.date) -> dt.date:
    """The sending unit's last day to answer a question asked on ``asked_on``: this member's
    working days for the referral's urgency after it (0: that day, or the next working
    day)."""
    table = settings.referral.information_working_days
    days = table.get(urgency, INFORMATION_WORKING_DAYS.get(urgency, 0))
    return add_working_days(asked_on, days)


def resumed(answer_by: dt.date | None, asked_at: str, answered_at: dt.datetime) -> dt.date | None:
    """``answer_by`` moved on by the working days a task waited for information, from the
    day it was asked (``asked_at``, ISO) to the day the answer came: the holder's clock
    stood still meanwhile (an answer the same day moves nothing)."""
    if answer_by is None:
        return None
    asked = to_local(dt.datetime.fromisoformat(asked_at)).date()
    waited = working_days_between(asked, to_local(answered_at).date())
    return add_working_days(answer_by, waited) if waited > 0 else answer_by


# --- the holder asks -------------------------------------------------------------------------


def ask(work: Work, incoming: Incoming, question: str) -> Step:
    """At the receiver: the holding unit asks ``question``; a new round, and the step that
    goes with it (the question in the history, never as the task's ``reason``)."""
    incoming.komplettering = _asked(list(incoming.komplettering or []), question, work.now)
    return Step(Status.INFORMATION_REQUESTED, Actor.HOLDER, question, sets_reason=False)


def asked_at_sender(
    work: Work, recipient: Recipient, referral: Referral, payload: ReferralTransitionedV1
) -> Step:
    """At the sender: the holder reports asking; the round as reported (asked no later than
    now here), the sending unit's own deadline to answer it, and the mirror's step."""
    at = payload.at if payload.at.tzinfo is not None else payload.at.replace(tzinfo=dt.UTC)
    at = min(at, work.now)
    recipient.komplettering = _asked(list(recipient.komplettering or []), payload.question, at)
    recipient.information_by = information_by(work.settings, referral.urgency, to_local(at).date())
    return Step(
        Status.INFORMATION_REQUESTED,
        Actor.HOLDER,
        payload.question,
        by_orgnr=payload.by_orgnr,
        by_unit_id=payload.by_unit_id,
        sets_reason=False,
    )


# --- the sender answers ----------------------------------------------------------------------


async def _sent_task(work: Work, referral_id: str, task_id: str) -> tuple[Recipient, Referral]:
    """The task ``task_id`` of the referral ``referral_id`` sent by the caller's unit (404
    when there is none; 403 ``not-the-sender`` for any other unit of this member)."""
    recipient = await RecipientRepository(work.session).get(task_id)
    referral = (
        await ReferralRepository(work.session).get(recipient.referral_id) if recipient else None
    )
    if recipient is None or referral is None or referral.id != referral_id:
        raise ReferralNotFound("no such task of a referral of this member")
    if referral.sender_unit_id != caller_of(work).unit:
        raise NotTheSender("only the unit that sent the referral answers for it")
    return recipient, referral


def _check_waiting(recipient: Recipient) -> None:
    """409 listing the sender's steps unless the task waits for the sender's answer."""
    current = Status(recipient.status)
    if TRANSITIONS.get((current, Status.ACKNOWLEDGED)) is Actor.SENDER:
        return
    allowed = [s.value for s in allowed_from(current, Actor.SENDER)]
    raise TransitionNotAllowed(
        f"the task is {current.value}, not waiting for information; allowed for the "
        f"sender: {', '.join(allowed) or 'none'}",
        allowed=allowed,
    )


async def answer(
    work: Work, *, referral_id: str, task_id: str, data: InformationIn, expected_version: int
) -> tuple[Recipient, Referral]:
    """The sending unit answers the holder's open question on one of its tasks: the text
    and the documents (sent to that recipient only) go to the receiving member, and the task
    goes back to the holder (``acknowledged``). Nothing is stored or sent when refused."""
    recipient, referral = await _sent_task(work, referral_id, task_id)
    if recipient.version != expected_version:
        raise StaleVersion(f"the referral is at version {recipient.version}")
    _check_waiting(recipient)
    # Documents of the referral: two additions at once must not pass the limits together.
    await ReferralRepository(work.session).lock(referral.id)
    existing = await AttachmentRepository(work.session).of_referral(referral.id)
    drafts = await attachments.claim(work, data.attachment_ids, already=existing)
    attachments.attach(work, drafts, referral)
    await attachments.send_to(work, referral, [recipient], drafts)  # before the answer
    rounds = list(recipient.komplettering or []) or _asked([], None, work.now)
    done = _answered(rounds, data.text, [d.id for d in drafts], work.now)
    recipient.komplettering = [*rounds[:-1], done]
    recipient.answer_by = resumed(recipient.answer_by, done["asked_at"], work.now)
    due, recipient.information_by = recipient.information_by, None
    step = Step(Status.ACKNOWLEDGED, Actor.SENDER, _why(done), sets_reason=False)
    await move_recipient(work, recipient, step, notify=False)  # the unit did it itself
    if due is not None:
        await deadlines.met(
            work,
            subject=recipient.id,
            kind=referral.kind,
            unit_id=referral.sender_unit_id,
            deadline=INFORMATION,
            due=due,
        )
    await deadlines.restarted(work, subject=recipient.id, deadline="answer")
    caller = caller_of(work)
    await work.publish(
        topics.inbound(recipient.orgnr),
        REFERRAL_INFORMATION_SUPPLIED_V1,
        ReferralInformationSuppliedV1(
            task_id=recipient.id,
            referral_id=referral.id,
            kind=referral.kind,
            by_orgnr=caller.org,
            by_unit_id=caller.unit,
            round=done["round"],
            answer=data.text,
            attachment_ids=done["attachment_ids"],
            at=work.now,
        ),
        subject=recipient.id,
        key=recipient.id,
    )
    await work.session.flush()
    return recipient, referral


# --- the holder gets the answer --------------------------------------------------------------


async def apply_answer(
    work: Work, event: CloudEvent, payload: ReferralInformationSuppliedV1
) -> None:
    """At the receiver: the sending member answered a question on a task held here. Applied
    only from the task's sending member, to a task of that referral waiting for that round's
    answer (else ``Reject``: nothing is stored); the task goes back to its unit and the step
    is reported to the sender like any other."""
    incoming = await IncomingRepository(work.session).get(payload.task_id)
    if incoming is None:
        raise Reject("unknown_task", "no task held here has this id")
    require_sender(event, incoming.sender_orgnr, "only the sending member answers for its task")
    require_sender(event, payload.by_orgnr, "the answer speaks for another member")
    if payload.referral_id != incoming.referral_id:
        raise Reject("not_owner", "the task is of another referral")
    if Status(incoming.status) is not Status.INFORMATION_REQUESTED:
        raise Reject("not_awaiting_information", "the task is not waiting for information")
    rounds = list(incoming.komplettering or [])
    if not rounds or payload.round != len(rounds) or rounds[-1].get("answered_at"):
        raise Reject("stale_round", "the answer is not to the task's open question")
    done = _answered(rounds, payload.answer, list(payload.attachment_ids), work.now)
    incoming.komplettering = [*rounds[:-1], done]
    incoming.answer_by = resumed(incoming.answer_by, done["asked_at"], work.now)
    step = Step(
        Status.ACKNOWLEDGED,
        Actor.SENDER,
        _why(done),
        by_orgnr=payload.by_orgnr,
        by_unit_id=payload.by_unit_id,
        sets_reason=False,
    )
    old = await move_incoming(work, incoming, step)
    await deadlines.restarted(work, subject=incoming.id, deadline="answer")
    report = Report(
        old,
        Status.ACKNOWLEDGED,
        Actor.SYSTEM,  # the receiver's word on the sender's step (as for a withdrawal)
        incoming.unit_id,
        None,
        version=incoming.version,
        case_reference=incoming.case_reference,
    )
    await tell_sender(work, incoming, report)
    await work.session.flush()
