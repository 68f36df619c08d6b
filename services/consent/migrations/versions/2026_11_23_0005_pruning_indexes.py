"""pruning indexes: the hourly housekeeping deletes outbox, inbox and idempotency rows by age

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from shared.data import infra_migrations

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    infra_migrations.upgrade_v2()


def downgrade() -> None:
    infra_migrations.downgrade_v2()
