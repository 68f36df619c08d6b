"""How a deadline is counted, shown: the due time of a number of Swedish working days or
hours after an instant, or of the acknowledgement a kind of referral would get, with the
days the count skipped and why (``GET /v1/deadlines/count``). The rules are the ones the
referral service sets its deadlines with (:mod:`services.referral.sending`,
:meth:`shared.domain.kinds.KindSpec.acknowledge_due_at`); nothing here counts on its own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.referral.sending import acknowledge_by
from shared.config import Settings
from shared.domain.calendar import end_of_day, non_working_reason, to_local
from shared.domain.kinds import spec, working_days_after


@dataclass(frozen=True)
class Skipped:
    """A day the count passed over: its date, why (``weekend``, ``public_holiday``,
    ``eve``) and its Swedish name (``lördag``, ``Juldagen``, ``Julafton``)."""

    day: dt.date
    reason: str
    name: str


@dataclass(frozen=True)
class Counted:
    """A deadline counted from ``start``: the last day (``due_on``) and the instant it is
    due (``due_at``; for working days 23:59 Swedish time on ``due_on``), and the days
    skipped between ``start``'s day and ``due_on``."""

    start: dt.datetime
    due_on: dt.date
    due_at: dt.datetime
    skipped: tuple[Skipped, ...]
    working_days: int | None = None
    hours: int | None = None


def skipped_between(first: dt.date, last: dt.date) -> tuple[Skipped, ...]:
    """The days from ``first`` to ``last`` (both included) that are not working days."""
    out = []
    day = first
    while day <= last:
        reason = non_working_reason(day)
        if reason is not None:
            out.append(Skipped(day, *reason))
        day += dt.timedelta(days=1)
    return tuple(out)


def _by_day(start: dt.datetime, due_on: dt.date, working_days: int) -> Counted:
    """A deadline at the end of ``due_on``: the days after ``start``'s day skipped (with
    0 days, none: the day itself is the deadline)."""
    day = to_local(start).date()
    return Counted(
        start=start,
        due_on=due_on,
        due_at=end_of_day(due_on),
        skipped=skipped_between(day + dt.timedelta(days=1), due_on),
        working_days=working_days,
    )


def count_working_days(start: dt.datetime, working_days: int) -> Counted:
    """``working_days`` Swedish working days after ``start``'s day in Sweden, due at the end
    of that day (0: the day itself), as a kind's deadline counts them."""
    return _by_day(start, working_days_after(to_local(start).date(), working_days), working_days)


def count_hours(start: dt.datetime, hours: int) -> Counted:
    """``hours`` hours after ``start``, day and night (no day is skipped)."""
    due_at = to_local(start + dt.timedelta(hours=hours))
    return Counted(start=start, due_on=due_at.date(), due_at=due_at, skipped=(), hours=hours)


def count_for_kind(settings: Settings, kind: str, urgency: str, start: dt.datetime) -> Counted:
    """The acknowledgement deadline a referral of ``kind`` and ``urgency`` sent at ``start``
    gets at this member (its own table of working days, or the kind's hours)."""
    kind_spec = spec(kind)
    due_at = kind_spec.acknowledge_due_at(urgency, start)
    if due_at is not None and kind_spec.acknowledge_hours is not None:
        local = to_local(due_at)
        hours = kind_spec.acknowledge_hours[urgency]
        return Counted(start=start, due_on=local.date(), due_at=local, skipped=(), hours=hours)
    due_on = acknowledge_by(
        settings=settings, kind=kind, urgency=urgency, today=to_local(start).date()
    )
    days = kind_spec.acknowledge_days(urgency, settings.referral.acknowledge_working_days)
    return _by_day(start, due_on, days)
