"""HTTP API of the copies this member holds of other members' consents that name it."""

from __future__ import annotations

from fastapi import APIRouter

from services.consent import copies
from services.consent.api import ReadStep, RecordId
from services.consent.copies import CopyNotFound
from services.consent.schemas import CopyOut
from services.consent.views import copy_out
from shared.identity.audit import AuditUnavailable
from shared.web.errors import Forbidden, problem_responses

copies_router = APIRouter(prefix="/v1", tags=["consents"])


@copies_router.get(
    "/consent-copies/{consent_id}",
    response_model=CopyOut,
    summary="Show your copy of another member's consent",
    description="A member named as a party in another member's consent receives a copy with "
    "only what it needs (no personnummer, giver, notes or form reference): the parties, "
    "purposes, categories, validity and status. It is what the receive-time check uses when a "
    "referral arrives. Audited. Scope `consent:read`.",
    responses=problem_responses(Forbidden, CopyNotFound, AuditUnavailable),
)
async def get_copy(consent_id: RecordId, step: ReadStep) -> CopyOut:
    copy = await copies.get_copy(step.work, consent_id)
    # The copy holds no personnummer: its reads are found by copy id for the extract.
    await step.accessed("consent_copy.read", None, ("consent_copy", copy.consent_id))
    return copy_out(copy)
