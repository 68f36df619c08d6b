"""children asked every time (why not known) and how to reach the person, on both sides of a
referral (issue 22)
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"

TABLES = ("referral", "incoming")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("children_unknown_reason", sa.Text(), nullable=False, server_default="")
            )
            batch.add_column(sa.Column("reachability", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("reachability")
            batch.drop_column("children_unknown_reason")
