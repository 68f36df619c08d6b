"""consent narrowings: the purposes withdrawn from a consent that stays in force for the
rest, heard by the referral service (issue 21, ADR 0021 amendment)
"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0015"
down_revision: str | None = "0014"


def upgrade() -> None:
    op.create_table(
        "consent_narrowing",
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("withdrawn_purposes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_narrowing")),
    )
    op.create_index(op.f("ix_consent_narrowing_received_at"), "consent_narrowing", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_consent_narrowing_received_at"), table_name="consent_narrowing")
    op.drop_table("consent_narrowing")
