"""action lifecycle and coordinators

A plan's actions start and end by dates and are found by query (``plan_action``); a plan
names one coordinating unit per huvudman (``coordinators``, ``plan_coordinator``); goals in
the person's own words, who took part in the meeting and whether the person agrees are
recorded (issue 21). A plan's single ``coordinator`` becomes the first of its coordinators
and an action's ``due`` its ``end_by``.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

import shared.data.db

revision: str = "0012"
down_revision: str | None = "0011"


def _plans() -> Any:
    return sa.table(
        "plan",
        sa.column("id", sa.String),
        sa.column("actions", sa.JSON),
        sa.column("coordinator", sa.JSON),
        sa.column("coordinators", sa.JSON),
    )


def upgrade() -> None:
    op.create_table(
        "plan_action",
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("action_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("intervention", sa.String(length=64), nullable=False),
        sa.Column("orgnr", sa.String(length=11), nullable=True),
        sa.Column("unit_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_by", sa.Date(), nullable=True),
        sa.Column("end_by", sa.Date(), nullable=True),
        sa.Column("started_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", shared.data.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("plan_id", "action_id", name=op.f("pk_plan_action")),
    )
    with op.batch_alter_table("plan_action", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_action_unit_id"), ["unit_id"], unique=False)
    op.create_table(
        "plan_coordinator",
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("orgnr", sa.String(length=11), nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "orgnr", "unit_id", name=op.f("pk_plan_coordinator")),
    )
    with op.batch_alter_table("plan_coordinator", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_coordinator_unit_id"), ["unit_id"], unique=False)

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("own_goals", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("coordinators", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attendance", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("person_agrees", sa.Boolean(), nullable=True))
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attendance", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("person_agrees", sa.Boolean(), nullable=True))

    plans = _plans()
    conn = op.get_bind()
    for row in conn.execute(sa.select(plans.c.id, plans.c.actions, plans.c.coordinator)).all():
        actions = [_action(a) for a in _loaded(row.actions)]
        coordinator = _loaded(row.coordinator)
        conn.execute(
            plans.update()
            .where(plans.c.id == row.id)
            .values(actions=actions, coordinators=[coordinator] if coordinator else [])
        )
        for a in actions:
            conn.execute(
                sa.text(
                    "INSERT INTO plan_action (plan_id, action_id, position, intervention, "
                    "orgnr, unit_id, status, end_by) VALUES (:p, :a, :pos, :i, :o, :u, :s, :e)"
                ),
                {
                    "p": row.id, "a": a["id"], "pos": a["position"], "i": a["intervention"],
                    "o": a["orgnr"], "u": a["unit_id"], "s": a["status"], "e": a["end_by"],
                },
            )  # fmt: skip
        for c in [coordinator] if coordinator else []:
            conn.execute(
                sa.text(
                    "INSERT INTO plan_coordinator (plan_id, orgnr, unit_id) VALUES (:p, :o, :u)"
                ),
                {"p": row.id, "o": c["orgnr"], "u": c["unit_id"]},
            )
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.alter_column(
            "own_goals", existing_type=sa.JSON(), nullable=False, server_default="[]"
        )
        batch_op.alter_column(
            "coordinators", existing_type=sa.JSON(), nullable=False, server_default="[]"
        )
        batch_op.drop_column("coordinator")


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _action(a: dict[str, Any]) -> dict[str, Any]:
    """An action of before: ``due`` becomes ``end_by``; an ended one keeps its outcome."""
    a = dict(a)
    a["end_by"] = a.pop("due", None)
    a.setdefault("start_by", None)
    a.setdefault("outside_actor", None)
    if a.get("status") == "ended" and a.get("outcome") == "cancelled":
        a["status"], a["reason"] = "cancelled", "avslutad som inställd"
    return a


def downgrade() -> None:
    plans = _plans()
    conn = op.get_bind()
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("coordinator", sa.JSON(), nullable=True))
    for row in conn.execute(sa.select(plans.c.id, plans.c.coordinators)).all():
        coordinators = _loaded(row.coordinators) or [{}]
        conn.execute(plans.update().where(plans.c.id == row.id).values(coordinator=coordinators[0]))
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.alter_column("coordinator", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("person_agrees")
        batch_op.drop_column("attendance")
        batch_op.drop_column("coordinators")
        batch_op.drop_column("own_goals")
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_column("person_agrees")
        batch_op.drop_column("attendance")
    with op.batch_alter_table("plan_coordinator", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_coordinator_unit_id"))
    op.drop_table("plan_coordinator")
    with op.batch_alter_table("plan_action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_action_unit_id"))
    op.drop_table("plan_action")
