"""The referral service's spec."""

from services.referral.attachments_router import attachments_router
from services.referral.deadline_count_router import deadlines_router
from services.referral.handlers import consumers, periodic
from services.referral.handover_router import handover_router
from services.referral.inbox_router import inbox_router
from services.referral.indicators_router import indicators_router
from services.referral.meetings_router import meetings_router
from services.referral.models import Base, infra
from services.referral.plans_router import plans_router
from services.referral.sending_router import sending_router
from services.referral.units import unit_by_hsa_id
from shared.config import Settings
from shared.domain.documents import MIB
from shared.service import ServiceSpec


def body_limits(settings: Settings) -> dict[str, int]:
    """An upload carries the largest document taken in base64 (a third more), and its
    title and type: the body may be that much, so that a document over the limit is
    answered by the upload itself (413 naming the field) rather than cut off unread."""
    largest = settings.referral.attachment_max_bytes
    return {"POST /v1/attachments": 4 * -(-largest // 3) + MIB}


SPEC = ServiceSpec(
    name="referral",
    title="vardkedja referral",
    description=(
        "Outgoing and incoming referrals and invitations between members, with their "
        "whole closed-loop lifecycle: vårdkedjeremiss, kontaktbegäran, SIP invitation, "
        "discharge planning (utskrivningsplanering) and HVB notification. Before anything "
        "is sent this member's consent service decides for every recipient; the receiving "
        "member checks again and files the referral in the receiving unit's own inbox."
    ),
    metadata=Base.metadata,
    infra=infra,
    routers=[
        sending_router,
        handover_router,
        attachments_router,
        inbox_router,
        indicators_router,
        deadlines_router,
        meetings_router,
        plans_router,
    ],
    openapi_tags=[
        {
            "name": "referrals",
            "description": "Send referrals and invitations from your unit, follow every "
            "recipient's status, and work your unit's inbox of incoming ones (closed loop).",
        },
        {
            "name": "meetings and plans",
            "description": "Remissmöte and SIP: convene, invite, record the ordered plan, "
            "end actions (every party is told).",
        },
    ],
    consumers=consumers,
    periodic=periodic,
    body_limits=body_limits,
    unit_by_hsa_id=unit_by_hsa_id,
)
