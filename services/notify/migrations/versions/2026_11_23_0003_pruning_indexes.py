"""pruning indexes: housekeeping and notify's retention clean-up delete by age

The shared tables' step (``infra_migrations.upgrade_v2``) and notify's own tables. Plain
CREATE INDEX (no batch operation), so SQLite never recreates a table.
"""

from alembic import op

from shared.data import infra_migrations

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    infra_migrations.upgrade_v2()
    op.create_index(op.f("ix_notification_created_at"), "notification", ["created_at"])
    op.create_index(op.f("ix_timer_created_at"), "timer", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_timer_created_at"), table_name="timer")
    op.drop_index(op.f("ix_notification_created_at"), table_name="notification")
    infra_migrations.downgrade_v2()
