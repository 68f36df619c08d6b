"""initial: the shared infrastructure tables"""

from shared.data import infra_migrations

revision: str = "0001"
down_revision: str | None = None

upgrade, downgrade = infra_migrations.step(1)
