"""The referral lifecycle table and the deadline arithmetic (Swedish working days)."""

from __future__ import annotations

import datetime as dt

import pytest

from services.referral.codes import FINAL, TRANSITIONS, Actor, Status, allowed_from
from services.referral.models import Referral
from services.referral.sending import acknowledge_by, answer_by
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


class TestTheAnswerDeadline:
    """Once acknowledged, a task is accepted or declined (an invitation answered) by
    ``answer_by``: the member's working days by kind and urgency, or the day a SIP
    invitation names, never after the meeting it invites to."""

    MONDAY = D(2026, 12, 7)

    @staticmethod
    def task(kind: str, urgency: str = "normal", **details: str) -> Referral:
        return Referral(kind=kind, urgency=urgency, details=details)

    def test_working_days_by_kind_and_urgency(self) -> None:
        due = answer_by(
            settings=SETTINGS, task=self.task("kontaktbegaran"), acknowledged_on=self.MONDAY
        )
        assert due == D(2026, 12, 14)
        urgent = self.task("vardkedjeremiss", "urgent")
        assert answer_by(settings=SETTINGS, task=urgent, acknowledged_on=self.MONDAY) == D(
            2026, 12, 10
        )

    def test_the_members_own_days(self) -> None:
        own = SETTINGS.model_copy(
            update={
                "referral": SETTINGS.referral.model_copy(
                    update={"answer_working_days": {"kontaktbegaran": {"normal": 1}}}
                )
            }
        )
        task = self.task("kontaktbegaran")
        assert answer_by(settings=own, task=task, acknowledged_on=self.MONDAY) == D(2026, 12, 8)

    def test_a_sip_invitations_own_day_wins(self) -> None:
        sip = self.task(
            "sip_kallelse", meeting_at="2026-12-18T10:00:00+01:00", answer_by="2026-12-16"
        )
        assert answer_by(settings=SETTINGS, task=sip, acknowledged_on=self.MONDAY) == D(
            2026, 12, 16
        )

    def test_never_after_the_meeting(self) -> None:
        # Three working days would be Thursday 10 December; the meeting is the 9th (Swedish
        # time: 23:30 UTC on the 8th is already the 9th in Stockholm).
        sip = self.task("sip_kallelse", meeting_at="2026-12-08T23:30:00+00:00")
        assert answer_by(settings=SETTINGS, task=sip, acknowledged_on=self.MONDAY) == D(2026, 12, 9)

    @pytest.mark.parametrize(
        "details",
        [
            {"answer_by": "not a day"},
            {"answer_by": "2026-12-32"},
            {"meeting_at": "2026-12-09T10:00:00"},  # naive: not a moment
            {"meeting_at": "tomorrow"},
        ],
    )
    def test_details_it_cannot_read_leave_the_kinds_days(self, details: dict[str, str]) -> None:
        """Details come from the sending member: what is not a day is not a deadline."""
        sip = self.task("sip_kallelse", **details)
        assert answer_by(settings=SETTINGS, task=sip, acknowledged_on=self.MONDAY) == D(
            2026, 12, 10
        )


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
    # The sender withdraws; and answers a question, which gives the task back to the holder.
    expected = {Status.WITHDRAWN, Status.ACKNOWLEDGED}
    assert sender <= (expected if status is Status.INFORMATION_REQUESTED else {Status.WITHDRAWN})


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
            Status.INFORMATION_REQUESTED,
        ],
        Status.INFORMATION_REQUESTED: [Status.DECLINED],
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
