"""The Swedish calendar: public holidays, the three eves, working days and local time.

Used by the directory (opening hours) and by referral deadlines (working days).

* **Public holidays** (allmänna helgdagar, lag 1989:253) come from the maintained
  ``holidays`` library, in Swedish, without Sundays: the library can list every Sunday as
  a holiday, which is true in law but useless for "which named days are closed".
* **The eves** (midsommarafton, julafton, nyårsafton) are not public holidays, but the
  working-time and annual-leave rules treat them like Sundays (semesterlagen 1977:480
  § 7 "Med söndag jämställs allmän helgdag samt midsommarafton, julafton och nyårsafton"),
  and in practice they are non-working days. They come from the library's ``de_facto``
  category.
* **A working day** is Monday to Friday and neither of the above.

Everything local is in ``Europe/Stockholm``; a naive datetime is refused rather than
guessed at (the project's timestamps are timezone-aware UTC).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "DE_FACTO_HOLIDAYS",
    "STOCKHOLM",
    "add_working_days",
    "end_of_day",
    "eves",
    "is_eve",
    "is_public_holiday",
    "is_working_day",
    "non_working_reason",
    "public_holidays",
    "to_local",
    "working_days_between",
]

STOCKHOLM: Final = ZoneInfo("Europe/Stockholm")
"""The time zone every local (wall-clock) rule of the project is evaluated in."""

DE_FACTO_HOLIDAYS: Final = ("Midsommarafton", "Julafton", "Nyårsafton")
"""The eves that are not public holidays by law but are non-working days in practice."""

_SWEDISH: Final = "sv"
_SATURDAY: Final = 5
# Enough for the years a running system looks at (this year, neighbours, deadlines).
_CACHED_YEARS: Final = 64


@lru_cache(maxsize=_CACHED_YEARS)
def _holidays(year: int, category: str) -> MappingProxyType[date, str]:
    # include_sundays=False is the library's default today; it is explicit because a
    # Sunday listed as a "holiday" would silently change what "closed on holidays" means.
    days = holidays.country_holidays(
        "SE", years=year, language=_SWEDISH, categories=(category,), include_sundays=False
    )
    return MappingProxyType(dict(sorted(days.items())))


def public_holidays(year: int) -> dict[date, str]:
    """The Swedish public holidays of ``year`` by date, with their Swedish names.

    Nyårsdagen, trettondedag jul, långfredagen, påskdagen, annandag påsk, första maj,
    Kristi himmelsfärdsdag, nationaldagen, pingstdagen, midsommardagen, alla helgons dag,
    juldagen and annandag jul. Sundays are not listed (every Sunday is a holiday in law).
    """
    return dict(_holidays(year, holidays.PUBLIC))


def eves(year: int) -> dict[date, str]:
    """Midsommarafton, julafton and nyårsafton of ``year`` (see :data:`DE_FACTO_HOLIDAYS`)."""
    return dict(_holidays(year, holidays.DE_FACTO))


def is_public_holiday(d: date) -> bool:
    """Whether ``d`` is a public holiday (Sundays that are not named holidays excluded)."""
    return d in _holidays(d.year, holidays.PUBLIC)


def is_eve(d: date) -> bool:
    """Whether ``d`` is midsommarafton, julafton or nyårsafton."""
    return d in _holidays(d.year, holidays.DE_FACTO)


def is_working_day(d: date) -> bool:
    """Whether ``d`` is Monday to Friday and neither a public holiday nor one of the eves."""
    return d.weekday() < _SATURDAY and not is_public_holiday(d) and not is_eve(d)


_WEEKDAYS_SV: Final = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag")


def non_working_reason(d: date) -> tuple[str, str] | None:
    """Why ``d`` is not a working day, as (reason, Swedish name): ``public_holiday`` with the
    holiday's name (``Annandag jul``, also on a weekend), ``eve`` (``Julafton``) or
    ``weekend`` (``lördag``, ``söndag``); None for a working day."""
    holiday = _holidays(d.year, holidays.PUBLIC).get(d)
    if holiday is not None:
        return "public_holiday", holiday
    eve = _holidays(d.year, holidays.DE_FACTO).get(d)
    if eve is not None:
        return "eve", eve
    if d.weekday() >= _SATURDAY:
        return "weekend", _WEEKDAYS_SV[d.weekday()]
    return None


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself is not counted).

    ``n = 0`` gives ``start`` if it is a working day, else the next working day. So a
    deadline of three working days from a Saturday ends on Wednesday, and from
    2026-12-23 one working day later is 2026-12-28 (julafton, juldagen, annandag jul and
    a Sunday in between).
    """
    if n < 0:
        raise ValueError("n must be zero or more")
    day = start
    if n == 0:
        while not is_working_day(day):
            day += timedelta(days=1)
        return day
    remaining = n
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def working_days_between(a: date, b: date) -> int:
    """The number of working days after ``a`` up to and including ``b``.

    The inverse of :func:`add_working_days`: ``working_days_between(a,
    add_working_days(a, n)) == n`` for ``n >= 1``. Negative when ``b`` is before ``a``;
    zero when they are the same day.
    """
    if b < a:
        return -working_days_between(b, a)
    count = 0
    day = a
    while day < b:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


def to_local(dt: datetime) -> datetime:
    """``dt`` as Stockholm local time; a naive datetime is refused with ``ValueError``."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")
    return dt.astimezone(STOCKHOLM)


def end_of_day(d: date) -> datetime:
    """23:59 Swedish time on ``d`` (a deadline "by" that day), as an aware datetime."""
    return datetime.combine(d, time(23, 59), tzinfo=STOCKHOLM)
