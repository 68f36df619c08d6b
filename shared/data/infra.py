"""Tables every service has in its own database: outbox, inbox, dead letters, audit, idempotency.

They are Core tables defined on the service's own MetaData (one Alembic history per service),
so the shared outbox relay, inbox consumer and audit helper work on any service.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from shared.data.db import UTCDateTime, utcnow

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL wants a bigint identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class InfraTables:
    """The shared tables of one service's database."""

    outbox: Table
    inbox: Table
    inbox_attempt: Table
    dead_letter: Table
    audit: Table
    idempotency: Table


def define_infra_tables(metadata: MetaData) -> InfraTables:
    """Define the shared tables on ``metadata`` (call once per service)."""
    outbox = Table(
        "outbox_event",
        metadata,
        # seq orders publication: per key, events leave in the order they were written.
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=True),
        Column("event_type", String(255), nullable=False),
        Column("headers", JSON, nullable=False),
        Column("body", LargeBinary, nullable=False),
        # The age columns the hourly pruning deletes by (here, the inbox's received_at and
        # the idempotency keys' created_at) are indexed: a scan would hold the write lock.
        Column("created_at", UTCDateTime(), nullable=False, default=utcnow, index=True),
        Column("sent_at", UTCDateTime(), nullable=True),
        Column("partition", Integer, nullable=True),
        Column("offset", BigInteger, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("publish_count", Integer, nullable=False, default=0),
        Column("last_error", String(500), nullable=True),
    )
    Index("ix_outbox_event_unsent", outbox.c.sent_at, outbox.c.seq)

    inbox = Table(
        "inbox_event",
        metadata,
        # The consumed event's id, recorded in the same transaction as its effect.
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(255), primary_key=True),
        Column("event_type", String(255), nullable=True),
        Column("topic", String(255), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("outcome", String(20), nullable=False),  # applied | skipped | dead_lettered
        Column("received_at", UTCDateTime(), nullable=False, default=utcnow, index=True),
    )

    inbox_attempt = Table(
        "inbox_attempt",
        metadata,
        # Failed attempts survive a crash, so a poison message cannot loop forever.
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(255), primary_key=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", String(500), nullable=True),
        Column("updated_at", UTCDateTime(), nullable=False, default=utcnow),
    )

    dead_letter = Table(
        "dead_letter",
        metadata,
        Column("id", SeqType, primary_key=True, autoincrement=True),
        Column("consumer", String(100), nullable=False),
        Column("event_id", String(255), nullable=False),
        Column("event_type", String(255), nullable=True),
        Column("topic", String(255), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("headers", JSON, nullable=False),
        Column("body", LargeBinary, nullable=True),
        Column("reason", String(50), nullable=False),  # malformed | unknown_type | ... | failed
        Column("error", Text, nullable=True),
        Column("attempts", Integer, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    )

    audit = Table(
        "audit_record",
        metadata,
        # Append-only: triggers created by each service's first migration refuse UPDATE/DELETE.
        Column("id", SeqType, primary_key=True, autoincrement=True),
        Column("occurred_at", UTCDateTime(), nullable=False, default=utcnow),
        Column("service", String(20), nullable=False),
        Column("actor_sub", String(255), nullable=False),
        Column("actor_org", String(11), nullable=False),
        Column("actor_unit", String(64), nullable=True),
        Column("action", String(100), nullable=False),
        Column("person_id", String(12), nullable=True, index=True),
        Column("purpose", String(100), nullable=True),
        Column("outcome", String(20), nullable=False),
        Column("resource_type", String(50), nullable=True),
        Column("resource_id", String(64), nullable=True),
        Column("request_id", String(64), nullable=True),
    )

    idempotency = Table(
        "idempotency_key",
        metadata,
        # Integrations retry creating POSTs with the same Idempotency-Key; the first answer
        # is replayed. Keyed per caller so two callers cannot collide: the member, and a hash
        # of the token's unit and subject (shared.web.app.Idempotency.scope_of).
        Column("caller", String(300), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", LargeBinary, nullable=False),
        Column("response_headers", JSON, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, default=utcnow, index=True),
    )
    return InfraTables(outbox, inbox, inbox_attempt, dead_letter, audit, idempotency)


APPEND_ONLY_TABLES = ("audit_record",)


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """DDL that makes ``table`` append-only (UPDATE and DELETE raise) on this dialect."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        ]
    if dialect == "postgresql":
        fn = f"{table}_append_only"
        return [
            f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$",
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {fn}()",
        ]
    raise ValueError(f"unsupported dialect {dialect}")


OUTBOX_CHANNEL = "vk_outbox"
"""PostgreSQL: the channel a commit that added outbox rows notifies (the relays LISTEN)."""


def outbox_notify_ddl(dialect: str) -> list[str]:
    """DDL that makes a commit adding outbox rows wake the relays (PostgreSQL ``NOTIFY``).

    A statement-level trigger: one notification per INSERT statement, and PostgreSQL folds
    identical notifications of one transaction into one, delivered at commit (never for a
    rollback). SQLite needs none: its relays watch the ``-wal`` file
    (``shared.data.db.ChangeWatch``).
    Idempotent (``OR REPLACE``, PostgreSQL 14 or later), so a test schema may be set up twice.
    """
    if dialect != "postgresql":
        return []
    return [
        "CREATE OR REPLACE FUNCTION outbox_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$",
        "CREATE OR REPLACE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_event_notify()",
    ]


def outbox_notify_drop_ddl(dialect: str) -> list[str]:
    if dialect != "postgresql":
        return []
    return [
        "DROP TRIGGER IF EXISTS outbox_event_notify ON outbox_event",
        "DROP FUNCTION IF EXISTS outbox_event_notify()",
    ]
