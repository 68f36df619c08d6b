"""The directory service's spec."""

from pathlib import Path

from services.directory.handlers import consumers, periodic
from services.directory.models import Base, infra
from services.directory.router import replica_router, router
from services.directory.search_router import search_router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="directory",
    title="vardkedja directory",
    description=(
        "The verksamhetsbunden overview of contact paths: each member maintains its own "
        "units/functions (never named persons); every member holds a read replica of all "
        "members' units, fed by the `vardkedja.directory` topic.\n\n"
        "Authenticate with a bearer JWT (`vardkedja token` mints one in development). "
        "Errors are RFC 9457 `application/problem+json`."
    ),
    metadata=Base.metadata,
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router, replica_router, search_router],
    openapi_tags=[
        {"name": "units", "description": "Your own member's units (owner API)."},
        {"name": "replica", "description": "Every member's units, as replicated to you."},
        {
            "name": "search and routing",
            "description": "Find the right function: search every member's units, or ask "
            "which units should receive a referral.",
        },
    ],
    consumers=consumers,
    periodic=periodic,
)
