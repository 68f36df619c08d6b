"""HTTP API of sharing decisions: may A share this with B, now? And the legal bases."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.consent import decisions
from services.consent.api import PERSON_SCOPE, Reader
from services.consent.batching import DecisionUnavailable, batcher_of
from services.consent.codes import Verdict
from services.consent.decision import Decision, Reason
from services.consent.schemas import (
    Basis,
    DecisionOut,
    DecisionRequest,
    LegalBasisInfo,
    Obligations,
    ReasonOut,
)
from shared.identity.audit import AuditUnavailable
from shared.service import ServiceContext
from shared.web.app import Ctx
from shared.web.errors import Forbidden, InvalidInput, problem_responses

decisions_router = APIRouter(prefix="/v1", tags=["decisions"])

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
        asked = decisions.prepare_decision(settings=ctx.settings, data=body)
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
    return decisions.legal_bases(settings=ctx.settings)
