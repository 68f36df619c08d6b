"""consents, copies, refusals, blocks and lifts, legal-basis uses, change log, audit copies

``audit_copy`` is append-only in the database, like ``audit_record``.
"""

import sqlalchemy as sa
from alembic import op

import shared.data.db
from shared.data.infra import append_only_ddl

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "audit_copy",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("actor_sub", sa.String(length=255), nullable=False),
        sa.Column("actor_org", sa.String(length=11), nullable=False),
        sa.Column("actor_unit", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("resource_type", sa.String(length=50), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_copy")),
        sa.UniqueConstraint("source_event_id", name=op.f("uq_audit_copy_source_event_id")),
    )
    with op.batch_alter_table("audit_copy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_copy_person_key"), ["person_key"], unique=False)
    for ddl in append_only_ddl(op.get_bind().dialect.name, "audit_copy"):
        op.execute(ddl)

    op.create_table(
        "block",
        sa.Column("blocked_orgnr", sa.String(length=11), nullable=False),
        sa.Column("blocked_unit_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("removed_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_by_user", sa.String(length=255), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("recorded_by_user", sa.String(length=255), nullable=False),
        sa.Column("recorded_by_unit", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block")),
    )
    with op.batch_alter_table("block", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_block_person_key"), ["person_key"], unique=False)

    op.create_table(
        "change_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("occurred_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_org", sa.String(length=11), nullable=False),
        sa.Column("actor_user", sa.String(length=255), nullable=True),
        sa.Column("actor_unit", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_log_person_key"), ["person_key"], unique=False)

    op.create_table(
        "consent",
        sa.Column("given_by_kind", sa.String(length=20), nullable=False),
        sa.Column("given_by_name", sa.String(length=200), nullable=True),
        sa.Column("given_by_reference", sa.String(length=200), nullable=True),
        sa.Column("form", sa.String(length=20), nullable=False),
        sa.Column("form_note", sa.Text(), nullable=True),
        sa.Column("signed_form_reference", sa.String(length=200), nullable=True),
        sa.Column("person_informed", sa.Boolean(), nullable=False),
        sa.Column("supersedes_id", sa.String(length=36), nullable=True),
        sa.Column("superseded_by_id", sa.String(length=36), nullable=True),
        sa.Column("withdrawn_by_kind", sa.String(length=20), nullable=True),
        sa.Column("withdrawn_by_reference", sa.String(length=200), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.Column("withdrawn_by_user", sa.String(length=255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("recorded_by_user", sa.String(length=255), nullable=False),
        sa.Column("recorded_by_unit", sa.String(length=64), nullable=True),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("ended_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_person_key"), ["person_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_valid_to"), ["valid_to"], unique=False)

    op.create_table(
        "consent_copy",
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("recorded_by_unit", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("end_reason", sa.String(length=20), nullable=True),
        sa.Column("received_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.String(length=64), nullable=False),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("ended_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_copy")),
    )
    with op.batch_alter_table("consent_copy", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_copy_person_key"), ["person_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consent_copy_valid_to"), ["valid_to"], unique=False)

    op.create_table(
        "legal_basis_use",
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("basis", sa.String(length=30), nullable=False),
        sa.Column("ground", sa.String(length=40), nullable=True),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("sender_orgnr", sa.String(length=11), nullable=False),
        sa.Column("sender_unit", sa.String(length=64), nullable=True),
        sa.Column("recipient_orgnr", sa.String(length=11), nullable=False),
        sa.Column("recipient_unit", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("decided_by_user", sa.String(length=255), nullable=False),
        sa.Column("decided_by_unit", sa.String(length=64), nullable=True),
        sa.Column("decided_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_basis_use")),
    )
    with op.batch_alter_table("legal_basis_use", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_legal_basis_use_person_key"), ["person_key"], unique=False
        )

    op.create_table(
        "refusal",
        sa.Column("refused_on", sa.Date(), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("revoked_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_user", sa.String(length=255), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("owner_orgnr", sa.String(length=11), nullable=False),
        sa.Column("person_key", sa.String(length=64), nullable=False),
        sa.Column("personnummer", sa.String(length=12), nullable=False),
        sa.Column("recorded_by_user", sa.String(length=255), nullable=False),
        sa.Column("recorded_by_unit", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusal")),
    )
    with op.batch_alter_table("refusal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refusal_person_key"), ["person_key"], unique=False)

    op.create_table(
        "block_lift",
        sa.Column("block_id", sa.String(length=36), nullable=False),
        sa.Column("starts_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lifted_by_user", sa.String(length=255), nullable=False),
        sa.Column("lifted_by_unit", sa.String(length=64), nullable=True),
        sa.Column("created_at", shared.data.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["block_id"], ["block.id"], name=op.f("fk_block_lift_block_id_block")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_lift")),
    )
    with op.batch_alter_table("block_lift", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_block_lift_block_id"), ["block_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("block_lift", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_block_lift_block_id"))

    op.drop_table("block_lift")
    with op.batch_alter_table("refusal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refusal_person_key"))

    op.drop_table("refusal")
    with op.batch_alter_table("legal_basis_use", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_basis_use_person_key"))

    op.drop_table("legal_basis_use")
    with op.batch_alter_table("consent_copy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_copy_valid_to"))
        batch_op.drop_index(batch_op.f("ix_consent_copy_person_key"))

    op.drop_table("consent_copy")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_valid_to"))
        batch_op.drop_index(batch_op.f("ix_consent_person_key"))

    op.drop_table("consent")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_log_person_key"))

    op.drop_table("change_log")
    with op.batch_alter_table("block", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_block_person_key"))

    op.drop_table("block")
    with op.batch_alter_table("audit_copy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_copy_person_key"))

    op.drop_table("audit_copy")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_copy_append_only()")
