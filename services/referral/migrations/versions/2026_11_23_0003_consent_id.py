"""consent id on tasks"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_incoming_consent_id"), ["consent_id"], unique=False)

    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_id", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_recipient_consent_id"), ["consent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recipient_consent_id"))
        batch_op.drop_column("consent_id")

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incoming_consent_id"))
        batch_op.drop_column("consent_id")
