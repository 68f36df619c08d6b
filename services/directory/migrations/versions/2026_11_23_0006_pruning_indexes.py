"""pruning indexes: the hourly housekeeping deletes outbox, inbox and idempotency rows by age"""

from shared.data import infra_migrations

revision: str = "0006"
down_revision: str | None = "0005"

upgrade, downgrade = infra_migrations.step(2)
