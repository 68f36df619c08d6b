"""outbox wake-up: on PostgreSQL a commit that adds outbox rows notifies the relays"""

from shared.data import infra_migrations

revision: str = "0004"
down_revision: str | None = "0003"

upgrade, downgrade = infra_migrations.step(3)
