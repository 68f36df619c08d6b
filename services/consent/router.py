"""HTTP API of the consent service (thin: validation, auth, audit, then the service layer).

Every response that shows a person's data, and every decision, writes an audit record in
the request's transaction (fail-closed). A personnummer only ever travels in a body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from services.consent import extract, service
from services.consent.batching import DecisionUnavailable, batcher_of
from services.consent.codes import GiverKind, Verdict
from services.consent.decision import Decision, Reason
from services.consent.models import Block, BlockLift, Consent, ConsentCopy, LegalBasisUse, Refusal
from services.consent.schemas import (
    AuditEntry,
    AuditExtract,
    AuditExtractRequest,
    Basis,
    BlockCreate,
    BlockOut,
    ConsentCreate,
    ConsentOut,
    CopyOut,
    DecisionOut,
    DecisionRequest,
    GivenBy,
    HistoryEntry,
    LegalBasisInfo,
    LegalBasisUseOut,
    LiftCreate,
    LiftOut,
    Obligations,
    Party,
    PersonOut,
    PersonQuery,
    PersonRecords,
    ReasonOut,
    RecordedBy,
    RefusalCreate,
    RefusalOut,
    RevokeRequest,
    Withdrawal,
    WithdrawRequest,
)
from services.consent.service import (
    BlockNotFound,
    ConsentInForce,
    ConsentNotActive,
    ConsentNotFound,
    ConsentVersionMismatch,
    CopyNotFound,
    RecordNotActive,
    RefusalInForce,
    RefusalNotFound,
)
from shared.data.db import utcnow
from shared.identity.audit import AuditUnavailable
from shared.identity.auth import Caller, require_scopes
from shared.identity.identifiers import mask_personnummer
from shared.service import ServiceContext
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyInProgress, IdempotencyKeyHeader
from shared.web.errors import Forbidden, InvalidInput, problem_responses
from shared.web.etag import etag, if_match_version

consents_router = APIRouter(prefix="/v1", tags=["consents"])
records_router = APIRouter(prefix="/v1", tags=["refusals and blocks"])
decisions_router = APIRouter(prefix="/v1", tags=["decisions"])
persons_router = APIRouter(prefix="/v1/persons", tags=["persons"])
# Decisions first: a request is matched against the routes in this order, and decisions
# are most of the traffic (the docs group operations by tag, in the spec's tag order).
ROUTERS = [decisions_router, consents_router, records_router, persons_router]

PERSON_SCOPE = "consent:person"
# The answer to a caller without consent:person whose question is not allowed.
UNTOLD_DENIAL = Decision(
    Verdict.DENIED,
    (
        Reason(
            "not_allowed",
            "Uppgifterna får inte lämnas ut: inget samtycke eller lagligt stöd tillåter det.",
        ),
    ),
)
Reader = Annotated[Caller, Depends(require_scopes("consent:read"))]
Writer = Annotated[Caller, Depends(require_scopes("consent:write"))]
PersonStaff = Annotated[Caller, Depends(require_scopes(PERSON_SCOPE))]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description="the consent's `ETag`; when given, the change is refused (412) if the "
        "consent has changed since",
    ),
]
RecordId = Annotated[
    str, Path(max_length=36, pattern=r"^[A-Za-z0-9-]+$", description="the record's id")
]


# --- views -----------------------------------------------------------------------------


def _parties(stored: Sequence[dict[str, Any]]) -> list[Party]:
    return [Party(orgnr=p["orgnr"], unit_id=p.get("unit_id")) for p in stored]


def _recorded_by(row: Consent | Refusal | Block) -> RecordedBy:
    return RecordedBy(org=row.owner_orgnr, unit_id=row.recorded_by_unit, user=row.recorded_by_user)


def _person(row: Consent | Refusal | Block) -> PersonOut:
    protected = row.protected_identity if isinstance(row, Consent) else False
    return PersonOut(personnummer=row.personnummer, protected_identity=protected)


def consent_out(c: Consent) -> ConsentOut:
    withdrawal = None
    if c.withdrawn_by_kind is not None and c.ended_at is not None:
        withdrawal = Withdrawal(
            at=c.ended_at,
            by_kind=c.withdrawn_by_kind,
            by_reference=c.withdrawn_by_reference,
            reason=c.withdrawal_reason or "",
            recorded_by_user=c.withdrawn_by_user,
        )
    return ConsentOut(
        id=c.id,
        owner_orgnr=c.owner_orgnr,
        person=_person(c),
        given_by=GivenBy.model_construct(
            kind=GiverKind(c.given_by_kind), name=c.given_by_name, reference=c.given_by_reference
        ),
        recorded_by=_recorded_by(c),
        form=c.form,
        form_note=c.form_note,
        signed_form_reference=c.signed_form_reference,
        purposes=c.purposes,
        parties=_parties(c.parties),
        categories=c.categories,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        status=c.status,
        person_informed=c.person_informed,
        supersedes=c.supersedes_id,
        superseded_by=c.superseded_by_id,
        withdrawal=withdrawal,
        ended_at=c.ended_at,
        version=c.version,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def copy_out(c: ConsentCopy) -> CopyOut:
    return CopyOut(
        consent_id=c.consent_id,
        owner_orgnr=c.owner_orgnr,
        protected_identity=c.protected_identity,
        parties=_parties(c.parties),
        purposes=c.purposes,
        categories=c.categories,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        status=c.status,
        end_reason=c.end_reason,
        ended_at=c.ended_at,
        recorded_by_unit=c.recorded_by_unit,
        recorded_at=c.recorded_at,
        received_at=c.received_at,
        version=c.version,
    )


def refusal_out(r: Refusal) -> RefusalOut:
    return RefusalOut(
        id=r.id,
        owner_orgnr=r.owner_orgnr,
        person=_person(r),
        refused_on=r.refused_on,
        parties=_parties(r.parties),
        purposes=r.purposes,
        note=r.note,
        recorded_by=_recorded_by(r),
        status=r.status,
        revoked_at=r.revoked_at,
        revocation_reason=r.revocation_reason,
        created_at=r.created_at,
    )


def block_out(b: Block, lifts: Sequence[BlockLift]) -> BlockOut:
    return BlockOut(
        id=b.id,
        owner_orgnr=b.owner_orgnr,
        person=_person(b),
        blocked=Party(orgnr=b.blocked_orgnr, unit_id=b.blocked_unit_id),
        reason=b.reason,
        recorded_by=_recorded_by(b),
        status=b.status,
        removed_at=b.removed_at,
        lifts=[
            LiftOut.model_validate(x, from_attributes=True) for x in lifts if x.block_id == b.id
        ],
        created_at=b.created_at,
    )


def use_out(u: LegalBasisUse) -> LegalBasisUseOut:
    return LegalBasisUseOut(
        id=u.id,
        basis=u.basis,
        ground=u.ground,
        justification=u.justification,
        purpose=u.purpose,
        categories=u.categories,
        sender=Party(orgnr=u.sender_orgnr, unit_id=u.sender_unit),
        recipient=Party(orgnr=u.recipient_orgnr, unit_id=u.recipient_unit),
        verdict=u.verdict,
        decided_by_user=u.decided_by_user,
        decided_by_unit=u.decided_by_unit,
        decided_at=u.decided_at,
    )


async def _audited(
    ctx: Ctx, session: DbSession, caller: Caller, action: str, row: Consent | Refusal | Block
) -> None:
    """Audits an access to one record (``action`` is ``<record type>.<what>``)."""
    await ctx.auditor.record_access(
        session,
        caller,
        action=action,
        person_id=row.personnummer,
        resource_type=action.split(".")[0],
        resource_id=row.id,
    )


def _with_etag(consent: Consent, response: Response) -> ConsentOut:
    response.headers["ETag"] = etag(consent.version)
    return consent_out(consent)


# --- creating POSTs with Idempotency-Key and audit ---------------------------------------


async def _create(
    *,
    route: str,
    body: BaseModel,
    caller: Caller,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: str | None,
    action: str,
    personnummer: str,
    make: Callable[[], Awaitable[tuple[BaseModel, str, str]]],
) -> Any:
    """Create once per Idempotency-Key; audit the creation (or its replay). ``make`` returns
    the body, the new record's id and its Location."""
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint(route, body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        await ctx.auditor.record_access(
            session, caller, action=f"{action}.replay", person_id=personnummer
        )
        return replay
    out, record_id, location = await make()
    await ctx.auditor.record_access(
        session,
        caller,
        action=action,
        person_id=personnummer,
        resource_type=action.split(".")[0],
        resource_id=record_id,
    )
    headers = {"Location": location}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out


# --- consents --------------------------------------------------------------------------


@consents_router.post(
    "/consents",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentOut,
    summary="Record a consent",
    description=(
        "Records a consent (a secrecy waiver, OSL 12 kap. 2 §) given by the person or a "
        "legal representative: who gave it, how (written with the signed form's reference, "
        "oral with a note, or digital), the purposes, the parties (named members, optionally "
        "units, your own member among them and at least one other: never a blanket "
        "everyone), the information categories, and the validity (an end date is required, "
        "at most `VK_CONSENT__MAX_VALIDITY_DAYS` after the start). `person_informed` must "
        "confirm the person was told the purpose and what refusing means. Every party gets "
        "a copy on its inbound topic. `supersedes` replaces an active consent of the same "
        "person (its parties are told it ended). An active refusal covering the parties "
        "answers 409. Bad input answers 422 naming each field and rule; nothing is stored. "
        "Send an `Idempotency-Key` to retry safely. Scope `consent:write`."
    ),
    responses=problem_responses(
        Forbidden, ConsentNotActive, RefusalInForce, IdempotencyInProgress, AuditUnavailable
    ),
)
async def record_consent(
    body: ConsentCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    async def make() -> tuple[BaseModel, str, str]:
        consent = await service.record_consent(
            session=session, outbox=ctx.outbox, settings=ctx.settings, caller=caller, data=body
        )
        response.headers["ETag"] = etag(consent.version)
        return consent_out(consent), consent.id, f"/v1/consents/{consent.id}"

    return await _create(
        route="POST /v1/consents",
        body=body,
        caller=caller,
        session=session,
        ctx=ctx,
        response=response,
        idempotency_key=idempotency_key,
        action="consent.record",
        personnummer=body.person.personnummer,
        make=make,
    )


@consents_router.get(
    "/consents/{consent_id}",
    response_model=ConsentOut,
    summary="Read a consent your member recorded",
    description="The whole record, including who gave and who recorded it and, once "
    "withdrawn, by whom and why. Audited. Another member's consent answers 404 (see "
    "`/v1/consent-copies/{consent_id}` for copies you hold). Scope `consent:read`.",
    responses=problem_responses(Forbidden, ConsentNotFound, AuditUnavailable),
)
async def get_consent(
    consent_id: RecordId, caller: Reader, session: DbSession, ctx: Ctx, response: Response
) -> ConsentOut:
    consent = await service.get_own_consent(
        session=session, consent_id=consent_id, owner_orgnr=caller.org
    )
    await _audited(ctx, session, caller, "consent.read", consent)
    return _with_etag(consent, response)


@consents_router.post(
    "/consents/{consent_id}/withdraw",
    response_model=ConsentOut,
    summary="Withdraw a consent",
    description=(
        "Withdraws the consent with a reason and by whom (the person, a representative with "
        "a reference, or staff recording the person's wish). Effective at once for every "
        "decision; an `se.vardkedja.consent.ended.v1` event goes to every party named in the "
        "consent, so their referral services stop and their notify services tell the units. "
        "A consent that is no longer active answers 409; with `If-Match`, a consent changed "
        "since you read it answers 412. Scope `consent:write`."
    ),
    responses=problem_responses(
        Forbidden, ConsentNotFound, ConsentNotActive, ConsentVersionMismatch, AuditUnavailable
    ),
)
async def withdraw_consent(
    consent_id: RecordId,
    body: WithdrawRequest,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    if_match: IfMatch = None,
) -> ConsentOut:
    consent = await service.get_own_consent(
        session=session, consent_id=consent_id, owner_orgnr=caller.org
    )
    consent = await service.withdraw_consent(
        session=session,
        outbox=ctx.outbox,
        caller=caller,
        consent=consent,
        data=body,
        expected_version=if_match_version(if_match),
    )
    await _audited(ctx, session, caller, "consent.withdraw", consent)
    return _with_etag(consent, response)


@consents_router.get(
    "/consent-copies/{consent_id}",
    response_model=CopyOut,
    summary="Show your copy of another member's consent",
    description="A member named as a party in another member's consent receives a copy with "
    "only what it needs (no personnummer, giver, notes or form reference): the parties, "
    "purposes, categories, validity and status. It is what the receive-time check uses when a "
    "referral arrives. Audited. Scope `consent:read`.",
    responses=problem_responses(Forbidden, CopyNotFound, AuditUnavailable),
)
async def get_copy(consent_id: RecordId, caller: Reader, session: DbSession, ctx: Ctx) -> CopyOut:
    copy = await service.get_copy(session=session, consent_id=consent_id)
    await ctx.auditor.record_access(
        session,
        caller,
        action="consent_copy.read",
        person_id=None,
        resource_type="consent_copy",
        resource_id=copy.consent_id,
    )
    return copy_out(copy)


# --- refusals and blocks ---------------------------------------------------------------


@records_router.post(
    "/refusals",
    status_code=status.HTTP_201_CREATED,
    response_model=RefusalOut,
    summary="Record a refusal",
    description=(
        "The person said no to sharing with these parties (for the listed purposes, or every "
        "purpose when none are listed). Decisions then answer `refused` and the referral "
        "service must not send. While an active consent of yours covers the same parties "
        "and purposes, this answers 409 (`consent-in-force`): withdraw the consent first, so "
        "its parties are told. Later, a consent covering the refusal answers 409 until the "
        "refusal is revoked. Refusing a SIP is not refusing the interventions: "
        "name the purposes. Send an `Idempotency-Key` to retry safely. Scope `consent:write`."
    ),
    responses=problem_responses(Forbidden, ConsentInForce, IdempotencyInProgress, AuditUnavailable),
)
async def record_refusal(
    body: RefusalCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    async def make() -> tuple[BaseModel, str, str]:
        refusal = await service.record_refusal(
            session=session, settings=ctx.settings, caller=caller, data=body
        )
        return refusal_out(refusal), refusal.id, f"/v1/refusals/{refusal.id}"

    return await _create(
        route="POST /v1/refusals",
        body=body,
        caller=caller,
        session=session,
        ctx=ctx,
        response=response,
        idempotency_key=idempotency_key,
        action="refusal.record",
        personnummer=body.person.personnummer,
        make=make,
    )


@records_router.get(
    "/refusals/{refusal_id}",
    response_model=RefusalOut,
    summary="Read a refusal",
    description="A refusal your member recorded. Audited. Scope `consent:read`.",
    responses=problem_responses(Forbidden, RefusalNotFound, AuditUnavailable),
)
async def get_refusal(
    refusal_id: RecordId, caller: Reader, session: DbSession, ctx: Ctx
) -> RefusalOut:
    refusal = await service.get_own_refusal(
        session=session, refusal_id=refusal_id, owner_orgnr=caller.org
    )
    await _audited(ctx, session, caller, "refusal.read", refusal)
    return refusal_out(refusal)


@records_router.post(
    "/refusals/{refusal_id}/revoke",
    response_model=RefusalOut,
    summary="Revoke a refusal",
    description="The person changed their mind: the refusal no longer applies (a consent can "
    "then be recorded). Already revoked: 409. Scope `consent:write`.",
    responses=problem_responses(Forbidden, RefusalNotFound, RecordNotActive, AuditUnavailable),
)
async def revoke_refusal(
    refusal_id: RecordId, body: RevokeRequest, caller: Writer, session: DbSession, ctx: Ctx
) -> RefusalOut:
    refusal = await service.get_own_refusal(
        session=session, refusal_id=refusal_id, owner_orgnr=caller.org
    )
    refusal = await service.revoke_refusal(
        session=session, caller=caller, refusal=refusal, reason=body.reason
    )
    await _audited(ctx, session, caller, "refusal.revoke", refusal)
    return refusal_out(refusal)


@records_router.post(
    "/blocks",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockOut,
    summary="Block a member or unit (spärr)",
    description=(
        "The person blocks a member, or one unit of it, from receiving anything about them, "
        "even where a consent exists. Reporting duties (LVM, orosanmälan) and emergencies "
        "still apply (`VK_CONSENT__BLOCK_OVERRIDDEN_BY`). Send an `Idempotency-Key` to retry "
        "safely. Scope `consent:write`."
    ),
    responses=problem_responses(Forbidden, IdempotencyInProgress, AuditUnavailable),
)
async def record_block(
    body: BlockCreate,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    async def make() -> tuple[BaseModel, str, str]:
        block = await service.record_block(
            session=session, settings=ctx.settings, caller=caller, data=body
        )
        return block_out(block, []), block.id, f"/v1/blocks/{block.id}"

    return await _create(
        route="POST /v1/blocks",
        body=body,
        caller=caller,
        session=session,
        ctx=ctx,
        response=response,
        idempotency_key=idempotency_key,
        action="block.record",
        personnummer=body.person.personnummer,
        make=make,
    )


async def _block_view(
    *, session: DbSession, ctx: Ctx, caller: Caller, block: Block, action: str
) -> BlockOut:
    lifts = await service.block_lifts(session=session, block_ids=[block.id])
    await ctx.auditor.record_access(
        session,
        caller,
        action=action,
        person_id=block.personnummer,
        resource_type="block",
        resource_id=block.id,
    )
    return block_out(block, lifts)


@records_router.get(
    "/blocks/{block_id}",
    response_model=BlockOut,
    summary="Read a block with its lifts",
    description="A block your member recorded, with every temporary lift. Audited. "
    "Scope `consent:read`.",
    responses=problem_responses(Forbidden, BlockNotFound, AuditUnavailable),
)
async def get_block(block_id: RecordId, caller: Reader, session: DbSession, ctx: Ctx) -> BlockOut:
    block = await service.get_own_block(session=session, block_id=block_id, owner_orgnr=caller.org)
    return await _block_view(
        session=session, ctx=ctx, caller=caller, block=block, action="block.read"
    )


@records_router.post(
    "/blocks/{block_id}/lifts",
    status_code=status.HTTP_201_CREATED,
    response_model=BlockOut,
    summary="Lift a block temporarily",
    description="Lifts the block from `starts_at` (default now) until `ends_at`, at most "
    "`VK_CONSENT__BLOCK_LIFT_MAX_DAYS` (7) days, with a reason, as the national block service "
    "does. Decisions inside the window ignore the block. A removed block answers 409. "
    "Scope `consent:write`.",
    responses=problem_responses(Forbidden, BlockNotFound, RecordNotActive, AuditUnavailable),
)
async def lift_block(
    block_id: RecordId, body: LiftCreate, caller: Writer, session: DbSession, ctx: Ctx
) -> BlockOut:
    block = await service.get_own_block(session=session, block_id=block_id, owner_orgnr=caller.org)
    await service.lift_block(
        session=session, settings=ctx.settings, caller=caller, block=block, data=body
    )
    return await _block_view(
        session=session, ctx=ctx, caller=caller, block=block, action="block.lift"
    )


@records_router.post(
    "/blocks/{block_id}/remove",
    response_model=BlockOut,
    summary="Remove a block",
    description="The person no longer wants the block. Already removed: 409. "
    "Scope `consent:write`.",
    responses=problem_responses(Forbidden, BlockNotFound, RecordNotActive, AuditUnavailable),
)
async def remove_block(
    block_id: RecordId, caller: Writer, session: DbSession, ctx: Ctx
) -> BlockOut:
    block = await service.get_own_block(session=session, block_id=block_id, owner_orgnr=caller.org)
    block = await service.remove_block(session=session, caller=caller, block=block)
    return await _block_view(
        session=session, ctx=ctx, caller=caller, block=block, action="block.remove"
    )


# --- decisions -------------------------------------------------------------------------


@decisions_router.post(
    "/decisions",
    response_model=DecisionOut,
    summary="May A share this with B, now?",
    description=(
        "Answers whether member/unit `sender` may share the listed information categories "
        "about the person with member/unit `recipient` for `purpose` at `at` (default now). "
        "Your own member must be the sender or the recipient (the receive-time check asks "
        "as recipient, using the copies you hold). **Deny by default**: `allowed` only on "
        "an active consent that names both sides, the purpose and every category on that "
        "day, or on a stated legal basis with a justification (and a ground for OSL 25:12 / "
        "26:9; the basis must be allowed to cover the purpose, see `GET /v1/legal-bases`). "
        "A block of the recipient denies (except bases that override blocks); a refusal "
        "answers `refused`, and the referral service must not send. The answer names its "
        "basis, the obligations (share only these categories, through this day) and reasons "
        "the person can read. Every decision is audited; a legal basis is also kept with its "
        "justification. Scope `consent:read`.\n\n"
        "**Why not is told only to those who may see the person's records.** A denial says "
        "whether a consent, refusal or block exists. With `consent:person` (which may search "
        "the person's records anyway) the answer gives the verdict `refused` or `denied` and "
        "its reasons. With `consent:read` alone every answer that is not `allowed` is the "
        "same: `verdict: denied`, `basis: none` and the one reason `not_allowed`, whether "
        "there is a refusal, a block, a consent that does not cover the question, or nothing."
    ),
    responses=problem_responses(Forbidden, AuditUnavailable, DecisionUnavailable),
)
async def decide(body: DecisionRequest, caller: Reader, request: Request) -> Response:
    # Not the Ctx dependency: a plain function dependency runs in a worker thread, a hop
    # that costs as much as the rest of this request's dependencies together.
    ctx: ServiceContext = request.app.state.ctx
    try:
        asked = service.prepare_decision(settings=ctx.settings, data=body)
    except InvalidInput:
        if body.legal_basis is not None:  # an attempt to use a basis that cannot apply
            await ctx.auditor.record_denied(
                ctx.db,
                caller,
                action="consent.decision",
                person_id=body.person.personnummer,
                purpose=str(body.purpose),
                resource_type="legal_basis",
                resource_id=str(body.legal_basis.basis),
            )
        raise
    # Decided, audited and committed in a batch with the other decisions waiting.
    decided = await batcher_of(ctx).decide(asked, caller)
    decision, use_id = decided.decision, decided.legal_basis_use_id
    if use_id is not None:
        basis = Basis(
            kind="legal_basis", legal_basis=decision.legal_basis, legal_basis_use_id=use_id
        )
    elif decision.consent_id is not None:
        basis = Basis(kind="consent", consent_id=decision.consent_id)
    else:
        basis = Basis(kind="none")
    if not decision.allowed and not caller.has_scope(PERSON_SCOPE):
        # No oracle: without consent:person a denial must not tell a refusal, a block or a
        # near-miss consent from nothing at all (see the operation's description).
        decision = UNTOLD_DENIAL
        basis = Basis(kind="none")
    obligations = None
    if decision.allowed and decision.valid_until is not None:
        obligations = Obligations(
            categories=sorted(decision.categories), valid_until=decision.valid_until
        )
    out = DecisionOut(
        verdict=decision.verdict,
        allowed=decision.allowed,
        basis=basis,
        obligations=obligations,
        reasons=[ReasonOut(code=r.code, text=r.text) for r in decision.reasons],
        decided_at=asked.question.at,
    )
    # Built and checked above: serialised once (not validated again as response_model).
    return Response(out.model_dump_json(), media_type="application/json")


@decisions_router.get(
    "/legal-bases",
    response_model=list[LegalBasisInfo],
    summary="The legal bases and the purposes each may cover",
    description="The configured table (`VK_CONSENT__LEGAL_BASIS_PURPOSES`), which bases need an "
    "OSL ground and which apply despite a block. No personal data. Scope `consent:read`.",
    responses=problem_responses(Forbidden),
)
async def list_legal_bases(caller: Reader, ctx: Ctx) -> list[LegalBasisInfo]:
    return service.legal_bases(settings=ctx.settings)


# --- persons ---------------------------------------------------------------------------


@persons_router.post(
    "/search",
    response_model=PersonRecords,
    summary="Everything held for a person, with its history",
    description=(
        "Every consent, copy of another member's consent, refusal, block (with its lifts) "
        "and legal-basis use this member holds for the person, and the history of every "
        "change. The personnummer goes in the body, never in the URL. Audited. "
        "Scope `consent:person`."
    ),
    responses=problem_responses(Forbidden, AuditUnavailable),
)
async def search_person(
    body: PersonQuery, caller: PersonStaff, session: DbSession, ctx: Ctx
) -> PersonRecords:
    found = await service.person_records(
        session=session, settings=ctx.settings, personnummer=body.personnummer
    )
    await ctx.auditor.record_access(
        session, caller, action="person.search", person_id=body.personnummer
    )
    return PersonRecords(
        consents=[consent_out(c) for c in found["consents"]],
        copies=[copy_out(c) for c in found["copies"]],
        refusals=[refusal_out(r) for r in found["refusals"]],
        blocks=[block_out(b, found["lifts"]) for b in found["blocks"]],
        legal_basis_uses=[use_out(u) for u in found["legal_basis_uses"]],
        history=[HistoryEntry.model_validate(h, from_attributes=True) for h in found["history"]],
    )


@persons_router.post(
    "/audit-extract",
    response_model=AuditExtract,
    summary="The person's audit extract (loggutdrag)",
    description=(
        "Every access to the person's data in this member's four services (directory, "
        "consent, referral, notify): who, in which unit, when, what and with which outcome, "
        "oldest first, optionally within `since`/`until`. The other services' records reach "
        "the consent service as events on the member's internal topic (ADR 0011), so the "
        "newest may lag by seconds. `format: html` gives a printable page. The personnummer "
        "goes in the body, never in the URL. Audited. Scope `consent:person`."
    ),
    responses={
        **problem_responses(Forbidden, AuditUnavailable),
        200: {
            "description": "The extract, as JSON or (with `format: html`) a printable page",
            "content": {"text/html": {"example": "<!doctype html>..."}},
        },
    },
)
async def audit_extract(
    body: AuditExtractRequest, caller: PersonStaff, session: DbSession, ctx: Ctx
) -> Any:
    if body.since and body.until and body.until <= body.since:
        raise InvalidInput.field("until", "end_before_start", "until must be after since")
    entries = await service.audit_entries(
        session=session,
        settings=ctx.settings,
        audit_table=ctx.spec.infra.audit,
        personnummer=body.personnummer,
        since=body.since,
        until=body.until,
    )
    await ctx.auditor.record_access(
        session, caller, action="person.audit_extract", person_id=body.personnummer
    )
    result = AuditExtract(
        person=mask_personnummer(body.personnummer),
        member_orgnr=ctx.settings.member.orgnr,
        member_name=ctx.settings.member.name,
        generated_at=utcnow(),
        since=body.since,
        until=body.until,
        services=["consent", "directory", "notify", "referral"],
        entries=[AuditEntry(**e) for e in entries],
    )
    if body.format == "html":
        return HTMLResponse(extract.render_html(result))
    return result
