"""initial: the shared infrastructure tables, units and their replica"""

import sqlalchemy as sa
from alembic import op

import shared.data.db
from shared.data import infra_migrations

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    infra_migrations.upgrade_v1()
    op.create_table(
        "replica_unit",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("kommunkoder", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_replica_unit")),
    )
    op.create_index(op.f("ix_replica_unit_owner_orgnr"), "replica_unit", ["owner_orgnr"])
    op.create_table(
        "unit",
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("kommunkoder", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit")),
    )
    op.create_index(op.f("ix_unit_owner_orgnr"), "unit", ["owner_orgnr"])


def downgrade() -> None:
    op.drop_index(op.f("ix_unit_owner_orgnr"), table_name="unit")
    op.drop_table("unit")
    op.drop_index(op.f("ix_replica_unit_owner_orgnr"), table_name="replica_unit")
    op.drop_table("replica_unit")
    infra_migrations.downgrade_v1()
