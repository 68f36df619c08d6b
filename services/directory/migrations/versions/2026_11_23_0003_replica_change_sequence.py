"""replica change sequence"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    with op.batch_alter_table("replica_unit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            batch_op.f("ix_replica_unit_change_seq"), ["change_seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("replica_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replica_unit_change_seq"))
        batch_op.drop_column("change_seq")
