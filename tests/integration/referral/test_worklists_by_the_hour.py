"""Worklists of a kind acknowledged within hours (an orosanmälan: urgent, four hours; normal,
a day): overdue once its hours have passed, whatever its day — in the unit's inbox, in
the sender's outgoing list, and on each item (seeded rows, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from services.referral.models import Incoming, Recipient, Referral
from shared.data.db import Database
from shared.domain.calendar import to_local
from tests.conftest import ORG_VAXJO, DatabaseFactory
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT = "vx-barn"
NOW = dt.datetime.now(dt.UTC)
TODAY = to_local(NOW).date()  # every acknowledge_by is today: never late by the day


def _ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


def incoming(n: int, kind: str, urgency: str, received: dt.datetime, status: str) -> Incoming:
    return Incoming(
        id=f"i{n}", referral_id=f"r{n}", kind=kind, urgency=urgency,
        personnummer=new_person(), person_key=f"k{n}", protected_identity=False,
        sender_orgnr="232100-0065", sender_unit_id="rk-avdelning", unit_id=UNIT,
        status=status, basis={"kind": "legal_basis"}, acknowledge_by=TODAY,
        received_at=received,
    )  # fmt: skip


def sent(n: int, kind: str, urgency: str, created: dt.datetime, status: str) -> list[Any]:
    referral = Referral(
        id=f"s{n}", kind=kind, urgency=urgency, personnummer=new_person(),
        person_key=f"sk{n}", sender_unit_id=UNIT, created_by="u",
        details={"kommunkod": "0780"},
    )  # fmt: skip
    recipient = Recipient(
        id=f"t{n}", referral_id=referral.id, orgnr="232100-0065", unit_id="rk-x",
        status=status, basis={"kind": "legal_basis"}, acknowledge_by=TODAY,
        created_at=created,
    )  # fmt: skip
    return [referral, recipient]


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        s.add_all(
            [
                incoming(1, "orosanmalan", "urgent", _ago(5), "delivered"),  # 4 h passed
                incoming(2, "orosanmalan", "urgent", _ago(1), "delivered"),  # within 4 h
                incoming(3, "orosanmalan", "normal", _ago(5), "delivered"),  # within 24 h
                incoming(4, "orosanmalan", "urgent", _ago(5), "acknowledged"),  # in time
                incoming(5, "kontaktbegaran", "urgent", _ago(5), "delivered"),  # by the day
            ]
        )
        for rows in (
            sent(1, "orosanmalan", "urgent", _ago(5), "delivered"),  # 4 h passed
            sent(2, "orosanmalan", "urgent", _ago(1), "delivered"),  # within 4 h
            sent(3, "kontaktbegaran", "urgent", _ago(5), "delivered"),  # by the day
        ):
            referral, recipient = rows
            s.add(referral)
            await s.flush()  # before its recipient (it refers to it)
            s.add(recipient)


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_VAXJO, seed) as application:
        yield application


async def get(app: FastAPI, path: str, **params: object) -> list[dict[str, Any]]:
    r = await asgi_get(app, path, auth(ORG_VAXJO, UNIT, RW), **params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_the_inbox_counts_an_orosanmalan_overdue_by_the_hour(app: FastAPI) -> None:
    for overdue in ("acknowledge", "any"):
        late = await get(app, "/v1/incoming", overdue=overdue)
        assert [i["task_id"] for i in late] == ["i1"], overdue
    shown = {i["task_id"]: i["overdue"] for i in await get(app, "/v1/incoming")}
    assert shown == {"i1": True, "i2": False, "i3": False, "i4": False, "i5": False}
    [one] = await get(app, "/v1/incoming", overdue="acknowledge")
    due = dt.datetime.fromisoformat(one["acknowledge_due_at"])
    assert due == dt.datetime.fromisoformat(one["received_at"]) + dt.timedelta(hours=4)


async def test_the_senders_list_counts_it_by_the_hour_too(app: FastAPI) -> None:
    late = await get(app, "/v1/outgoing", overdue="acknowledge")
    assert [r["id"] for r in late] == ["s1"]
    shown = {
        r["task_id"]: r["overdue"] for s in await get(app, "/v1/outgoing") for r in s["recipients"]
    }
    assert shown == {"t1": True, "t2": False, "t3": False}
