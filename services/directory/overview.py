"""The printable overview of a member's contact paths ("Kontaktvägar").

Like the Kronobarnsmodellen document: for one member, every unit that can be contacted
(active or temporarily closed, not past its ``valid_to``), grouped by *kontaktorsak* (the
contact path's ``reason``), with the channel to use, the unit's kind, the kommuner it
serves, its opening hours and mission. It is built from the read replica, so anyone with
``directory:read`` can print any member's overview.

:func:`build_overview` turns replica rows into a plain :class:`Overview`;
:mod:`services.directory.overview_render` prints it (HTML, PDF, CSV). Reasons are
grouped case- and whitespace-insensitively and sorted with Swedish collation
(:func:`~shared.domain.swedish.swedish_sort_key`: å, ä, ö after z); phone numbers
are shown in national format (:func:`~shared.domain.swedish.format_phone_national`).

Member names: the replica holds only the owner's organisationsnummer, so the caller
passes the name. The router knows only its own member's name (from the settings) and
shows other members by their organisationsnummer until the directory keeps member records.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import replica
from services.directory.codes import CHANNEL_LABELS, UNIT_KIND_LABELS, Channel, UnitStatus, label
from services.directory.models import ReplicaUnit
from services.directory.schemas import ContactPath
from shared.domain.calendar import to_local
from shared.domain.hours import OpeningHours, describe_sv
from shared.domain.swedish import format_phone_national, postal_text, swedish_sort_key
from shared.identity.identifiers import IdentifierError, all_kommuner, kommun

__all__ = [
    "REVIEW_AFTER_DAYS",
    "Contact",
    "Overview",
    "ReasonEntry",
    "ReasonGroup",
    "UnitSummary",
    "build_overview",
    "load_member_units",
    "member_name",
]

REVIEW_AFTER_DAYS: Final = 182
"""By default an entry not reviewed for this many days (about six months) is marked
"ej granskad sedan ..." (the router passes ``settings.directory.review_after_days``)."""

INBOX_TEXT: Final = "Inkorg i vårdkedjan"
INBOX_LABEL: Final = "Vårdkedjan"
_SHOWN_STATUSES: Final = frozenset({UnitStatus.ACTIVE, UnitStatus.TEMPORARILY_CLOSED})
_PAGE_SIZE: Final = 500


# --- the data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """One contact path of a unit: the channel and the value to use, as shown."""

    channel: str
    channel_label: str
    value: str
    note: str | None = None


@dataclass(frozen=True)
class UnitSummary:
    """What the overview says about a unit wherever it appears."""

    unit_id: str
    name: str
    kind_label: str
    closed: bool
    status_message: str | None
    kommuner: tuple[str, ...]
    opening_hours: tuple[str, ...]
    mission: str
    validity: str | None
    reviewed_on: dt.date | None
    review_note: str | None
    """``"ej granskad sedan <date>"`` (or ``"ej granskad"``) when the review is overdue."""


@dataclass(frozen=True)
class ReasonEntry:
    """A unit under one kontaktorsak, with the contact paths it offers for it."""

    unit: UnitSummary
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class ReasonGroup:
    """One kontaktorsak and the units offering it, in Swedish order of their names."""

    reason: str
    entries: tuple[ReasonEntry, ...]


@dataclass(frozen=True)
class Overview:
    """A member's printable overview (plain data; see the ``render_*`` functions)."""

    member_orgnr: str
    member_name: str
    generated_on: dt.date
    review_cutoff: dt.date
    reasons: tuple[ReasonGroup, ...]
    without_contact_paths: tuple[UnitSummary, ...] = ()
    units: tuple[UnitSummary, ...] = ()
    """Every unit shown, in Swedish order of their names."""

    @property
    def latest_review(self) -> dt.date | None:
        """The most recent review of any unit shown."""
        dates = [u.reviewed_on for u in self.units if u.reviewed_on is not None]
        return max(dates) if dates else None

    @property
    def overdue(self) -> int:
        """How many units shown have not been reviewed since :attr:`review_cutoff`."""
        return sum(1 for u in self.units if u.review_note is not None)


# --- building the overview -------------------------------------------------------------------


def member_name(orgnr: str, names: Mapping[str, str]) -> str:
    """The member's name from ``names`` (orgnr → name), or the orgnr when it is not known."""
    return names.get(orgnr, orgnr)


async def load_member_units(*, session: AsyncSession, member_orgnr: str) -> list[ReplicaUnit]:
    """Every replica unit of ``member_orgnr`` (any status), page by page."""
    rows: list[ReplicaUnit] = []
    after: str | None = None
    while True:
        page = await replica.list_replica(
            session=session, member=member_orgnr, kommunkod=None, after=after, limit=_PAGE_SIZE
        )
        rows.extend(page)
        if len(page) < _PAGE_SIZE:
            return rows
        after = page[-1].unit_id


def _reason_key(reason: str) -> str:
    return " ".join(reason.split()).casefold()


def _kommuner(codes: Sequence[str]) -> tuple[str, ...]:
    """Names of the kommuner served; a whole county (of several kommuner) as the county."""
    known: list[str] = []
    unknown: list[str] = []
    for code in codes:
        try:
            known.append(kommun(code).code)
        except IdentifierError:
            unknown.append(code)
    chosen = set(known)
    names: list[str] = []
    by_county: dict[str, list[str]] = {}
    for k in all_kommuner():
        by_county.setdefault(k.county_code, []).append(k.code)
    covered: set[str] = set()
    for members in by_county.values():
        if len(members) > 1 and chosen.issuperset(members):
            names.append(f"{kommun(members[0]).county_name} (alla kommuner)")
            covered.update(members)
    names.extend(kommun(code).short_name for code in dict.fromkeys(known) if code not in covered)
    return tuple(sorted(names, key=swedish_sort_key)) + tuple(unknown)


def _opening_hours(value: dict[str, Any] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    try:
        return tuple(describe_sv(OpeningHours.model_validate(value)))
    except ValidationError:
        return ()


def _contact(path: ContactPath) -> Contact:
    if path.channel is Channel.PHONE and path.phone:
        value = format_phone_national(path.phone)
    elif path.channel is Channel.FUNCTIONAL_EMAIL and path.email:
        value = path.email
    elif path.channel is Channel.SECURE_MAIL and path.secure_mail:
        value = path.secure_mail
    elif path.channel is Channel.POSTAL_ADDRESS and path.postal:
        value = postal_text(path.postal)
    else:
        value = INBOX_TEXT
    return Contact(
        channel=str(path.channel),
        # "Enhetens inkorg i vårdkedjan: Inkorg i vårdkedjan" would say it twice.
        channel_label=INBOX_LABEL
        if path.channel is Channel.INBOX
        else CHANNEL_LABELS[path.channel],
        value=value,
        note=path.note,
    )


def _contact_paths(value: list[dict[str, Any]]) -> list[ContactPath]:
    paths = []
    for raw in value:
        try:
            paths.append(ContactPath.model_validate(raw))
        except ValidationError:
            continue  # the replica validated it on receipt; skip rather than fail the print
    return paths


def _validity(row: ReplicaUnit, today: dt.date) -> str | None:
    if row.valid_from is not None and row.valid_from > today:
        until = f" t.o.m. {row.valid_to.isoformat()}" if row.valid_to else ""
        return f"Gäller från {row.valid_from.isoformat()}{until}"
    if row.valid_to is not None:
        return f"Gäller t.o.m. {row.valid_to.isoformat()}"
    return None


def _summary(row: ReplicaUnit, today: dt.date, cutoff: dt.date) -> UnitSummary:
    reviewed_on = to_local(row.reviewed_at).date() if row.reviewed_at else None
    note: str | None = None
    if reviewed_on is None:
        note = "ej granskad"
    elif reviewed_on < cutoff:
        note = f"ej granskad sedan {reviewed_on.isoformat()}"
    closed = row.status == UnitStatus.TEMPORARILY_CLOSED
    return UnitSummary(
        unit_id=row.unit_id,
        name=row.name,
        kind_label=label(UNIT_KIND_LABELS, row.kind),
        closed=closed,
        status_message=row.status_message if closed else None,
        kommuner=_kommuner(row.kommunkoder),
        opening_hours=_opening_hours(row.opening_hours),
        mission=row.mission or "",
        validity=_validity(row, today),
        reviewed_on=reviewed_on,
        review_note=note,
    )


def _shown(row: ReplicaUnit, member_orgnr: str, today: dt.date) -> bool:
    if row.owner_orgnr != member_orgnr or row.status not in _SHOWN_STATUSES:
        return False
    return row.valid_to is None or row.valid_to >= today  # an ended unit is no contact path


def build_overview(
    rows: list[ReplicaUnit],
    member_orgnr: str,
    member_name: str,
    today: dt.date,
    *,
    review_after_days: int = REVIEW_AFTER_DAYS,
) -> Overview:
    """The overview of ``member_orgnr`` from its replica rows (other members' rows ignored).

    Only active and temporarily closed units whose validity has not ended are shown; a
    unit last reviewed before ``today - review_after_days`` (or never) is marked.
    """
    cutoff = today - dt.timedelta(days=review_after_days)
    shown = sorted(
        (r for r in rows if _shown(r, member_orgnr, today)),
        key=lambda r: (swedish_sort_key(r.name), r.unit_id),
    )
    variants: dict[str, Counter[str]] = {}
    entries: dict[str, list[ReasonEntry]] = {}
    units: list[UnitSummary] = []
    without: list[UnitSummary] = []
    for row in shown:
        unit = _summary(row, today, cutoff)
        units.append(unit)
        by_reason: dict[str, list[Contact]] = {}
        for path in _contact_paths(row.contact_paths):
            key = _reason_key(path.reason)
            variants.setdefault(key, Counter())[" ".join(path.reason.split())] += 1
            by_reason.setdefault(key, []).append(_contact(path))
        if not by_reason:
            without.append(unit)
        for key, contacts in by_reason.items():
            entries.setdefault(key, []).append(ReasonEntry(unit=unit, contacts=tuple(contacts)))
    groups = []
    for key, counts in variants.items():
        # The spelling most units use names the group (ties: the first in Swedish order).
        reason = min(counts, key=lambda v: (-counts[v], swedish_sort_key(v)))
        groups.append(ReasonGroup(reason=reason, entries=tuple(entries[key])))
    groups.sort(key=lambda g: swedish_sort_key(g.reason))
    return Overview(
        member_orgnr=member_orgnr,
        member_name=member_name,
        generated_on=today,
        review_cutoff=cutoff,
        reasons=tuple(groups),
        without_contact_paths=tuple(without),
        units=tuple(units),
    )
