"""The referral service's spec."""

from pathlib import Path

from services.referral.models import Base, infra
from shared.events import topics
from shared.inbox import ConsumerSpec
from shared.service import ServiceContext, ServiceSpec


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """The inbound topic of this member; event types this service does not handle are skipped."""
    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(ctx.settings.member.orgnr)],
            handlers={},
        )
    ]


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
