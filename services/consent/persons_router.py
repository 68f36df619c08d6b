"""HTTP API of person search: everything this member holds for a person."""

from __future__ import annotations

from fastapi import APIRouter

from services.consent import persons
from services.consent.api import PersonStep
from services.consent.schemas import HistoryEntry, PersonQuery, PersonRecords
from services.consent.views import block_out, consent_out, copy_out, refusal_out, use_out
from shared.identity.audit import AuditUnavailable
from shared.web.errors import Forbidden, problem_responses

persons_router = APIRouter(prefix="/v1/persons", tags=["persons"])


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
async def search_person(body: PersonQuery, step: PersonStep) -> PersonRecords:
    found = await persons.person_records(step.work, body.personnummer)
    await step.accessed("person.search", body.personnummer)
    return PersonRecords(
        consents=[consent_out(c) for c in found.consents],
        copies=[copy_out(c) for c in found.copies],
        refusals=[refusal_out(r) for r in found.refusals],
        blocks=[block_out(b, found.lifts) for b in found.blocks],
        legal_basis_uses=[use_out(u) for u in found.legal_basis_uses],
        history=[HistoryEntry.model_validate(h, from_attributes=True) for h in found.history],
    )
