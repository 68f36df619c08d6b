"""``GET /v1/deadlines/count`` answers what a real referral of the kind gets: the same
acknowledgement deadline, by working days (an LVM report) and by hours (an orosanmälan)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import ORG_REGION
from tests.integration.consent.helpers import new_person

from .conftest import Member, Pair, asgi_get, auth
from .test_reports_under_a_duty import lvm, oros, send

READER = auth(ORG_REGION, None, ["referral:read"])


async def counted(member: Member, referral: dict[str, Any]) -> dict[str, Any]:
    r = await asgi_get(
        member.referral_app,
        "/v1/deadlines/count",
        READER,
        **{
            "from": referral["created_at"],
            "kind": referral["kind"],
            "urgency": referral["urgency"],
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


class TestTheCountIsTheDeadlineAReferralGets:
    async def test_by_working_days_and_by_hours(self, members: Pair) -> None:
        region = members.region
        for body in (lvm(new_person(), urgency="normal"), oros(new_person())):
            r = await send(region, body)
            assert r.status_code == 201, r.text
            referral = r.json()
            [task] = referral["recipients"]
            count = await counted(region, referral)
            if task["acknowledge_due_at"] is None:
                assert count["due_on"] == task["acknowledge_by"], body["kind"]
                assert count["working_days"] == 1
            else:
                assert count["hours"] == 4
                # The task's row stamps its own creation, a few milliseconds after the
                # referral's: the same deadline, counted from a later instant.
                lag = _instant(task["acknowledge_due_at"]) - _instant(count["due_at"])
                assert dt.timedelta(0) <= lag < dt.timedelta(seconds=5), body["kind"]


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
