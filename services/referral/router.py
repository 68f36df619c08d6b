"""HTTP API of the referral service (thin: validation, auth, audit, then the service)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from services.referral import indicators, service
from services.referral.codes import Actor, Status, allowed_from
from services.referral.models import Incoming, Recipient, Referral
from services.referral.repository import (
    IncomingRepository,
    KnownUnitRepository,
    RecipientRepository,
    ReferralRepository,
    TransitionRepository,
)
from services.referral.schemas import (
    BasisOut,
    DischargeStatus,
    IncomingOut,
    IncomingPage,
    OutgoingPage,
    PersonSearch,
    RecipientOut,
    ReferralCreate,
    ReferralOut,
    TransitionIn,
    TransitionOut,
    WithdrawIn,
)
from services.referral.service import (
    NoBasis,
    NoUnitClaim,
    ReferralNotFound,
    StaleVersion,
    TransitionNotAllowed,
)
from shared.data.db import utcnow
from shared.domain.calendar import to_local
from shared.domain.kinds import ReferralKind
from shared.identity.auth import Caller, require_scopes
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import member_secret, person_key
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.clients import ServiceCallFailed
from shared.web.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    PreconditionRequired,
    problem_responses,
)
from shared.web.etag import etag, required_if_match_version
from shared.web.fields import IsoDate, QueryBool

router = APIRouter(prefix="/v1", tags=["referrals"])

Writer = Annotated[Caller, Depends(require_scopes("referral:write"))]
Reader = Annotated[Caller, Depends(require_scopes("referral:read"))]
PersonReader = Annotated[Caller, Depends(require_scopes("referral:person"))]
TaskId = Annotated[str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="task id")]
Cursor = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=200)]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="required: the `ETag` of the version you read (412 if it has changed "
        "since, 428 if missing)",
    ),
]


def _cursor(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value.encode(), altchars=b"-_", validate=True).decode() or None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.field("cursor", "cursor", "not a cursor from a previous page") from exc


def _next(items: list[str], limit: int) -> str | None:
    return (
        base64.urlsafe_b64encode(items[limit - 1].encode()).decode() if len(items) > limit else None
    )


def _person(row: Referral | Incoming) -> dict[str, object]:
    return {"personnummer": row.personnummer, "protected_identity": row.protected_identity}


def _basis(basis: dict[str, object]) -> BasisOut:
    return BasisOut.model_validate({k: basis.get(k) for k in ("kind", "consent_id", "legal_basis")})


def _recipient_out(r: Recipient, names: dict[str, str]) -> RecipientOut:
    return RecipientOut(
        task_id=r.id,
        orgnr=r.orgnr,
        unit_id=r.unit_id,
        unit_name=names.get(r.unit_id),
        status=Status(r.status),
        basis=_basis(r.basis),
        acknowledge_by=r.acknowledge_by,
        routed=r.routed,
        route_reason=r.route_reason,
        reason=r.reason,
        outcome=r.outcome,
        case_reference=r.case_reference,
        proposed_at=r.proposed_at,
        forwarded_to=r.forwarded_to,
        updated_at=r.updated_at,
        version=r.version,
    )


def _referral_out(ref: Referral, recipients: list[Recipient], names: dict[str, str]) -> ReferralOut:
    return ReferralOut(
        id=ref.id,
        kind=ReferralKind(ref.kind),
        sender_unit_id=ref.sender_unit_id,
        person=_person(ref),
        needs=ref.needs,
        summary=ref.summary,
        urgency=ref.urgency,
        children_in_household=ref.children_in_household,
        persons_wish=ref.persons_wish,
        drug_free=ref.drug_free,
        attachments=ref.attachments,
        details=ref.details,
        recipients=[_recipient_out(r, names) for r in recipients],
        created_at=ref.created_at,
        discharge=_discharge(ref, recipients),
    )


CONFIRMED = {"acknowledged", "accepted", "in_progress", "completed"}


def _discharge(ref: Referral, recipients: list[Recipient]) -> DischargeStatus | None:
    """For a discharge planning: the date, whether a SIP exists, and who has confirmed
    (the home kommun's and out-patient care's units acknowledging or accepting)."""
    if ref.kind != ReferralKind.UTSKRIVNINGSPLANERING.value:
        return None
    confirmed = [r for r in recipients if r.status in CONFIRMED]
    return DischargeStatus(
        expected_discharge_date=ref.details["expected_discharge_date"],
        sip_exists=ref.details.get("sip_exists", "unknown"),
        confirmed_by=[{"orgnr": r.orgnr, "unit_id": r.unit_id} for r in confirmed],
        all_confirmed=len(confirmed) == len(recipients) > 0,
    )


def _incoming_out(row: Incoming) -> IncomingOut:
    current = Status(row.status)
    return IncomingOut(
        task_id=row.id,
        referral_id=row.referral_id,
        kind=ReferralKind(row.kind),
        sender_orgnr=row.sender_orgnr,
        sender_unit_id=row.sender_unit_id,
        unit_id=row.unit_id,
        status=current,
        allowed_transitions=allowed_from(current, Actor.HOLDER),
        person=_person(row),
        needs=row.needs,
        summary=row.summary,
        urgency=row.urgency,
        children_in_household=row.children_in_household,
        persons_wish=row.persons_wish,
        drug_free=row.drug_free,
        attachments=row.attachments,
        details=row.details,
        basis=_basis(row.basis),
        acknowledge_by=row.acknowledge_by,
        overdue=current is Status.DELIVERED and row.acknowledge_by < to_local(utcnow()).date(),
        received_at=row.received_at,
        reason=row.reason,
        outcome=row.outcome,
        case_reference=row.case_reference,
        version=row.version,
    )


async def _names(session: DbSession, recipients: list[Recipient]) -> dict[str, str]:
    return await KnownUnitRepository(session).names([r.unit_id for r in recipients])


async def _audit(
    ctx: Ctx, session: DbSession, caller: Caller, action: str, row: Referral | Incoming, rid: str
) -> None:
    await ctx.auditor.record_access(
        session,
        caller,
        action=action,
        person_id=row.personnummer,
        purpose=row.kind,
        resource_type="referral",
        resource_id=rid,
    )


@router.post(
    "/referrals",
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralOut,
    summary="Send a referral or invitation from your unit",
    description=(
        "Sends a vårdkedjeremiss, kontaktbegäran, SIP invitation, discharge planning or HVB "
        "notification from the caller's unit (the token's `unit`). Name the recipients "
        "(`recipients`: member and unit; each must be active and receive the kind) or let "
        "the directory choose (`resolve`: the person's kommun, with `needs`). For every "
        "recipient this member's consent service decides first: if any is refused, nothing "
        "is stored or sent and the 403 problem names the recipient and the missing basis. "
        "Otherwise the referral is stored with its basis and sent; its status per "
        "recipient follows in `GET /v1/referrals/{id}` (sent → delivered → acknowledged → "
        "…). Give the block of details that belongs to the kind (`kontaktbegaran`, `sip`, "
        "`discharge`, `hvb`, `vardkedjeremiss`). Send an `Idempotency-Key` to retry "
        "safely. Scope `referral:write`."
    ),
    responses=problem_responses(Forbidden, NoBasis, NoUnitClaim, Conflict, ServiceCallFailed),
)
async def send_referral(
    body: ReferralCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReferralOut | Response:
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint("POST /v1/referrals", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    referral, recipients = await service.send_referral(
        session=session,
        outbox=ctx.outbox,
        clients=service.clients_of(ctx),
        settings=ctx.settings,
        secret=member_secret(ctx.settings),
        caller=caller,
        data=body,
    )
    await _audit(ctx, session, caller, "referral.send", referral, referral.id)
    out = _referral_out(referral, recipients, await _names(session, recipients))
    headers = {"Location": f"/v1/referrals/{referral.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


@router.get(
    "/referrals/{referral_id}",
    response_model=ReferralOut,
    summary="A referral your unit sent, with every recipient's status",
    description=(
        "The referral as sent, and per recipient: its task id, status (as the receiving "
        "unit last reported it), basis, acknowledgement deadline, reason, outcome and the "
        "receiver's case reference. Only the sending unit sees it. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def get_referral(
    referral_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx
) -> ReferralOut:
    unit = service.require_unit(caller)
    referral = await ReferralRepository(session).get(referral_id)
    if referral is None or referral.sender_unit_id != unit:
        raise ReferralNotFound("no such referral sent by your unit")
    recipients = await RecipientRepository(session).of_referral(referral.id)
    await _audit(ctx, session, caller, "referral.read", referral, referral.id)
    return _referral_out(referral, recipients, await _names(session, recipients))


@router.get(
    "/outgoing",
    response_model=OutgoingPage,
    summary="Worklist: the referrals your unit sent",
    description=(
        "Your unit's sent referrals, newest first, each with every recipient's status. "
        "Filter by `status` (any recipient in it) or `kind`. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim),
)
async def outgoing(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    kind: Annotated[ReferralKind | None, Query()] = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> OutgoingPage:
    unit = service.require_unit(caller)
    rows = await ReferralRepository(session).page_sent_by(
        unit, after=_cursor(cursor), limit=limit + 1
    )
    by_referral = await RecipientRepository(session).of_referrals([r.id for r in rows])
    names = await _names(session, [x for xs in by_referral.values() for x in xs])
    items = []
    for ref in rows[:limit]:
        recipients = by_referral[ref.id]
        if kind and ref.kind != kind.value:
            continue
        if status_ and all(r.status != status_.value for r in recipients):
            continue
        await _audit(ctx, session, caller, "referral.list", ref, ref.id)
        items.append(_referral_out(ref, recipients, names))
    return OutgoingPage(items=items, next_cursor=_next([r.id for r in rows], limit))


@router.post(
    "/referrals/{task_id}/withdraw",
    response_model=RecipientOut,
    summary="Withdraw a referral from one recipient",
    description=(
        "The sending unit withdraws its referral from the recipient whose task this is "
        "(`by_person: true` when the person declined, e.g. a kontaktbegäran). Allowed "
        "until the receiver closes it; the receiver confirms, or answers with the status "
        "the withdrawal came too late for. `If-Match` with the recipient's version is "
        "required. Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden, ReferralNotFound, TransitionNotAllowed, StaleVersion, PreconditionRequired
    ),
)
async def withdraw(
    task_id: TaskId,
    body: WithdrawIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> RecipientOut:
    service.require_unit(caller)
    recipient = await service.withdraw(
        session=session,
        outbox=ctx.outbox,
        settings=ctx.settings,
        caller=caller,
        task_id=task_id,
        reason=body.reason,
        by_person=body.by_person,
        expected_version=required_if_match_version(if_match),
    )
    referral = await ReferralRepository(session).get(recipient.referral_id)
    assert referral is not None
    await _audit(ctx, session, caller, "referral.withdraw", referral, recipient.id)
    response.headers["ETag"] = etag(recipient.version)
    return _recipient_out(recipient, await _names(session, [recipient]))


@router.get(
    "/incoming",
    response_model=IncomingPage,
    summary="Worklist: your unit's inbox of incoming referrals",
    description=(
        "The referrals filed in the caller's unit's own inbox (never a member-wide inbox), "
        "oldest first. Filter by `status`, `kind`, or `overdue=true` (delivered and not "
        "acknowledged by the deadline). Referrals about a person with protected identity "
        "are listed only for the role `protected_identity`. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, NoUnitClaim),
)
async def incoming(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    kind: Annotated[ReferralKind | None, Query()] = None,
    overdue: Annotated[QueryBool, Query()] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> IncomingPage:
    unit = service.require_unit(caller)
    rows = await IncomingRepository(session).page_for_unit(
        unit,
        statuses=[s.value for s in status_] if status_ else None,
        kind=kind.value if kind else None,
        overdue_on=to_local(utcnow()).date() if overdue else None,
        after=_cursor(cursor),
        limit=limit + 1,
    )
    items = []
    for row in rows[:limit]:
        if not service.can_see(caller, row):
            continue
        await _audit(ctx, session, caller, "incoming.list", row, row.id)
        items.append(_incoming_out(row))
    return IncomingPage(items=items, next_cursor=_next([r.id for r in rows], limit))


@router.get(
    "/incoming/{task_id}",
    response_model=IncomingOut,
    summary="One referral in your unit's inbox",
    description=(
        "The referral with the steps you may take now (`allowed_transitions`) and its "
        "`ETag` (send it as `If-Match` with a step). Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def get_incoming(
    task_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx, response: Response
) -> IncomingOut:
    service.require_unit(caller)
    row = await service.get_incoming(session=session, caller=caller, task_id=task_id)
    await _audit(ctx, session, caller, "incoming.read", row, row.id)
    response.headers["ETag"] = etag(row.version)
    return _incoming_out(row)


@router.post(
    "/incoming/{task_id}/transitions",
    response_model=IncomingOut,
    summary="Take the next step with a referral your unit holds",
    description=(
        "acknowledge (kvittera; a kommun records its own case reference), accept, decline "
        "(with a reason; the sender may revise and send again), forward (to another unit "
        "of this or another member: the basis is checked again), start (in_progress), "
        "complete (with an outcome), or return as wrongly sent (felsänd, with a reason). "
        "Only the steps in `allowed_transitions` are allowed (409 lists them). `If-Match` "
        "with the referral's `ETag` is required (412 if it changed, 428 if missing). Every "
        "step is reported to the sender. Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden,
        ReferralNotFound,
        TransitionNotAllowed,
        StaleVersion,
        PreconditionRequired,
        NoBasis,
        ServiceCallFailed,
    ),
)
async def transition(
    task_id: TaskId,
    body: TransitionIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> IncomingOut:
    service.require_unit(caller)
    row = await service.transition_incoming(
        session=session,
        outbox=ctx.outbox,
        clients=service.clients_of(ctx),
        settings=ctx.settings,
        secret=member_secret(ctx.settings),
        caller=caller,
        task_id=task_id,
        data=body,
        expected_version=required_if_match_version(if_match),
    )
    await _audit(ctx, session, caller, f"incoming.{body.to.value}", row, row.id)
    response.headers["ETag"] = etag(row.version)
    return _incoming_out(row)


@router.get(
    "/tasks/{task_id}/history",
    response_model=list[TransitionOut],
    summary="The history of a referral task",
    description=(
        "Every step of a task as this member saw it (the sending unit: its sent task; "
        "the receiving unit: its incoming one), oldest first. Scope `referral:read`."
    ),
    responses=problem_responses(Forbidden, ReferralNotFound, NoUnitClaim),
)
async def history(
    task_id: TaskId, caller: Reader, session: DbSession, ctx: Ctx
) -> list[TransitionOut]:
    unit = service.require_unit(caller)
    row: Referral | Incoming | None = None
    incoming_row = await IncomingRepository(session).get(task_id)
    if incoming_row is not None and service.can_see(caller, incoming_row):
        row = incoming_row
    else:
        recipient = await RecipientRepository(session).get(task_id)
        if recipient is not None:
            referral = await ReferralRepository(session).get(recipient.referral_id)
            if referral is not None and referral.sender_unit_id == unit:
                row = referral
    if row is None:
        raise ReferralNotFound("no such referral for your unit")
    await _audit(ctx, session, caller, "referral.history", row, task_id)
    steps = await TransitionRepository(session).of_task(task_id)
    side = "receiver" if isinstance(row, Incoming) else "sender"
    return [TransitionOut.model_validate(t, from_attributes=True) for t in steps if t.side == side]


@router.post(
    "/person-search",
    response_model=list[ReferralOut | IncomingOut],
    summary="Every referral about a person, sent or received by this member",
    description=(
        "For staff with the scope `referral:person`: the person is named in the body, "
        "never in a URL. Every access is audited. Protected identities only with the "
        "role `protected_identity`."
    ),
    responses=problem_responses(Forbidden),
)
async def person_search(
    body: PersonSearch, caller: PersonReader, session: DbSession, ctx: Ctx
) -> list[ReferralOut | IncomingOut]:
    key = person_key(member_secret(ctx.settings), normalise_personnummer(body.personnummer))
    out: list[ReferralOut | IncomingOut] = []
    allowed_protected = caller.has_role(service.PROTECTED_ROLE)
    for ref in await ReferralRepository(session).for_person(key):
        if ref.protected_identity and not allowed_protected:
            continue
        recipients = await RecipientRepository(session).of_referral(ref.id)
        await _audit(ctx, session, caller, "referral.person_search", ref, ref.id)
        out.append(_referral_out(ref, recipients, await _names(session, recipients)))
    for row in await IncomingRepository(session).for_person(key):
        if row.protected_identity and not allowed_protected:
            continue
        await _audit(ctx, session, caller, "incoming.person_search", row, row.id)
        out.append(_incoming_out(row))
    return out


@router.get(
    "/indicators",
    summary="Follow-up indicators (aggregates, no personal data)",
    description=(
        "Per kind, outgoing and incoming: counts, acknowledged and acknowledged in time, "
        "hours to acknowledgement (median, p90) and final statuses; days from a "
        "vårdkedjeremiss to its first meeting; discharge plannings with a SIP before the "
        "discharge date; plan actions ended, and ended without every party told; outcomes "
        "of kontaktbegäran. For the whole member or one `unit_id`, over the days `from` to "
        "`to` (default: the last 30 days). `format=csv` for a spreadsheet. Scope "
        "`referral:read`."
    ),
    responses={
        200: {
            "content": {
                "application/json": {"example": {"outgoing": {}, "incoming": {}}},
                "text/csv": {"example": "indicator,direction,kind,value\r\n"},
            }
        },
        **problem_responses(Forbidden),
    },
)
async def get_indicators(
    caller: Reader,
    session: DbSession,
    ctx: Ctx,
    from_: Annotated[IsoDate | None, Query(alias="from", description="first day")] = None,
    to: Annotated[IsoDate | None, Query(description="last day")] = None,
    unit_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    format: Annotated[str, Query(pattern=r"^(json|csv)$")] = "json",
) -> Response:
    until = to or to_local(utcnow()).date()
    since = from_ or until - dt.timedelta(days=29)
    if since > until:
        raise InvalidInput.field("from", "period_order", "from is after to")
    data = await indicators.compute(
        session=session,
        member=ctx.settings.member.orgnr,
        unit_id=unit_id,
        since=since,
        until=until,
    )
    if format == "csv":
        return Response(
            indicators.as_csv(data).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="indikatorer.csv"'},
        )
    return Response(json.dumps(data).encode(), media_type="application/json")
