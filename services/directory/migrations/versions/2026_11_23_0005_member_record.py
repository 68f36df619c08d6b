"""member record"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    op.create_table(
        "member_record",
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("county_code", sa.String(length=2), nullable=False),
        sa.Column("kommunkoder", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("orgnr", name=op.f("pk_member_record")),
    )


def downgrade() -> None:
    op.drop_table("member_record")
