"""HTTP API of the handover out of 24-hour care (:mod:`.handover`): the ward records the
person's discharge from a discharge planning it sent."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.referral import handover
from services.referral.access import NoUnitClaim, ReferralNotFound
from services.referral.api import TaskId, Writer, audit, work_of
from services.referral.handover import DischargeAlreadyRecorded, NotSendingUnit, PlanningClosed
from services.referral.schemas import DischargeIn, DischargeStatus
from shared.web.app import Ctx, DbSession, Idempotency, IdempotencyKeyHeader
from shared.web.errors import Forbidden, problem_responses

handover_router = APIRouter(prefix="/v1", tags=["referrals"])


@handover_router.post(
    "/referrals/{referral_id}/discharge",
    status_code=status.HTTP_201_CREATED,
    response_model=DischargeStatus,
    summary="Record the person's discharge from a discharge planning your unit sent",
    description=(
        "The ward that sent an utskrivningsplanering records the day the person left "
        "(`discharged_on`: not in the future, not before the planning was sent, else 422 "
        "`not_in_future` or `before_planning`), whether it was `unplanned`, and a `note` "
        "for its own record (never sent). Recorded once (409 "
        "`discharge-already-recorded`), while some recipient's task is open (409 "
        "`discharge-planning-closed`); only by the sending unit (403 "
        "`not-the-sending-unit`). Every recipient whose task is open — the home kommun, "
        "out-patient care — is told at once: its task shows the discharge (`discharge` on "
        "`GET /v1/incoming/{task_id}`) and its unit is notified (`referral.discharged`), "
        "and so is every coordinating unit of the plan of the SIP linked to the planning "
        "(`for_referral_id`), each by its own member. The answer is the planning's "
        "discharge status: `discharged`, with whether the recipients' actions in that plan "
        "had started by the day (`actions_started`), as in `GET /v1/referrals/{id}`. "
        "Audited. Send an `Idempotency-Key` to retry safely. Scope `referral:write`."
    ),
    responses=problem_responses(
        Forbidden,
        NotSendingUnit,
        ReferralNotFound,
        DischargeAlreadyRecorded,
        PlanningClosed,
        NoUnitClaim,
    ),
)
async def record_discharge(
    referral_id: TaskId,
    body: DischargeIn,
    caller: Writer,
    session: DbSession,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> DischargeStatus | Response:
    work = work_of(ctx, session, caller)
    idem = Idempotency(ctx, session, caller)
    fingerprint = Idempotency.fingerprint(f"POST /v1/referrals/{referral_id}/discharge", body)
    replay = await idem.replay(idempotency_key, fingerprint)
    if replay is not None:
        return replay
    referral, recipients, view = await handover.record_discharge(work, referral_id, body)
    await audit(ctx, work, "referral.discharge", referral, referral.id)
    out = handover.discharge_status(work, referral, recipients, view)
    assert out is not None  # a discharge planning
    headers = {"Location": f"/v1/referrals/{referral.id}"}
    await idem.remember(idempotency_key, fingerprint, status.HTTP_201_CREATED, out, headers)
    response.headers.update(headers)
    return out
