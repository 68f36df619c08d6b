"""known units and members: the names the person's audit extract shows (issue 23)

The consent worker keeps, from ``vardkedja.directory``, each unit's name and owner and each
member's name, so the audit extract names the unit an access came from and its huvudman
instead of an id (ADR 0011, second amendment), and each unit's HSA-id, so a token naming its
unit by HSA-id is resolved here too (ADR 0028).
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"


def upgrade() -> None:
    op.create_table(
        "known_member",
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("orgnr", name=op.f("pk_known_member")),
    )
    op.create_table(
        "known_unit",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hsa_id", sa.String(length=31), nullable=True),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_known_unit")),
    )
    op.create_index(op.f("ix_known_unit_hsa_id"), "known_unit", ["hsa_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_known_unit_hsa_id"), table_name="known_unit")
    op.drop_table("known_unit")
    op.drop_table("known_member")
