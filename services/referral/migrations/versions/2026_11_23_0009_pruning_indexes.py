"""pruning indexes: the hourly housekeeping deletes outbox, inbox and idempotency rows by age

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from shared.data import infra_migrations

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    infra_migrations.upgrade_v2()


def downgrade() -> None:
    infra_migrations.downgrade_v2()
