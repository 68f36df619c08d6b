r"""The compact cells of the CSV import and export: contact paths and opening hours.

Each ``parse_*`` reads a cell into the shape of the API's field (problems as
``(field, rule, message)``, never quoting the cell); each ``*_cell`` writes a stored value
back so that reading it again gives the same value. The cell syntax is described in
:mod:`services.directory.transfer`. Inside reasons, values and notes ``\`` escapes the next
character.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, Final

from services.directory.schemas import ContactPath
from shared.domain.hours import Day, OpeningHours, TimeRange, day_runs
from shared.domain.swedish import postal_text

__all__ = [
    "Problem",
    "contact_paths_cell",
    "opening_hours_cell",
    "parse_contact_paths",
    "parse_opening_hours",
]

# --- escaping in the compact cells -----------------------------------------------------------


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on every ``sep`` not escaped by ``\\`` (escapes are kept)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
        elif text.startswith(sep, i):
            parts.append("".join(current))
            current = []
            i += len(sep)
        else:
            current.append(text[i])
            i += 1
    parts.append("".join(current))
    return parts


_ESCAPED: Final = re.compile(r"\\(.)", re.DOTALL)


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace(";", "\\;")


# --- contact paths ---------------------------------------------------------------------------

_CHANNEL_ALIASES: Final = {"email": "functional_email", "postal": "postal_address"}
_VALUE_FIELD: Final = {"phone": "phone", "functional_email": "email", "secure_mail": "secure_mail"}
_POSTCODE_CITY: Final = re.compile(r"((?:SE-?\s?)?[0-9]{3}\s?[0-9]{2})\s+(\S.*)", re.IGNORECASE)
_CARE_OF: Final = re.compile(r"c/o\s+", re.IGNORECASE)

# (field relative to the row, rule, message); messages never contain the cell's text.
Problem = tuple[str, str, str]


def _postal(value: str) -> dict[str, str] | None:
    parts = [p.strip() for p in value.split(",")]
    match = _POSTCODE_CITY.fullmatch(parts[-1]) if len(parts) >= 2 else None
    if match is None:
        return None
    body = parts[:-1]
    out = {"postcode": match[1], "city": match[2]}
    care_of = _CARE_OF.match(body[0])
    if care_of:
        out["care_of"] = body[0][care_of.end() :].strip()
        body = body[1:]
    out["street"] = ", ".join(body)
    return out


def parse_contact_paths(cell: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The ``contact_paths`` cell as ``ContactPath``-shaped dicts (syntax:
    :mod:`services.directory.transfer`)."""
    paths: list[dict[str, Any]] = []
    problems: list[Problem] = []
    entries = [e for e in _split(cell, ";;") if e.strip()]
    for index, entry in enumerate(entries):
        where = f"contact_paths.{index}"
        fields = _split(entry, "|")
        if not 2 <= len(fields) <= 4:
            problems.append(
                (where, "contact_path_syntax", "write a contact path as reason|channel|value")
            )
            continue
        reason, channel, value, note = (_unescape(f).strip() for f in [*fields, "", ""][:4])
        channel = _CHANNEL_ALIASES.get(channel.lower(), channel.lower())
        path: dict[str, Any] = {"reason": reason, "channel": channel}
        if note:
            path["note"] = note
        if channel in _VALUE_FIELD and value:
            path[_VALUE_FIELD[channel]] = value
        elif channel == "postal_address" and value:
            postal = _postal(value)
            if postal is None:
                problems.append(
                    (
                        where + ".postal",
                        "postal_syntax",
                        "write a postal address as 'street, postcode city' "
                        "(optionally 'c/o name, ' first)",
                    )
                )
                continue
            path["postal"] = postal
        elif channel == "inbox" and value:
            problems.append((where, "channel_value", "the inbox channel takes no value"))
            continue
        paths.append(path)
    return paths, problems


def contact_paths_cell(paths: Sequence[ContactPath]) -> str:
    """The ``contact_paths`` cell of stored contact paths (read back by
    :func:`parse_contact_paths`)."""
    entries = []
    for path in paths:
        dumped = path.model_dump(mode="json")
        channel = dumped["channel"]
        if path.postal is not None:
            value = postal_text(path.postal)
        elif channel == "inbox":
            value = ""
        else:
            value = dumped[_VALUE_FIELD[channel]]
        fields = [_escape(path.reason), channel, _escape(value)]
        if path.note:
            fields.append(_escape(path.note))
        entries.append("|".join(fields))
    return ";;".join(entries)


# --- opening hours ---------------------------------------------------------------------------

_DAY_NAMES: Final = {d.value: d for d in Day} | {
    "mån": Day.MON,
    "tis": Day.TUE,
    "ons": Day.WED,
    "tor": Day.THU,
    "fre": Day.FRI,
    "lör": Day.SAT,
    "sön": Day.SUN,
}
_DAY_ORDER: Final = tuple(Day)
_TIME_RANGE: Final = re.compile(r"([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FLAG: Final = re.compile(r"(closed_on_public_holidays|closed_on_eves)\s*=\s*(true|false)", re.I)
_SPECIAL: Final = re.compile(r"(?P<when>.*?)(?:\s+note=(?P<note>.*))?", re.DOTALL)
_WEEKLY_SYNTAX: Final = "write weekly hours as e.g. 'mon-fri 08:00-16:30'"


def _days(text: str) -> list[Day] | None:
    days: list[Day] = []
    for part in text.lower().split(","):
        first, dash, last = (p.strip() for p in part.partition("-"))
        start, end = _DAY_NAMES.get(first), _DAY_NAMES.get(last if dash else first)
        if start is None or end is None:
            return None
        a, b = _DAY_ORDER.index(start), _DAY_ORDER.index(end)
        if b < a:
            return None
        days.extend(_DAY_ORDER[a : b + 1])
    return days


def _ranges(text: str) -> list[dict[str, str]] | None:
    ranges = []
    for part in text.split(","):
        match = _TIME_RANGE.fullmatch(part.strip())
        if match is None:
            return None
        h1, m1, h2, m2 = match.groups()
        ranges.append({"opens": f"{int(h1):02d}:{m1}", "closes": f"{int(h2):02d}:{m2}"})
    return ranges


def parse_opening_hours(cell: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The ``opening_hours`` cell as an ``OpeningHours``-shaped dict (syntax:
    :mod:`services.directory.transfer`)."""
    if not cell.strip():
        return None, []
    hours: dict[str, Any] = {"weekly": [], "special_days": []}
    problems: list[Problem] = []

    def bad(number: int, message: str) -> None:
        problems.append(("opening_hours", "opening_hours_syntax", f"entry {number}: {message}"))

    entries = [e.strip() for e in _split(cell, ";") if e.strip()]
    for number, entry in enumerate(entries, start=1):
        flag = _FLAG.fullmatch(entry)
        if entry.lower() == "always_open":
            hours["always_open"] = True
        elif entry.startswith("note="):
            hours["note"] = _unescape(entry[len("note=") :]).strip()
        elif flag:
            hours[flag[1].lower()] = flag[2].lower() == "true"
        elif len(parts := entry.split(None, 1)) != 2:
            bad(number, _WEEKLY_SYNTAX)
        elif _DATE.fullmatch(parts[0]):
            special = _SPECIAL.fullmatch(parts[1])
            when = special["when"].strip() if special else ""
            day: dict[str, Any] = {"date": parts[0]}
            if when.lower() == "closed":
                day["closed"] = True
            elif (intervals := _ranges(when)) is not None:
                day["intervals"] = intervals
            else:
                bad(
                    number, "write a special day as 'YYYY-MM-DD closed' or 'YYYY-MM-DD 10:00-14:00'"
                )
                continue
            if special and special["note"] is not None:
                day["note"] = _unescape(special["note"]).strip()
            hours["special_days"].append(day)
        else:
            days, ranges = _days(parts[0]), _ranges(parts[1])
            if days is None or ranges is None:
                bad(number, _WEEKLY_SYNTAX)
                continue
            hours["weekly"].extend({"day": str(d), **r} for d in days for r in ranges)
    return hours, problems


def _hhmm(value: dt.time, *, closing: bool = False) -> str:
    if closing and value == dt.time(0, 0):
        return "24:00"
    return value.strftime("%H:%M")


def _ranges_cell(ranges: Sequence[TimeRange]) -> str:
    return ",".join(f"{_hhmm(r.opens)}-{_hhmm(r.closes, closing=True)}" for r in ranges)


def opening_hours_cell(hours: OpeningHours | None) -> str:
    """The ``opening_hours`` cell of stored opening hours (read back by
    :func:`parse_opening_hours`)."""
    if hours is None:
        return ""
    entries = ["always_open"] if hours.always_open else []
    weekly = {day: _ranges_cell([i for i in hours.weekly if i.day is day]) for day in Day}
    for run in day_runs(weekly):
        days = run[0].value if len(run) == 1 else f"{run[0].value}-{run[-1].value}"
        entries.append(f"{days} {weekly[run[0]]}")
    if not hours.always_open:
        entries += [
            f"{flag}=false"
            for flag in ("closed_on_public_holidays", "closed_on_eves")
            if not getattr(hours, flag)
        ]
    for special in hours.special_days:
        when = "closed" if special.closed else _ranges_cell(special.intervals)
        note = f" note={_escape(special.note)}" if special.note is not None else ""
        entries.append(f"{special.date.isoformat()} {when}{note}")
    if hours.note is not None:
        entries.append(f"note={_escape(hours.note)}")
    # Opening hours with nothing but the defaults still differ from none at all.
    return "; ".join(entries) or "closed_on_public_holidays=true"
