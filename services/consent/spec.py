"""The consent service's spec."""

from services.consent.copies_router import copies_router
from services.consent.decisions_router import decisions_router
from services.consent.extract_router import extract_router
from services.consent.handlers import consumers, periodic
from services.consent.known_units import unit_by_hsa_id
from services.consent.models import Base, infra
from services.consent.persons_router import persons_router
from services.consent.records_router import consents_router
from services.consent.refusals_router import refusals_router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="consent",
    title="vardkedja consent",
    description=(
        "Consents, refusals, blocks and legal bases recorded by this member, and the "
        "sharing decisions the referral service asks for before anything crosses to "
        "another member (and when a referral arrives).\n\n"
        "Typical flow for a case system: record a consent (`POST /v1/consents`) naming the "
        "members that may exchange information; ask `POST /v1/decisions` before sending; "
        "withdraw it (`POST /v1/consents/{id}/withdraw`) and every party is told. Staff "
        "with `consent:person` find everything held for a person and the person's audit "
        "extract; a personnummer is only ever sent in a request body.\n\n"
        "Scopes: `consent:read` (decisions, reading), `consent:write` (recording, "
        "withdrawing), `consent:person` (person search, audit extract). "
    ),
    metadata=Base.metadata,
    infra=infra,
    # A token may name its unit by HSA-id: resolved through the units the directory topic
    # announced (ADR 0028).
    unit_by_hsa_id=unit_by_hsa_id,
    # Decisions first: a request is matched against the routes in this order, and decisions
    # are most of the traffic (the docs group operations by tag, in the tags' order below).
    routers=[
        decisions_router,
        consents_router,
        copies_router,
        refusals_router,
        persons_router,
        extract_router,
    ],
    openapi_tags=[
        {
            "name": "consents",
            "description": "Consents your member records, and copies of "
            "other members' consents that name you.",
        },
        {
            "name": "refusals and blocks",
            "description": "Refusals (the person said no) and blocks (spärr) with temporary lifts.",
        },
        {
            "name": "decisions",
            "description": "May A share this with B for this purpose, now? "
            "And the legal bases that apply without consent.",
        },
        {
            "name": "persons",
            "description": "Person search and the audit extract (scope `consent:person`).",
        },
    ],
    consumers=consumers,
    periodic=periodic,
)
