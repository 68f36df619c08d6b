"""meetings and plans"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.create_table(
        "meeting",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("convener_unit_id", sa.String(length=64), nullable=False),
        sa.Column("origin_task_id", sa.String(length=36), nullable=True),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("place", sa.String(length=300), nullable=True),
        sa.Column("video_link", sa.String(length=500), nullable=True),
        sa.Column("person_invited", sa.Boolean(), nullable=False),
        sa.Column("relatives", sa.JSON(), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting")),
    )
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meeting_convener_unit_id"), ["convener_unit_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_meeting_person_key"), ["person_key"], unique=False)

    op.create_table(
        "plan",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("owner_unit_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("goals", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("coordinator", sa.JSON(), nullable=False),
        sa.Column("follow_up_date", sa.Date(), nullable=False),
        sa.Column("viewers", sa.JSON(), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan")),
    )
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_owner_orgnr"), ["owner_orgnr"], unique=False)
        batch_op.create_index(batch_op.f("ix_plan_person_key"), ["person_key"], unique=False)

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("proposed_at", shared.data.db.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        # Existing rows: no interventions known until the unit next changes.
        batch_op.add_column(
            sa.Column("interventions", sa.JSON(), nullable=False, server_default="[]")
        )

    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("proposed_at", shared.data.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.drop_column("proposed_at")

    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.drop_column("interventions")

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.drop_column("proposed_at")

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_person_key"))
        batch_op.drop_index(batch_op.f("ix_plan_owner_orgnr"))

    op.drop_table("plan")
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meeting_person_key"))
        batch_op.drop_index(batch_op.f("ix_meeting_convener_unit_id"))

    op.drop_table("meeting")
