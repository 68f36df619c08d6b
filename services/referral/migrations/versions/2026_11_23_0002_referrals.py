"""referrals, recipients, incoming, transitions, known units"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "incoming",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("sender_unit_id", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("basis", sa.JSON(), nullable=False),
        sa.Column("acknowledge_by", sa.Date(), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("case_reference", sa.String(length=100), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("children_in_household", sa.String(length=8), nullable=False),
        sa.Column("persons_wish", sa.Text(), nullable=False),
        sa.Column("drug_free", sa.String(length=8), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incoming")),
    )
    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incoming_acknowledge_by"), ["acknowledge_by"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incoming_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_incoming_person_key"), ["person_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_incoming_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_incoming_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "known_unit",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("referral_kinds", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_known_unit")),
    )
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_known_unit_owner_orgnr"), ["owner_orgnr"], unique=False
        )

    op.create_table(
        "referral",
        sa.Column("sender_unit_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("needs", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("children_in_household", sa.String(length=8), nullable=False),
        sa.Column("persons_wish", sa.Text(), nullable=False),
        sa.Column("drug_free", sa.String(length=8), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_referral_person_key"), ["person_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_referral_sender_unit_id"), ["sender_unit_id"], unique=False
        )

    op.create_table(
        "transition",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=8), nullable=False),
        sa.Column("by_orgnr", sa.String(length=11), nullable=False),
        sa.Column("by_unit_id", sa.String(length=64), nullable=True),
        sa.Column("by_sub", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transition")),
    )
    with op.batch_alter_table("transition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transition_task_id"), ["task_id"], unique=False)

    op.create_table(
        "recipient",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("basis", sa.JSON(), nullable=False),
        sa.Column("acknowledge_by", sa.Date(), nullable=False),
        sa.Column("routed", sa.Boolean(), nullable=False),
        sa.Column("route_reason", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("case_reference", sa.String(length=100), nullable=True),
        sa.Column("remote_version", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_recipient_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient")),
    )
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recipient_referral_id"), ["referral_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recipient_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recipient_status"))
        batch_op.drop_index(batch_op.f("ix_recipient_referral_id"))

    op.drop_table("recipient")
    with op.batch_alter_table("transition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transition_task_id"))

    op.drop_table("transition")
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_sender_unit_id"))
        batch_op.drop_index(batch_op.f("ix_referral_person_key"))
        batch_op.drop_index(batch_op.f("ix_referral_kind"))

    op.drop_table("referral")
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_unit_owner_orgnr"))

    op.drop_table("known_unit")
    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incoming_unit_id"))
        batch_op.drop_index(batch_op.f("ix_incoming_status"))
        batch_op.drop_index(batch_op.f("ix_incoming_person_key"))
        batch_op.drop_index(batch_op.f("ix_incoming_kind"))
        batch_op.drop_index(batch_op.f("ix_incoming_acknowledge_by"))

    op.drop_table("incoming")
