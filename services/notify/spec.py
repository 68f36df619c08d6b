"""The notify service's spec."""

from services.notify.channels import unit_by_hsa_id
from services.notify.channels_router import channels_router
from services.notify.deliveries_router import deliveries_router
from services.notify.handlers import consumers, on_worker_stop, periodic
from services.notify.inbox_router import inbox_router
from services.notify.models import Base, infra
from services.notify.subscriptions_router import subscription_router
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="notify",
    title="vardkedja notify",
    description=(
        "Tells the right function, on every channel it uses, and proves it arrived: one "
        "inbox per unit (with a live stream), signed webhooks to case systems and EHRs, "
        "e-mail to functional mailboxes, reminders and escalation of deadlines. "
        "Notifications carry ids, kinds, units, deadlines and a link — never personal data."
    ),
    metadata=Base.metadata,
    infra=infra,
    routers=[inbox_router, subscription_router, deliveries_router, channels_router],
    openapi_tags=[
        {"name": "inbox", "description": "A unit's (or role's) inbox, live stream and log."},
        {
            "name": "webhooks",
            "description": "Subscriptions of case systems and EHRs (Standard Webhooks).",
        },
        {
            "name": "administration",
            "description": "Dead letters and redelivery, units' mailboxes, the rules table.",
        },
    ],
    consumers=consumers,
    periodic=periodic,
    on_worker_stop=on_worker_stop,
    unit_by_hsa_id=unit_by_hsa_id,
)
