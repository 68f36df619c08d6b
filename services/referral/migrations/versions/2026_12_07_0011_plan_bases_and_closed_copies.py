"""plan bases and closed copies

A plan's sharing rests on a consent per unit of another member (``plan_basis``); a plan
copy records whether it is protected and whether it was closed because its basis ended
(``status``); a closed plan copy and an incoming task cancelled because its basis ended
keep no personnummer or person key (ADR 0021).
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"


def upgrade() -> None:
    op.create_table(
        "plan_basis",
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "orgnr", "unit_id", name=op.f("pk_plan_basis")),
    )
    with op.batch_alter_table("plan_basis", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_basis_consent_id"), ["consent_id"], unique=False)

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.alter_column("personnummer", existing_type=sa.String(length=12), nullable=True)
        batch_op.alter_column("person_key", existing_type=sa.String(length=64), nullable=True)

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("protected_identity", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="active")
        )
        batch_op.alter_column("personnummer", existing_type=sa.String(length=12), nullable=True)
        batch_op.alter_column("person_key", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    # Closed copies and cancelled tasks hold no person: they cannot be kept without one.
    op.execute("DELETE FROM plan WHERE personnummer IS NULL")
    op.execute("DELETE FROM incoming WHERE personnummer IS NULL")
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.alter_column("person_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("personnummer", existing_type=sa.String(length=12), nullable=False)
        batch_op.drop_column("status")
        batch_op.drop_column("protected_identity")

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.alter_column("person_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("personnummer", existing_type=sa.String(length=12), nullable=False)

    with op.batch_alter_table("plan_basis", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_basis_consent_id"))

    op.drop_table("plan_basis")
