"""the SIP a meeting answers (an HVB notification, a discharge planning), the discharge a ward
records and what the receiving member is told of it (issue 22, ADR 0026)

Stored HVB details keep their shape: a block from before (``individual_plan_invited``, no
placement form) is read as services/referral/details.py's ``HvbDetails`` says, so no row is
rewritten here.
"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0018"
down_revision: str | None = "0017"


def upgrade() -> None:
    with op.batch_alter_table("meeting") as batch:
        batch.add_column(sa.Column("for_referral_id", sa.String(length=36), nullable=True))
        batch.create_index(batch.f("ix_meeting_for_referral_id"), ["for_referral_id"])
    op.create_table(
        "discharge",
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("discharged_on", sa.Date(), nullable=False),
        sa.Column("unplanned", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actions_started", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_discharge_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_discharge")),
    )
    op.create_index(op.f("ix_discharge_discharged_on"), "discharge", ["discharged_on"])
    op.create_table(
        "received_discharge",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("discharged_on", sa.Date(), nullable=False),
        sa.Column("unplanned", sa.Boolean(), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_received_discharge")),
    )


def downgrade() -> None:
    op.drop_table("received_discharge")
    op.drop_index(op.f("ix_discharge_discharged_on"), table_name="discharge")
    op.drop_table("discharge")
    with op.batch_alter_table("meeting") as batch:
        batch.drop_index(batch.f("ix_meeting_for_referral_id"))
        batch.drop_column("for_referral_id")
