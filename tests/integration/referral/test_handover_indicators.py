"""The handover's follow-up indicators (issue 22, points 4 and 5) from a seeded month with
known answers: HVB notifications with their SIP convened, in time and held by the
placement, placements per person-year, and the discharges recorded — for the member and for
one unit, in JSON and CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.referral.models import Discharge, Meeting, Referral
from shared.data.db import Database
from tests.conftest import ORG_VAXJO, DatabaseFactory
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT, OTHER_UNIT = "vx-soc-vuxna", "vx-annan"
P1, P2 = new_person(), new_person()


def at(day: int, month: int = 11, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def referral(
    rid: str, kind: str, created: dt.datetime, pnr: str, unit: str = UNIT, **details: Any
) -> Referral:
    return Referral(
        id=rid, kind=kind, personnummer=pnr, person_key=f"key-{pnr}", sender_unit_id=unit,
        created_by="u", details=details, created_at=created, updated_at=created,
    )  # fmt: skip


def linked(mid: str, rid: str, convened: dt.datetime, held_at: dt.datetime, status: str) -> Meeting:
    return Meeting(
        id=mid, kind="sip", convener_unit_id=UNIT, for_referral_id=rid, personnummer=P1,
        person_key=f"key-{P1}", at=held_at, status=status, created_by="u",
        created_at=convened, updated_at=convened,
    )  # fmt: skip


def discharged(rid: str, on: dt.date, *, unplanned: bool, started: bool) -> Discharge:
    return Discharge(
        referral_id=rid, discharged_on=on, unplanned=unplanned, actions_started=started,
        recorded_by="u", recorded_at=dt.datetime.combine(on, dt.time(12), tzinfo=dt.UTC),
    )  # fmt: skip


async def seed(db: Database) -> None:
    hvb = "hvb_underrattelse"
    up = "utskrivningsplanering"
    async with db.transaction() as s:
        s.add_all(
            [
                # P1 placed on the 10th: the SIP convened on the 3rd, held on the 9th.
                referral("h1", hvb, at(2), P1, placement_date="2026-11-10"),
                # P1 again on the 21st: the SIP convened late (the 25th), not held yet.
                referral("h2", hvb, at(20), P1, placement_date="2026-11-21"),
                # P2, a placement begun before it was sent: no SIP.
                referral("h3", hvb, at(5), P2, placement_date="2026-10-01"),
                # Before the period.
                referral("h0", hvb, at(30, month=10), P2, placement_date="2026-11-02"),
                referral("d1", up, at(1), P1, expected_discharge_date="2026-11-12"),
                referral("d2", up, at(3), P2, expected_discharge_date="2026-11-12"),
                referral("d3", up, at(20), P1, expected_discharge_date="2026-12-01"),
                referral("d4", up, at(4), P2, OTHER_UNIT, expected_discharge_date="2026-11-15"),
            ]
        )
        await s.flush()
        s.add_all(
            [
                linked("m1", "h1", at(3), at(9), "held"),
                linked("m2", "h2", at(25), at(27), "planned"),
                discharged("d1", dt.date(2026, 11, 10), unplanned=True, started=True),
                discharged("d2", dt.date(2026, 11, 12), unplanned=False, started=False),
                discharged("d3", dt.date(2026, 12, 1), unplanned=True, started=True),  # after
                discharged("d4", dt.date(2026, 11, 15), unplanned=True, started=False),
            ]
        )


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_VAXJO, seed) as application:
        yield application


async def indicators(app: FastAPI, **params: str) -> httpx.Response:
    period = {"from": "2026-11-01", "to": "2026-11-30", **params}
    r = await asgi_get(app, "/v1/indicators", auth(ORG_VAXJO, UNIT, RW), **period)
    assert r.status_code == 200, r.text
    return r


class TestTheHandoverIndicators:
    async def test_hvb_notifications_and_their_sip_in_a_known_month(self, app: FastAPI) -> None:
        data = (await indicators(app)).json()
        # Three sent in 30 days about two people: 3 / (2 × 30/365) per person-year, and one
        # repeat placement (P1's second).
        assert data["hvb"] == {
            "sent": 3,
            "with_sip_convened": 2,
            "with_sip_convened_in_time": 1,
            "with_sip_held_by_placement": 1,
            "share_with_sip_held_by_placement": 0.333,
            "persons": 2,
            "repeat_placements": 1,
            "placements_per_person_year": 18.25,
            "repeat_placements_per_person_year": 6.083,
        }

    async def test_discharges_recorded_for_the_member_and_for_one_unit(self, app: FastAPI) -> None:
        member = (await indicators(app)).json()["discharges"]
        assert member == {
            "recorded": 3,
            "unplanned": 2,
            "with_actions_started": 1,
            "share_with_actions_started": 0.333,
        }
        unit = (await indicators(app, unit_id=UNIT)).json()["discharges"]
        assert unit == {
            "recorded": 2,
            "unplanned": 1,
            "with_actions_started": 1,
            "share_with_actions_started": 0.5,
        }

    async def test_the_csv_has_them_too_and_no_person(self, app: FastAPI) -> None:
        text = (await indicators(app, format="csv")).text
        rows = set(text.splitlines())
        assert "hvb_sent,outgoing,hvb_underrattelse,3" in rows
        assert "hvb_placements_per_person_year,outgoing,hvb_underrattelse,18.25" in rows
        assert "discharges_unplanned,outgoing,utskrivningsplanering,2" in rows
        assert "discharges_with_actions_started,outgoing,utskrivningsplanering,1" in rows
        assert P1 not in text
        assert P2 not in text
