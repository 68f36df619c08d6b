"""unit channel hsa id: the unit's HSA-id from the directory, to resolve a token's unit claim"""

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    with op.batch_alter_table("unit_channel", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hsa_id", sa.String(length=31), nullable=True))
        batch_op.create_index(batch_op.f("ix_unit_channel_hsa_id"), ["hsa_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unit_channel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unit_channel_hsa_id"))
        batch_op.drop_column("hsa_id")
