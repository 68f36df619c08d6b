"""The notify service's spec."""

from pathlib import Path

from services.notify.handlers import consumers
from services.notify.models import Base, infra
from shared.service import ServiceSpec

SPEC = ServiceSpec(
    name="notify",
    title="vardkedja notify",
    description=(
        "Delivery of notifications to unit inboxes, case systems (webhooks) and "
        "functional mailboxes, and reminders.\n\n"
        "Authenticate with a bearer JWT (`vardkedja token` mints one in development). "
        "Errors are RFC 9457 `application/problem+json`."
    ),
    metadata=Base.metadata,
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    consumers=consumers,
)
