"""Sending: a unit sends a referral (or an invitation to a meeting) to one or more
receiving units.

Each receiving unit gets a *task* (the same id at both members). The sender's consent
service decides for every recipient before anything is stored or sent (all or nothing);
the recipients are named, or chosen by this member's directory (``resolve``). The
acknowledgement deadline is set in working days by kind and urgency, and so is the deadline
to answer once acknowledged (:func:`answer_by`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.referral import attachments
from services.referral.access import NoBasis, caller_of, require_unit
from services.referral.codes import Actor, Status
from services.referral.details import UnitRef
from services.referral.models import Incoming, Recipient, Referral
from services.referral.moves import Step, history
from services.referral.repository import KnownUnitRepository
from services.referral.schemas import ReferralCreate
from services.referral.siblings import Clients, Question, decide, routes
from services.referral.units import unit_problem
from shared.config import Settings
from shared.data.db import new_id
from shared.data.work import Work
from shared.domain.calendar import to_local
from shared.domain.content import ReferralContent
from shared.domain.kinds import ReferralKind, spec
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import member_secret, person_key
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_SENT_V1,
    ReferralBasisV1,
    ReferralPersonV1,
    ReferralSentV1,
)
from shared.web.errors import InvalidInput


def acknowledge_by(*, settings: Settings, kind: str, urgency: str, today: dt.date) -> dt.date:
    """The acknowledgement deadline: working days after ``today`` by kind and urgency
    (the kinds registry's policy, or the member's own table; Swedish public holidays and
    eves do not count; 0 days: the same day)."""
    return spec(kind).acknowledge_by(urgency, today, settings.referral.acknowledge_working_days)


def answer_by(
    *, settings: Settings, task: Referral | Incoming, acknowledged_on: dt.date
) -> dt.date:
    """The last day to accept or decline a task acknowledged on ``acknowledged_on``: the day
    an invitation names (a SIP's ``answer_by``), else working days after it by kind and
    urgency (the kinds registry's policy, or the member's own table) — and never after the
    day of the meeting an invitation is to. Both members compute it, each for itself, from
    the same details."""
    details = task.details or {}
    due = spec(task.kind).answer_by(
        task.urgency,
        acknowledged_on,
        settings.referral.answer_working_days,
        given=_day(details.get("answer_by")),
    )
    meeting = _day(details.get("meeting_at"))
    return min(due, meeting) if meeting is not None else due


def _day(value: object) -> dt.date | None:
    """The day (in Sweden) of an ISO date or aware date-time in a task's details; None when
    there is none (details come from the sending member: anything else is ignored)."""
    if not isinstance(value, str):
        return None
    try:
        if "T" not in value:
            return dt.date.fromisoformat(value)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return to_local(moment).date() if moment.tzinfo is not None else None


def categories(kind: ReferralKind, protected: bool) -> list[str]:
    """The information categories a referral of ``kind`` carries (no contact details for a
    person with protected identity)."""
    return [c for c in spec(kind).categories if not (protected and c == "contact_details")]


@dataclass(frozen=True)
class _Target:
    ref: UnitRef
    routed: bool = False
    route_reason: str | None = None


@dataclass
class _Decided:
    target: _Target
    basis: dict[str, Any]


async def _resolve(work: Work, clients: Clients, data: ReferralCreate) -> _Target:
    """The best receiving unit from this member's directory, and why it was chosen."""
    repo = KnownUnitRepository(work.session)
    for ref, why in await routes(clients, data):
        if unit_problem(await repo.get(ref.unit_id), ref, data.kind) is None:
            return _Target(ref, routed=True, route_reason=why)
    raise InvalidInput.field(
        "resolve.kommunkod", "no_receiver", "no unit there receives this kind of referral"
    )


async def _targets(
    work: Work, clients: Clients, data: ReferralCreate, *, invitation: bool, problem_field: str
) -> list[_Target]:
    """The recipients: chosen by the directory, or named (each must be able to receive)."""
    if data.resolve is not None:
        return [await _resolve(work, clients, data)]
    repo = KnownUnitRepository(work.session)
    problems = []
    for i, ref in enumerate(data.recipients):
        rule = unit_problem(await repo.get(ref.unit_id), ref, data.kind, invitation=invitation)
        if rule is not None:
            problems.append((f"{problem_field}.{i}.unit_id", rule))
    if problems:
        raise InvalidInput.fields(problems)
    return [_Target(ref) for ref in data.recipients]


async def send_referral(
    work: Work,
    clients: Clients,
    data: ReferralCreate,
    *,
    invitation: dict[str, Any] | None = None,
    problem_field: str = "recipients",
) -> tuple[Referral, list[Recipient]]:
    """Sends a referral from the caller's unit to every recipient the consent service
    allows (all or nothing: one refusal sends nothing), with the documents the unit
    uploaded and names (``attachment_ids``). ``invitation`` (a meeting's details) makes it
    an invitation, which any active unit may receive."""
    caller = caller_of(work)
    sender_unit = require_unit(caller)
    # The unit's uploads it names (ADR 0023), within the limits, before anything is asked.
    drafts = await attachments.claim(work, data.attachment_ids)
    targets = await _targets(
        work, clients, data, invitation=invitation is not None, problem_field=problem_field
    )
    personnummer = normalise_personnummer(data.person.personnummer)
    asked = categories(data.kind, data.person.protected_identity)
    legal = data.legal_basis.model_dump(exclude_none=True) if data.legal_basis else None
    decided: list[_Decided] = []
    refused: list[str] = []
    for target in targets:
        answer = await decide(
            clients,
            work.settings,
            Question(
                personnummer=personnummer,
                kind=data.kind,
                categories=asked,
                sender={"orgnr": caller.org, "unit_id": sender_unit},
                recipient={"orgnr": target.ref.orgnr, "unit_id": target.ref.unit_id},
                legal_basis=legal,
            ),
        )
        if not answer.allowed:
            refused.append(f"{target.ref.orgnr}/{target.ref.unit_id}: {', '.join(answer.codes)}")
        else:
            decided.append(_Decided(target, answer.basis))
    if refused:
        raise NoBasis("no basis for " + "; ".join(refused))

    referral = Referral(
        id=new_id(),
        **data.content(details={**data.details(), **(invitation or {})}).columns(),
        personnummer=personnummer,
        person_key=person_key(member_secret(work.settings), personnummer),
        protected_identity=data.person.protected_identity,
        sender_unit_id=sender_unit,
        created_by=caller.sub,
    )
    work.session.add(referral)
    await work.session.flush()  # before its recipients (they refer to it)
    attachments.attach(work, drafts, referral)
    recipients = await _issue(work, referral, decided, Step(Status.SENT, Actor.SENDER))
    return referral, recipients


async def send_to_one_more(
    work: Work,
    clients: Clients,
    referral: Referral,
    target: UnitRef,
    *,
    legal_basis: dict[str, Any] | None,
    step: Step,
    problem_field: str,
) -> Recipient:
    """Sends a referral this member sent before to one more unit, as it was stored (a
    forwarded invitation: the convener's invitation goes to the unit a participant forwarded
    it to), after the checks of any recipient: the unit can receive it (422 on
    ``problem_field``) and this member's consent service allows it from the referral's
    sending unit on ``legal_basis`` or a consent (:data:`NoBasis` otherwise; nothing is
    stored). ``step`` says who had it sent."""
    basis = await basis_for(
        work,
        clients,
        referral,
        target,
        sender_unit=referral.sender_unit_id,
        legal_basis=legal_basis,
        problem_field=problem_field,
    )
    [recipient] = await _issue(work, referral, [_Decided(_Target(target), basis)], step)
    return recipient


async def basis_for(
    work: Work,
    clients: Clients,
    task: Referral | Incoming,
    target: UnitRef,
    *,
    sender_unit: str,
    legal_basis: dict[str, Any] | None,
    problem_field: str,
) -> dict[str, Any]:
    """The basis on which what ``task`` says of its person may go from ``sender_unit`` of
    this member to ``target``: the unit can receive it (an invitation: any active unit;
    422 on ``problem_field``), and this member's consent service allows it on
    ``legal_basis`` or a consent (:data:`NoBasis` otherwise)."""
    kind = ReferralKind(task.kind)
    unit = await KnownUnitRepository(work.session).get(target.unit_id)
    rule = unit_problem(unit, target, kind, invitation=bool(task.details.get("invitation")))
    if rule is not None:
        raise InvalidInput.field(f"{problem_field}.unit_id", rule, rule.replace("_", " "))
    assert task.personnummer is not None  # an open task keeps its person
    answer = await decide(
        clients,
        work.settings,
        Question(
            personnummer=task.personnummer,
            kind=kind,
            categories=categories(kind, task.protected_identity),
            sender={"orgnr": work.member, "unit_id": sender_unit},
            recipient={"orgnr": target.orgnr, "unit_id": target.unit_id},
            legal_basis=legal_basis,
        ),
    )
    if not answer.allowed:
        raise NoBasis(f"no basis for {target.orgnr}/{target.unit_id}: {', '.join(answer.codes)}")
    return answer.basis


async def _issue(
    work: Work, referral: Referral, decided: list[_Decided], sent: Step
) -> list[Recipient]:
    """A task for every decided recipient of ``referral``: stored, its first step kept, and
    sent to the recipient's member."""
    deadline = acknowledge_by(
        settings=work.settings,
        kind=referral.kind,
        urgency=referral.urgency,
        today=to_local(work.now).date(),
    )
    recipients = []
    for d in decided:
        recipient = Recipient(
            id=new_id(),
            referral_id=referral.id,
            orgnr=d.target.ref.orgnr,
            unit_id=d.target.ref.unit_id,
            status=Status.SENT.value,
            basis=d.basis,
            consent_id=d.basis.get("consent_id"),
            acknowledge_by=deadline,
            routed=d.target.routed,
            route_reason=d.target.route_reason,
        )
        work.session.add(recipient)
        recipients.append(recipient)
    await work.session.flush()
    for recipient in recipients:
        work.session.add(history(work, task_id=recipient.id, side="sender", frm=None, step=sent))
        await work.publish(
            topics.inbound(recipient.orgnr),
            REFERRAL_SENT_V1,
            _sent_event(work, referral, recipient),
            subject=recipient.id,
            key=recipient.id,
            aggversion=1,
        )
    # The referral's documents follow it to each recipient, keyed by the task (ADR 0023).
    await attachments.send_to(
        work, referral, recipients, await attachments.of_referral(work, referral)
    )
    await work.session.flush()
    return recipients


def _sent_event(work: Work, referral: Referral, recipient: Recipient) -> ReferralSentV1:
    return ReferralSentV1(
        task_id=recipient.id,
        referral_id=referral.id,
        sender_orgnr=work.member,
        sender_unit_id=referral.sender_unit_id,
        recipient_orgnr=recipient.orgnr,
        recipient_unit_id=recipient.unit_id,
        person=ReferralPersonV1(
            personnummer=referral.personnummer,
            protected_identity=referral.protected_identity,
        ),
        **ReferralContent.of(referral).columns(),
        basis=ReferralBasisV1.model_validate(recipient.basis),
        acknowledge_by=recipient.acknowledge_by,
        sent_at=work.now,
    )
