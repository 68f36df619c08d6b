"""Follow-up indicators of the handover out of 24-hour care (issue 22, ADR 0026): aggregates
of this member's HVB notifications and recorded discharges, never a person (the person
key only tells how many distinct people there were).

**HVB notifications** (``hvb``), of those sent in the period (by the unit, or by any of the
member's units):

- ``sent``; ``with_sip_convened`` — a SIP meeting names it (``for_referral_id``);
  ``with_sip_convened_in_time`` — the first one was convened by its ``sip_by``;
  ``with_sip_held_by_placement`` — a linked SIP was held (its plan recorded) on or before
  the placement day, with its share of ``sent``;
- ``persons`` — distinct people they were about; ``repeat_placements`` — ``sent`` minus
  ``persons`` (each notification beyond a person's first in the period);
- ``placements_per_person_year`` = sent / (persons × D / 365) and
  ``repeat_placements_per_person_year`` = repeat_placements / (persons × D / 365), where D
  is the period's length in days (both ends counted): notifications per person and year
  of the period, each person counted from the period's start (None without a person).
  E.g. four notifications about two people in a year of 365 days: 2.0 and 1.0.

**Discharges** (``discharges``), recorded by the ward with a ``discharged_on`` in the
period (of plannings the unit, or any of the member's units, sent): ``recorded``,
``unplanned``, ``with_actions_started`` — every recipient's actions in the linked SIP's
plan had started by the discharge day, as the plan stood when the discharge was recorded
("redan påbörjade och etablerade när individen skrivs ut") — and its share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.referral.handover import HVB, sip_by
from services.referral.models import Discharge, Meeting, Referral
from shared.domain.calendar import to_local

DAYS_PER_YEAR = 365


def _share(n: int, of: int) -> float | None:
    return round(n / of, 3) if of else None


def _rate(n: int, person_years: float) -> float | None:
    return round(n / person_years, 3) if person_years else None


def hvb_figures(
    referrals: Iterable[Referral],
    linked: Sequence[Meeting],
    sip_working_days: Mapping[str, int],
    since: dt.date,
    until: dt.date,
) -> dict[str, Any]:
    """The HVB notifications' figures (see the module) from those sent in the period and
    the SIP meetings linked to them (earliest convened first)."""
    sent = [r for r in referrals if r.kind == HVB]
    meetings: dict[str, list[Meeting]] = {}
    for m in linked:
        meetings.setdefault(m.for_referral_id or "", []).append(m)
    convened = in_time = held = 0
    for r in sent:
        mine = meetings.get(r.id, [])
        if not mine:
            continue
        convened += 1
        due = sip_by(r, sip_working_days)
        if due is not None and to_local(mine[0].created_at).date() <= due:
            in_time += 1
        placement = (r.details or {}).get("placement_date")
        if isinstance(placement, str) and any(
            m.status == "held" and to_local(m.at).date().isoformat() <= placement for m in mine
        ):
            held += 1
    n, persons = len(sent), len({r.person_key for r in sent})
    person_years = persons * ((until - since).days + 1) / DAYS_PER_YEAR
    return {
        "sent": n,
        "with_sip_convened": convened,
        "with_sip_convened_in_time": in_time,
        "with_sip_held_by_placement": held,
        "share_with_sip_held_by_placement": _share(held, n),
        "persons": persons,
        "repeat_placements": n - persons,
        "placements_per_person_year": _rate(n, person_years),
        "repeat_placements_per_person_year": _rate(n - persons, person_years),
    }


def discharge_figures(discharges: Sequence[Discharge]) -> dict[str, Any]:
    """The recorded discharges' figures (see the module)."""
    started = sum(1 for d in discharges if d.actions_started)
    return {
        "recorded": len(discharges),
        "unplanned": sum(1 for d in discharges if d.unplanned),
        "with_actions_started": started,
        "share_with_actions_started": _share(started, len(discharges)),
    }
