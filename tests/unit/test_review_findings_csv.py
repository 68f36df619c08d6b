"""Issue 19: one CSV writer (shared.web.csvout) for every export, neutralising formulas as OWASP
recommends while plain numbers stay numbers, and the guard comes off again exactly."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from services.referral.indicators import as_csv
from shared.web.csvout import guard, unguard, write_csv


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


class TestFormulasAreText:
    def test_every_formula_start_gets_a_quote(self) -> None:
        for value in ("=1+1", "+A1", "-A1", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("x")'):
            assert guard(value) == "'" + value

    def test_plain_numbers_and_dates_stay(self) -> None:
        for value in ("-12", "+46", "-0.25", "1e-3", "2026-12-01", "0470-41 00 00", ""):
            assert guard(value) == value
        assert guard(-3) == "-3"
        assert guard(-0.5) == "-0.5"
        assert guard(None) == ""

    def test_a_cell_already_starting_with_a_quote_gets_another(self) -> None:
        assert guard("'=x") == "''=x"
        assert guard("'plain") == "''plain"

    @given(st.text())
    def test_the_guard_comes_off_exactly(self, value: str) -> None:
        assert unguard(guard(value)) == value

    def test_the_writer_guards_every_cell_and_keeps_the_bom(self) -> None:
        text = write_csv(["a", "b"], [["=cmd|' /C calc'!A0", -1], ["@x", None]], bom=True)
        assert text.startswith("\ufeff")
        assert cells(text) == [["a", "b"], ["'=cmd|' /C calc'!A0", "-1"], ["'@x", ""]]


class TestIndicatorsCsv:
    def test_numbers_stay_numbers(self) -> None:
        data = {
            "outgoing": {},
            "incoming": {},
            "days_to_first_meeting": {"n": 2, "median": -1.5, "p90": None},
            "discharge_planning": {
                "sent": 1,
                "with_sip_before_discharge": 0,
                "share_with_sip_before_discharge": 0.0,
            },
            "plan_actions": {"ended": 0, "ended_without_notice": 0},
            "follow_ups": {"due": 0, "held_on_time": 0, "share_held_on_time": None},
            "escalations": {
                "total": 2,
                "by_kind": {"action_start": 2, "action_end": 0},
                "by_owner_member": {"212000-0647": {"action_start": 2, "action_end": 0}},
            },
            "days_from_remissmote_to_first_action": {"n": 1, "median": -0.5, "p90": -0.5},
            "children": {
                "outgoing": {"kontaktbegaran": {"yes": 1, "no": 2, "unknown": 0}},
                "incoming": {},
            },
            "kontaktbegaran_outcomes": {"=evil": 1},
            "kontaktbegaran_decisions": {"granted": 3},
            "hvb": {"sent": 2, "with_sip_held_by_placement": 1},
            "discharges": {"recorded": 1, "unplanned": 1},
        }
        rows = cells(as_csv(data))
        assert rows[0] == ["indicator", "direction", "kind", "value"]
        assert ["days_to_first_meeting_median", "incoming", "vardkedjeremiss", "-1.5"] in rows
        first_action = ["days_from_remissmote_to_first_action_p90", "", "vardkedjeremiss", "-0.5"]
        assert first_action in rows
        assert ["escalations_action_start_owner_212000-0647", "", "", "2"] in rows
        assert ["children_no", "outgoing", "kontaktbegaran", "2"] in rows
        assert ["kontaktbegaran_outcome_=evil", "outgoing", "kontaktbegaran", "1"] in rows
        assert ["kontaktbegaran_decision_granted", "outgoing", "kontaktbegaran", "3"] in rows
        assert ["discharges_unplanned", "outgoing", "utskrivningsplanering", "1"] in rows
