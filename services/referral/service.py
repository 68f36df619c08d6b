"""Domain rules of the referral service: sending, receiving and the closed loop.

A referral is sent to one or more receiving units; each receiving unit gets a *task* (the
same id at both members). The sender's consent service decides for every recipient before
anything is stored or sent (all or nothing); the receiver's consent service decides again
when the task arrives (its copy of the consent, or the stated legal basis). After delivery
the receiving unit holds the task and is the authority on its status: every step it takes
is reported back to the sender with the task's version there, and the sender's mirror only
moves forward. The sender may withdraw; the receiver confirms, or answers with the status
that the withdrawal came too late for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.codes import (
    AHEAD,
    FINAL,
    NEEDS_OUTCOME,
    NEEDS_REASON,
    NEEDS_TARGET,
    TRANSITIONS,
    Actor,
    Status,
    allowed_from,
)
from services.referral.details import UnitRef
from services.referral.models import (
    ConsentTombstone,
    Incoming,
    KnownUnit,
    Recipient,
    Referral,
    TaskTombstone,
    Transition,
)
from services.referral.repository import (
    ConsentTombstoneRepository,
    IncomingRepository,
    KnownUnitRepository,
    RecipientRepository,
    ReferralRepository,
    TaskTombstoneRepository,
    TransitionRepository,
)
from services.referral.schemas import ReferralCreate, TransitionIn
from shared.config import Settings
from shared.data.db import new_id, utcnow
from shared.domain.calendar import end_of_day, to_local
from shared.domain.kinds import ReferralKind, spec
from shared.identity.auth import Caller
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import person_key
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_RECEIVED_V1,
    REFERRAL_SENT_V1,
    REFERRAL_STATUS_CHANGED_V1,
    REFERRAL_TRANSITIONED_V1,
    ConsentEndedV1,
    ReferralBasisV1,
    ReferralPersonV1,
    ReferralReceivedV1,
    ReferralSentV1,
    ReferralStatusChangedV1,
    ReferralTransitionedV1,
    UnitChangedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.outbox import Outbox
from shared.service import ServiceContext
from shared.web.clients import ServiceClient
from shared.web.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed

PROTECTED_ROLE = "protected_identity"  # may see referrals about a person with protected identity


class ReferralNotFound(NotFound):
    slug = "referral-not-found"
    title = "No such referral for your unit"


class NoBasis(Forbidden):
    slug = "no-basis"
    title = "No consent or legal basis allows sending this referral to a recipient"


class TransitionNotAllowed(Conflict):
    slug = "transition-not-allowed"
    title = "This step is not allowed from the referral's current status, or not by you"


class StaleVersion(PreconditionFailed):
    slug = "referral-version-mismatch"
    title = "The referral has changed since you read it (If-Match does not match its ETag)"


class NoUnitClaim(Forbidden):
    slug = "no-unit"
    title = "This operation is done by a unit: the token names none"


@dataclass
class Clients:
    """This member's consent and directory services, as the referral service calls them."""

    consent: ServiceClient
    directory: ServiceClient


def make_clients(settings: Settings) -> Clients:
    """The clients of one process (tokens signed with the referral service's key)."""
    r = settings.referral
    common: dict[str, Any] = {
        "service": "referral",
        "org": settings.member.orgnr,
        "private_key_pem": r.service_private_key,
        "ttl_seconds": r.service_token_ttl_seconds,
        "timeout": r.call_timeout_seconds,
    }
    return Clients(
        consent=ServiceClient(base_url=r.consent_url, scopes=["consent:read"], **common),
        directory=ServiceClient(base_url=r.directory_url, scopes=["directory:read"], **common),
    )


def clients_of(ctx: ServiceContext) -> Clients:
    """The process's clients (made once; a test may put its own in ``ctx.extras``)."""
    existing = ctx.extras.get("clients")
    if existing is None:
        existing = ctx.extras["clients"] = make_clients(ctx.settings)
    assert isinstance(existing, Clients)
    return existing


def require_unit(caller: Caller) -> str:
    """The caller's unit (the token's ``unit`` claim)."""
    if not caller.unit:
        raise NoUnitClaim("the token has no unit claim")
    return caller.unit


def acknowledge_by(*, settings: Settings, kind: str, urgency: str, today: dt.date) -> dt.date:
    """The acknowledgement deadline: working days after ``today`` by kind and urgency
    (Swedish public holidays and eves do not count; 0 days: the same day)."""
    return spec(kind).acknowledge_by(urgency, today, settings.referral.acknowledge_working_days)


# --- the directory: which units exist -----------------------------------------------


async def apply_unit_changed(*, session: AsyncSession, payload: UnitChangedV1) -> bool:
    """Keeps the light copy of a unit from ``vardkedja.directory`` unless it is stale."""
    repo = KnownUnitRepository(session)
    unit = await repo.get(payload.unit_id)
    if unit is not None and unit.version >= payload.version:
        return False
    if unit is None:
        unit = KnownUnit(unit_id=payload.unit_id)
        session.add(unit)
    unit.owner_orgnr = payload.owner_orgnr
    unit.name = payload.name
    unit.kind = payload.kind
    unit.status = payload.status
    unit.referral_kinds = list(payload.referral_kinds)
    unit.interventions = list(payload.interventions)
    unit.version = payload.version
    await session.flush()
    return True


def _unit_problem(
    unit: KnownUnit | None, ref: UnitRef, kind: ReferralKind, *, invitation: bool = False
) -> str | None:
    """Why ``ref`` cannot receive ``kind`` (a rule name), or None. Any active unit may be
    invited to a meeting."""
    if unit is None or unit.owner_orgnr != ref.orgnr:
        return "unknown_unit"
    if unit.status != "active":
        return "inactive_unit"
    if not invitation and kind.value not in unit.referral_kinds:
        return "kind_not_received"
    return None


async def _resolve(
    *, session: AsyncSession, clients: Clients, data: ReferralCreate
) -> tuple[UnitRef, str]:
    """The best receiving unit from this member's directory, and why it was chosen."""
    assert data.resolve is not None
    body = {
        "referral_kind": data.kind.value,
        "kommunkod": data.resolve.kommunkod,
        "needs": [n.value for n in data.needs],
        "age": data.resolve.age,
        "limit": 5,
    }
    response = await clients.directory.post("/v1/routing/resolve", body, what="routing")
    if response.status_code != 200:
        raise InvalidInput.field(
            "resolve.kommunkod", "no_receiver", "the directory knows no receiver in this kommun"
        )
    routes = response.json()["routes"]
    repo = KnownUnitRepository(session)
    for route in routes:
        ref = UnitRef(orgnr=route["unit"]["owner_orgnr"], unit_id=route["unit"]["unit_id"])
        if _unit_problem(await repo.get(ref.unit_id), ref, data.kind) is None:
            return ref, str(route["reason"])[:300]
    raise InvalidInput.field(
        "resolve.kommunkod", "no_receiver", "no unit there receives this kind of referral"
    )


# --- sending --------------------------------------------------------------------------


@dataclass
class _Decided:
    ref: UnitRef
    basis: dict[str, Any]
    routed: bool
    route_reason: str | None


def _categories(kind: ReferralKind, protected: bool) -> list[str]:
    return [c for c in spec(kind).categories if not (protected and c == "contact_details")]


async def _decide(
    *,
    clients: Clients,
    settings: Settings,
    personnummer: str,
    kind: ReferralKind,
    categories: list[str],
    sender: dict[str, Any],
    recipient: dict[str, Any],
    legal_basis: dict[str, Any] | None,
    arrived_from: str | None = None,
) -> tuple[bool, dict[str, Any], list[str]]:
    """Asks this member's consent service: (allowed, basis, reason codes). Between two
    units of the same member nothing crosses to another huvudman: no consent decision is
    needed (the consent service refuses the question) and the basis is ``same_member`` —
    but never for what arrived in an event of another member (``arrived_from``, the
    sender's orgnr digits), whatever its payload says: that is always decided."""
    crossed = arrived_from is not None and arrived_from != settings.member.digits
    if sender["orgnr"] == recipient["orgnr"] and not crossed:
        return True, {"kind": "same_member"}, []
    body: dict[str, Any] = {
        "person": {"personnummer": personnummer},
        "sender": sender,
        "recipient": recipient,
        "purpose": spec(kind).purpose,
        "categories": categories,
    }
    if legal_basis:
        body["legal_basis"] = legal_basis
    response = await clients.consent.post("/v1/decisions", body, what="consent decision")
    if response.status_code != 200:
        # The consent service refused the question itself (e.g. a legal basis that cannot
        # cover the purpose): no basis.
        return False, {}, [f"decision_{response.status_code}"]
    answer = response.json()
    codes = [str(r["code"]) for r in answer.get("reasons", [])]
    if not answer.get("allowed"):
        return False, {}, codes or [str(answer.get("verdict", "denied"))]
    basis = answer["basis"]
    out: dict[str, Any] = {"kind": basis["kind"]}
    if basis.get("consent_id"):
        out["consent_id"] = basis["consent_id"]
    if basis.get("legal_basis") and legal_basis:
        out.update(
            legal_basis=basis["legal_basis"],
            ground=legal_basis.get("ground"),
            justification=legal_basis.get("justification"),
        )
    return True, out, codes


async def send_referral(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    caller: Caller,
    data: ReferralCreate,
    invitation: dict[str, Any] | None = None,
    problem_field: str = "recipients",
) -> tuple[Referral, list[Recipient]]:
    """Sends a referral from the caller's unit to every recipient the consent service
    allows (all or nothing: one refusal sends nothing). ``invitation`` (a meeting's
    details) makes it an invitation, which any active unit may receive."""
    sender_unit = require_unit(caller)
    repo = KnownUnitRepository(session)
    targets: list[tuple[UnitRef, bool, str | None]] = []
    if data.resolve is not None:
        ref, why = await _resolve(session=session, clients=clients, data=data)
        targets.append((ref, True, why))
    else:
        problems = []
        for i, ref in enumerate(data.recipients):
            rule = _unit_problem(
                await repo.get(ref.unit_id), ref, data.kind, invitation=invitation is not None
            )
            if rule is not None:
                problems.append((f"{problem_field}.{i}.unit_id", rule))
            targets.append((ref, False, None))
        if problems:
            raise InvalidInput.fields(problems)
    personnummer = normalise_personnummer(data.person.personnummer)
    categories = _categories(data.kind, data.person.protected_identity)
    legal = data.legal_basis.model_dump(exclude_none=True) if data.legal_basis else None
    decided: list[_Decided] = []
    refused: list[str] = []
    for target, routed, route_reason in targets:
        allowed, basis, codes = await _decide(
            clients=clients,
            settings=settings,
            personnummer=personnummer,
            kind=data.kind,
            categories=categories,
            sender={"orgnr": caller.org, "unit_id": sender_unit},
            recipient={"orgnr": target.orgnr, "unit_id": target.unit_id},
            legal_basis=legal,
        )
        if not allowed:
            refused.append(f"{target.orgnr}/{target.unit_id}: {', '.join(codes)}")
        else:
            decided.append(_Decided(target, basis, routed, route_reason))
    if refused:
        raise NoBasis("no basis for " + "; ".join(refused))

    now = utcnow()
    referral = Referral(
        id=new_id(),
        kind=data.kind.value,
        personnummer=personnummer,
        person_key=person_key(secret, personnummer),
        protected_identity=data.person.protected_identity,
        needs=[n.value for n in data.needs],
        summary=data.summary,
        urgency=data.urgency.value,
        children_in_household=data.children_in_household.value,
        persons_wish=data.persons_wish,
        drug_free=data.drug_free.value if data.drug_free else None,
        attachments=[a.model_dump() for a in data.attachments],
        details={**data.details(), **(invitation or {})},
        sender_unit_id=sender_unit,
        created_by=caller.sub,
    )
    session.add(referral)
    await session.flush()  # before its recipients (they refer to it)
    deadline = acknowledge_by(
        settings=settings, kind=referral.kind, urgency=referral.urgency, today=to_local(now).date()
    )
    recipients = []
    for d in decided:
        recipient = Recipient(
            id=new_id(),
            referral_id=referral.id,
            orgnr=d.ref.orgnr,
            unit_id=d.ref.unit_id,
            status=Status.SENT.value,
            basis=d.basis,
            consent_id=d.basis.get("consent_id"),
            acknowledge_by=deadline,
            routed=d.routed,
            route_reason=d.route_reason,
        )
        session.add(recipient)
        recipients.append(recipient)
    await session.flush()
    for recipient in recipients:
        session.add(_history(recipient.id, "sender", None, Status.SENT, Actor.SENDER, caller, None))
        await outbox.publish(
            session,
            topics.inbound(recipient.orgnr),
            REFERRAL_SENT_V1,
            _sent_event(referral, recipient, caller.org, now),
            subject=recipient.id,
            key=recipient.id,
            aggversion=1,
        )
    await session.flush()
    return referral, recipients


def _sent_event(
    referral: Referral, recipient: Recipient, sender_orgnr: str, now: dt.datetime
) -> ReferralSentV1:
    return ReferralSentV1(
        task_id=recipient.id,
        referral_id=referral.id,
        kind=referral.kind,
        sender_orgnr=sender_orgnr,
        sender_unit_id=referral.sender_unit_id,
        recipient_orgnr=recipient.orgnr,
        recipient_unit_id=recipient.unit_id,
        person=ReferralPersonV1(
            personnummer=referral.personnummer,
            protected_identity=referral.protected_identity,
        ),
        needs=referral.needs,
        summary=referral.summary,
        urgency=referral.urgency,
        children_in_household=referral.children_in_household,
        persons_wish=referral.persons_wish,
        drug_free=referral.drug_free,
        attachments=referral.attachments,
        details=referral.details,
        basis=ReferralBasisV1.model_validate(recipient.basis),
        acknowledge_by=recipient.acknowledge_by,
        sent_at=now,
    )


def _history(
    task_id: str,
    side: str,
    frm: Status | str | None,
    to: Status | str,
    actor: Actor,
    caller: Caller | None,
    reason: str | None,
    *,
    by_orgnr: str | None = None,
    by_unit_id: str | None = None,
) -> Transition:
    return Transition(
        task_id=task_id,
        side=side,
        from_status=str(frm) if frm is not None else None,
        to_status=str(to),
        actor=actor.value,
        by_orgnr=caller.org if caller else by_orgnr or "",
        by_unit_id=caller.unit if caller else by_unit_id,
        by_sub=caller.sub if caller else None,
        reason=reason,
        at=utcnow(),
    )


# --- receiving ------------------------------------------------------------------------


@dataclass
class _Arrival:
    """What the receiver found before asking its consent service about an arriving referral:
    already filed (a replay), withdrawn before it came (a tombstone), a problem of the unit
    or of its basis, or the question to ask."""

    filed: bool = False
    withdrawn: TaskTombstone | None = None
    problem: str | None = None
    question: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Known:
    """What this member holds about a run of arriving referrals, read in one query per
    table (not one per referral): tasks already filed, withdrawals that came first, the
    recipient units, and consents heard to have ended."""

    filed: set[str]
    withdrawn: dict[str, TaskTombstone]
    units: dict[str, KnownUnit]
    ended: dict[str, ConsentTombstone]

    @classmethod
    async def of(cls, session: AsyncSession, payloads: Sequence[ReferralSentV1]) -> _Known:
        tasks = [p.task_id for p in payloads]
        consents = [p.basis.consent_id for p in payloads if p.basis.consent_id is not None]
        return cls(
            filed=await IncomingRepository(session).existing_ids(tasks),
            withdrawn={
                t.task_id: t for t in await TaskTombstoneRepository(session).load_many(tasks)
            },
            units={
                u.unit_id: u
                for u in await KnownUnitRepository(session).load_many(
                    p.recipient_unit_id for p in payloads
                )
            },
            ended={
                c.consent_id: c
                for c in await ConsentTombstoneRepository(session).load_many(consents)
            },
        )


def _arrival(
    *, settings: Settings, known: _Known, event: CloudEvent, payload: ReferralSentV1
) -> _Arrival:
    me = settings.member.orgnr
    if payload.recipient_orgnr != me:
        raise Reject("not_recipient", "the referral is addressed to another member")
    if event.sender_orgnr != payload.sender_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "a member may only send its own referrals")
    if payload.basis.kind == "same_member" and (
        event.sender_orgnr != settings.member.digits or payload.sender_orgnr != me
    ):
        raise Reject("no_basis", "same_member is no basis for a referral from another member")
    if payload.task_id in known.filed:
        return _Arrival(filed=True)  # already filed (a replay after a broker loss)
    tombstone = known.withdrawn.get(payload.task_id)
    if tombstone is not None and tombstone.sender_orgnr == payload.sender_orgnr:
        return _Arrival(withdrawn=tombstone)  # the sender withdrew it before it came
    kind = ReferralKind(payload.kind)
    ref = UnitRef(orgnr=me, unit_id=payload.recipient_unit_id)
    unit = known.units.get(payload.recipient_unit_id)
    problem = _unit_problem(unit, ref, kind, invitation=bool(payload.details.get("invitation")))
    if problem is not None:
        return _Arrival(problem=problem)
    if payload.basis.consent_id is not None:
        # This service heard the consent end (ADR 0016); its consent service may lag.
        ended = known.ended.get(payload.basis.consent_id)
        if ended is not None:
            return _Arrival(problem=f"no_basis_at_receiver: consent_{ended.reason}")
    legal = None
    if payload.basis.kind == "legal_basis":
        legal = {
            k: v
            for k, v in {
                "basis": payload.basis.legal_basis,
                "ground": payload.basis.ground,
                "justification": payload.basis.justification,
            }.items()
            if v
        }
    return _Arrival(
        question={
            "personnummer": payload.person.personnummer,
            "kind": kind,
            "categories": _categories(kind, payload.person.protected_identity),
            "sender": {"orgnr": payload.sender_orgnr, "unit_id": payload.sender_unit_id},
            "recipient": {"orgnr": me, "unit_id": payload.recipient_unit_id},
            "legal_basis": legal,
            "arrived_from": event.sender_orgnr,
        }
    )


RECEIVE_CONCURRENCY = 32
"""Decisions a worker asks for at once when it receives a batch of referrals."""


async def receive_referrals(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    arrived: Sequence[tuple[CloudEvent, ReferralSentV1]],
) -> list[Status]:
    """:func:`receive_referral` for a batch: the receive-time decisions are asked for
    concurrently (the consent service answers them together), then each referral is filed
    or refused in order, in the caller's one transaction."""
    known = await _Known.of(session, [payload for _event, payload in arrived])
    arrivals = [
        _arrival(settings=settings, known=known, event=event, payload=payload)
        for event, payload in arrived
    ]
    gate = asyncio.Semaphore(RECEIVE_CONCURRENCY)

    async def ask(arrival: _Arrival) -> tuple[bool, dict[str, Any], list[str]] | None:
        if arrival.question is None:
            return None
        async with gate:
            return await _decide(clients=clients, settings=settings, **arrival.question)

    answers = await asyncio.gather(*(ask(a) for a in arrivals))
    return [
        await _file(
            session=session,
            outbox=outbox,
            settings=settings,
            secret=secret,
            payload=payload,
            arrival=arrival,
            answer=answer,
        )
        for (_event, payload), arrival, answer in zip(arrived, arrivals, answers, strict=True)
    ]


async def receive_referral(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    event: CloudEvent,
    payload: ReferralSentV1,
) -> Status:
    """Checks an arriving referral again and files it in the receiving unit's inbox
    (``delivered``), or refuses it (``undeliverable``, nothing about the person kept);
    either way the sender is told."""
    (status,) = await receive_referrals(
        session=session,
        outbox=outbox,
        clients=clients,
        settings=settings,
        secret=secret,
        arrived=[(event, payload)],
    )
    return status


async def _file(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    secret: bytes,
    payload: ReferralSentV1,
    arrival: _Arrival,
    answer: tuple[bool, dict[str, Any], list[str]] | None,
) -> Status:
    """Files the referral (``delivered``) or records why not (``undeliverable``, or
    ``withdrawn`` when the sender's withdrawal came first)."""
    if arrival.filed:
        return Status.DELIVERED
    me = settings.member.orgnr
    if arrival.withdrawn is not None:
        return await _withdrawn_before_arrival(
            session=session, outbox=outbox, me=me, payload=payload, tombstone=arrival.withdrawn
        )
    reason = arrival.problem
    if answer is not None and not answer[0]:
        reason = "no_basis_at_receiver: " + ", ".join(answer[2])
    now = utcnow()
    if reason is not None:
        session.add(
            _history(
                payload.task_id,
                "receiver",
                Status.SENT,
                Status.UNDELIVERABLE,
                Actor.SYSTEM,
                None,
                reason,
                by_orgnr=me,
            )
        )
        await _tell_sender(
            session=session,
            outbox=outbox,
            payload_task=payload,
            frm=Status.SENT,
            to=Status.UNDELIVERABLE,
            actor=Actor.SYSTEM,
            me=me,
            unit_id=None,
            reason=reason,
            version=1,
            at=now,
        )
        return Status.UNDELIVERABLE
    incoming = Incoming(
        id=payload.task_id,
        referral_id=payload.referral_id,
        kind=payload.kind,
        personnummer=payload.person.personnummer,
        person_key=person_key(secret, payload.person.personnummer),
        protected_identity=payload.person.protected_identity,
        needs=list(payload.needs),
        summary=payload.summary,
        urgency=payload.urgency,
        children_in_household=payload.children_in_household,
        persons_wish=payload.persons_wish,
        drug_free=payload.drug_free,
        attachments=list(payload.attachments),
        details=dict(payload.details),
        sender_orgnr=payload.sender_orgnr,
        sender_unit_id=payload.sender_unit_id,
        unit_id=payload.recipient_unit_id,
        status=Status.DELIVERED.value,
        basis=payload.basis.model_dump(exclude_none=True),
        consent_id=payload.basis.consent_id,
        acknowledge_by=payload.acknowledge_by,
        received_at=now,
    )
    session.add(incoming)
    session.add(
        _history(
            incoming.id,
            "receiver",
            Status.SENT,
            Status.DELIVERED,
            Actor.SYSTEM,
            None,
            None,
            by_orgnr=me,
        )
    )
    await session.flush()
    await outbox.publish(
        session,
        topics.internal(me),
        REFERRAL_RECEIVED_V1,
        ReferralReceivedV1(
            referral_id=incoming.id,
            kind=incoming.kind,
            unit_id=incoming.unit_id,
            sender_orgnr=incoming.sender_orgnr,
            sender_unit_id=incoming.sender_unit_id,
            urgency=incoming.urgency,
            acknowledge_by=end_of_day(incoming.acknowledge_by),
            received_at=now,
            protected_identity=incoming.protected_identity,
        ),
        subject=incoming.id,
        key=incoming.id,
    )
    await _tell_sender(
        session=session,
        outbox=outbox,
        payload_task=payload,
        frm=Status.SENT,
        to=Status.DELIVERED,
        actor=Actor.SYSTEM,
        me=me,
        unit_id=incoming.unit_id,
        reason=None,
        version=incoming.version,
        at=now,
    )
    return Status.DELIVERED


async def _withdrawn_before_arrival(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    payload: ReferralSentV1,
    tombstone: TaskTombstone,
) -> Status:
    """A referral whose withdrawal came first: never filed (nothing about the person kept,
    nothing for the unit's inbox); the step is kept and the sender gets its confirmation."""
    reason = "withdrawn by the sender before it arrived"
    session.add(
        _history(
            payload.task_id,
            "receiver",
            Status.SENT,
            Status.WITHDRAWN,
            Actor.SENDER,
            None,
            reason,
            by_orgnr=tombstone.sender_orgnr,
            by_unit_id=tombstone.by_unit_id,
        )
    )
    await _tell_sender(
        session=session,
        outbox=outbox,
        payload_task=payload,
        frm=Status.SENT,
        to=Status.WITHDRAWN,
        actor=Actor.SYSTEM,
        me=me,
        unit_id=None,
        reason=reason,
        version=1,
        at=utcnow(),
    )
    await session.delete(tombstone)  # the step above now answers a late duplicate
    await session.flush()
    return Status.WITHDRAWN


async def _tell_sender(
    *,
    session: AsyncSession,
    outbox: Outbox,
    payload_task: ReferralSentV1 | Incoming,
    frm: Status | None,
    to: Status,
    actor: Actor,
    me: str,
    unit_id: str | None,
    reason: str | None,
    version: int,
    at: dt.datetime,
    outcome: str | None = None,
    case_reference: str | None = None,
    forwarded_to: dict[str, str] | None = None,
    proposed_at: dt.datetime | None = None,
) -> None:
    task_id = payload_task.task_id if isinstance(payload_task, ReferralSentV1) else payload_task.id
    await outbox.publish(
        session,
        topics.inbound(payload_task.sender_orgnr),
        REFERRAL_TRANSITIONED_V1,
        ReferralTransitionedV1(
            task_id=task_id,
            referral_id=payload_task.referral_id,
            kind=payload_task.kind,
            from_status=frm.value if frm else None,
            to_status=to.value,
            actor=actor.value,
            by_orgnr=me,
            by_unit_id=unit_id,
            reason=reason,
            outcome=outcome,
            case_reference=case_reference,
            forwarded_to=forwarded_to,
            proposed_at=proposed_at,
            receiver_version=version,
            at=at,
        ),
        subject=task_id,
        key=task_id,
        aggversion=version,
    )


# --- the closed loop ------------------------------------------------------------------


def can_see(caller: Caller, incoming: Incoming) -> bool:
    """Only the receiving unit sees its inbox; a protected identity only with the role."""
    if caller.unit != incoming.unit_id:
        return False
    return not incoming.protected_identity or caller.has_role(PROTECTED_ROLE)


async def get_incoming(*, session: AsyncSession, caller: Caller, task_id: str) -> Incoming:
    """An incoming referral of the caller's unit (ReferralNotFound for anyone else)."""
    incoming = await IncomingRepository(session).get(task_id)
    if incoming is None or not can_see(caller, incoming):
        raise ReferralNotFound("no such referral in your unit's inbox")
    return incoming


def _check_transition(
    current: Status, data: TransitionIn, actor: Actor, *, invitation: bool = False
) -> None:
    if TRANSITIONS.get((current, data.to)) is not actor:
        allowed = ", ".join(s.value for s in allowed_from(current, actor)) or "none"
        raise TransitionNotAllowed(
            f"{current.value} → {data.to.value} is not allowed for the {actor.value}; "
            f"allowed: {allowed}"
        )
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
    if problems:
        raise InvalidInput.fields(problems)


async def transition_incoming(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    caller: Caller,
    task_id: str,
    data: TransitionIn,
    expected_version: int,
) -> Incoming:
    """Moves an incoming referral on (the receiving unit holds it) and tells the sender."""
    incoming = await get_incoming(session=session, caller=caller, task_id=task_id)
    if incoming.version != expected_version:
        raise StaleVersion(f"the referral is at version {incoming.version}")
    current = Status(incoming.status)
    _check_transition(
        current, data, Actor.HOLDER, invitation=bool(incoming.details.get("invitation"))
    )
    forwarded_to = None
    if data.to is Status.FORWARDED:
        assert data.forward_to is not None
        forwarded_to = await _forward(
            session=session,
            outbox=outbox,
            clients=clients,
            settings=settings,
            secret=secret,
            caller=caller,
            incoming=incoming,
            target=data.forward_to,
        )
    incoming.outcome = data.outcome or incoming.outcome
    incoming.case_reference = data.case_reference or incoming.case_reference
    incoming.proposed_at = data.proposed_at or incoming.proposed_at
    me = settings.member.orgnr
    await _move_incoming(
        session=session,
        outbox=outbox,
        me=me,
        incoming=incoming,
        to=data.to,
        actor=Actor.HOLDER,
        reason=data.reason,
        caller=caller,
    )
    await _tell_sender(
        session=session,
        outbox=outbox,
        payload_task=incoming,
        frm=current,
        to=data.to,
        actor=Actor.HOLDER,
        me=me,
        unit_id=incoming.unit_id,
        reason=data.reason,
        version=incoming.version,
        at=utcnow(),
        outcome=data.outcome,
        case_reference=data.case_reference,
        forwarded_to=forwarded_to,
        proposed_at=data.proposed_at,
    )
    await session.flush()
    return incoming


async def _forward(
    *,
    session: AsyncSession,
    outbox: Outbox,
    clients: Clients,
    settings: Settings,
    secret: bytes,
    caller: Caller,
    incoming: Incoming,
    target: UnitRef,
) -> dict[str, str]:
    """Sends the referral on from the holding unit to ``target`` (a new referral of this
    member: the basis is checked again for the new recipient)."""
    from services.referral.schemas import PersonIn

    assert incoming.personnummer is not None  # an open task keeps its person
    data = ReferralCreate.model_validate(
        {
            "kind": incoming.kind,
            "person": PersonIn(
                personnummer=incoming.personnummer,
                protected_identity=incoming.protected_identity,
            ).model_dump(),
            "needs": incoming.needs,
            "summary": incoming.summary,
            "urgency": incoming.urgency,
            "children_in_household": incoming.children_in_household,
            "persons_wish": incoming.persons_wish,
            "drug_free": incoming.drug_free,
            "attachments": incoming.attachments,
            "recipients": [target.model_dump()],
            _details_field(incoming.kind): incoming.details or None,
        }
    )
    _referral, recipients = await send_referral(
        session=session,
        outbox=outbox,
        clients=clients,
        settings=settings,
        secret=secret,
        caller=caller,
        data=data,
    )
    return {"orgnr": target.orgnr, "unit_id": target.unit_id, "task_id": recipients[0].id}


def _details_field(kind: str) -> str:
    return spec(kind).details_field


async def _status_changed(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    task_id: str,
    kind: str,
    unit_id: str,
    direction: str,
    old: Status | None,
    new: Status,
    version: int,
    at: dt.datetime,
) -> None:
    """Tells this member's notify service (no personal data)."""
    await outbox.publish(
        session,
        topics.internal(me),
        REFERRAL_STATUS_CHANGED_V1,
        ReferralStatusChangedV1(
            referral_id=task_id,
            kind=kind,
            unit_id=unit_id,
            direction=direction,
            old_status=old.value if old else None,
            new_status=new.value,
            changed_at=at,
            version=max(1, version),
        ),
        subject=task_id,
        key=task_id,
    )


async def _move_incoming(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    incoming: Incoming,
    to: Status,
    actor: Actor,
    reason: str | None,
    caller: Caller | None = None,
    by_orgnr: str | None = None,
    by_unit_id: str | None = None,
) -> Status:
    """Moves a task held here to ``to``: its status (and reason), a step in its history,
    and the news to this member's notify. Returns the status it had."""
    old = Status(incoming.status)
    incoming.status = to.value
    incoming.reason = reason or incoming.reason
    await session.flush()  # the version grows (optimistic concurrency)
    session.add(
        _history(
            incoming.id,
            "receiver",
            old,
            to,
            actor,
            caller,
            reason,
            by_orgnr=by_orgnr or me,
            by_unit_id=by_unit_id,
        )
    )
    await _status_changed(
        session=session,
        outbox=outbox,
        me=me,
        task_id=incoming.id,
        kind=incoming.kind,
        unit_id=incoming.unit_id,
        direction="incoming",
        old=old,
        new=to,
        version=incoming.version,
        at=utcnow(),
    )
    return old


async def _move_recipient(
    *,
    session: AsyncSession,
    outbox: Outbox,
    me: str,
    recipient: Recipient,
    to: Status,
    actor: Actor,
    reason: str | None,
    caller: Caller | None = None,
    by_orgnr: str | None = None,
    by_unit_id: str | None = None,
    notify: bool = True,
) -> tuple[Status, Referral]:
    """Moves the sender's view of a task to ``to``: status, reason, a step in its history
    and (``notify``) the news to the sending unit. Returns the old status and the referral."""
    old = Status(recipient.status)
    recipient.status = to.value
    recipient.reason = reason or recipient.reason
    await session.flush()
    session.add(
        _history(
            recipient.id,
            "sender",
            old,
            to,
            actor,
            caller,
            reason,
            by_orgnr=by_orgnr or me,
            by_unit_id=by_unit_id,
        )
    )
    referral = await ReferralRepository(session).get(recipient.referral_id)
    assert referral is not None
    if notify:
        await _status_changed(
            session=session,
            outbox=outbox,
            me=me,
            task_id=recipient.id,
            kind=referral.kind,
            unit_id=referral.sender_unit_id,
            direction="outgoing",
            old=old,
            new=to,
            version=recipient.version,
            at=utcnow(),
        )
    return old, referral


async def prefetch_reported(
    *, session: AsyncSession, payloads: list[ReferralTransitionedV1]
) -> None:
    """Loads what a run of reported steps will read, in three queries instead of up to
    three per step: the sender's mirrors of the tasks and their referrals, and the
    receiver's tasks (a withdrawal). The steps are then applied one by one as ever; their
    look-ups by id are answered from the session."""
    await IncomingRepository(session).load_many(
        p.task_id for p in payloads if p.actor == Actor.SENDER
    )
    mirrors = await RecipientRepository(session).load_many(
        p.task_id for p in payloads if p.actor != Actor.SENDER
    )
    await ReferralRepository(session).load_many(r.referral_id for r in mirrors)


async def apply_reported_transition(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    event: CloudEvent,
    payload: ReferralTransitionedV1,
) -> bool:
    """At the sender: the receiver reported a step; the mirror moves forward (True), or the
    report is older than what it already shows, or leads nowhere from it (False).

    A report is applied only when it is newer than the last one (``receiver_version``) and
    its status lies ahead of the mirror's in the state machine: a newer report may overtake
    older ones (steps are skipped, never taken back), and a final status is never left —
    not even the sender's own ``withdrawn`` or ``cancelled``, which an older report of the
    receiver may still be on its way to contradict (ADR 0016)."""
    recipient = await RecipientRepository(session).get(payload.task_id)
    if recipient is None:
        raise Reject("unknown_task", "no referral of this member has this task id")
    if event.sender_orgnr != recipient.orgnr.replace("-", ""):
        raise Reject("sender_not_holder", "only the receiving member reports on a task")
    if payload.receiver_version <= recipient.remote_version:
        return False
    old = Status(recipient.status)
    to = Status(payload.to_status)
    recipient.remote_version = payload.receiver_version
    if to is not old and to not in AHEAD[old]:
        if to in FINAL:  # the receiver's last word, e.g. a withdrawal that came too late
            await session.flush()
            session.add(
                _history(
                    recipient.id,
                    "sender",
                    old,
                    old,
                    Actor.SYSTEM,
                    None,
                    f"the receiver reports {to.value}; the referral stays {old.value}",
                    by_orgnr=payload.by_orgnr,
                    by_unit_id=payload.by_unit_id,
                )
            )
        await session.flush()
        return False
    recipient.outcome = payload.outcome or recipient.outcome
    recipient.case_reference = payload.case_reference or recipient.case_reference
    recipient.proposed_at = payload.proposed_at or recipient.proposed_at
    recipient.forwarded_to = payload.forwarded_to or recipient.forwarded_to
    if to is old:  # a confirmation (e.g. of a withdrawal)
        await session.flush()
        session.add(
            _history(
                recipient.id,
                "sender",
                old,
                old,
                Actor.SYSTEM,
                None,
                "confirmed by the receiver",
                by_orgnr=payload.by_orgnr,
                by_unit_id=payload.by_unit_id,
            )
        )
        await session.flush()
        return True
    await _move_recipient(
        session=session,
        outbox=outbox,
        me=settings.member.orgnr,
        recipient=recipient,
        to=to,
        actor=Actor(payload.actor),
        reason=payload.reason,
        by_orgnr=payload.by_orgnr,
        by_unit_id=payload.by_unit_id,
    )
    await session.flush()
    return True


async def withdraw(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    caller: Caller,
    task_id: str,
    reason: str,
    by_person: bool,
    expected_version: int,
) -> Recipient:
    """The sending unit withdraws its referral from one recipient (the receiver confirms,
    or answers with the status the withdrawal came too late for)."""
    recipient = await RecipientRepository(session).get(task_id)
    referral = await ReferralRepository(session).get(recipient.referral_id) if recipient else None
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
    await _move_recipient(
        session=session,
        outbox=outbox,
        me=settings.member.orgnr,
        recipient=recipient,
        to=Status.WITHDRAWN,
        actor=Actor.SENDER,
        reason=why,
        caller=caller,
        notify=False,  # the sending unit did it itself
    )
    await outbox.publish(
        session,
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
            at=utcnow(),
        ),
        subject=recipient.id,
        key=recipient.id,
    )
    return recipient


async def apply_withdrawal(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    event: CloudEvent,
    payload: ReferralTransitionedV1,
) -> bool:
    """At the receiver: the sender withdrew. Applied if still open; either way the sender
    gets the task's status back (closed loop)."""
    incoming = await IncomingRepository(session).get(payload.task_id)
    if incoming is None:
        return await _remember_withdrawal(session=session, event=event, payload=payload)
    if event.sender_orgnr != incoming.sender_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the sending member withdraws its referral")
    current = Status(incoming.status)
    now = utcnow()
    applied = TRANSITIONS.get((current, Status.WITHDRAWN)) is Actor.SENDER
    if applied:
        await _move_incoming(
            session=session,
            outbox=outbox,
            me=settings.member.orgnr,
            incoming=incoming,
            to=Status.WITHDRAWN,
            actor=Actor.SENDER,
            reason=payload.reason,
            by_orgnr=payload.by_orgnr,
            by_unit_id=payload.by_unit_id,
        )
    status = Status(incoming.status)
    await _tell_sender(
        session=session,
        outbox=outbox,
        payload_task=incoming,
        frm=current if applied else None,
        to=status,
        actor=Actor.SYSTEM,  # the receiver's answer (a step "by the sender" goes the other way)
        me=settings.member.orgnr,
        unit_id=incoming.unit_id,
        reason=payload.reason if applied else "the withdrawal came after the referral closed",
        version=incoming.version + (0 if applied else 1),
        at=now,
        outcome=incoming.outcome,
        case_reference=incoming.case_reference,
    )
    await session.flush()
    return applied


async def _remember_withdrawal(
    *, session: AsyncSession, event: CloudEvent, payload: ReferralTransitionedV1
) -> bool:
    """A withdrawal of a task not held here: refused at arrival (nothing to do), or not
    arrived yet — then a tombstone waits for it (ADR 0016). True if one was stored."""
    if event.sender_orgnr != payload.by_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the sending member withdraws its referral")
    if await TransitionRepository(session).answered_here(payload.task_id):
        return False  # refused at arrival: nothing held here
    repo = TaskTombstoneRepository(session)
    if await repo.get(payload.task_id) is not None:
        return False
    session.add(
        TaskTombstone(
            task_id=payload.task_id,
            sender_orgnr=payload.by_orgnr,
            by_unit_id=payload.by_unit_id,
            received_at=utcnow(),
        )
    )
    await session.flush()
    return True


def is_final(status: str) -> bool:
    return Status(status) in FINAL


async def cancel_for_consent(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    event: CloudEvent,
    payload: ConsentEndedV1,
) -> int:
    """A consent was withdrawn or expired: every open task resting on it is cancelled, on
    this member's side whether it sent or received the task (both sides are told by their
    own consent event; the receiver also reports to the sender). Returns how many."""
    if event.sender_orgnr != payload.owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the recording member ends its consent")
    if payload.reason == "superseded":
        return 0  # a new consent takes over; referrals on the old one stay
    # Remembered, so that a task on it arriving later is not filed (ADR 0016).
    if await ConsentTombstoneRepository(session).get(payload.consent_id) is None:
        session.add(
            ConsentTombstone(
                consent_id=payload.consent_id,
                owner_orgnr=payload.owner_orgnr,
                reason=payload.reason,
                received_at=utcnow(),
            )
        )
    why = f"the consent was {payload.reason}"
    now = utcnow()
    me = settings.member.orgnr
    n = 0
    for recipient in await RecipientRepository(session).open_on_consent(payload.consent_id):
        await _move_recipient(
            session=session,
            outbox=outbox,
            me=me,
            recipient=recipient,
            to=Status.CANCELLED,
            actor=Actor.SYSTEM,
            reason=why,
        )
        n += 1
    for incoming in await IncomingRepository(session).open_on_consent(payload.consent_id):
        own_case = registered_here(incoming)
        old = await _move_incoming(
            session=session,
            outbox=outbox,
            me=me,
            incoming=incoming,
            to=Status.CANCELLED,
            actor=Actor.SYSTEM,
            reason=why,
        )
        await _tell_sender(
            session=session,
            outbox=outbox,
            payload_task=incoming,
            frm=old,
            to=Status.CANCELLED,
            actor=Actor.SYSTEM,
            me=me,
            unit_id=incoming.unit_id,
            reason=why,
            version=incoming.version,
            at=now,
        )
        if not own_case:
            forget_person(incoming)
        n += 1
    await session.flush()
    return n


REGISTERED = frozenset({Status.ACCEPTED.value, Status.IN_PROGRESS.value})
"""A referral the receiving unit accepted (or began working on) is its own case."""

KEPT_DETAILS = ("invitation", "meeting_id")
"""What of a forgotten task's details stays: whether it was an invitation, and to what."""


def registered_here(incoming: Incoming) -> bool:
    """Whether the receiving unit had taken the referral into its own records before its
    basis ended (ADR 0021): accepted or in progress, or acknowledged with the unit's own case
    reference (a kontaktbegäran registered as an application). An invitation to a meeting
    never is: accepting one is agreeing to attend, not opening a case."""
    if incoming.details.get("invitation"):
        return False
    return incoming.status in REGISTERED or bool(incoming.case_reference)


def forget_person(incoming: Incoming) -> None:
    """A task cancelled because its basis ended, not registered here: nothing about the
    person stays (ADR 0021) — no personnummer, person key, needs, summary, wish, attachments
    or details; the task keeps its ids, kind, units, dates, status and reason."""
    incoming.personnummer = None
    incoming.person_key = None
    incoming.needs = []
    incoming.summary = ""
    incoming.persons_wish = ""
    incoming.children_in_household = "unknown"
    incoming.drug_free = None
    incoming.attachments = []
    incoming.details = {k: incoming.details[k] for k in KEPT_DETAILS if k in incoming.details}
    incoming.outcome = None


async def prune_tombstones(*, session: AsyncSession, settings: Settings) -> int:
    """Deletes tombstones older than the inbox's retention (ADR 0016); returns how many."""
    cut_off = utcnow() - dt.timedelta(days=settings.kafka.inbox_retention_days)
    tasks = await TaskTombstoneRepository(session).prune(cut_off)
    return tasks + await ConsentTombstoneRepository(session).prune(cut_off)
