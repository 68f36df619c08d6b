"""Dates and times as Swedish running text: local time in Europe/Stockholm, summer time
(CEST, UTC+2) and winter time (CET, UTC+1) alike, and the day a late UTC instant is on."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.swedish import date_sv, time_sv

UTC = dt.UTC


class TestDateSv:
    def test_day_month_year(self) -> None:
        assert date_sv(dt.date(2027, 2, 1)) == "1 februari 2027"


class TestTimeSv:
    def test_winter_time_is_utc_plus_one(self) -> None:
        assert time_sv(dt.datetime(2026, 12, 7, 13, 5, tzinfo=UTC)) == "7 december 2026 kl. 14.05"

    def test_summer_time_is_utc_plus_two(self) -> None:
        assert time_sv(dt.datetime(2026, 7, 1, 8, 30, tzinfo=UTC)) == "1 juli 2026 kl. 10.30"

    def test_the_local_day_after_a_late_utc_instant(self) -> None:
        assert time_sv(dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "1 januari 2027 kl. 00.30"

    def test_around_the_change_to_summer_time(self) -> None:
        # 29 March 2026: clocks go from 02.00 to 03.00 (01.00 UTC).
        assert time_sv(dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == "29 mars 2026 kl. 01.59"
        assert time_sv(dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == "29 mars 2026 kl. 03.00"

    def test_any_zone_is_converted(self) -> None:
        at = dt.datetime(2026, 12, 7, 8, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
        assert time_sv(at) == "7 december 2026 kl. 14.05"

    def test_a_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            time_sv(dt.datetime(2026, 12, 7, 14, 5))
