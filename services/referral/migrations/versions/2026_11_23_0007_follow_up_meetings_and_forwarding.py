"""follow-up meetings and forwarding"""

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.add_column(sa.Column("follow_up_of", sa.String(length=36), nullable=True))

    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forwarded_to", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.drop_column("forwarded_to")

    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_column("follow_up_of")
