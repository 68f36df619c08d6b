"""deadline notices"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    op.create_table(
        "deadline_notice",
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("deadline", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "subject_id", "deadline", "state", "unit_id", name=op.f("pk_deadline_notice")
        ),
    )


def downgrade() -> None:
    op.drop_table("deadline_notice")
