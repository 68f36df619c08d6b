"""Komplettering in the one lifecycle of a task, its deadlines (the holder's clock stands
still, the sender's own runs), and the structured result a completed or declined referral
states."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from services.referral.closed_loop import _check_transition
from services.referral.codes import (
    AHEAD,
    AWAITING_ACKNOWLEDGEMENT,
    AWAITING_ANSWER,
    FINAL,
    OPEN,
    OPEN_AT_RECEIVER,
    TRANSITIONS,
    Actor,
    Overdue,
    Status,
    allowed_from,
)
from services.referral.komplettering import information_by, resumed
from services.referral.models import Incoming, Recipient
from services.referral.schemas import InformationIn, TransitionIn
from services.referral.worklists import is_overdue
from shared.config import ReferralSettings
from shared.web.errors import Conflict, InvalidInput
from tests.conftest import make_settings

SETTINGS = make_settings(service="referral")
D = dt.date
ASKED = Status.INFORMATION_REQUESTED


class TestTheLifecycle:
    def test_the_holder_asks_once_it_has_acknowledged_and_never_before(self) -> None:
        assert TRANSITIONS[(Status.ACKNOWLEDGED, ASKED)] is Actor.HOLDER
        assert ASKED not in allowed_from(Status.DELIVERED, Actor.HOLDER)
        assert [frm for (frm, to) in TRANSITIONS if to is ASKED] == [Status.ACKNOWLEDGED]

    def test_the_sender_answers_and_the_task_goes_back_to_the_holder(self) -> None:
        assert allowed_from(ASKED, Actor.SENDER) == [Status.ACKNOWLEDGED, Status.WITHDRAWN]
        assert allowed_from(ASKED, Actor.HOLDER) == [Status.DECLINED]
        assert allowed_from(ASKED, Actor.SYSTEM) == [Status.CANCELLED]
        # Anywhere else the sender only withdraws: answering is 409 there.
        for status in OPEN:
            if status is not ASKED:
                assert Status.ACKNOWLEDGED not in allowed_from(status, Actor.SENDER), status

    def test_an_invitation_to_a_meeting_never_asks(self) -> None:
        steps = allowed_from(Status.ACKNOWLEDGED, Actor.HOLDER, invitation=True)
        assert ASKED not in steps
        assert Status.ACCEPTED in steps

    def test_the_round_is_the_one_loop_ahead_and_nothing_leads_back_from_accepted(self) -> None:
        assert {Status.ACKNOWLEDGED, ASKED} <= AHEAD[Status.ACKNOWLEDGED]
        assert {Status.ACKNOWLEDGED, ASKED} <= AHEAD[ASKED]
        assert AHEAD[ASKED] >= {Status.ACCEPTED, Status.COMPLETED, Status.DECLINED}
        for later in (Status.ACCEPTED, Status.IN_PROGRESS, *FINAL):
            assert not {Status.ACKNOWLEDGED, ASKED} & AHEAD[later], later
        for status in FINAL:
            assert AHEAD[status] == frozenset()

    def test_a_task_waiting_for_information_is_open_but_awaits_nothing_of_the_holder(
        self,
    ) -> None:
        assert ASKED in OPEN
        assert ASKED in OPEN_AT_RECEIVER  # documents of the answer are stored
        assert ASKED not in AWAITING_ACKNOWLEDGEMENT | AWAITING_ANSWER
        assert ASKED not in FINAL


class TestTheClocks:
    MONDAY = D(2026, 12, 7)
    LATE = D(2027, 1, 20)

    def test_the_holders_task_waiting_for_information_is_never_overdue(self) -> None:
        task = Incoming(
            status=ASKED.value, acknowledge_by=self.MONDAY, answer_by=self.MONDAY, kind="x"
        )
        for which in Overdue:
            assert not is_overdue(task, self.LATE, which), which

    def test_the_senders_own_deadline_makes_its_mirror_overdue(self) -> None:
        mirror = Recipient(
            status=ASKED.value,
            acknowledge_by=self.MONDAY,
            answer_by=self.MONDAY,
            information_by=D(2026, 12, 21),
        )
        assert not is_overdue(mirror, D(2026, 12, 21))
        assert is_overdue(mirror, D(2026, 12, 22), Overdue.INFORMATION)
        assert is_overdue(mirror, D(2026, 12, 22), Overdue.ANY)
        assert not is_overdue(mirror, D(2026, 12, 22), Overdue.ANSWER)
        answered = Recipient(
            status=Status.ACKNOWLEDGED.value,
            acknowledge_by=self.MONDAY,
            answer_by=self.LATE,
            information_by=D(2026, 12, 21),  # left over: no question open
        )
        assert not is_overdue(answered, D(2026, 12, 22))

    def test_the_sender_answers_in_its_members_working_days_by_urgency(self) -> None:
        assert information_by(SETTINGS, "normal", self.MONDAY) == D(2026, 12, 21)
        # Urgent: three working days; julafton, juldagen and annandag jul do not count.
        assert information_by(SETTINGS, "urgent", D(2026, 12, 23)) == D(2026, 12, 30)
        own = SETTINGS.model_copy(
            update={
                "referral": SETTINGS.referral.model_copy(
                    update={"information_working_days": {"normal": 1, "urgent": 1, "acute": 0}}
                )
            }
        )
        assert information_by(own, "normal", self.MONDAY) == D(2026, 12, 8)
        # Asked on a Saturday, due the same day: the next working day.
        assert information_by(own, "acute", D(2026, 12, 12)) == D(2026, 12, 14)

    def test_a_member_names_urgencies_only_and_keeps_the_rest(self) -> None:
        own = ReferralSettings(information_working_days={"urgent": 2})
        assert own.information_working_days == {"normal": 10, "urgent": 2, "acute": 1}
        with pytest.raises(ValidationError):
            ReferralSettings(information_working_days={"soon": 2})
        with pytest.raises(ValidationError):
            ReferralSettings(information_working_days={"normal": -1})

    def test_the_answer_deadline_moves_on_by_the_working_days_waited(self) -> None:
        due = D(2026, 12, 14)
        asked = "2026-12-07T09:00:00+00:00"  # a Monday
        wednesday = dt.datetime(2026, 12, 9, 15, tzinfo=dt.UTC)
        assert resumed(due, asked, wednesday) == D(2026, 12, 16)  # two days waited
        same_day = dt.datetime(2026, 12, 7, 16, tzinfo=dt.UTC)
        assert resumed(due, asked, same_day) == due
        # Asked before christmas, answered after it: only the working days count.
        over_christmas = dt.datetime(2026, 12, 28, 9, tzinfo=dt.UTC)
        assert resumed(D(2026, 12, 23), "2026-12-22T10:00:00+00:00", over_christmas) == D(
            2026, 12, 29
        )
        assert resumed(None, asked, wednesday) is None


def step(**body: Any) -> TransitionIn:
    return TransitionIn.model_validate(body)


def rules(current: Status, body: dict[str, Any], *, invitation: bool = False) -> dict[str, str]:
    """The 422 problems of a step (field → rule); empty when it is allowed."""
    try:
        _check_transition(current, step(**body), Actor.HOLDER, invitation=invitation)
    except InvalidInput as exc:
        return {e.field: e.rule for e in exc.errors or []}
    return {}


GRANTED = {"decision": "granted", "intervention": "boendestod", "started_on": "2026-12-01"}


class TestAQuestion:
    def test_is_required_to_ask_and_taken_with_no_other_step(self) -> None:
        assert rules(Status.ACKNOWLEDGED, {"to": "information_requested"}) == {
            "question": "question_required"
        }
        assert rules(Status.ACKNOWLEDGED, {"to": "information_requested", "question": "Var?"}) == {}
        assert rules(Status.ACKNOWLEDGED, {"to": "accepted", "question": "Var?"}) == {
            "question": "only_when_requesting_information"
        }

    def test_asking_before_acknowledging_or_on_an_invitation_is_409_naming_the_steps(
        self,
    ) -> None:
        with pytest.raises(Conflict) as before:
            _check_transition(
                Status.DELIVERED,
                step(to="information_requested", question="Var?"),
                Actor.HOLDER,
            )
        assert before.value.allowed == ["acknowledged", "returned"]
        with pytest.raises(Conflict) as invitation:
            _check_transition(
                Status.ACKNOWLEDGED,
                step(to="information_requested", question="Var?"),
                Actor.HOLDER,
                invitation=True,
            )
        assert "information_requested" not in (invitation.value.allowed or [])

    def test_an_answer_needs_text_or_documents(self) -> None:
        InformationIn.model_validate({"text": "Eget kontrakt."})
        InformationIn.model_validate({"attachment_ids": ["a-1"]})
        for bad in ({}, {"attachment_ids": []}, {"attachment_ids": ["a-1", "a-1"]}):
            with pytest.raises(ValidationError):
                InformationIn.model_validate(bad)


class TestAStructuredResult:
    def test_is_required_to_complete_or_decline_a_referral(self) -> None:
        assert rules(Status.ACCEPTED, {"to": "completed", "outcome": "Klart."}) == {
            "result": "result_required"
        }
        assert rules(Status.ACKNOWLEDGED, {"to": "declined", "reason": "Fel kommun."}) == {
            "result": "result_required"
        }
        # The words stay required beside it.
        assert rules(Status.ACCEPTED, {"to": "completed", "result": GRANTED}) == {
            "outcome": "outcome_required"
        }
        done = {"to": "completed", "outcome": "Klart.", "result": GRANTED}
        assert rules(Status.ACCEPTED, done) == {}
        declined = {"to": "declined", "reason": "Nej.", "result": {"decision": "refused"}}
        assert rules(Status.ACKNOWLEDGED, declined) == {}
        assert rules(ASKED, declined) == {}  # no answer came

    def test_a_declined_referral_granted_nothing(self) -> None:
        body = {"to": "declined", "reason": "Nej.", "result": GRANTED}
        assert rules(Status.ACKNOWLEDGED, body) == {
            "result.decision": "granted_only_when_completing"
        }

    def test_no_other_step_and_no_invitation_has_one(self) -> None:
        assert rules(Status.DELIVERED, {"to": "acknowledged", "result": GRANTED}) == {
            "result": "only_when_completing_or_declining"
        }
        answer = {"to": "declined", "reason": "Kan inte.", "proposed_at": "2027-01-05T10:00:00Z"}
        assert rules(Status.ACKNOWLEDGED, answer, invitation=True) == {}
        with_result = {**answer, "result": {"decision": "refused"}}
        assert rules(Status.ACKNOWLEDGED, with_result, invitation=True) == {
            "result": "only_when_completing_or_declining"
        }

    @pytest.mark.parametrize(
        ("result", "rule"),
        [
            ({"decision": "maybe"}, "enum"),
            ({"decision": "granted", "intervention": "not_an_intervention"}, "enum"),
            ({"decision": "granted", "started_on": "2026-12-01"}, "started_on_needs_intervention"),
            ({"decision": "granted", "intervention": "kbt", "started_on": 20261201}, "date_type"),
            ({"intervention": "kbt"}, "missing"),
            ({"decision": "granted", "note": "x"}, "extra_forbidden"),
        ],
    )
    def test_bad_results_name_the_rule(self, result: dict[str, Any], rule: str) -> None:
        with pytest.raises(ValidationError) as caught:
            step(to="completed", outcome="Klart.", result=result)
        assert rule in {e["type"] for e in caught.value.errors()}
