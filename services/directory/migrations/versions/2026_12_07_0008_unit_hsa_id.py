"""unit hsa id: the optional HSA-id of a unit (unique in the owner's table, indexed in the
replica)"""

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    with op.batch_alter_table("replica_unit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hsa_id", sa.String(length=31), nullable=True))
        batch_op.create_index(batch_op.f("ix_replica_unit_hsa_id"), ["hsa_id"], unique=False)

    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hsa_id", sa.String(length=31), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_unit_hsa_id"), ["hsa_id"])


def downgrade() -> None:
    with op.batch_alter_table("unit", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_unit_hsa_id"), type_="unique")
        batch_op.drop_column("hsa_id")

    with op.batch_alter_table("replica_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replica_unit_hsa_id"))
        batch_op.drop_column("hsa_id")
