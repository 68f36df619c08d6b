"""The deadline rules of a plan's actions and of unanswered invitations (pure: which unit is
told what, on which day), beside the integration tests that run them on a member."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.referral.deadlines import Due, _actions, _Today, _unanswered
from services.referral.models import Plan, Recipient, Referral

ME, OTHER = "212000-0647", "232100-0065"
MONDAY = dt.date(2027, 1, 11)


def plan(*actions: dict[str, Any], status: str = "active") -> Plan:
    return Plan(
        id="p1", kind="sip", status=status, actions=list(actions),
        coordinators=[{"orgnr": ME, "unit_id": "soc"}, {"orgnr": OTHER, "unit_id": "ber"}],
    )  # fmt: skip


def action(aid: str, status: str = "planned", **dates: str) -> dict[str, Any]:
    owner = dates.pop("owner", f"{ME}/boende")
    orgnr, unit = owner.split("/") if owner else (None, None)
    return {"id": aid, "status": status, "orgnr": orgnr, "unit_id": unit, **dates}


def told(found: list[Due]) -> list[tuple[str | None, str, str, str, str]]:
    return sorted((d.action_id, d.unit_id, d.deadline, d.state, d.audience) for d in found)


def on(day: dt.date) -> _Today:
    return _Today(day, 2)


class TestActions:
    def test_the_owner_is_reminded_near_and_at_passing_and_the_coordinator_alerted_after(
        self,
    ) -> None:
        p = plan(action("a", start_by="2027-01-13"))
        assert told(_actions(on(MONDAY - dt.timedelta(days=1)), p, ME)) == []
        assert told(_actions(on(MONDAY), p, ME)) == [
            ("a", "boende", "action_start", "near", "actor")
        ]
        assert told(_actions(on(dt.date(2027, 1, 14)), p, ME)) == [
            ("a", "boende", "action_start", "overdue", "actor"),
            ("a", "soc", "action_start", "overdue", "coordinator"),
        ]

    def test_another_members_action_is_escalated_here_and_reminded_there(self) -> None:
        p = plan(action("a", start_by="2027-01-04", owner=f"{OTHER}/port"))
        assert told(_actions(on(MONDAY), p, ME)) == [
            ("a", "soc", "action_start", "overdue", "coordinator")
        ]
        assert told(_actions(on(MONDAY), p, OTHER)) == [
            ("a", "ber", "action_start", "overdue", "coordinator"),
            ("a", "port", "action_start", "overdue", "actor"),
        ]

    def test_a_started_action_is_chased_to_end_and_a_final_one_never(self) -> None:
        started = action("a", "started", start_by="2027-01-04", end_by="2027-01-08")
        ended = action("b", "ended", start_by="2027-01-04", end_by="2027-01-08")
        cancelled = action("c", "cancelled", start_by="2027-01-04")
        found = _actions(on(MONDAY), plan(started, ended, cancelled), ME)
        assert told(found) == [
            ("a", "boende", "action_end", "overdue", "actor"),
            ("a", "soc", "action_end", "overdue", "coordinator"),
        ]
        assert found[0].subject == "p1"
        assert found[0].key[0] == "a"  # sent once per action

    def test_an_outside_actors_action_is_the_coordinators_to_record(self) -> None:
        p = plan(action("a", owner="", start_by="2027-01-04"))
        assert told(_actions(on(MONDAY), p, ME)) == [
            ("a", "soc", "action_start", "overdue", "actor")
        ]

    def test_a_withdrawn_copy_or_an_undated_action_asks_nothing(self) -> None:
        assert (
            _actions(on(MONDAY), plan(action("a", start_by="2027-01-04"), status="withdrawn"), ME)
            == []
        )
        assert _actions(on(MONDAY), plan(action("a")), ME) == []


class TestUnansweredInvitations:
    def sent(self, meeting_id: str | None) -> list[tuple[Recipient, Referral]]:
        referral = Referral(
            id="r1", kind="samordningsmote", sender_unit_id="convener",
            details={"invitation": True, "meeting_id": meeting_id} if meeting_id else {},
        )  # fmt: skip
        task = Recipient(
            id="t1", referral_id="r1", orgnr=OTHER, unit_id="port", status="delivered",
            acknowledge_by=dt.date(2027, 1, 8),
        )  # fmt: skip
        return [(task, referral)]

    def test_the_convener_and_the_plans_other_coordinators_are_alerted_once_passed(
        self,
    ) -> None:
        coordinators = {"m1": ["convener", "soc"]}
        assert _unanswered(on(dt.date(2027, 1, 8)), self.sent("m1"), coordinators) == []
        found = _unanswered(on(MONDAY), self.sent("m1"), coordinators)
        assert sorted((d.subject, d.unit_id, d.deadline, d.audience) for d in found) == [
            ("t1", "convener", "acknowledge", "sender"),
            ("t1", "soc", "acknowledge", "coordinator"),
        ]

    def test_an_invitation_to_no_follow_up_alerts_only_its_sender(self) -> None:
        found = _unanswered(on(MONDAY), self.sent(None), {"m1": ["soc"]})
        assert [(d.unit_id, d.audience) for d in found] == [("convener", "sender")]
