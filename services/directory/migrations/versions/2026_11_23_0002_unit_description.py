"""unit description: mission, target groups, interventions, contact paths, hours, ...

Existing rows get empty values (server defaults), so a database with units upgrades.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0002"
down_revision: str | None = "0001"


def columns() -> list[sa.Column[Any]]:
    """New column objects (a Column belongs to one table, so each table gets its own)."""
    return [
        sa.Column("mission", sa.Text(), nullable=False, server_default=""),
        sa.Column("target_groups", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("interventions", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("contact_paths", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("opening_hours", sa.JSON(), nullable=True),
        sa.Column("referral_kinds", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("status_message", sa.String(length=500), nullable=True),
        sa.Column("parent_unit_id", sa.String(length=64), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("reviewed_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("capacity", sa.JSON(), nullable=True),
    ]


# The owner's table and the replica hold the same public fields (UnitPublicFields).
TABLES = ("replica_unit", "unit")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns():
                batch_op.add_column(column)
            batch_op.create_index(batch_op.f(f"ix_{table}_kind"), ["kind"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_status"), ["status"], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_status"))
            batch_op.drop_index(batch_op.f(f"ix_{table}_kind"))
            for column in reversed(columns()):
                batch_op.drop_column(column.name)
