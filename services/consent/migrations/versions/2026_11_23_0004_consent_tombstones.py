"""consent tombstones: the end of a consent that arrived before its copy (ADR 0016)"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.create_table(
        "consent_tombstone",
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("ended_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_by", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_tombstone")),
    )
    op.create_index(op.f("ix_consent_tombstone_received_at"), "consent_tombstone", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_consent_tombstone_received_at"), table_name="consent_tombstone")
    op.drop_table("consent_tombstone")
