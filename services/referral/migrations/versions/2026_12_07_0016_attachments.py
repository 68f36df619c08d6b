"""attachments: documents a unit uploads and sends with a referral, the documents a task
brought, and the pieces of one still arriving (issue 22, ADR 0023)
"""

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0016"
down_revision: str | None = "0015"


def _document() -> list[sa.Column[object]]:
    return [
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "attachment",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=True),
        sa.Column("hold_until", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attached_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        *_document(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment")),
    )
    op.create_index(op.f("ix_attachment_hold_until"), "attachment", ["hold_until"])
    op.create_index(op.f("ix_attachment_referral_id"), "attachment", ["referral_id"])
    op.create_index(op.f("ix_attachment_unit_id"), "attachment", ["unit_id"])
    op.create_table(
        "received_attachment",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("attachment_id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        *_document(),
        sa.PrimaryKeyConstraint("task_id", "attachment_id", name=op.f("pk_received_attachment")),
    )
    op.create_table(
        "attachment_chunk",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("attachment_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "task_id", "attachment_id", "position", name=op.f("pk_attachment_chunk")
        ),
    )
    op.create_index(op.f("ix_attachment_chunk_received_at"), "attachment_chunk", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_attachment_chunk_received_at"), table_name="attachment_chunk")
    op.drop_table("attachment_chunk")
    op.drop_table("received_attachment")
    op.drop_index(op.f("ix_attachment_unit_id"), table_name="attachment")
    op.drop_index(op.f("ix_attachment_referral_id"), table_name="attachment")
    op.drop_index(op.f("ix_attachment_hold_until"), table_name="attachment")
    op.drop_table("attachment")
