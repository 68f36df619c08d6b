"""Opening hours of a unit: when its function can be reached, in Swedish local time.

An :class:`OpeningHours` is a weekly schedule of :class:`Interval` s, rules for public
holidays and the three eves (``shared.domain.calendar``), and :class:`SpecialDay` s that override
everything for one date (e.g. "stängt 2026-07-20", "10:00–14:00 on julafton").

All times are Stockholm wall-clock times, so a unit open 08:00–16:30 opens at 08:00 on
both sides of a daylight-saving change. :func:`is_open` and :func:`next_opening` take
aware datetimes (in any zone) and evaluate them in ``Europe/Stockholm``;
:func:`describe_sv` renders short Swedish lines for the printable overview.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.domain.calendar import STOCKHOLM, is_eve, is_public_holiday, to_local
from shared.web.fields import IsoDate, JsonBool

__all__ = [
    "ClosingTime",
    "Day",
    "Interval",
    "OpeningHours",
    "OpeningTime",
    "SpecialDay",
    "TimeRange",
    "day_runs",
    "describe_sv",
    "is_open",
    "next_opening",
]

_MIDNIGHT: Final = dt.time(0, 0)
_MINUTES_PER_DAY: Final = 24 * 60
# Bounds that keep one unit's entry small; no real schedule comes near them.
_MAX_INTERVALS_PER_DAY: Final = 10
_MAX_WEEKLY_INTERVALS: Final = 7 * _MAX_INTERVALS_PER_DAY
_MAX_SPECIAL_DAYS: Final = 50

# A span is [start, end) in minutes since local midnight; end 1440 is the end of the day.
_Span = tuple[int, int]


class Day(StrEnum):
    """A day of the week."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, d: dt.date) -> Day:
        """The day of the week of ``d``."""
        return _DAYS[d.weekday()]


_DAYS: Final = tuple(Day)
_DAY_SV: Final = {
    Day.MON: "Mån",
    Day.TUE: "Tis",
    Day.WED: "Ons",
    Day.THU: "Tor",
    Day.FRI: "Fre",
    Day.SAT: "Lör",
    Day.SUN: "Sön",
}


def _local_time(value: dt.time) -> dt.time:
    # Opening hours are Stockholm wall-clock times; an offset would be wrong half the year
    # (and pydantic turns a bare number of seconds into a UTC time).
    if value.tzinfo is not None:
        raise PydanticCustomError("local_time", "give a local time without a UTC offset")
    if value.second or value.microsecond:
        raise PydanticCustomError("time_precision", "give the time in whole minutes (HH:MM)")
    return value


_END_OF_DAY: Final = ("24:00", "24:00:00")


def _end_of_day(value: Any) -> Any:
    # People write "until midnight" as 24:00, which ``time`` cannot hold: it is stored as
    # 00:00, which as a closing time means the end of the day.
    if isinstance(value, str) and value in _END_OF_DAY:
        return _MIDNIGHT
    return value


# The published form: Stockholm wall-clock time in whole minutes, seconds optional (and
# then :00, as answers write it). No offset: see _local_time.
_HH_MM: Final = r"([01][0-9]|2[0-3]):[0-5][0-9]"
_WALL_CLOCK: Final = re.compile(rf"{_HH_MM}(:00)?")
_LOCAL_TIME_DESCRIPTION: Final = (
    "Swedish local time (Europe/Stockholm wall clock, no UTC offset) in whole minutes: "
    "`HH:MM`; answers write `HH:MM:SS` with `:00` seconds."
)


def _wall_clock(value: Any, handler: ValidatorFunctionWrapHandler) -> dt.time:
    # Only text in the published form: pydantic alone would also take a number of seconds,
    # fractions of a second and other spellings the schema does not promise.
    if not isinstance(value, str | dt.time):
        raise PydanticCustomError("local_time", "give a local time as text, HH:MM")
    parsed = _local_time(handler(value))
    if isinstance(value, str) and not _WALL_CLOCK.fullmatch(value):
        raise PydanticCustomError("time_format", "give the time as HH:MM")
    return parsed


OpeningTime = Annotated[
    dt.time,
    WrapValidator(_wall_clock),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^{_HH_MM}(:00)?$",
            "description": _LOCAL_TIME_DESCRIPTION,
            "examples": ["08:00"],
        }
    ),
]
"""A local wall-clock time in whole minutes."""

ClosingTime = Annotated[
    OpeningTime,
    BeforeValidator(_end_of_day),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^({_HH_MM}|24:00)(:00)?$",
            "description": _LOCAL_TIME_DESCRIPTION + " `00:00` or `24:00` is the end of the day.",
            "examples": ["16:30"],
        }
    ),
]
"""Like :data:`OpeningTime`; ``00:00`` (or ``24:00`` on input) means the end of the day."""


def _span(opens: dt.time, closes: dt.time) -> _Span:
    end = _MINUTES_PER_DAY if closes == _MIDNIGHT else closes.hour * 60 + closes.minute
    return opens.hour * 60 + opens.minute, end


def _check_order(opens: dt.time, closes: dt.time) -> None:
    start, end = _span(opens, closes)
    if end <= start:
        raise PydanticCustomError(
            "interval_order",
            "closes must be after opens; split a night over midnight into two intervals",
        )


def _check_overlap(spans: list[_Span]) -> None:
    ordered = sorted(spans)
    # Touching intervals (08:00–12:00, 12:00–16:00) are allowed; they describe no gap.
    if any(prev[1] > nxt[0] for prev, nxt in pairwise(ordered)):
        raise PydanticCustomError("interval_overlap", "intervals on the same day overlap")


_STRICT: Final = ConfigDict(extra="forbid", hide_input_in_errors=True)


class TimeRange(BaseModel):
    """Open from ``opens`` until ``closes`` on one day (``closes`` 00:00 = midnight).

    ``closes`` must be after ``opens``. A night over midnight is two intervals: 22:00–00:00
    on the first day and 00:00–06:00 on the next.
    """

    model_config = _STRICT

    opens: OpeningTime
    closes: ClosingTime

    @model_validator(mode="after")
    def _order(self) -> Self:
        _check_order(self.opens, self.closes)
        return self


class Interval(TimeRange):
    """Open on ``day`` of every week from ``opens`` until ``closes`` (00:00 = midnight).

    ``closes`` must be after ``opens``. A night over midnight is two intervals, e.g.
    fri 22:00–00:00 and sat 00:00–06:00.
    """

    day: Day


class SpecialDay(BaseModel):
    """One date whose hours replace the weekly schedule and the holiday rules.

    Either ``closed`` (and no intervals) or open during ``intervals``.
    """

    model_config = _STRICT

    date: IsoDate
    closed: JsonBool = False
    intervals: list[TimeRange] = Field(default_factory=list, max_length=_MAX_INTERVALS_PER_DAY)
    note: str | None = Field(None, max_length=200, description="e.g. 'Personaldag'")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.closed == bool(self.intervals):
            raise PydanticCustomError(
                "special_day_closed", "a special day is either closed or has intervals"
            )
        _check_overlap([_span(i.opens, i.closes) for i in self.intervals])
        self.intervals.sort(key=lambda i: i.opens)
        return self


_WEEKDAYS_EXAMPLE: list[JsonValue] = [
    {"day": d, "opens": "08:00", "closes": "16:30"} for d in ("mon", "tue", "wed", "thu", "fri")
]


class OpeningHours(BaseModel):
    """When a unit is open, in Stockholm local time.

    Precedence for a date: a special day; else ``always_open``; else closed on a public
    holiday or an eve if ``closed_on_public_holidays`` / ``closed_on_eves``; else the
    weekly intervals of that weekday. ``always_open`` means every hour of every day, so it
    takes no weekly intervals and the holiday rules are turned off (close a 24/7 unit on a
    date with a special day).
    """

    model_config = ConfigDict(
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {"weekly": _WEEKDAYS_EXAMPLE},
                {
                    "weekly": [
                        *_WEEKDAYS_EXAMPLE,
                        {"day": "sat", "opens": "10:00", "closes": "14:00"},
                    ],
                    "closed_on_eves": True,
                    "special_days": [
                        {
                            "date": "2026-12-23",
                            "intervals": [{"opens": "08:00", "closes": "12:00"}],
                        },
                        {"date": "2026-09-04", "closed": True, "note": "Personaldag"},
                    ],
                },
                {"always_open": True, "note": "Jourtelefon dygnet runt"},
            ]
        },
    )

    always_open: JsonBool = Field(False, description="open every hour of every day (dygnet runt)")
    weekly: list[Interval] = Field(default_factory=list, max_length=_MAX_WEEKLY_INTERVALS)
    closed_on_public_holidays: JsonBool = Field(
        True, description="closed on the Swedish public holidays (helgdagar)"
    )
    closed_on_eves: JsonBool = Field(
        True, description="closed on midsommarafton, julafton and nyårsafton"
    )
    special_days: list[SpecialDay] = Field(
        default_factory=list,
        max_length=_MAX_SPECIAL_DAYS,
        description="dates that override everything else",
    )
    note: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.always_open:
            if self.weekly:
                raise PydanticCustomError(
                    "always_open_weekly", "always_open takes no weekly intervals"
                )
            # Stored as it behaves, so the entry never claims a 24/7 unit shuts on holidays.
            self.closed_on_public_holidays = False
            self.closed_on_eves = False
        for day in Day:
            _check_overlap([_span(i.opens, i.closes) for i in self.weekly if i.day is day])
        dates = [s.date for s in self.special_days]
        if len(set(dates)) != len(dates):
            raise PydanticCustomError("special_day_duplicate", "a date has two special days")
        # A canonical order keeps stored entries (and their ETags) stable.
        self.weekly.sort(key=lambda i: (_DAYS.index(i.day), i.opens))
        self.special_days.sort(key=lambda s: s.date)
        return self


def _spans_on(hours: OpeningHours, day: dt.date) -> list[_Span]:
    """The open spans of local date ``day``, after every rule is applied."""
    for special in hours.special_days:
        if special.date == day:
            return [_span(i.opens, i.closes) for i in special.intervals]
    if hours.always_open:
        return [(0, _MINUTES_PER_DAY)]
    if hours.closed_on_public_holidays and is_public_holiday(day):
        return []
    if hours.closed_on_eves and is_eve(day):
        return []
    weekday = Day.of(day)
    return sorted(_span(i.opens, i.closes) for i in hours.weekly if i.day is weekday)


def is_open(hours: OpeningHours, at: dt.datetime) -> bool:
    """Whether the unit is open at ``at`` (aware; evaluated in Stockholm local time)."""
    local = to_local(at)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _spans_on(hours, local.date()))


def _instants_at(wall: dt.datetime) -> list[dt.datetime]:
    """The instants at which Stockholm's clocks show naive ``wall``, earliest first.

    One instant on most days; two in the autumn hour that repeats; in the spring gap
    (a wall time that never shows) the moment the clocks jump past it.
    """
    instants: list[dt.datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=STOCKHOLM, fold=fold).astimezone(dt.UTC)
        if instant.astimezone(STOCKHOLM).replace(tzinfo=None) != wall:
            # In the gap fold=1 reads an instant before the jump; walk to the jump.
            instant = wall.replace(tzinfo=STOCKHOLM, fold=1).astimezone(dt.UTC)
            while instant.astimezone(STOCKHOLM).replace(tzinfo=None) < wall:
                instant += dt.timedelta(minutes=1)
            return [instant.astimezone(STOCKHOLM)]
        if instant not in instants:
            instants.append(instant)
    return [i.astimezone(STOCKHOLM) for i in instants]


def next_opening(
    hours: OpeningHours, after: dt.datetime, horizon_days: int = 60
) -> dt.datetime | None:
    """The first moment at or after ``after`` when the unit is open, in Stockholm time.

    ``after`` itself (as Stockholm time) if the unit is open then; ``None`` if it does not
    open within ``horizon_days`` days after the local date of ``after``.
    """
    if horizon_days < 0:
        raise ValueError("horizon_days must be zero or more")
    local = to_local(after)
    if is_open(hours, local):
        return local
    # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock, fold ignored.
    after_utc = local.astimezone(dt.UTC)
    for offset in range(horizon_days + 1):
        day = local.date() + dt.timedelta(days=offset)
        for start, _end in _spans_on(hours, day):
            wall = dt.datetime.combine(day, dt.time(start // 60, start % 60))
            for instant in _instants_at(wall):
                # is_open rechecks: an interval inside the spring gap never opens.
                if instant.astimezone(dt.UTC) > after_utc and is_open(hours, instant):
                    return instant
    return None


def day_runs(weekly: Mapping[Day, object]) -> list[list[Day]]:
    """The days with hours (a non-empty value in ``weekly``, which names every day), Monday
    first, in runs of neighbouring days with equal hours: "Mån–Ons" never hides a closed
    Tuesday."""
    runs: list[list[Day]] = []
    for day in Day:
        if not weekly[day]:
            continue
        prev = runs[-1][-1] if runs else None
        if prev and _DAYS.index(prev) + 1 == _DAYS.index(day) and weekly[prev] == weekly[day]:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _spans_sv(spans: list[_Span]) -> str:
    return ", ".join(f"{_hhmm(start)}–{_hhmm(end)}" for start, end in spans)


def describe_sv(hours: OpeningHours) -> list[str]:
    """Short Swedish lines for the printable overview, e.g. ``"Mån–Fre 08:00–16:30"``.

    Consecutive weekdays with the same hours share a line; then the holiday rule
    (``"Stängt helgdagar"``), the special days by date and the note.
    """
    lines: list[str] = []
    if hours.always_open:
        lines.append("Dygnet runt")
    else:
        weekly = {
            day: sorted(_span(i.opens, i.closes) for i in hours.weekly if i.day is day)
            for day in Day
        }
        for run in day_runs(weekly):
            first, last = _DAY_SV[run[0]], _DAY_SV[run[-1]]
            days = first if len(run) == 1 else f"{first}–{last}"
            lines.append(f"{days} {_spans_sv(weekly[run[0]])}")
        if hours.weekly:
            lines.append(_holiday_rule_sv(hours))
        else:
            lines.append("Inga ordinarie öppettider")
    for special in hours.special_days:
        when = (
            "stängt"
            if special.closed
            else _spans_sv([_span(i.opens, i.closes) for i in special.intervals])
        )
        note = f" ({special.note})" if special.note else ""
        lines.append(f"{special.date.isoformat()}: {when}{note}")
    if hours.note:
        lines.append(hours.note)
    return lines


def _holiday_rule_sv(hours: OpeningHours) -> str:
    if hours.closed_on_public_holidays and hours.closed_on_eves:
        return "Stängt helgdagar samt midsommar-, jul- och nyårsafton"
    if hours.closed_on_public_holidays:
        return "Stängt helgdagar"
    if hours.closed_on_eves:
        return "Stängt midsommar-, jul- och nyårsafton"
    return "Helgdagar enligt ordinarie öppettider"
