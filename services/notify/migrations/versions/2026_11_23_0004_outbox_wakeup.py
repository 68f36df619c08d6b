"""outbox wake-up: on PostgreSQL a commit that adds outbox rows notifies the relays

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from shared.data import infra_migrations

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    infra_migrations.upgrade_v3()


def downgrade() -> None:
    infra_migrations.downgrade_v3()
