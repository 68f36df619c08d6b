"""plan notices"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.create_table(
        "plan_notice",
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("action_id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "action_id", "unit_id", name=op.f("pk_plan_notice")),
    )


def downgrade() -> None:
    op.drop_table("plan_notice")
