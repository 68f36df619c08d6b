"""known unit contacts and members

The light replica of the directory keeps how each unit is reached (its contact paths and
opening hours) and every member's name (``known_member``, from ``member.changed``): what a
person's Min plan prints beside each action and coordinator (issue 21).
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"


def upgrade() -> None:
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contact_paths", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("opening_hours", sa.JSON(), nullable=True))
    op.create_table(
        "known_member",
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("orgnr", name=op.f("pk_known_member")),
    )


def downgrade() -> None:
    op.drop_table("known_member")
    with op.batch_alter_table("known_unit", schema=None) as batch_op:
        batch_op.drop_column("opening_hours")
        batch_op.drop_column("contact_paths")
