"""The rules of a plan's actions (services/referral/actions.py): the lifecycle table, who
takes an action's steps, what a revision keeps, what changed, and when one is overdue."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from services.referral import actions
from services.referral.schemas import ActionStepIn, PlanIn
from tests.conftest import ORG_REGION, ORG_VAXJO

AT = dt.datetime(2027, 1, 11, 9, 30, tzinfo=dt.UTC)
COORDINATORS = [{"orgnr": ORG_VAXJO, "unit_id": "soc"}]


def plan_in(*owners: dict[str, Any], follow_up: str = "2027-03-01") -> PlanIn:
    return PlanIn.model_validate(
        {
            "actions": [{"intervention": "boendestod", **o} for o in owners],
            "coordinators": COORDINATORS,
            "follow_up_date": follow_up,
        }
    )


UNIT = {"owner": {"orgnr": ORG_REGION, "unit_id": "beroende"}}
OUTSIDE = {"outside_actor": "Försäkringskassan"}


def test_the_lifecycle_has_no_way_back_and_none_from_a_final_status() -> None:
    assert actions.STEPS == {
        "planned": ("started", "cancelled"),
        "started": ("ended", "cancelled"),
        "ended": (),
        "cancelled": (),
    }


def test_the_owner_steps_its_action_and_a_coordinator_an_outside_actors() -> None:
    unit_action, outside_action = actions.recorded([], plan_in(UNIT, OUTSIDE))
    owner, coordinator = (ORG_REGION, "beroende"), (ORG_VAXJO, "soc")
    assert actions.allowed_steps(unit_action, owner, COORDINATORS) == ["started", "cancelled"]
    assert actions.allowed_steps(unit_action, coordinator, COORDINATORS) == []
    assert actions.allowed_steps(outside_action, coordinator, COORDINATORS) == [
        "started",
        "cancelled",
    ]
    assert actions.allowed_steps(outside_action, owner, COORDINATORS) == []
    assert actions.allowed_steps(outside_action, None, COORDINATORS) == []
    assert actions.owner_of(outside_action) is None


def test_each_step_records_when_and_why() -> None:
    (action,) = actions.recorded([], plan_in(UNIT))
    started = actions.stepped(action, ActionStepIn(to="started"), AT)
    assert (started["status"], started["started_at"]) == ("started", AT.isoformat())
    ended = actions.stepped(
        started, ActionStepIn(to="ended", outcome="replaced", note="Ersatt av HVB."), AT
    )
    assert (ended["status"], ended["outcome"], ended["note"]) == (
        "ended",
        "replaced",
        "Ersatt av HVB.",
    )
    cancelled = actions.stepped(action, ActionStepIn(to="cancelled", reason="Flyttat."), AT)
    assert (cancelled["status"], cancelled["reason"], cancelled["ended_at"]) == (
        "cancelled",
        "Flyttat.",
        AT.isoformat(),
    )
    assert action["status"] == "planned"  # the input is left as it was


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"to": "ended"}, "outcome_required"),
        ({"to": "cancelled"}, "reason_required"),
        ({"to": "planned"}, "enum"),
        ({"to": "ended", "outcome": "done"}, "string_pattern_mismatch"),
    ],
)
def test_a_step_without_what_it_needs_is_refused(body: dict[str, str], rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ActionStepIn.model_validate(body)
    assert rule in {e["type"] for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("action", "rule"),
    [
        ({}, "owner_or_outside_actor"),
        ({**UNIT, **OUTSIDE}, "owner_or_outside_actor"),
        ({**UNIT, "start_by": "2027-02-01", "end_by": "2027-01-01"}, "start_before_end"),
    ],
)
def test_an_action_names_one_owner_and_ends_after_it_starts(
    action: dict[str, Any], rule: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_in(action)
    assert rule in {e["type"] for e in caught.value.errors()}


def test_one_coordinator_per_member() -> None:
    body = {
        "actions": [{"intervention": "boendestod", **UNIT}],
        "coordinators": [
            {"orgnr": ORG_VAXJO, "unit_id": "a"},
            {"orgnr": ORG_VAXJO, "unit_id": "b"},
        ],
        "follow_up_date": "2027-03-01",
    }
    with pytest.raises(ValidationError) as caught:
        PlanIn.model_validate(body)
    assert {e["type"] for e in caught.value.errors()} == {"one_coordinator_per_member"}


def test_a_revision_keeps_an_unchanged_actions_id_and_steps_and_renews_the_rest() -> None:
    first = actions.recorded([], plan_in(UNIT, OUTSIDE))
    first[0] = actions.stepped(first[0], ActionStepIn(to="started"), AT)
    other_owner = {"owner": {"orgnr": ORG_VAXJO, "unit_id": "boende"}}
    again = actions.recorded(first, plan_in(UNIT, other_owner))
    assert (again[0]["id"], again[0]["status"]) == (first[0]["id"], "started")
    assert again[1]["id"] != first[1]["id"]
    assert again[1]["status"] == "planned"
    assert actions.newly_assigned(first, again) == [again[1]]
    assert actions.changed(first, again) == []
    stepped = [
        actions.stepped(again[0], ActionStepIn(to="ended", outcome="completed"), AT),
        again[1],
    ]
    assert actions.changed(again, stepped) == [stepped[0]]


def test_overdue_to_start_then_to_end_and_never_when_final() -> None:
    (action,) = actions.recorded(
        [],
        plan_in(UNIT | {"start_by": "2027-01-10", "end_by": "2027-01-20"}),
    )
    assert actions.overdue(action, dt.date(2027, 1, 10)) is None  # the last day itself
    assert actions.overdue(action, dt.date(2027, 1, 11)) == "start"
    started = actions.stepped(action, ActionStepIn(to="started"), AT)
    assert actions.overdue(started, dt.date(2027, 1, 11)) is None
    assert actions.overdue(started, dt.date(2027, 1, 21)) == "end"
    cancelled = actions.stepped(action, ActionStepIn(to="cancelled", reason="Behövs inte."), AT)
    assert actions.overdue(cancelled, dt.date(2027, 6, 1)) is None
