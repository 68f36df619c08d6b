"""Indicators of issue 22 from a seeded month with known answers (SQLite and PostgreSQL):
an LVM report and an orosanmälan are counted as kinds of their own, never as a
kontaktbegäran; every kind's answers on children in the household are counted, unknowns
included, sent and received, in JSON and CSV — aggregates only."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.referral.models import Incoming, Recipient, Referral
from shared.data.db import Database
from tests.conftest import ORG_VAXJO, DatabaseFactory
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT = "vx-soc"
PEOPLE = [new_person() for _ in range(8)]


def _at(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC)


def sent(n: int, kind: str, children: str) -> list[Referral | Recipient]:
    referral = Referral(
        id=f"r{n}", kind=kind, personnummer=PEOPLE[n], person_key=f"k{n}",
        sender_unit_id=UNIT, created_by="u", details={}, created_at=_at(n + 2),
        updated_at=_at(n + 2), children_in_household=children,
        children_unknown_reason="Personen ville inte svara." if children == "unknown" else None,
    )  # fmt: skip
    recipient = Recipient(
        id=f"t{n}", referral_id=referral.id, orgnr="232100-0065", unit_id="rk-x",
        status="delivered", basis={"kind": "legal_basis"}, acknowledge_by=_at(n + 4).date(),
    )  # fmt: skip
    return [referral, recipient]


def received(n: int, kind: str, children: str) -> Incoming:
    return Incoming(
        id=f"i{n}", referral_id=f"x{n}", kind=kind, personnummer=PEOPLE[n],
        person_key=f"k{n}", sender_orgnr="232100-0065", sender_unit_id="rk-avdelning",
        unit_id=UNIT, status="delivered", basis={"kind": "legal_basis"},
        acknowledge_by=_at(n + 3).date(), received_at=_at(n + 2),
        children_in_household=children,
    )  # fmt: skip


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        for referral, recipient in (
            sent(0, "kontaktbegaran", "yes"),
            sent(1, "kontaktbegaran", "no"),
            sent(2, "kontaktbegaran", "unknown"),
            sent(3, "hvb_underrattelse", "no"),
        ):
            s.add(referral)
            await s.flush()  # before its recipient (it refers to it)
            s.add(recipient)
        s.add_all(
            [
                received(4, "lvm_anmalan", "yes"),
                received(5, "orosanmalan", "yes"),
                received(6, "orosanmalan", "yes"),
                received(7, "kontaktbegaran", "unknown"),
            ]
        )


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_VAXJO, seed) as application:
        yield application


async def get(app: FastAPI, **params: str) -> httpx.Response:
    period = {"from": "2026-11-01", "to": "2026-11-30", **params}
    r = await asgi_get(app, "/v1/indicators", auth(ORG_VAXJO, UNIT, RW), **period)
    assert r.status_code == 200, r.text
    return r


async def test_reports_are_kinds_of_their_own_and_children_are_counted(app: FastAPI) -> None:
    r = await get(app)
    data = r.json()
    assert {k: v["count"] for k, v in data["incoming"].items()} == {
        "kontaktbegaran": 1,
        "lvm_anmalan": 1,
        "orosanmalan": 2,
    }
    assert {k: v["count"] for k, v in data["outgoing"].items()} == {
        "kontaktbegaran": 3,
        "hvb_underrattelse": 1,
    }

    def answers(yes: int = 0, no: int = 0, unknown: int = 0) -> dict[str, int]:
        return {"yes": yes, "no": no, "unknown": unknown}

    assert data["children"] == {
        "outgoing": {
            "kontaktbegaran": answers(yes=1, no=1, unknown=1),
            "hvb_underrattelse": answers(no=1),
        },
        "incoming": {
            "lvm_anmalan": answers(yes=1),
            "orosanmalan": answers(yes=2),
            "kontaktbegaran": answers(unknown=1),
        },
    }
    for person in PEOPLE:
        assert person not in r.text  # aggregates only


async def test_the_csv_has_the_children_rows(app: FastAPI) -> None:
    csv = (await get(app, format="csv")).text
    assert "children_unknown,outgoing,kontaktbegaran,1\r\n" in csv
    assert "children_yes,incoming,orosanmalan,2\r\n" in csv
    assert "count,incoming,lvm_anmalan,1\r\n" in csv
