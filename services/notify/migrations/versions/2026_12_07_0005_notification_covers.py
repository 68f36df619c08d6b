"""notification covers: the kinds of referral a narrowed consent still covers (issue 21)"""

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("covers", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The notification kind does not exist before this step (its inbox could not show it).
    notification = sa.table("notification", sa.column("id"), sa.column("kind"))
    delivery = sa.table("delivery", sa.column("id"), sa.column("notification_id"))
    attempt = sa.table("delivery_attempt", sa.column("delivery_id"))
    narrowed = sa.select(notification.c.id).where(notification.c.kind == "consent.narrowed")
    deliveries = sa.select(delivery.c.id).where(delivery.c.notification_id.in_(narrowed))
    op.execute(attempt.delete().where(attempt.c.delivery_id.in_(deliveries)))
    op.execute(delivery.delete().where(delivery.c.notification_id.in_(narrowed)))
    op.execute(notification.delete().where(notification.c.id.in_(narrowed)))
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("covers")
