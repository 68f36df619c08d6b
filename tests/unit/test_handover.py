"""The handover's rules (services/referral/handover.py), pure: when the SIP an HVB
notification calls for is due, what keeps a discharge planning from being ready, and how an
HVB block from before the placement form was asked is read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from services.referral.details import HvbDetails, PlacementForm
from services.referral.handover import Handover, hvb_status, missing, sip_by
from services.referral.models import Meeting, Plan, Recipient, Referral
from shared.data.work import Work
from tests.conftest import make_settings

REGION, VAXJO = "232100-0065", "212000-0647"
DAYS = {"hvb_underrattelse": 10}


def sent(kind: str, on: dt.date, **details: Any) -> Referral:
    at = dt.datetime.combine(on, dt.time(9), tzinfo=dt.UTC)
    return Referral(
        id="r", kind=kind, personnummer="191212121212", person_key="k", sender_unit_id="ward",
        created_by="u", details=details, created_at=at,
    )  # fmt: skip


class TestTheSipDeadline:
    def test_ten_working_days_after_sending_or_the_placement_if_sooner(self) -> None:
        monday = dt.date(2026, 11, 2)
        assert sip_by(sent("hvb_underrattelse", monday), DAYS) == dt.date(2026, 11, 16)
        placed = sent("hvb_underrattelse", monday, placement_date="2026-11-06")
        assert sip_by(placed, DAYS) == dt.date(2026, 11, 6)
        later = sent("hvb_underrattelse", monday, placement_date="2026-12-01")
        assert sip_by(later, DAYS) == dt.date(2026, 11, 16)

    def test_a_placement_already_begun_gets_the_days_and_holidays_do_not_count(self) -> None:
        begun = sent("hvb_underrattelse", dt.date(2026, 12, 21), placement_date="2026-12-01")
        # 22, 23, 28, 29, 30 December, 4, 5, 7, 8, 11 January: julafton to annandag,
        # nyårsafton, nyårsdagen, trettondedag jul and the weekends left out.
        assert sip_by(begun, DAYS) == dt.date(2027, 1, 11)

    def test_a_kind_without_days_owes_none(self) -> None:
        assert sip_by(sent("kontaktbegaran", dt.date(2026, 11, 2)), DAYS) is None
        planning = sent(
            "utskrivningsplanering", dt.date(2026, 11, 2), expected_discharge_date="2026-11-04"
        )
        assert sip_by(planning, {}) is None
        # A member that sets days for a discharge planning gets its expected day as the cap.
        assert sip_by(planning, {"utskrivningsplanering": 5}) == dt.date(2026, 11, 4)


def recipient(orgnr: str, unit_id: str, status: str = "acknowledged") -> Recipient:
    return Recipient(id=unit_id, orgnr=orgnr, unit_id=unit_id, status=status)


def action(
    aid: str, orgnr: str, unit_id: str, status: str, started: str | None = None
) -> dict[str, Any]:
    return {"id": aid, "orgnr": orgnr, "unit_id": unit_id, "status": status, "started_at": started}


def handover(*actions: dict[str, Any]) -> Handover:
    meeting = Meeting(id="m", status="held")
    plan = Plan(id="m", actions=list(actions), coordinators=[])
    return Handover(sip=meeting, plan=plan)


class TestReadyForDischarge:
    planning = sent(
        "utskrivningsplanering", dt.date(2026, 11, 2), expected_discharge_date="2026-11-12"
    )
    kommun = recipient(VAXJO, "vx-soc")
    oppenvard = recipient(REGION, "rk-oppenvard")

    def gaps(self, view: Handover | None, *, by: dt.date | None = None) -> list[tuple[Any, ...]]:
        found = missing(self.planning, [self.kommun, self.oppenvard], view, REGION, by=by)
        return [(m.what, m.unit_id, m.action_ids) for m in found]

    def test_without_a_sip_or_its_plan(self) -> None:
        assert self.gaps(None) == [("sip", None, [])]
        assert self.gaps(Handover(sip=Meeting(id="m", status="planned"))) == [("plan", None, [])]

    def test_each_recipients_huvudman_needs_an_action_started_not_the_wards_own(self) -> None:
        view = handover(
            action("a1", VAXJO, "vx-boende", "planned"),  # Växjö's, by another unit: counts
            action("a2", REGION, "ward", "started"),  # the ward's own: never counts
            action("a3", VAXJO, "vx-boende", "cancelled"),  # cancelled: left out
        )
        assert self.gaps(view) == [
            ("not_started", "vx-soc", ["a1"]),
            ("action", "rk-oppenvard", []),
        ]

    def test_ready_when_every_such_action_has_started_or_ended(self) -> None:
        view = handover(
            action("a1", VAXJO, "vx-boende", "ended", "2026-11-09T08:00:00+00:00"),
            action("a2", REGION, "rk-oppenvard", "started", "2026-11-11T23:30:00+00:00"),
        )
        assert self.gaps(view) == []
        # By the 11th in Sweden the second had not started (it did at 00:30 on the 12th).
        assert self.gaps(view, by=dt.date(2026, 11, 11)) == [
            ("not_started", "rk-oppenvard", ["a2"])
        ]
        assert self.gaps(view, by=dt.date(2026, 11, 12)) == []

    def test_a_recipient_that_declined_takes_no_part(self) -> None:
        declined = recipient(REGION, "rk-oppenvard", "declined")
        view = handover(action("a1", VAXJO, "vx-boende", "started", "2026-11-09T08:00:00+00:00"))
        found = missing(self.planning, [self.kommun, declined], view, REGION)
        assert found == []
        assert [m.what for m in missing(self.planning, [declined], view, REGION)] == ["recipient"]


class TestTheHvbBlock:
    def test_the_form_and_the_period_are_asked(self) -> None:
        block = HvbDetails.model_validate(
            {"placement_form": "kontraktsvard", "placement_date": "2026-12-21",
             "expected_end_date": "2027-03-21", "hvb_name": "Gläntan"}
        )  # fmt: skip
        assert block.placement_form is PlacementForm.KONTRAKTSVARD
        assert block.placement_form.label == "Kontraktsvård (30 kap. 9 § brottsbalken)"
        with pytest.raises(ValidationError, match="period_required"):
            HvbDetails.model_validate(
                {"placement_form": "annan", "placement_date": "2026-12-21", "hvb_name": "Gläntan"}
            )

    def test_a_block_from_before_is_read_as_not_stated_and_open_ended(self) -> None:
        old = {
            "placement_date": "2026-12-19",
            "hvb_name": "Gläntan",
            "individual_plan_invited": True,
        }
        block = HvbDetails.model_validate(old)
        assert (block.placement_form, block.open_ended, block.expected_end_date) == (
            PlacementForm.EJ_ANGIVEN,
            True,
            None,
        )
        assert "individual_plan_invited" not in block.model_dump()


class TestTheSendersViewOfAnHvbNotification:
    def work(self, day: dt.date) -> Work:
        now = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        settings = make_settings(service="referral", orgnr=VAXJO)
        return Work(None, None, settings, now=now)  # type: ignore[arg-type]  # pure: no I/O

    def test_a_block_from_before_shows_as_not_stated_and_open_ended(self) -> None:
        old = sent(
            "hvb_underrattelse", dt.date(2026, 11, 2),
            placement_date="2026-11-06", hvb_name="Gläntan", individual_plan_invited=True,
        )  # fmt: skip
        status = hvb_status(self.work(dt.date(2026, 11, 9)), old, Handover())
        assert status is not None
        assert (status.placement_form, status.placement_form_label, status.open_ended) == (
            "ej_angiven",
            "Ej angiven",
            True,
        )
        # Due by the placement day, passed, none convened.
        assert (status.sip_by, status.sip_convened, status.sip_overdue) == (
            dt.date(2026, 11, 6),
            False,
            True,
        )
        held = Handover(sip=Meeting(id="m", status="held"))
        assert hvb_status(self.work(dt.date(2026, 11, 9)), old, held) == status.model_copy(
            update={"sip_convened": True, "sip_overdue": False}
        )
