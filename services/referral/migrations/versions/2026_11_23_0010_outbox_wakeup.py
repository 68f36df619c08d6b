"""outbox wake-up: on PostgreSQL a commit that adds outbox rows notifies the relays"""

from shared.data import infra_migrations

revision: str = "0010"
down_revision: str | None = "0009"

upgrade, downgrade = infra_migrations.step(3)
