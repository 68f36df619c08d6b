"""task and consent tombstones: a withdrawal or a consent's end that arrived before the
task it concerns (ADR 0016)
"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    op.create_table(
        "consent_tombstone",
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_tombstone")),
    )
    op.create_index(op.f("ix_consent_tombstone_received_at"), "consent_tombstone", ["received_at"])
    op.create_table(
        "task_tombstone",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("by_unit_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_tombstone")),
    )
    op.create_index(op.f("ix_task_tombstone_received_at"), "task_tombstone", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_task_tombstone_received_at"), table_name="task_tombstone")
    op.drop_table("task_tombstone")
    op.drop_index(op.f("ix_consent_tombstone_received_at"), table_name="consent_tombstone")
    op.drop_table("consent_tombstone")
