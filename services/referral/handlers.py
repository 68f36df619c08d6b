"""Event handlers of the referral worker (its domain handlers arrive with its issue)."""

from __future__ import annotations

from shared.events import topics
from shared.inbox import ConsumerSpec
from shared.service import ServiceContext


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """The inbound topic of this member; event types this service does not handle are skipped."""
    return [
        ConsumerSpec(
            name="inbound",
            topics=[topics.inbound(ctx.settings.member.orgnr)],
            handlers={},
        )
    ]
