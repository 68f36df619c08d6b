"""fhir backport subscriptions: a webhook subscription's payload format and, for FHIR
Subscriptions R5 Backport ones, their status, base URL, heartbeat and event count; a
delivery's FHIR notification type and event number"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fhir_type", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("fhir_event", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_delivery_fhir_type"), ["fhir_type", "created_at"], unique=False
        )

    with op.batch_alter_table("webhook_subscription", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("format", sa.String(length=32), server_default="vardkedja", nullable=False)
        )
        batch_op.add_column(sa.Column("fhir_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("fhir_base_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_period_s", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("events_since_start", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_sent_at", shared.data.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscription", schema=None) as batch_op:
        batch_op.drop_column("last_sent_at")
        batch_op.drop_column("events_since_start")
        batch_op.drop_column("heartbeat_period_s")
        batch_op.drop_column("fhir_base_url")
        batch_op.drop_column("fhir_status")
        batch_op.drop_column("format")

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_fhir_type"))
        batch_op.drop_column("fhir_event")
        batch_op.drop_column("fhir_type")
