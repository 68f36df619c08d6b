"""The printable overview of a member's contact paths ("Kontaktvägar").

Like the Kronobarnsmodellen document: for one member, every unit that can be contacted
(active or temporarily closed, not past its ``valid_to``), grouped by *kontaktorsak* (the
contact path's ``reason``), with the channel to use, the unit's kind, the kommuner it
serves, its opening hours and mission. It is built from the read replica, so anyone with
``directory:read`` can print any member's overview.

:func:`build_overview` turns replica rows into a plain :class:`Overview`;
:func:`render_html`, :func:`render_pdf` and :func:`render_csv` print it. Reasons are
grouped case- and whitespace-insensitively and sorted with Swedish collation
(:func:`swedish_sort_key`: å, ä, ö after z); phone numbers are shown in national format
(:func:`format_phone_national`).

Member names: the replica holds only the owner's organisationsnummer, so the caller
passes the name. The router knows only its own member's name (from the settings) and
shows other members by their organisationsnummer until the directory keeps member records.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.directory import service
from services.directory.codes import CHANNEL_LABELS, UNIT_KIND_LABELS, Channel, UnitKind, UnitStatus
from services.directory.hours import OpeningHours, describe_sv
from services.directory.models import ReplicaUnit
from services.directory.schemas import ContactPath
from shared.domain.calendar import to_local
from shared.domain.contact import PostalAddress
from shared.identity.identifiers import IdentifierError, all_kommuner, kommun
from shared.web.csvout import write_csv

__all__ = [
    "CSV_COLUMNS",
    "REVIEW_AFTER_DAYS",
    "Contact",
    "Overview",
    "ReasonEntry",
    "ReasonGroup",
    "UnitSummary",
    "build_overview",
    "format_phone_national",
    "load_member_units",
    "member_name",
    "render_csv",
    "render_html",
    "render_pdf",
    "swedish_sort_key",
]

REVIEW_AFTER_DAYS: Final = 182
"""By default an entry not reviewed for this many days (about six months) is marked
"ej granskad sedan ..." (the router passes ``settings.directory.review_after_days``)."""

INBOX_TEXT: Final = "Inkorg i vårdkedjan"
INBOX_LABEL: Final = "Vårdkedjan"
CSV_COLUMNS: Final = (
    "kontaktorsak",
    "enhet",
    "huvudman",
    "kanal",
    "kontakt",
    "kommuner",
    "oppettider",
)
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


# --- Swedish collation -----------------------------------------------------------------------

_SV_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzåäö"
_SV_LETTER: Final = {ch: i for i, ch in enumerate(_SV_ALPHABET)}
# Letters Swedish dictionaries file under another letter (SAOL: ü as y, æ as ä, ø as ö).
_SV_FOLD: Final = {"ü": "y", "æ": "ä", "ø": "ö", "œ": "oe", "ð": "d", "þ": "th", "ł": "l"}

_Weight = tuple[int, int]


def _weights(ch: str) -> list[_Weight]:
    if ch.isspace():
        return [(0, 0)]
    if ch.isdigit():
        return [(1, int(ch))] if ch.isascii() else [(1, unicodedata.digit(ch, 0))]
    if ch in _SV_LETTER:
        return [(2, _SV_LETTER[ch])]
    folded = _SV_FOLD.get(ch)
    if folded is None:
        # é -> e, ç -> c, á -> a ... (å ä ö never get here: they are letters of their own).
        base = unicodedata.normalize("NFKD", ch)
        folded = "".join(c for c in base if not unicodedata.combining(c))
    if folded and folded != ch and all(c in _SV_LETTER for c in folded):
        return [(2, _SV_LETTER[c]) for c in folded]
    # Punctuation and other scripts: before the letters, in code point order.
    return [(0, ord(ch))]


def swedish_sort_key(text: str) -> tuple[tuple[_Weight, ...], str]:
    """A sort key ordering text as a Swedish dictionary does: a–z, then å, ä, ö.

    Case is ignored and runs of whitespace count as one space; accented letters sort with
    their base letter (é as e, ü as y), digits before letters. Ties are broken by the text
    itself so the order is total.
    """
    normal = " ".join(text.split()).casefold()
    primary: list[_Weight] = []
    for ch in normal:
        primary.extend(_weights(ch))
    return tuple(primary), text


def _reason_key(reason: str) -> str:
    return " ".join(reason.split()).casefold()


# --- phone numbers ---------------------------------------------------------------------------

_E164_SE: Final = re.compile(r"\+46([1-9][0-9]{5,9})")
_SHORT_NUMBERS: Final = {"112": "112", "1177": "1177", "11414": "114 14", "11313": "113 13"}
# Riktnummer with two digits after the 0 (all others but 08 have three).
_TWO_DIGIT_AREAS: Final = frozenset(
    {"11", "13", "16", "18", "19", "21", "23", "26", "31", "33", "35", "36", "40", "42", "44"}
    | {"46", "54", "60", "63", "90"}
)
_PREMIUM: Final = frozenset({"900", "939", "944"})


def _area_digits(nsn: str) -> int:
    """How many digits of the national number (after the trunk 0) are the area code."""
    if nsn.startswith("8"):
        return 1
    if nsn[:3] in _PREMIUM or nsn.startswith(("77", "200")):
        return 3  # 0900-, 0771-, 0200-
    if nsn.startswith(("7", "10", "20")) or nsn[:2] in _TWO_DIGIT_AREAS:
        return 2  # 070-, 010-, 020-, 031-
    return 3


def _subscriber_groups(digits: str) -> str:
    """Groups of two from the right, three first when odd; eight digits as 3-3-2."""
    n = len(digits)
    if n <= 4:
        return digits
    if n == 8:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    head = 3 if n % 2 else 2
    rest = digits[head:]
    return " ".join([digits[:head], *(rest[i : i + 2] for i in range(0, len(rest), 2))])


def format_phone_national(value: str) -> str:
    """A stored phone number (E.164 or short number) as Swedes write it: ``0470-41 00 00``.

    Mobile ``070-123 45 67``, Stockholm ``08-123 456 78``, short numbers ``114 14``. A value
    that is not a Swedish E.164 number is returned unchanged.
    """
    if value in _SHORT_NUMBERS:
        return _SHORT_NUMBERS[value]
    match = _E164_SE.fullmatch(value)
    if match is None:
        return value
    nsn = match[1]
    area = _area_digits(nsn)
    return f"0{nsn[:area]}-{_subscriber_groups(nsn[area:])}"


# --- building the overview -------------------------------------------------------------------


def member_name(orgnr: str, names: Mapping[str, str]) -> str:
    """The member's name from ``names`` (orgnr → name), or the orgnr when it is not known."""
    return names.get(orgnr, orgnr)


async def load_member_units(*, session: AsyncSession, member_orgnr: str) -> list[ReplicaUnit]:
    """Every replica unit of ``member_orgnr`` (any status), page by page."""
    rows: list[ReplicaUnit] = []
    after: str | None = None
    while True:
        page = await service.list_replica(
            session=session, member=member_orgnr, kommunkod=None, after=after, limit=_PAGE_SIZE
        )
        rows.extend(page)
        if len(page) < _PAGE_SIZE:
            return rows
        after = page[-1].unit_id


def _kind_label(kind: str) -> str:
    try:
        return UNIT_KIND_LABELS[UnitKind(kind)]
    except ValueError:
        return kind


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


def _postal_text(postal: PostalAddress) -> str:
    parts = [f"c/o {postal.care_of}"] if postal.care_of else []
    return ", ".join([*parts, postal.street, f"{postal.postcode} {postal.city}"])


def _contact(path: ContactPath) -> Contact:
    if path.channel is Channel.PHONE and path.phone:
        value = format_phone_national(path.phone)
    elif path.channel is Channel.FUNCTIONAL_EMAIL and path.email:
        value = path.email
    elif path.channel is Channel.SECURE_MAIL and path.secure_mail:
        value = path.secure_mail
    elif path.channel is Channel.POSTAL_ADDRESS and path.postal:
        value = _postal_text(path.postal)
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
        kind_label=_kind_label(row.kind),
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


# --- HTML ------------------------------------------------------------------------------------

_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(overview: Overview) -> str:
    """The overview as a printable HTML page (A4 print styles, autoescaped)."""
    return _TEMPLATES.get_template("kontaktvagar.html").render(ov=overview)


# --- PDF -------------------------------------------------------------------------------------

# The PDF core fonts are encoded as WinAnsi (cp1252): Swedish letters, é, – and “” fit.
_PDF_ENCODING: Final = "cp1252"
_PDF_TRANSLATE: Final = str.maketrans(
    {
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2212": "-",
        "\u2009": " ",
        "\u202f": " ",
        "\u2192": "->",
        "\u2264": "<=",
        "\u2265": ">=",
        "\t": " ",
        "\r": "",
    }
)


def _encodable(text: str) -> bool:
    try:
        text.encode(_PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def pdf_safe(text: str) -> str:
    """``text`` restricted to what the PDF core fonts can show.

    Common typographic characters get their plain equivalents, accented letters outside
    the font lose their accent (ł → l, ő → o), control characters become spaces and
    anything else becomes ``?``, so no input can make the rendering fail.
    """
    out: list[str] = []
    for ch in text.translate(_PDF_TRANSLATE):
        if ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch).startswith("C"):
            out.append(" ")
        elif _encodable(ch):
            out.append(ch)
        else:
            folded = _SV_FOLD.get(ch.lower())
            if folded is not None:
                base = folded.upper() if ch.isupper() else folded
            else:
                base = "".join(
                    c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
                )
            out.append(base if base and _encodable(base) else "?")
    return "".join(out)


class _OverviewPDF(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = _PDF_ENCODING
        self._footer_text = footer_text
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(auto=True, margin=18)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self._footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Sida {self.page_no()} av {{nb}}", align="R")
        self.set_text_color(0, 0, 0)


# One line of a block: (font style, size, indent mm, line height mm, text).
_Line = tuple[str, float, float, float, str]


def _unit_lines(unit: UnitSummary, contacts: Sequence[Contact]) -> list[_Line]:
    title = unit.name + (" – tillfälligt stängd" if unit.closed else "")
    lines: list[_Line] = [("B", 11, 0, 5.2, title), ("I", 9, 0, 4.4, unit.kind_label)]
    if unit.closed and unit.status_message:
        lines.append(("B", 9, 4, 4.4, f"Stängt: {unit.status_message}"))
    for c in contacts:
        note = f" ({c.note})" if c.note else ""
        lines.append(("", 10, 4, 4.8, f"{c.channel_label}: {c.value}{note}"))
    if unit.kommuner:
        lines.append(("", 9, 4, 4.4, "Kommuner: " + ", ".join(unit.kommuner)))
    if unit.opening_hours:
        lines.append(("", 9, 4, 4.4, "Öppettider: " + "; ".join(unit.opening_hours)))
    if unit.validity:
        lines.append(("", 9, 4, 4.4, unit.validity))
    if unit.mission:
        lines.append(("", 9, 4, 4.4, "Uppdrag: " + unit.mission))
    if unit.review_note:
        lines.append(("I", 8, 4, 4.0, unit.review_note.capitalize()))
    return lines


def _draw(pdf: FPDF, lines: Sequence[_Line], *, dry_run: bool = False) -> float:
    height = 0.0
    for style, size, indent, line_height, text in lines:
        pdf.set_font("Helvetica", style, size)
        pdf.set_x(pdf.l_margin + indent)
        result = pdf.multi_cell(
            pdf.epw - indent,
            line_height,
            pdf_safe(text),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            dry_run=dry_run,
            output=MethodReturnValue.HEIGHT,
        )
        assert isinstance(result, int | float)  # output=HEIGHT
        height += result
    return height


def _keep_together(pdf: FPDF, height: float) -> None:
    """Start a new page if the block does not fit here but would fit on an empty page."""
    room = pdf.page_break_trigger - pdf.get_y()
    page = pdf.page_break_trigger - pdf.t_margin
    if height > room and height <= page:
        pdf.add_page()


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "B", 13)
    pdf.set_fill_color(228, 236, 242)
    pdf.set_x(pdf.l_margin)  # a dry run may leave x at an entry's indent
    pdf.start_section(pdf_safe(text), level=0)
    pdf.multi_cell(0, 7, pdf_safe(text), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)


def render_pdf(overview: Overview) -> bytes:
    """The overview as an A4 PDF: a heading per kontaktorsak, "Sida n av m" on every page.

    A unit's entry is kept on one page when it fits on one, and a heading is never left
    alone at the foot of a page.
    """
    generated = overview.generated_on.isoformat()
    pdf = _OverviewPDF(pdf_safe(f"Kontaktvägar – {overview.member_name} – genererad {generated}"))
    pdf.set_title(pdf_safe(f"Kontaktvägar {overview.member_name}"))
    pdf.set_creator("vardkedja")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 10, "Kontaktvägar", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 12)
    pdf.multi_cell(
        0,
        6,
        pdf_safe(f"{overview.member_name} ({overview.member_orgnr})"),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_font("Helvetica", "", 9)
    for line in _header_lines(overview):
        pdf.multi_cell(0, 4.6, pdf_safe(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    if not overview.units:
        pdf.set_font("Helvetica", "I", 11)
        pdf.multi_cell(0, 6, "Inga aktiva enheter.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    sections = [(g.reason, [(e.unit, e.contacts) for e in g.entries]) for g in overview.reasons]
    if overview.without_contact_paths:
        sections.append(
            ("Enheter utan angivna kontaktvägar", [(u, ()) for u in overview.without_contact_paths])
        )
    for title, units in sections:
        first = _unit_lines(*units[0])
        _keep_together(pdf, 10 + _draw(pdf, first, dry_run=True))
        _heading(pdf, title)
        for unit, contacts in units:
            lines = _unit_lines(unit, contacts)
            _keep_together(pdf, _draw(pdf, lines, dry_run=True))
            _draw(pdf, lines)
            pdf.ln(3)
        pdf.ln(2)
    return bytes(pdf.output())


def _header_lines(overview: Overview) -> list[str]:
    lines = [f"Genererad {overview.generated_on.isoformat()}"]
    latest = overview.latest_review
    lines.append(
        f"Senast granskad: {latest.isoformat()}" if latest else "Ingen enhet har granskats ännu"
    )
    if overview.overdue:
        lines.append(
            f"{overview.overdue} av {len(overview.units)} enheter ej granskade sedan "
            f"{overview.review_cutoff.isoformat()}"
        )
    return lines


# --- CSV -------------------------------------------------------------------------------------


def render_csv(overview: Overview) -> str:
    """One row per (kontaktorsak, unit, contact path); UTF-8 with a BOM for Excel.

    Columns: :data:`CSV_COLUMNS`. A unit without contact paths has one row with empty
    kontaktorsak, kanal and kontakt; a temporarily closed unit's name ends in
    "(tillfälligt stängd)". Cells that a spreadsheet would run as a formula get a ``'``
    (:mod:`shared.web.csvout`).
    """
    rows: list[list[str]] = []

    def row(reason: str, unit: UnitSummary, channel: str, value: str) -> None:
        name = unit.name + (" (tillfälligt stängd)" if unit.closed else "")
        rows.append(
            [
                reason,
                name,
                overview.member_name,
                channel,
                value,
                ", ".join(unit.kommuner),
                "; ".join(unit.opening_hours),
            ]
        )

    for group in overview.reasons:
        for entry in group.entries:
            for c in entry.contacts:
                value = f"{c.value} ({c.note})" if c.note else c.value
                row(group.reason, entry.unit, c.channel_label, value)
    for unit in overview.without_contact_paths:
        row("", unit, "", "")
    return write_csv(CSV_COLUMNS, rows, bom=True)
