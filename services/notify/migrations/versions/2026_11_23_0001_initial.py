"""initial: the shared infrastructure tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from shared.data import infra_migrations

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    infra_migrations.upgrade_v1()


def downgrade() -> None:
    infra_migrations.downgrade_v1()
