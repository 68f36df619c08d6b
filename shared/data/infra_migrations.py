"""Frozen migration steps for the shared infrastructure tables (``shared.data.infra``).

Every service's first migration calls :func:`upgrade_v1`. These functions never change:
a later change to the shared tables is a new ``upgrade_v2`` step that each service's next
migration calls, so every service's Alembic history stays reproducible.
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

import shared.data.db
from shared.data.infra import (
    APPEND_ONLY_TABLES,
    append_only_ddl,
    outbox_notify_ddl,
    outbox_notify_drop_ddl,
)


def upgrade_v1() -> None:
    """Create outbox, inbox, inbox attempts, dead letters, audit (append-only), idempotency."""
    op.create_table(
        "audit_record",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(length=20), nullable=False),
        sa.Column("actor_sub", sa.String(length=255), nullable=False),
        sa.Column("actor_org", sa.String(length=11), nullable=False),
        sa.Column("actor_unit", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("person_id", sa.String(length=12), nullable=True),
        sa.Column("purpose", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_record")),
    )
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_record_person_id"), ["person_id"], unique=False)

    op.create_table(
        "dead_letter",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_table(
        "idempotency_key",
        sa.Column("caller", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        sa.Column("response_headers", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "key", name=op.f("pk_idempotency_key")),
    )
    op.create_table(
        "inbox_attempt",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox_attempt")),
    )
    op.create_table(
        "inbox_event",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox_event")),
    )
    op.create_table(
        "outbox_event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("publish_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_event_id")),
    )
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_event_unsent", ["sent_at", "seq"], unique=False)

    # The audit log is append-only: the database itself refuses UPDATE and DELETE.
    for table in APPEND_ONLY_TABLES:
        for ddl in append_only_ddl(op.get_bind().dialect.name, table):
            op.execute(ddl)


def downgrade_v1() -> None:
    """Drop the shared infrastructure tables."""
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_event_unsent")

    op.drop_table("outbox_event")
    op.drop_table("inbox_event")
    op.drop_table("inbox_attempt")
    op.drop_table("idempotency_key")
    op.drop_table("dead_letter")
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_record_person_id"))

    op.drop_table("audit_record")
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def upgrade_v2() -> None:
    """Index the columns the hourly pruning deletes by (``shared.data.housekeeping``).

    Plain CREATE INDEX (no batch operation), so SQLite never recreates a table.
    """
    op.create_index(op.f("ix_outbox_event_created_at"), "outbox_event", ["created_at"])
    op.create_index(op.f("ix_inbox_event_received_at"), "inbox_event", ["received_at"])
    op.create_index(op.f("ix_idempotency_key_created_at"), "idempotency_key", ["created_at"])


def downgrade_v2() -> None:
    """Drop the pruning's indexes."""
    op.drop_index(op.f("ix_idempotency_key_created_at"), table_name="idempotency_key")
    op.drop_index(op.f("ix_inbox_event_received_at"), table_name="inbox_event")
    op.drop_index(op.f("ix_outbox_event_created_at"), table_name="outbox_event")


def upgrade_v3() -> None:
    """PostgreSQL: a commit that adds outbox rows notifies the relays (``NOTIFY vk_outbox``),
    so they need not query an idle outbox every few milliseconds (``shared.data.infra``)."""
    for ddl in outbox_notify_ddl(op.get_bind().dialect.name):
        op.execute(ddl)


def downgrade_v3() -> None:
    for ddl in outbox_notify_drop_ddl(op.get_bind().dialect.name):
        op.execute(ddl)


Step = tuple[Callable[[], None], Callable[[], None]]

STEPS: dict[int, Step] = {
    1: (upgrade_v1, downgrade_v1),
    2: (upgrade_v2, downgrade_v2),
    3: (upgrade_v3, downgrade_v3),
}
"""Each frozen step's upgrade and downgrade, by number."""


def step(n: int) -> Step:
    """The upgrade and downgrade of frozen step ``n``, for a service migration that is that
    step and nothing else: ``upgrade, downgrade = infra_migrations.step(2)``."""
    return STEPS[n]
