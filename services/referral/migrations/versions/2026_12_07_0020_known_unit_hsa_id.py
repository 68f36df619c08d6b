"""known unit hsa id: the unit's HSA-id in the light replica, to resolve a token's unit claim"""

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"


def upgrade() -> None:
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hsa_id", sa.String(length=31), nullable=True))
        batch_op.create_index(batch_op.f("ix_known_unit_hsa_id"), ["hsa_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_unit_hsa_id"))
        batch_op.drop_column("hsa_id")
