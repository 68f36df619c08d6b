"""Worklists: a unit's inbox filtered by status, kind and overdue, paged, never another
unit's; protected identities only for the role; the unit's sent referrals and a meeting's
participants filtered by overdue — not acknowledged by ``acknowledge_by``, or not answered
by ``answer_by`` (seeded rows, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.referral.models import Incoming, Meeting, Recipient, Referral
from shared.data.db import Database
from shared.domain.calendar import to_local
from tests.conftest import ORG_VAXJO, DatabaseFactory
from tests.helpers.problems import field_rules, problem
from tests.integration.consent.helpers import new_person

from .conftest import RW, asgi_get, auth, seeded_app

UNIT = "vx-soc"
HEADERS = auth(ORG_VAXJO, UNIT, RW)
TODAY = to_local(dt.datetime.now(dt.UTC)).date()  # the services' day: today in Sweden
LATE, SOON = TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=3)


def incoming(
    n: int,
    kind: str,
    status: str,
    due: dt.date,
    *,
    unit: str = UNIT,
    protected: bool = False,
    answer_by: dt.date | None = None,
) -> Incoming:
    return Incoming(
        id=f"i{n:02d}",
        referral_id=f"r{n}",
        kind=kind,
        personnummer=new_person(),
        person_key=f"k{n}",
        protected_identity=protected,
        sender_orgnr="232100-0065",
        sender_unit_id="rk-beroende",
        unit_id=unit,
        status=status,
        basis={"kind": "consent"},
        acknowledge_by=due,
        answer_by=answer_by,
    )


def sent(n: int, *statuses: tuple[str, dt.date | None], unit: str = UNIT) -> list[Any]:
    """A referral the unit sent (``s<n>``) and its recipients (``t<n><i>``), each in a status
    with its ``answer_by``; every acknowledgement was due three days ago."""
    referral = Referral(
        id=f"s{n}", kind="kontaktbegaran", personnummer=new_person(), person_key=f"sk{n}",
        sender_unit_id=unit, created_by="u", details={"kommunkod": "0780"},
    )  # fmt: skip
    recipients = [
        Recipient(
            id=f"t{n}{i}",
            referral_id=referral.id,
            orgnr="232100-0065",
            unit_id=f"rk-{i}",
            status=status,
            basis={"kind": "consent"},
            acknowledge_by=LATE,
            answer_by=answer_by,
        )
        for i, (status, answer_by) in enumerate(statuses)
    ]
    return [referral, *recipients]


async def seed(db: Database) -> None:
    late, soon = LATE, SOON
    async with db.transaction() as s:
        s.add_all(
            [
                incoming(1, "kontaktbegaran", "delivered", late),  # not acknowledged in time
                incoming(2, "kontaktbegaran", "delivered", soon),
                incoming(3, "kontaktbegaran", "acknowledged", late, answer_by=late),  # unanswered
                incoming(4, "utskrivningsplanering", "delivered", late),  # not acknowledged
                incoming(5, "sip_kallelse", "completed", late, answer_by=late),  # answered
                incoming(6, "kontaktbegaran", "delivered", late, unit="vx-boende"),
                incoming(7, "kontaktbegaran", "delivered", soon, protected=True),
                incoming(8, "sip_kallelse", "acknowledged", late, answer_by=TODAY),  # due today
                incoming(9, "kontaktbegaran", "acknowledged", late),  # no answer deadline
            ]
        )
        for referral, *recipients in (
            sent(1, ("sent", None), ("accepted", late)),  # one not acknowledged
            sent(2, ("acknowledged", late), ("acknowledged", soon)),  # one unanswered
            sent(3, ("acknowledged", soon), ("declined", late)),  # none overdue
            sent(4, ("delivered", None), unit="vx-boende"),  # another unit's
        ):
            s.add(referral)
            await s.flush()  # before its recipients (they refer to it)
            s.add_all(recipients)
        s.add(
            Meeting(
                id="m1", kind="sip", convener_unit_id=UNIT, personnummer=new_person(),
                person_key="mk", at=dt.datetime.now(dt.UTC) + dt.timedelta(days=7),
                place="Avdelning 12", created_by="u",
                participants=[
                    {"orgnr": "232100-0065", "unit_id": f"rk-{i}", "task_id": f"t2{i}"}
                    for i in range(2)
                ],
            )
        )  # fmt: skip


@pytest.fixture
async def app(databases: DatabaseFactory) -> AsyncIterator[FastAPI]:
    async with seeded_app(databases, ORG_VAXJO, seed) as application:
        yield application


async def get(
    app: FastAPI, path: str, roles: list[str] | None = None, **params: object
) -> list[dict[str, Any]]:
    """The items of a worklist the unit reads."""
    r = await asgi_get(app, path, auth(ORG_VAXJO, UNIT, RW, roles), **params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def ids(app: FastAPI, roles: list[str] | None = None, **params: object) -> list[str]:
    return [i["task_id"] for i in await get(app, "/v1/incoming", roles, **params)]


async def test_filters_of_the_units_inbox(app: FastAPI) -> None:
    assert await ids(app) == ["i01", "i02", "i03", "i04", "i05", "i08", "i09"]
    assert await ids(app, status="delivered") == ["i01", "i02", "i04"]
    assert await ids(app, kind="kontaktbegaran") == ["i01", "i02", "i03", "i09"]
    assert await ids(app, overdue="acknowledge") == ["i01", "i04"]
    assert await ids(app, overdue="acknowledge", kind="utskrivningsplanering") == ["i04"]
    # A protected identity only for the role.
    assert "i07" in await ids(app, roles=["protected_identity"])


class TestOverdue:
    """``overdue``: only the tasks past that deadline, each showing its deadlines."""

    async def test_the_inbox_by_deadline(self, app: FastAPI) -> None:
        assert await ids(app, overdue="answer") == ["i03"]
        assert await ids(app, overdue="any") == ["i01", "i03", "i04"]
        assert await ids(app, overdue="any", status="acknowledged") == ["i03"]
        items = {i["task_id"]: i for i in await get(app, "/v1/incoming")}
        shown = {k: (i["acknowledge_by"], i["answer_by"], i["overdue"]) for k, i in items.items()}
        assert shown == {
            "i01": (str(LATE), None, True),
            "i02": (str(SOON), None, False),
            "i03": (str(LATE), str(LATE), True),
            "i04": (str(LATE), None, True),
            "i05": (str(LATE), str(LATE), False),
            "i08": (str(LATE), str(TODAY), False),  # the last day is not past
            "i09": (str(LATE), None, False),
        }

    async def test_the_sent_referrals_with_a_recipient_past_it(self, app: FastAPI) -> None:
        async def sent_ids(**params: str) -> list[str]:
            return [i["id"] for i in await get(app, "/v1/outgoing", **params)]

        assert await sent_ids() == ["s3", "s2", "s1"]
        assert await sent_ids(overdue="acknowledge") == ["s1"]
        assert await sent_ids(overdue="answer") == ["s2"]
        assert await sent_ids(overdue="any") == ["s2", "s1"]
        assert await sent_ids(overdue="any", status="accepted") == ["s1"]
        assert await sent_ids(overdue="answer", kind="sip_kallelse") == []
        [s2] = await get(app, "/v1/outgoing", overdue="answer")
        shown = [(r["task_id"], r["answer_by"], r["overdue"]) for r in s2["recipients"]]
        assert shown == [("t20", str(LATE), True), ("t21", str(SOON), False)]

    async def test_a_meetings_participants_past_it(self, app: FastAPI) -> None:
        async def participants(**params: str) -> list[tuple[str, str | None, bool]]:
            r = await asgi_get(app, "/v1/meetings/m1", HEADERS, **params)
            assert r.status_code == 200, r.text
            return [(p["task_id"], p["answer_by"], p["overdue"]) for p in r.json()["participants"]]

        everyone = [("t20", str(LATE), True), ("t21", str(SOON), False)]
        assert await participants() == everyone
        assert await participants(overdue="answer") == everyone[:1]
        assert await participants(overdue="any") == everyone[:1]
        assert await participants(overdue="acknowledge") == []

    @pytest.mark.parametrize("path", ["/v1/incoming", "/v1/outgoing", "/v1/meetings/m1"])
    @pytest.mark.parametrize("value", ["true", "late", "ANSWER", ""])
    async def test_another_value_is_refused(self, app: FastAPI, path: str, value: str) -> None:
        r = await asgi_get(app, path, HEADERS, overdue=value)
        assert field_rules(problem(r, 422, "validation")) == {"overdue": "enum"}

    def test_the_parameter_is_documented(self, app: FastAPI) -> None:
        paths = app.openapi()["paths"]
        for path in ("/v1/incoming", "/v1/outgoing", "/v1/meetings/{meeting_id}"):
            [param] = [p for p in paths[path]["get"]["parameters"] if p["name"] == "overdue"]
            assert "answer_by" in param["description"], path
            assert param["examples"]["answer"]["value"] == "answer", path
            ref = param["schema"]["$ref"].split("/")[-1]
            schema = app.openapi()["components"]["schemas"][ref]
            assert schema["enum"] == ["acknowledge", "answer", "information", "any"]


async def test_pages_cover_the_inbox_once(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    seen: list[str] = []
    cursor = None
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (
                await c.get("/v1/incoming", params=params, headers=auth(ORG_VAXJO, UNIT, RW))
            ).json()
            seen += [i["task_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == ["i01", "i02", "i03", "i04", "i05", "i08", "i09"]
