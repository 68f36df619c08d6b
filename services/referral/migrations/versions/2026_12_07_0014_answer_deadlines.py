"""answer deadlines

The last day to accept or decline a task once it is acknowledged (``answer_by``), on both
sides: the receiver's task (``incoming``, indexed for the overdue worklist and the deadline
check) and the sender's mirror (``recipient``). Tasks acknowledged before this step have
none and are not chased for an answer.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"


def upgrade() -> None:
    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_by", sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f("ix_incoming_answer_by"), ["answer_by"], unique=False)

    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_by", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipient", schema=None) as batch_op:
        batch_op.drop_column("answer_by")

    with op.batch_alter_table("incoming", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incoming_answer_by"))
        batch_op.drop_column("answer_by")
