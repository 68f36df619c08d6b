"""Tests of shared.domain.hours: opening hours in Stockholm local time."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.calendar import STOCKHOLM
from shared.domain.hours import (
    Day,
    Interval,
    OpeningHours,
    SpecialDay,
    TimeRange,
    describe_sv,
    is_open,
    next_opening,
)

UTC = dt.UTC
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def local(*args: int) -> dt.datetime:
    """Stockholm wall-clock time."""
    return dt.datetime(*args, tzinfo=STOCKHOLM)


def weekly(*intervals: tuple[str, str, str], **extra: Any) -> OpeningHours:
    """Opening hours from (day, opens, closes) triples and other fields."""
    data = [{"day": d, "opens": o, "closes": c} for d, o, c in intervals]
    return OpeningHours.model_validate({"weekly": data, **extra})


def office(**extra: Any) -> OpeningHours:
    """Mon–Fri 08:00–16:30, the usual office hours."""
    return weekly(*((d, "08:00", "16:30") for d in WEEKDAYS), **extra)


def night_sunday(opens: str, closes: str) -> OpeningHours:
    """Open on Sundays only, e.g. in the night of a daylight-saving change."""
    return weekly(("sun", opens, closes))


class TestWeekly:
    @pytest.mark.parametrize(
        ("at", "open_"),
        [
            (local(2026, 3, 10, 7, 59), False),
            (local(2026, 3, 10, 8, 0), True),
            (local(2026, 3, 10, 12, 0), True),
            (local(2026, 3, 10, 16, 29, 59), True),
            (local(2026, 3, 10, 16, 30), False),  # closes is exclusive
            (local(2026, 3, 14, 12, 0), False),  # Saturday
            (local(2026, 3, 15, 12, 0), False),  # Sunday
        ],
    )
    def test_office_hours(self, at: dt.datetime, open_: bool) -> None:
        assert is_open(office(), at) is open_

    def test_any_time_zone_is_evaluated_in_stockholm(self) -> None:
        # 07:30 UTC is 08:30 in Stockholm in winter.
        assert is_open(office(), dt.datetime(2026, 3, 10, 7, 30, tzinfo=UTC))
        assert not is_open(office(), dt.datetime(2026, 3, 10, 6, 30, tzinfo=UTC))

    def test_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            is_open(office(), dt.datetime(2026, 3, 10, 12, 0))

    def test_lunch_break_and_night_over_midnight(self) -> None:
        hours = weekly(
            ("mon", "08:00", "12:00"),
            ("mon", "13:00", "16:00"),
            ("fri", "22:00", "24:00"),
            ("sat", "00:00", "06:00"),
        )
        assert is_open(hours, local(2026, 3, 9, 11, 59))
        assert not is_open(hours, local(2026, 3, 9, 12, 30))
        assert is_open(hours, local(2026, 3, 13, 23, 59))
        assert is_open(hours, local(2026, 3, 14, 0, 0))
        assert is_open(hours, local(2026, 3, 14, 5, 59))
        assert not is_open(hours, local(2026, 3, 14, 6, 0))
        assert not is_open(hours, local(2026, 3, 13, 21, 59))


class TestHolidaysAndEves:
    def test_closed_on_public_holidays_by_default(self) -> None:
        assert not is_open(office(), local(2026, 4, 3, 10, 0))  # långfredagen
        assert not is_open(office(), local(2026, 5, 14, 10, 0))  # Kristi himmelsfärdsdag
        assert is_open(office(), local(2026, 5, 15, 10, 0))  # the day after

    def test_open_on_public_holidays_when_not_closed(self) -> None:
        hours = office(closed_on_public_holidays=False)
        assert is_open(hours, local(2026, 4, 3, 10, 0))
        assert not is_open(hours, local(2026, 12, 24, 10, 0))  # an eve, still closed

    def test_closed_on_eves_by_default(self) -> None:
        assert not is_open(office(), local(2026, 6, 19, 10, 0))  # midsommarafton
        assert not is_open(office(), local(2026, 12, 24, 10, 0))  # julafton
        assert not is_open(office(), local(2026, 12, 31, 10, 0))  # nyårsafton

    def test_open_on_eves_when_not_closed(self) -> None:
        hours = office(closed_on_eves=False)
        assert is_open(hours, local(2026, 12, 24, 10, 0))
        assert not is_open(hours, local(2026, 12, 25, 10, 0))  # juldagen

    def test_a_weekend_holiday_only_matters_with_weekend_hours(self) -> None:
        # Nationaldagen 2026 is a Saturday.
        saturday = ("sat", "10:00", "14:00")
        assert not is_open(weekly(saturday), local(2026, 6, 6, 11))
        assert is_open(weekly(saturday, closed_on_public_holidays=False), local(2026, 6, 6, 11))


class TestSpecialDays:
    def test_a_closed_special_day_overrides_the_week(self) -> None:
        hours = office(special_days=[{"date": "2026-09-04", "closed": True, "note": "Personaldag"}])
        assert not is_open(hours, local(2026, 9, 4, 10, 0))
        assert is_open(hours, local(2026, 9, 3, 10, 0))

    def test_special_hours_override_the_week(self) -> None:
        hours = office(
            special_days=[
                {"date": "2026-12-23", "intervals": [{"opens": "08:00", "closes": "12:00"}]}
            ]
        )
        assert is_open(hours, local(2026, 12, 23, 11, 59))
        assert not is_open(hours, local(2026, 12, 23, 12, 0))

    def test_special_hours_override_holidays_and_eves(self) -> None:
        hours = office(
            special_days=[
                {"date": "2026-12-24", "intervals": [{"opens": "09:00", "closes": "12:00"}]},
                {"date": "2026-06-06", "intervals": [{"opens": "10:00", "closes": "14:00"}]},
            ]
        )
        assert is_open(hours, local(2026, 12, 24, 10, 0))
        assert is_open(hours, local(2026, 6, 6, 10, 0))

    def test_a_special_day_closes_an_always_open_unit(self) -> None:
        hours = OpeningHours.model_validate(
            {"always_open": True, "special_days": [{"date": "2026-05-01", "closed": True}]}
        )
        assert not is_open(hours, local(2026, 5, 1, 12))
        assert is_open(hours, local(2026, 5, 2, 3))


class TestAlwaysOpen:
    def test_open_every_hour_including_holidays_and_eves(self) -> None:
        hours = OpeningHours(always_open=True)
        for at in (local(2026, 3, 15, 3, 0), local(2026, 12, 24, 23, 59), local(2026, 4, 3, 0, 0)):
            assert is_open(hours, at)

    def test_holiday_rules_are_stored_as_off(self) -> None:
        hours = OpeningHours(always_open=True)
        assert hours.closed_on_public_holidays is False
        assert hours.closed_on_eves is False
        assert OpeningHours.model_validate(hours.model_dump(mode="json")) == hours

    def test_next_opening_is_now(self) -> None:
        at = local(2026, 12, 24, 23, 0)
        assert next_opening(OpeningHours(always_open=True), at) == at


class TestDaylightSavingTime:
    # 2026: clocks go 02:00 -> 03:00 on Sunday 29 March, 03:00 -> 02:00 on Sunday 25 October.

    def test_office_hours_follow_the_wall_clock_across_the_march_change(self) -> None:
        # Friday before: CET (UTC+1); Monday after: CEST (UTC+2).
        assert is_open(office(), dt.datetime(2026, 3, 27, 7, 0, tzinfo=UTC))
        assert not is_open(office(), dt.datetime(2026, 3, 27, 6, 59, tzinfo=UTC))
        assert is_open(office(), dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC))
        assert not is_open(office(), dt.datetime(2026, 3, 30, 5, 59, tzinfo=UTC))
        assert is_open(office(), dt.datetime(2026, 3, 30, 14, 29, tzinfo=UTC))
        assert not is_open(office(), dt.datetime(2026, 3, 30, 14, 30, tzinfo=UTC))

    def test_office_hours_follow_the_wall_clock_across_the_october_change(self) -> None:
        assert is_open(office(), dt.datetime(2026, 10, 23, 6, 0, tzinfo=UTC))  # CEST
        assert not is_open(office(), dt.datetime(2026, 10, 23, 5, 59, tzinfo=UTC))
        assert is_open(office(), dt.datetime(2026, 10, 26, 7, 0, tzinfo=UTC))  # CET
        assert not is_open(office(), dt.datetime(2026, 10, 26, 6, 59, tzinfo=UTC))

    def test_the_night_of_the_march_change(self) -> None:
        hours = night_sunday("00:00", "04:00")
        assert is_open(hours, dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
        assert is_open(hours, dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST
        assert is_open(hours, dt.datetime(2026, 3, 29, 1, 59, tzinfo=UTC))  # 03:59 CEST
        assert not is_open(hours, dt.datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST

    def test_the_repeated_hour_of_the_october_change_is_open_twice(self) -> None:
        hours = night_sunday("02:00", "03:00")
        assert not is_open(hours, dt.datetime(2026, 10, 24, 23, 59, tzinfo=UTC))  # 01:59 CEST
        assert is_open(hours, dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
        assert is_open(hours, dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
        assert not is_open(hours, dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC))  # 03:00 CET

    def test_next_opening_inside_the_march_gap_is_when_the_clocks_jump(self) -> None:
        # 02:30 never shows on 29 March; the unit is open from the jump to 03:00.
        hours = night_sunday("02:30", "05:00")
        opening = next_opening(hours, local(2026, 3, 28, 12, 0))
        assert opening == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
        assert opening is not None
        assert (opening.hour, opening.minute) == (3, 0)

    def test_an_interval_inside_the_march_gap_never_opens(self) -> None:
        hours = night_sunday("02:15", "02:45")
        opening = next_opening(hours, local(2026, 3, 28, 12, 0))
        # Not 5 April either: that is påskdagen.
        assert opening == local(2026, 4, 12, 2, 15)

    def test_next_opening_in_the_repeated_hour(self) -> None:
        # Compared in UTC: Python never finds a time in the repeated hour equal to one in
        # another zone (PEP 495), so == against a UTC datetime would always be False.
        hours = night_sunday("02:30", "02:45")
        # At 02:15 the first time round the unit opens at the first 02:30 (CEST) ...
        first = next_opening(hours, dt.datetime(2026, 10, 25, 0, 15, tzinfo=UTC))
        assert first is not None
        assert first.astimezone(UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
        assert (first.hour, first.minute, first.utcoffset()) == (2, 30, dt.timedelta(hours=2))
        # ... and at 02:15 the second time round at the second 02:30 (CET).
        second = next_opening(hours, dt.datetime(2026, 10, 25, 1, 15, tzinfo=UTC))
        assert second is not None
        assert second.astimezone(UTC) == dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        assert (second.hour, second.minute, second.utcoffset()) == (2, 30, dt.timedelta(hours=1))


class TestNextOpening:
    def test_over_the_easter_weekend(self) -> None:
        # Skärtorsdagen evening -> Tuesday after annandag påsk.
        opening = next_opening(office(), local(2026, 4, 2, 17, 0))
        assert opening == local(2026, 4, 7, 8, 0)
        assert opening is not None
        assert opening.tzinfo is STOCKHOLM

    def test_over_christmas_and_new_year(self) -> None:
        assert next_opening(office(), local(2026, 12, 23, 17, 0)) == local(2026, 12, 28, 8, 0)
        assert next_opening(office(), local(2026, 12, 30, 17, 0)) == local(2027, 1, 4, 8, 0)

    def test_later_the_same_day(self) -> None:
        hours = weekly(("mon", "08:00", "12:00"), ("mon", "13:00", "16:00"))
        assert next_opening(hours, local(2026, 3, 9, 12, 15)) == local(2026, 3, 9, 13, 0)

    def test_when_open_it_is_the_moment_itself_in_stockholm_time(self) -> None:
        at = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
        opening = next_opening(office(), at)
        assert opening == at
        assert opening is not None
        assert opening.tzinfo is STOCKHOLM

    def test_a_special_day_is_found(self) -> None:
        hours = OpeningHours.model_validate(
            {
                "special_days": [
                    {"date": "2026-05-01", "intervals": [{"opens": "10:00", "closes": "11:00"}]}
                ]
            }
        )
        assert next_opening(hours, local(2026, 4, 20, 12)) == local(2026, 5, 1, 10, 0)

    def test_none_beyond_the_horizon(self) -> None:
        hours = OpeningHours()
        assert next_opening(hours, local(2026, 3, 10, 12)) is None
        summer = OpeningHours.model_validate(
            {
                "special_days": [
                    {"date": "2026-08-01", "intervals": [{"opens": "10:00", "closes": "11:00"}]}
                ]
            }
        )
        assert next_opening(summer, local(2026, 3, 10, 12)) is None
        assert next_opening(summer, local(2026, 3, 10, 12), horizon_days=200) == local(
            2026, 8, 1, 10, 0
        )

    def test_negative_horizon_is_refused(self) -> None:
        with pytest.raises(ValueError, match="horizon_days"):
            next_opening(office(), local(2026, 3, 10, 12), horizon_days=-1)


class TestValidation:
    @pytest.mark.parametrize(
        ("data", "rule"),
        [
            ({"weekly": [{"day": "mon", "opens": "16:00", "closes": "08:00"}]}, "interval_order"),
            ({"weekly": [{"day": "mon", "opens": "08:00", "closes": "08:00"}]}, "interval_order"),
            (
                {
                    "weekly": [
                        {"day": "tue", "opens": "08:00", "closes": "12:00"},
                        {"day": "tue", "opens": "11:30", "closes": "16:00"},
                    ]
                },
                "interval_overlap",
            ),
            (
                {
                    "always_open": True,
                    "weekly": [{"day": "mon", "opens": "08:00", "closes": "16:00"}],
                },
                "always_open_weekly",
            ),
            ({"special_days": [{"date": "2026-12-24"}]}, "special_day_closed"),
            (
                {
                    "special_days": [
                        {
                            "date": "2026-12-24",
                            "closed": True,
                            "intervals": [{"opens": "08:00", "closes": "12:00"}],
                        }
                    ]
                },
                "special_day_closed",
            ),
            (
                {
                    "special_days": [
                        {
                            "date": "2026-12-24",
                            "intervals": [
                                {"opens": "08:00", "closes": "12:00"},
                                {"opens": "09:00", "closes": "10:00"},
                            ],
                        }
                    ]
                },
                "interval_overlap",
            ),
            (
                {
                    "special_days": [
                        {"date": "2026-12-24", "closed": True},
                        {"date": "2026-12-24", "closed": True},
                    ]
                },
                "special_day_duplicate",
            ),
            ({"weekly": [{"day": "mon", "opens": "08:00Z", "closes": "16:00"}]}, "local_time"),
            (
                {"weekly": [{"day": "mon", "opens": "08:00:30", "closes": "16:00"}]},
                "time_precision",
            ),
            ({"weekly": [{"day": "mon", "opens": 28800, "closes": "16:00"}]}, "local_time"),
            (
                {
                    "special_days": [
                        {"date": f"2026-01-{d:02d}", "closed": True} for d in range(1, 32)
                    ]
                    + [{"date": f"2026-02-{d:02d}", "closed": True} for d in range(1, 21)]
                },
                "too_long",
            ),
            ({"note": "Anna Andersson " * 20}, "string_too_long"),
            ({"weekly": [], "extra_field": "Anna Andersson"}, "extra_forbidden"),
        ],
    )
    def test_rule_and_no_input_echo(self, data: dict[str, Any], rule: str) -> None:
        with pytest.raises(ValidationError) as info:
            OpeningHours.model_validate(data)
        errors = info.value.errors()
        assert rule in {e["type"] for e in errors}
        rendered = str(info.value)
        assert "Anna Andersson" not in rendered
        assert "input_value" not in rendered
        for error in errors:
            assert "Anna" not in error["msg"]
            assert "08:00" not in error["msg"]

    def test_touching_intervals_are_allowed(self) -> None:
        weekly(("mon", "08:00", "12:00"), ("mon", "12:00", "16:00"))

    def test_50_special_days_are_allowed(self) -> None:
        days = [
            {"date": (dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat(), "closed": True}
            for i in range(50)
        ]
        assert len(OpeningHours.model_validate({"special_days": days}).special_days) == 50

    def test_models_validate_on_their_own(self) -> None:
        with pytest.raises(ValidationError) as info:
            TimeRange(opens=dt.time(12), closes=dt.time(11))
        assert info.value.errors()[0]["type"] == "interval_order"
        with pytest.raises(ValidationError):
            Interval(day=Day.MON, opens=dt.time(12), closes=dt.time(11))
        with pytest.raises(ValidationError):
            SpecialDay(date=dt.date(2026, 1, 2))

    def test_24_00_is_stored_as_midnight_and_round_trips(self) -> None:
        hours = weekly(("fri", "22:00", "24:00"))
        assert hours.weekly[0].closes == dt.time(0, 0)
        dumped = hours.model_dump(mode="json")
        assert OpeningHours.model_validate(dumped) == hours

    def test_order_is_canonical(self) -> None:
        hours = weekly(
            ("fri", "08:00", "12:00"),
            ("mon", "13:00", "16:00"),
            ("mon", "08:00", "12:00"),
            special_days=[
                {"date": "2026-12-31", "closed": True},
                {"date": "2026-06-19", "closed": True},
            ],
        )
        assert [(i.day, i.opens.hour) for i in hours.weekly] == [
            (Day.MON, 8),
            (Day.MON, 13),
            (Day.FRI, 8),
        ]
        assert [s.date.month for s in hours.special_days] == [6, 12]

    @pytest.mark.parametrize(
        ("value", "rule"),
        [("08:00:00.000", "time_format"), ("08:00:00.0", "time_format"), ("0800", "time_parsing")],
    )
    def test_only_the_published_form_is_taken(self, value: str, rule: str) -> None:
        with pytest.raises(ValidationError) as info:
            weekly(("mon", value, "16:00"))
        assert rule in {e["type"] for e in info.value.errors()}

    def test_json_schema_publishes_local_time_not_format_time(self) -> None:
        # ``format: time`` (RFC 3339) requires a UTC offset, which a wall-clock time has not.
        schema = OpeningHours.model_json_schema()
        fields = schema["$defs"]["TimeRange"]["properties"]
        for name in ("opens", "closes"):
            assert "format" not in fields[name]
            assert fields[name]["type"] == "string"
            assert "Swedish local time" in fields[name]["description"]
        opens = re.compile(fields["opens"]["pattern"])
        closes = re.compile(fields["closes"]["pattern"])
        # What answers carry (as stored) and what people write both match; 24:00 closes only.
        answer = weekly(("fri", "08:00", "24:00")).model_dump(mode="json")["weekly"][0]
        assert opens.match(answer["opens"])
        assert closes.match(answer["closes"])
        for text in ("00:00", "08:00", "23:59", "08:00:00"):
            assert opens.match(text)
            assert closes.match(text)
        assert closes.match("24:00")
        for text in ("24:00", "08:00Z", "08:00+01:00", "08:00:30", "8:00", "08:00:00.000"):
            assert not opens.match(text), text

    def test_json_schema_has_examples_that_validate(self) -> None:
        schema = OpeningHours.model_json_schema()
        assert schema["examples"]
        for example in schema["examples"]:
            OpeningHours.model_validate(example)
        assert schema["examples"][0]["weekly"][0] == {
            "day": "mon",
            "opens": "08:00",
            "closes": "16:30",
        }
        assert "two intervals" in schema["$defs"]["Interval"]["description"]


class TestDescribeSv:
    def test_office_hours(self) -> None:
        assert describe_sv(office()) == [
            "Mån–Fre 08:00–16:30",
            "Stängt helgdagar samt midsommar-, jul- och nyårsafton",
        ]

    def test_runs_breaks_and_special_days(self) -> None:
        split_day = [("08:00", "12:00"), ("13:00", "16:00")]
        hours = weekly(
            *((day, o, c) for day in ("mon", "tue", "thu") for o, c in split_day),
            ("sat", "22:00", "24:00"),
            closed_on_eves=False,
            special_days=[
                {"date": "2026-09-04", "closed": True, "note": "Personaldag"},
                {"date": "2026-12-23", "intervals": [{"opens": "08:00", "closes": "12:00"}]},
            ],
            note="Drop-in tisdagar",
        )
        assert describe_sv(hours) == [
            "Mån–Tis 08:00–12:00, 13:00–16:00",
            "Tor 08:00–12:00, 13:00–16:00",
            "Lör 22:00–24:00",
            "Stängt helgdagar",
            "2026-09-04: stängt (Personaldag)",
            "2026-12-23: 08:00–12:00",
            "Drop-in tisdagar",
        ]

    def test_always_open(self) -> None:
        assert describe_sv(OpeningHours(always_open=True)) == ["Dygnet runt"]

    def test_holiday_rule_variants(self) -> None:
        assert describe_sv(office(closed_on_public_holidays=False))[-1] == (
            "Stängt midsommar-, jul- och nyårsafton"
        )
        assert describe_sv(office(closed_on_public_holidays=False, closed_on_eves=False))[-1] == (
            "Helgdagar enligt ordinarie öppettider"
        )

    def test_no_weekly_hours(self) -> None:
        assert describe_sv(OpeningHours()) == ["Inga ordinarie öppettider"]
