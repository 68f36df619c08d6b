"""Tests of shared.domain.calendar: Swedish public holidays, the eves, working days, local time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from shared.domain.calendar import (
    DE_FACTO_HOLIDAYS,
    STOCKHOLM,
    add_working_days,
    eves,
    is_eve,
    is_public_holiday,
    is_working_day,
    public_holidays,
    to_local,
    working_days_between,
)

D = dt.date


class TestPublicHolidays:
    def test_2026_has_the_thirteen_named_days(self) -> None:
        days = public_holidays(2026)
        assert days == {
            D(2026, 1, 1): "Nyårsdagen",
            D(2026, 1, 6): "Trettondedag jul",
            D(2026, 4, 3): "Långfredagen",
            D(2026, 4, 5): "Påskdagen",
            D(2026, 4, 6): "Annandag påsk",
            D(2026, 5, 1): "Första maj",
            D(2026, 5, 14): "Kristi himmelsfärdsdag",
            D(2026, 5, 24): "Pingstdagen",
            D(2026, 6, 6): "Nationaldagen",
            D(2026, 6, 20): "Midsommardagen",
            D(2026, 10, 31): "Alla helgons dag",
            D(2026, 12, 25): "Juldagen",
            D(2026, 12, 26): "Annandag jul",
        }

    def test_sundays_are_not_listed(self) -> None:
        # 2026-03-01 is an ordinary Sunday; the library can list every Sunday as a holiday.
        assert D(2026, 3, 1).weekday() == 6
        assert D(2026, 3, 1) not in public_holidays(2026)
        sundays = [d for d in public_holidays(2026) if d.weekday() == 6]
        assert sundays == [D(2026, 4, 5), D(2026, 5, 24)]  # påskdagen, pingstdagen

    def test_midsommardagen_is_the_saturday_between_20_and_26_june(self) -> None:
        for year in range(2024, 2031):
            (midsommar,) = [d for d, n in public_holidays(year).items() if n == "Midsommardagen"]
            assert midsommar.weekday() == 5
            assert D(year, 6, 20) <= midsommar <= D(year, 6, 26)

    def test_nationaldagen_on_a_saturday_is_still_a_holiday_and_not_moved(self) -> None:
        # 6 June 2026 is a Saturday: no weekday off in its place.
        assert D(2026, 6, 6).weekday() == 5
        assert public_holidays(2026)[D(2026, 6, 6)] == "Nationaldagen"
        assert is_working_day(D(2026, 6, 5))
        assert is_working_day(D(2026, 6, 8))

    def test_easter_2027_moves(self) -> None:
        days = public_holidays(2027)
        assert days[D(2027, 3, 26)] == "Långfredagen"
        assert days[D(2027, 3, 29)] == "Annandag påsk"

    def test_the_returned_dict_is_a_copy(self) -> None:
        public_holidays(2026).clear()
        assert len(public_holidays(2026)) == 13


class TestEves:
    def test_2026(self) -> None:
        assert eves(2026) == {
            D(2026, 6, 19): "Midsommarafton",
            D(2026, 12, 24): "Julafton",
            D(2026, 12, 31): "Nyårsafton",
        }
        assert set(eves(2026).values()) == set(DE_FACTO_HOLIDAYS)

    def test_eves_are_not_public_holidays(self) -> None:
        for day in eves(2026):
            assert is_eve(day)
            assert not is_public_holiday(day)


class TestIsWorkingDay:
    @pytest.mark.parametrize(
        ("day", "working"),
        [
            (D(2026, 6, 18), True),  # Thursday before midsommar
            (D(2026, 6, 19), False),  # midsommarafton
            (D(2026, 6, 20), False),  # midsommardagen (Saturday)
            (D(2026, 6, 22), True),
            (D(2026, 4, 2), True),  # skärtorsdagen is an ordinary working day
            (D(2026, 4, 3), False),  # långfredagen
            (D(2026, 4, 6), False),  # annandag påsk
            (D(2026, 4, 7), True),
            (D(2026, 5, 14), False),  # Kristi himmelsfärdsdag
            (D(2026, 5, 15), True),  # the "klämdag" after it is a working day
            (D(2026, 12, 24), False),  # julafton
            (D(2026, 12, 31), False),  # nyårsafton
            (D(2027, 1, 1), False),  # nyårsdagen
            (D(2027, 1, 6), False),  # trettondedag jul
            (D(2026, 3, 7), False),  # ordinary Saturday
            (D(2026, 3, 8), False),  # ordinary Sunday
            (D(2026, 3, 9), True),  # ordinary Monday
        ],
    )
    def test_days(self, day: dt.date, working: bool) -> None:
        assert is_working_day(day) is working


class TestAddWorkingDays:
    @pytest.mark.parametrize(
        ("start", "n", "end"),
        [
            # Over Christmas 2026: julafton, juldagen, annandag jul (Sat) and a Sunday.
            (D(2026, 12, 23), 1, D(2026, 12, 28)),
            (D(2026, 12, 23), 4, D(2027, 1, 4)),  # 28, 29, 30, then nyår and a weekend
            # Over Easter 2026: långfredagen to annandag påsk.
            (D(2026, 4, 2), 1, D(2026, 4, 7)),
            (D(2026, 4, 1), 3, D(2026, 4, 8)),
            # Ordinary week and weekend.
            (D(2026, 3, 9), 1, D(2026, 3, 10)),
            (D(2026, 3, 13), 1, D(2026, 3, 16)),
            (D(2026, 3, 14), 1, D(2026, 3, 16)),  # from a Saturday, Monday is the first
            (D(2026, 3, 9), 10, D(2026, 3, 23)),
        ],
    )
    def test_counts_working_days_after_start(self, start: dt.date, n: int, end: dt.date) -> None:
        assert add_working_days(start, n) == end

    def test_zero_is_start_on_a_working_day(self) -> None:
        assert add_working_days(D(2026, 3, 10), 0) == D(2026, 3, 10)

    def test_zero_is_the_next_working_day_otherwise(self) -> None:
        assert add_working_days(D(2026, 12, 24), 0) == D(2026, 12, 28)
        assert add_working_days(D(2026, 4, 3), 0) == D(2026, 4, 7)

    def test_negative_is_refused(self) -> None:
        with pytest.raises(ValueError, match="zero or more"):
            add_working_days(D(2026, 3, 10), -1)


class TestWorkingDaysBetween:
    @pytest.mark.parametrize(
        ("a", "b", "count"),
        [
            (D(2026, 3, 9), D(2026, 3, 9), 0),
            (D(2026, 3, 9), D(2026, 3, 13), 4),
            (D(2026, 3, 13), D(2026, 3, 16), 1),
            (D(2026, 4, 2), D(2026, 4, 7), 1),  # Easter
            (D(2026, 12, 23), D(2026, 12, 28), 1),  # Christmas
            (D(2026, 12, 1), D(2027, 1, 1), 19),
            (D(2026, 3, 13), D(2026, 3, 9), -4),
        ],
    )
    def test_counts(self, a: dt.date, b: dt.date, count: int) -> None:
        assert working_days_between(a, b) == count

    def test_is_the_inverse_of_add_working_days(self) -> None:
        start = D(2026, 12, 20)
        for n in range(1, 30):
            assert working_days_between(start, add_working_days(start, n)) == n


class TestToLocal:
    def test_utc_to_summer_and_winter_time(self) -> None:
        summer = to_local(dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC))
        winter = to_local(dt.datetime(2026, 1, 15, 10, 0, tzinfo=dt.UTC))
        assert (summer.hour, summer.utcoffset()) == (12, dt.timedelta(hours=2))
        assert (winter.hour, winter.utcoffset()) == (11, dt.timedelta(hours=1))
        assert summer.tzinfo is STOCKHOLM

    def test_other_zones_are_converted(self) -> None:
        helsinki = dt.datetime(2026, 1, 15, 12, 0, tzinfo=ZoneInfo("Europe/Helsinki"))
        assert to_local(helsinki).hour == 11

    def test_naive_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            to_local(dt.datetime(2026, 1, 15, 12, 0))
