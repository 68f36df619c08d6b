"""audit record resource index: the audit extract finds reads of a party's copies by id

A plain CREATE INDEX (no batch operation), so SQLite never recreates ``audit_record`` and
its append-only triggers stay in place.
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.create_index(op.f("ix_audit_record_resource_id"), "audit_record", ["resource_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_record_resource_id"), table_name="audit_record")
