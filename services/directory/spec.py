"""The directory service's spec."""

from services.directory.handlers import consumers, periodic
from services.directory.member_router import member_router
from services.directory.models import Base, infra
from services.directory.router import replica_router, router
from services.directory.search import warm_search
from services.directory.search_router import search_router
from services.directory.service import unit_by_hsa_id
from services.directory.transfer_router import overview_router, transfer_router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="directory",
    title="vardkedja directory",
    description=(
        "The verksamhetsbunden overview of contact paths: each member maintains its own "
        "units/functions (never named persons); every member holds a read replica of all "
        "members' units, fed by the `vardkedja.directory` topic."
    ),
    metadata=Base.metadata,
    infra=infra,
    # transfer_router first: /v1/units/export must not be taken for /v1/units/{unit_id}.
    routers=[
        transfer_router,
        router,
        replica_router,
        search_router,
        overview_router,
        member_router,
    ],
    openapi_tags=[
        {"name": "units", "description": "Your own member's units (owner API)."},
        {"name": "replica", "description": "Every member's units, as replicated to you."},
        {
            "name": "search and routing",
            "description": "Find the right function: search every member's units, or ask "
            "which units should receive a referral.",
        },
        {
            "name": "import and export",
            "description": "Bulk import (CSV or YAML, all or nothing, every bad row "
            "reported) and export of your own units.",
        },
        {
            "name": "members",
            "description": "The members (huvudmän) of the federation: name, kind, county and "
            "the kommuner each serves.",
        },
        {
            "name": "overview",
            "description": "The printable Kontaktvägar overview of a member, grouped by "
            "kontaktorsak, as HTML, PDF or CSV.",
        },
    ],
    consumers=consumers,
    periodic=periodic,
    on_api_start=warm_search,
    unit_by_hsa_id=unit_by_hsa_id,
)
