"""Follow-up indicators from a seeded scenario with known answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.referral.models import (
    Incoming,
    Meeting,
    Plan,
    PlanNotice,
    Recipient,
    Referral,
    Transition,
)
from shared.data.db import Database
from tests.conftest import ORG_REGION, DatabaseFactory
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT, PORT = "rk-beroende", "rk-remissport"
P1, P2 = new_person(), new_person()


def at(day: int, hour: int = 8, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC)


def referral(rid: str, kind: str, created: dt.datetime, pnr: str, **details: Any) -> Referral:
    return Referral(
        id=rid,
        kind=kind,
        personnummer=pnr,
        person_key=f"key-{pnr}",
        sender_unit_id=UNIT,
        created_by="u",
        details=details,
        created_at=created,
        updated_at=created,
    )


def recipient(tid: str, rid: str, status: str, ack_by: dt.date) -> Recipient:
    return Recipient(
        id=tid,
        referral_id=rid,
        orgnr="212000-0647",
        unit_id="vx-soc",
        status=status,
        basis={"kind": "consent"},
        acknowledge_by=ack_by,
    )


def action(
    aid: str,
    status: str,
    *,
    start_by: str | None = None,
    started: dt.datetime | None = None,
    ended: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": aid,
        "status": status,
        "start_by": start_by,
        "started_at": started.isoformat() if started else None,
        "ended_at": ended.isoformat() if ended else None,
    }


def acked(tid: str, side: str, when: dt.datetime) -> Transition:
    return Transition(
        task_id=tid,
        side=side,
        from_status="delivered",
        to_status="acknowledged",
        actor="holder",
        by_orgnr=ORG_REGION,
        at=when,
    )


async def seed(db: Database) -> None:
    async with db.transaction() as s:
        s.add_all(
            [
                referral("r1", "kontaktbegaran", at(2), P1),
                referral("r2", "kontaktbegaran", at(10), P1),
                referral("r3", "kontaktbegaran", at(20), P2),
                referral("r4", "utskrivningsplanering", at(5), P1,
                         expected_discharge_date="2026-11-20"),
                referral("r5", "utskrivningsplanering", at(6), P2,
                         expected_discharge_date="2026-11-25"),
                referral("r6", "kontaktbegaran", at(15, month=10), P2),  # before the period
            ]
        )  # fmt: skip
        await s.flush()
        s.add_all(
            [
                recipient("t1", "r1", "completed", dt.date(2026, 11, 5)),
                recipient("t2", "r2", "declined", dt.date(2026, 11, 13)),
                recipient("t3", "r3", "withdrawn", dt.date(2026, 11, 23)),
                recipient("t4", "r4", "delivered", dt.date(2026, 11, 6)),
                recipient("t5", "r5", "sent", dt.date(2026, 11, 9)),
                recipient("t6", "r6", "completed", dt.date(2026, 10, 20)),
                acked("t1", "sender", at(3)),  # 24 h, in time
                acked("t2", "sender", at(16)),  # 144 h, late
                acked("t6", "sender", at(16, month=10)),
                Incoming(
                    id="i1",
                    referral_id="x",
                    kind="vardkedjeremiss",
                    personnummer=P1,
                    person_key=f"key-{P1}",
                    sender_orgnr="212000-0647",
                    sender_unit_id="vx-soc",
                    unit_id=PORT,
                    status="acknowledged",
                    basis={"kind": "consent"},
                    acknowledge_by=dt.date(2026, 11, 11),
                    received_at=at(4, 10),
                ),
                acked("i1", "receiver", at(4, 12)),  # 2 h
                # A SIP for P1 before its discharge (r4); none for P2 (r5).
                Meeting(
                    id="m1", kind="remissmote", convener_unit_id=PORT, origin_task_id="i1",
                    personnummer=P1, person_key=f"key-{P1}", at=at(8, 10), created_by="u",
                ),
                Meeting(
                    id="m2", kind="sip", convener_unit_id=UNIT, personnummer=P1,
                    person_key=f"key-{P1}", at=at(18, 9), created_by="u",
                ),
                Plan(
                    id="m1", owner_orgnr=ORG_REGION, owner_unit_id=PORT, kind="remissmote",
                    personnummer=P1, person_key=f"key-{P1}", coordinators=[],
                    follow_up_date=dt.date(2027, 1, 1),
                    viewers=[{"orgnr": ORG_REGION, "unit_id": PORT},
                             {"orgnr": ORG_REGION, "unit_id": UNIT}],
                    actions=[
                        # started on time (0.875 days after the remissmöte), ended
                        action("a1", "ended", start_by="2026-11-09", started=at(9, 7),
                               ended=at(9)),
                        # started late, ended
                        action("a2", "ended", start_by="2026-11-10", started=at(11),
                               ended=at(12)),
                        # never started, its date passed
                        action("a3", "planned", start_by="2026-11-15"),
                        # cancelled before it started
                        action("a4", "cancelled", ended=at(14)),
                        # due to start after the period
                        action("a5", "planned", start_by="2026-12-02"),
                    ],
                ),
                PlanNotice(plan_id="m1", action_id="a1", unit_id=PORT),
                PlanNotice(plan_id="m1", action_id="a1", unit_id=UNIT),
                # a2's notice to UNIT is missing: the indicator must count it.
                PlanNotice(plan_id="m1", action_id="a2", unit_id=PORT),
                PlanNotice(plan_id="m1", action_id="a4", unit_id=PORT),
                PlanNotice(plan_id="m1", action_id="a4", unit_id=UNIT),
                # The SIP's plan (recorded on the day of the meeting), followed up on time;
                # another plan's follow-up was not held.
                Plan(
                    id="m2", owner_orgnr=ORG_REGION, owner_unit_id=UNIT, kind="sip",
                    personnummer=P1, person_key=f"key-{P1}", coordinators=[],
                    follow_up_date=dt.date(2026, 11, 25), created_at=at(18, 12),
                    viewers=[{"orgnr": ORG_REGION, "unit_id": UNIT}], actions=[],
                ),
                Meeting(
                    id="m3", kind="sip", convener_unit_id=UNIT, personnummer=P1,
                    person_key=f"key-{P1}", at=at(24, 9), follow_up_of="m2", status="held",
                    created_by="u",
                ),
                Plan(
                    id="m5", owner_orgnr=ORG_REGION, owner_unit_id=UNIT, kind="sip",
                    personnummer=P1, person_key=f"key-{P1}", coordinators=[],
                    follow_up_date=dt.date(2026, 11, 28),
                    viewers=[{"orgnr": ORG_REGION, "unit_id": UNIT}], actions=[],
                ),
                # A SIP Växjö held for P2 before r5's discharge: this member has its copy.
                Plan(
                    id="vx-sip", owner_orgnr="212000-0647", owner_unit_id="vx-soc", kind="sip",
                    personnummer=P2, person_key=f"key-{P2}", coordinators=[],
                    follow_up_date=dt.date(2027, 1, 10), created_at=at(24),
                    viewers=[{"orgnr": ORG_REGION, "unit_id": UNIT}], actions=[],
                ),
            ]
        )  # fmt: skip


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_REGION, seed) as application:
        yield application


async def get(app: FastAPI, **params: str) -> httpx.Response:
    period = {"from": "2026-11-01", "to": "2026-11-30", **params}
    return await asgi_get(app, "/v1/indicators", auth(ORG_REGION, UNIT, RW), **period)


async def test_the_indicators_of_a_known_month(app: FastAPI) -> None:
    r = await get(app)
    assert r.status_code == 200, r.text
    data = r.json()
    kb = data["outgoing"]["kontaktbegaran"]
    assert (kb["count"], kb["acknowledged"], kb["acknowledged_in_time"]) == (3, 2, 1)
    assert kb["share_acknowledged_in_time"] == 0.333
    assert kb["hours_to_acknowledgement"] == {"n": 2, "median": 84.0, "p90": 144.0}
    assert kb["statuses"] == {"completed": 1, "declined": 1, "withdrawn": 1}
    up = data["outgoing"]["utskrivningsplanering"]
    assert (up["count"], up["acknowledged"], up["statuses"]) == (2, 0, {"delivered": 1, "sent": 1})
    assert data["incoming"]["vardkedjeremiss"]["hours_to_acknowledgement"]["median"] == 2.0
    assert data["days_to_first_meeting"] == {"n": 1, "median": 4.0, "p90": 4.0}
    assert data["discharge_planning"] == {
        "sent": 2,
        "with_sip_before_discharge": 1,  # convened here
        "share_with_sip_before_discharge": 0.5,
        "with_sip_held_before_discharge": 2,  # held by any party (the plan recorded)
        "share_with_sip_held_before_discharge": 1.0,
    }
    assert data["plan_actions"] == {
        "due_to_start": 3,
        "started_on_time": 1,
        "started_late": 1,
        "overdue_not_started": 1,
        "ended": 2,
        "cancelled": 1,
        "ended_without_notice": 1,
    }
    assert data["follow_ups"] == {"due": 2, "held_on_time": 1, "share_held_on_time": 0.5}
    assert data["days_from_remissmote_to_first_action"] == {
        "n": 1,
        "median": 0.88,
        "p90": 0.88,
    }
    assert data["kontaktbegaran_outcomes"] == {"completed": 1, "declined": 1, "withdrawn": 1}
    assert P1 not in r.text  # aggregates only
    assert P2 not in r.text


async def test_one_unit_a_csv_and_a_bad_period(app: FastAPI) -> None:
    port = (await get(app, unit_id=PORT)).json()
    assert port["outgoing"] == {}
    assert port["incoming"]["vardkedjeremiss"]["count"] == 1
    assert (port["plan_actions"]["ended"], port["plan_actions"]["cancelled"]) == (2, 1)
    assert port["plan_actions"]["ended_without_notice"] == 0
    assert port["follow_ups"]["due"] == 0  # the SIPs' plans are not the port's
    csv = await get(app, format="csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "count,outgoing,kontaktbegaran,3\r\n" in csv.text
    assert "plan_actions_ended_without_notice,,,1\r\n" in csv.text
    assert "follow_ups_held_on_time,,,1\r\n" in csv.text
    bad = await get(app, **{"from": "2026-12-01"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["rule"] == "period_order"


@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize("value", ["12345", "0", "1764028800"])
async def test_a_number_is_no_date(app: FastAPI, param: str, value: str) -> None:
    # Pydantic's lax mode took a number as seconds since 1970 (to=0 was 1970-01-01).
    bad = await get(app, **{param: value})
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["rule"]) for e in bad.json()["errors"]] == [(param, "date_type")]
