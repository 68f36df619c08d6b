"""Stale entries: listed when not reviewed within the period, one review-due event per
unit and due date, and a review makes the unit fresh again. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from services.directory import service
from services.directory.models import Unit
from shared.data.db import Database, utcnow
from shared.data.work import Work
from shared.messaging.events.payloads import UNIT_REVIEW_DUE_V1
from tests.conftest import ORG_VAXJO
from tests.helpers.directory import SPEC, UNIT, auth


async def age(db: Database, unit_id: str, days: int) -> None:
    """Pretend the unit was created (and never reviewed) ``days`` ago."""
    async with db.transaction() as s:
        await s.execute(
            update(Unit)
            .where(Unit.id == unit_id)
            .values(created_at=utcnow() - dt.timedelta(days=days))
        )


async def review_due_events(db: Database) -> list[str]:
    ob = SPEC.infra.outbox
    async with db.sessionmaker() as s:
        rows = await s.execute(select(ob.c.key).where(ob.c.event_type == UNIT_REVIEW_DUE_V1))
        return [r for (r,) in rows]


async def emit(db: Database, app: FastAPI) -> int:
    async with db.transaction() as s:
        ctx = app.state.ctx
        assert ctx.settings.member.orgnr == ORG_VAXJO
        assert ctx.settings.directory.review_after_days == 182
        return await service.emit_review_due(Work(s, ctx.outbox, ctx.settings))


async def test_stale_units_are_listed_and_announced_once(
    client: httpx.AsyncClient, db: Database, app: FastAPI
) -> None:
    fresh = (await client.post("/v1/units", json=UNIT, headers=auth())).json()
    old = (await client.post("/v1/units", json=UNIT, headers=auth())).json()
    await age(db, old["id"], 200)

    stale = (await client.get("/v1/units/stale", headers=auth())).json()
    assert [s["unit"]["id"] for s in stale] == [old["id"]]
    assert stale[0]["due_since"] == (utcnow() - dt.timedelta(days=200 - 182)).date().isoformat()

    assert await emit(db, app) == 1
    assert await emit(db, app) == 0  # one event per unit and due date
    assert await review_due_events(db) == [old["id"]]
    # The marker is not a change of the unit: its ETag stays.
    again = await client.get(f"/v1/units/{old['id']}", headers=auth())
    assert again.headers["ETag"] == '"1"'

    reviewed = await client.post(
        f"/v1/units/{old['id']}/review",
        json={"reviewed_by": "Vårdkedjekoordinator"},
        headers=auth(),
    )
    assert reviewed.status_code == 200
    assert (await client.get("/v1/units/stale", headers=auth())).json() == []
    assert fresh["id"] not in await review_due_events(db)


async def test_inactive_units_are_not_stale(client: httpx.AsyncClient, db: Database) -> None:
    unit = (await client.post("/v1/units", json=UNIT, headers=auth())).json()
    await client.post(f"/v1/units/{unit['id']}/deactivate", headers=auth())
    await age(db, unit["id"], 400)
    assert (await client.get("/v1/units/stale", headers=auth())).json() == []
