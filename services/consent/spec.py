"""The consent service's spec."""

from pathlib import Path

from services.consent.handlers import consumers
from services.consent.models import Base, infra
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="consent",
    title="vardkedja consent",
    description=(
        "Consents, refusals, blocks and legal bases recorded by this member, and the "
        "sharing decisions the referral service asks for before anything crosses to "
        "another member.\n\n"
        "Authenticate with a bearer JWT (`vardkedja token` mints one in development). "
        "Errors are RFC 9457 `application/problem+json`."
    ),
    metadata=Base.metadata,
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    consumers=consumers,
)
