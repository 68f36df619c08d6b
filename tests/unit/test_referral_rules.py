"""The referral lifecycle table and the deadline arithmetic (Swedish working days)."""

from __future__ import annotations

import datetime as dt

import pytest

from services.referral.codes import FINAL, TRANSITIONS, Actor, Status, allowed_from
from services.referral.sending import acknowledge_by
from tests.conftest import make_settings

SETTINGS = make_settings(service="referral")
D = dt.date


@pytest.mark.parametrize(
    ("kind", "urgency", "sent", "due"),
    [
        # Midsommar 2026: afton Fri 19 June, dagen Sat 20 June; three days from Thu 18 June.
        ("kontaktbegaran", "normal", D(2026, 6, 18), D(2026, 6, 24)),
        # Christmas 2026: julafton Thu, juldagen Fri, annandag Sat, then nyårsafton Thu.
        ("kontaktbegaran", "normal", D(2026, 12, 22), D(2026, 12, 29)),
        ("kontaktbegaran", "urgent", D(2026, 12, 23), D(2026, 12, 28)),
        # ... nyårsafton, nyårsdagen and trettondedag jul (6 January) do not count either.
        ("vardkedjeremiss", "normal", D(2026, 12, 28), D(2027, 1, 7)),
        # Easter 2027: långfredag 26 March, annandag påsk 29 March.
        ("kontaktbegaran", "normal", D(2027, 3, 25), D(2027, 4, 1)),
        ("utskrivningsplanering", "normal", D(2027, 3, 25), D(2027, 3, 30)),
        # A weekend does not count; acute is the same day.
        ("sip_kallelse", "urgent", D(2026, 11, 27), D(2026, 11, 30)),
        ("hvb_underrattelse", "acute", D(2026, 11, 28), D(2026, 11, 28)),
    ],
)
def test_acknowledgement_deadlines_count_swedish_working_days(
    kind: str, urgency: str, sent: dt.date, due: dt.date
) -> None:
    assert acknowledge_by(settings=SETTINGS, kind=kind, urgency=urgency, today=sent) == due


def test_every_status_is_reachable_and_final_ones_are_dead_ends() -> None:
    reachable = {Status.SENT} | {to for (_frm, to) in TRANSITIONS}
    assert reachable == set(Status)
    for status in FINAL:
        assert not [to for (frm, to) in TRANSITIONS if frm is status], status


@pytest.mark.parametrize("status", list(Status))
def test_the_holder_and_the_sender_never_share_a_step(status: Status) -> None:
    holder = set(allowed_from(status, Actor.HOLDER))
    sender = set(allowed_from(status, Actor.SENDER))
    assert not holder & sender
    assert sender <= {Status.WITHDRAWN}


def test_the_matrix_of_holder_steps() -> None:
    steps = {s: allowed_from(s, Actor.HOLDER) for s in Status}
    assert steps == {
        Status.SENT: [],
        Status.DELIVERED: [Status.ACKNOWLEDGED, Status.RETURNED],
        Status.ACKNOWLEDGED: [
            Status.ACCEPTED,
            Status.DECLINED,
            Status.FORWARDED,
            Status.RETURNED,
        ],
        Status.ACCEPTED: [Status.IN_PROGRESS, Status.COMPLETED],
        Status.DECLINED: [],
        Status.FORWARDED: [],
        Status.IN_PROGRESS: [Status.COMPLETED],
        Status.COMPLETED: [],
        Status.WITHDRAWN: [],
        Status.CANCELLED: [],
        Status.RETURNED: [],
        Status.UNDELIVERABLE: [],
    }
