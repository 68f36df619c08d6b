"""The referral service's spec."""

from pathlib import Path

from services.referral.handlers import consumers
from services.referral.models import Base, infra
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="referral",
    title="vardkedja referral",
    description=(
        "Outgoing and incoming referrals and invitations between members, with their "
        "whole closed-loop lifecycle.\n\n"
        "Authenticate with a bearer JWT (`vardkedja token` mints one in development). "
        "Errors are RFC 9457 `application/problem+json`."
    ),
    metadata=Base.metadata,
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    consumers=consumers,
)
