"""komplettering rounds on both sides of a task, the sender's deadline to answer one, and the
structured result of a completed or declined task (issue 22)
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"

TABLES = ("recipient", "incoming")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
            batch.add_column(
                sa.Column("komplettering", sa.JSON(), nullable=False, server_default="[]")
            )
    with op.batch_alter_table("recipient") as batch:
        batch.add_column(sa.Column("information_by", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipient") as batch:
        batch.drop_column("information_by")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("komplettering")
            batch.drop_column("result")
