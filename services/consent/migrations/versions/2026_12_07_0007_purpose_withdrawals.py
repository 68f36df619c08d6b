"""purpose withdrawals: a consent narrowed to the purposes still in force (issue 21)

A consent and a party's copy keep the purposes the person withdrew while the consent stays
in force for the rest (``withdrawn_purposes``); the consent keeps who withdrew them and why
(``purpose_withdrawals``); a tombstone can keep a narrowing that arrived before its copy.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("withdrawn_purposes", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(
            sa.Column("purpose_withdrawals", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("consent_copy", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("withdrawn_purposes", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("consent_tombstone", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purposes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("withdrawn_purposes", sa.JSON(), nullable=True))


def downgrade() -> None:
    # A narrowing waiting for its copy means nothing before this step (a consent already
    # narrowed keeps only the purposes in force, which is all a decision reads then).
    op.execute("DELETE FROM consent_tombstone WHERE reason = 'narrowed'")
    with op.batch_alter_table("consent_tombstone", schema=None) as batch_op:
        batch_op.drop_column("withdrawn_purposes")
        batch_op.drop_column("purposes")
    with op.batch_alter_table("consent_copy", schema=None) as batch_op:
        batch_op.drop_column("withdrawn_purposes")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_column("purpose_withdrawals")
        batch_op.drop_column("withdrawn_purposes")
