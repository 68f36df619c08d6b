"""Min plan: the person's own printable plan, in plain Swedish, as HTML and PDF.

After a remissmöte or a SIP meeting the person gets a plan of their own (domain.md, "After
the meeting"; the Kronobarnsmodellen's "Min plan" in the seed report): their goals in their
own words, who does what and how to reach each function, the coordinator, the next
follow-up, who took part and whether they agree.

This module prints a :class:`MinPlanView`, a small value built by whoever reads the plan
(the plan model and the directory's contact paths); it reads nothing else, and it prints
no ids, no codes and no organisationsnummer: the view holds none.

* :func:`render_html` prints an A4 page (``templates/min_plan.html``, the one autoescaped
  environment of :mod:`shared.web.templates`; no scripts, fonts or other files fetched).
* :func:`render_pdf` prints the same text as an A4 PDF (fpdf2's core fonts, WinAnsi:
  Swedish letters fit; anything else is folded by :func:`shared.web.pdf.pdf_safe`).

**Protected identity** (skyddad identitet): when ``view.protected_identity`` is set the
plan shows no personnummer and no meeting place, even if the view was given them; it says
instead that they are left out for the person's safety. Relatives are never named (only
"anhörig"), and the contact paths shown are the functions' own, never the person's.

Dates are written as Swedes read them ("1 februari 2027", :func:`date_sv`), phone numbers
in national form ("0470-58 60 00") and addresses on one line, as in the directory's
printed overview (:mod:`shared.domain.swedish`, so a unit reads the same everywhere).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos

from shared.domain.codes import Intervention
from shared.domain.contact import PostalAddress
from shared.domain.labelled import LabelledEnum
from shared.domain.swedish import date_sv, format_phone_national, postal_text
from shared.web.pdf import PDF_ENCODING, pdf_safe
from shared.web.templates import templates

__all__ = [
    "CARE_CHAIN_TITLE",
    "RELATIVE",
    "SIP_TITLE",
    "YOU",
    "Action",
    "ActionStatus",
    "Agreement",
    "Attendance",
    "Contact",
    "Coordinator",
    "MinPlanView",
    "Who",
    "date_sv",
    "render_html",
    "render_pdf",
    "title_for",
]

SIP_TITLE: Final = "Min plan – samordnad individuell plan (SIP)"
CARE_CHAIN_TITLE: Final = "Min plan – vårdkedjan"


def title_for(meeting_kind: str) -> str:
    """The plan's title after a meeting of ``meeting_kind`` (``sip`` or ``remissmote``)."""
    return SIP_TITLE if meeting_kind == "sip" else CARE_CHAIN_TITLE


# --- the view ---------------------------------------------------------------------------------


class ActionStatus(LabelledEnum):
    """Where an action stands (planned → started → ended, or cancelled)."""

    PLANNED = "planned", "Planerad"
    STARTED = "started", "Påbörjad"
    ENDED = "ended", "Avslutad"
    CANCELLED = "cancelled", "Avbruten"


class Agreement(LabelledEnum):
    """Whether the person agrees to the plan, as the meeting recorded it; the label is the
    sentence the plan says."""

    AGREES = "agrees", "Du har sagt att du håller med om planen."
    DISAGREES = "disagrees", "Du har sagt att du inte håller med om planen."
    NOT_RECORDED = "not_recorded", "Det är inte antecknat om du håller med om planen."


@dataclass(frozen=True)
class Contact:
    """How to reach a function, from its contact paths in the directory
    (:mod:`shared.domain.contact`): functional values only, never a person's.

    ``phone`` as the directory stores it (E.164 or a short number; shown in national
    form), ``email`` a functional mailbox, ``postal`` its postal address,
    ``opening_hours`` lines as the directory writes them ("Mån–Fre 08:00–16:30"),
    ``note`` a short word on how to ask ("Fråga efter boendestödjarna"). A secure-mail
    address is left out on purpose: it is a gateway between organisations that the person
    cannot write to.
    """

    phone: str | None = None
    email: str | None = None
    postal: PostalAddress | None = None
    opening_hours: tuple[str, ...] = ()
    note: str | None = None

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) lines as the plan prints them."""
        rows: list[tuple[str, str]] = []
        if self.phone:
            rows.append(("Telefon", format_phone_national(self.phone)))
        if self.email:
            rows.append(("E-post", self.email))
        if self.postal is not None:
            rows.append(("Adress", postal_text(self.postal)))
        if self.opening_hours:
            rows.append(("Öppettider", "; ".join(self.opening_hours)))
        if self.note:
            rows.append(("Bra att veta", self.note))
        return rows


@dataclass(frozen=True)
class Who:
    """Who does something: a unit by its name and its huvudman's name ("Boendestödet",
    "Växjö kommun"), or an actor outside the federation named in words
    (:data:`YOU`, :data:`RELATIVE`, ``Who("Försäkringskassan")``)."""

    name: str
    huvudman: str | None = None

    @property
    def text(self) -> str:
        """``Boendestödet, Växjö kommun`` (or just the name)."""
        return f"{self.name}, {self.huvudman}" if self.huvudman else self.name


YOU: Final = Who("Du själv")
RELATIVE: Final = Who("En anhörig")


@dataclass(frozen=True)
class Action:
    """One action of the plan, in the plan's order.

    ``what`` is the intervention (its Swedish label is printed; a plain text is printed as
    written, a code of :class:`~shared.domain.codes.Intervention` given as text gets its
    label too). ``start_by`` and ``end_by`` are the days it should have started and ended
    by. ``contact`` is how to reach ``who`` (None for the person or a relative).
    """

    what: Intervention | str
    who: Who
    status: ActionStatus = ActionStatus.PLANNED
    description: str | None = None
    start_by: dt.date | None = None
    end_by: dt.date | None = None
    contact: Contact | None = None

    @property
    def label(self) -> str:
        """What the action is, in words (never its code)."""
        if isinstance(self.what, Intervention):
            return self.what.label
        try:
            return Intervention(self.what).label
        except ValueError:
            return self.what

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) lines under the action's heading, contact last."""
        rows = [("Vem", self.who.text)]
        if self.description:
            rows.append(("Vad det innebär", self.description))
        if self.start_by is not None:
            rows.append(("Börjar", f"senast {date_sv(self.start_by)}"))
        if self.end_by is not None:
            rows.append(("Klart", f"senast {date_sv(self.end_by)}"))
        rows.append(("Läge", self.status.label))
        if self.contact is not None:
            rows.extend(self.contact.rows())
        return rows


@dataclass(frozen=True)
class Coordinator:
    """A coordinating function (vårdkedjekoordinator; one per huvudman where both take part):
    its name, its huvudman's name and how to reach it."""

    name: str
    huvudman: str
    contact: Contact | None = None

    @property
    def text(self) -> str:
        return f"{self.name}, {self.huvudman}"


@dataclass(frozen=True)
class Attendance:
    """Who took part in the meeting: the units, whether the person did, how many relatives
    (never named)."""

    units: tuple[Who, ...] = ()
    person: bool = True
    relatives: int = 0

    def lines(self) -> list[str]:
        lines = ["Du" if self.person else "Du var inte med på mötet"]
        lines.extend(unit.text for unit in self.units)
        if self.relatives == 1:
            lines.append("En anhörig")
        elif self.relatives > 1:
            lines.append(f"{self.relatives} anhöriga")
        return lines


@dataclass(frozen=True)
class MinPlanView:
    """Everything the person's plan says, in words.

    ``own_goals`` are the person's goals in their own words (printed first, under
    "Mina egna mål"); ``goals`` the plan's other goals. ``personnummer`` (``YYYYMMDDNNNN``
    or as it should be printed) and ``meeting_place`` are printed only without
    ``protected_identity``. ``changed_on`` is the day of the latest revision, if any.
    """

    title: str
    made_on: dt.date
    actions: tuple[Action, ...]
    coordinators: tuple[Coordinator, ...]
    own_goals: tuple[str, ...] = ()
    goals: tuple[str, ...] = ()
    next_follow_up: dt.date | None = None
    attendance: Attendance | None = None
    """Who took part (None: not recorded, and not printed)."""
    agreement: Agreement = Agreement.NOT_RECORDED
    agreement_note: str | None = None
    """What the person said about the plan, in their own words."""
    personnummer: str | None = None
    meeting_place: str | None = None
    protected_identity: bool = False
    changed_on: dt.date | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.coordinators) <= 2:
            raise ValueError("a plan has one or two coordinators")

    # What the renderers print; the template and the PDF use the same texts.

    @property
    def person_line(self) -> str | None:
        """``Personnummer: 19121212-1212``; with protected identity, None."""
        if self.protected_identity or not self.personnummer:
            return None
        return f"Personnummer: {_personnummer_text(self.personnummer)}"

    @property
    def meeting_line(self) -> str:
        """When (and, without protected identity, where) the plan was made."""
        line = f"Planen gjordes på mötet {date_sv(self.made_on)}"
        if self.meeting_place and not self.protected_identity:
            line += f" ({self.meeting_place})"
        line += "."
        if self.changed_on is not None:
            line += f" Den ändrades senast {date_sv(self.changed_on)}."
        return line

    @property
    def protection_line(self) -> str | None:
        if not self.protected_identity:
            return None
        return (
            "Du har skyddade personuppgifter. Därför står inte ditt personnummer eller var "
            "mötet hölls i den här planen."
        )

    @property
    def ownership_lines(self) -> list[str]:
        """Whose the plan is and how to have it changed."""
        whom = "din samordnare" if len(self.coordinators) == 1 else "någon av dina samordnare"
        return [
            "Planen är din.",
            "Den visar vad du och verksamheterna har kommit överens om, vem som gör vad och "
            "hur du når dem.",
            f"Vill du ändra något i planen? Kontakta {whom}. Då ses planen över "
            "tillsammans med dig.",
            "Du kan när som helst säga att du inte längre vill att verksamheterna planerar "
            "tillsammans. Du säger inte nej till stödet i planen för det.",
        ]

    @property
    def coordinator_heading(self) -> str:
        return "Din samordnare" if len(self.coordinators) == 1 else "Dina samordnare"

    @property
    def coordinator_role_line(self) -> str:
        if len(self.coordinators) == 1:
            return (
                "Samordnaren håller ihop planen, kallar till uppföljning och är den du vänder "
                "dig till när något behöver ändras."
            )
        return (
            "Samordnarna håller ihop planen, kallar till uppföljning och är de du vänder dig "
            "till när något behöver ändras. Du kan kontakta vilken av dem du vill."
        )

    @property
    def follow_up_line(self) -> str:
        if self.next_follow_up is None:
            return "Ingen dag för nästa uppföljning är bestämd ännu. Fråga din samordnare."
        return (
            f"Nästa uppföljning är {date_sv(self.next_follow_up)}. Då går ni igenom planen "
            "tillsammans och ser vad som har hänt."
        )

    @property
    def footer_line(self) -> str:
        return f"Min plan – gjord {date_sv(self.made_on)}"


_TWELVE_DIGITS: Final = re.compile(r"[0-9]{12}")


def _personnummer_text(value: str) -> str:
    """``YYYYMMDD-NNNN`` from the stored twelve digits; anything else as given."""
    if _TWELVE_DIGITS.fullmatch(value):
        return f"{value[:8]}-{value[8:]}"
    return value


# --- HTML -------------------------------------------------------------------------------------

_TEMPLATES: Final = templates(__file__)

OWN_GOALS_HEADING: Final = "Mina egna mål"
_OWN_WORDS: Final = "Med mina egna ord"
_NO_OWN_GOALS: Final = (
    "Inga egna mål är antecknade ännu. Säg till din samordnare om du vill lägga till dem."
)


def render_html(view: MinPlanView) -> str:
    """The plan as one printable HTML page (A4 print styles; autoescaped; nothing fetched)."""
    return _TEMPLATES.get_template("min_plan.html").render(
        v=view,
        own_goals_heading=OWN_GOALS_HEADING,
        own_words=_OWN_WORDS,
        no_own_goals=_NO_OWN_GOALS,
    )


# --- PDF --------------------------------------------------------------------------------------

_FONT: Final = "Helvetica"


class _MinPlanPDF(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = PDF_ENCODING  # WinAnsi: å ä ö é – fit
        self._footer_text = footer_text
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(auto=True, margin=20)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(_FONT, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self._footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Sida {self.page_no()} av {{nb}}", align="R")
        self.set_text_color(0, 0, 0)


# One line of a block: (font style, size, indent mm, line height mm, text).
_Line = tuple[str, float, float, float, str]


def _draw(pdf: FPDF, lines: list[_Line], *, dry_run: bool = False) -> float:
    height = 0.0
    for style, size, indent, line_height, text in lines:
        pdf.set_font(_FONT, style, size)
        pdf.set_x(pdf.l_margin + indent)
        result = pdf.multi_cell(
            pdf.epw - indent,
            line_height,
            pdf_safe(text),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
            align="L",
            dry_run=dry_run,
            output=MethodReturnValue.HEIGHT,
        )
        assert isinstance(result, int | float)  # output=HEIGHT
        height += result
    return height


def _block(pdf: FPDF, lines: list[_Line], *, after: float = 2.5) -> None:
    """Draws ``lines`` on one page when they fit on one."""
    height = _draw(pdf, lines, dry_run=True)
    room = pdf.page_break_trigger - pdf.get_y()
    if room < height <= pdf.page_break_trigger - pdf.t_margin:
        pdf.add_page()
    _draw(pdf, lines)
    pdf.ln(after)


def _heading(pdf: FPDF, text: str, first: list[_Line]) -> None:
    """A section heading, never left alone at the foot of a page."""
    if pdf.page_break_trigger - pdf.get_y() < 12 + _draw(pdf, first, dry_run=True):
        pdf.add_page()
    pdf.set_x(pdf.l_margin)  # the dry run leaves x at the first line's indent
    pdf.set_font(_FONT, "B", 13)
    pdf.set_fill_color(228, 236, 242)
    pdf.start_section(pdf_safe(text), level=0)
    pdf.multi_cell(
        0, 7.5, pdf_safe(text), fill=True, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    pdf.ln(2)


def _rows(rows: list[tuple[str, str]], indent: float = 5) -> list[_Line]:
    return [("", 10.5, indent, 5.2, f"{label}: {text}") for label, text in rows]


def _bullets(items: list[str]) -> list[list[_Line]]:
    return [[("", 11, 3, 5.6, f"- {item}")] for item in items]


def _sections(view: MinPlanView) -> list[tuple[str, list[list[_Line]]]]:
    """The plan's sections, each a heading and its blocks (kept whole on a page)."""
    own: list[list[_Line]] = [[("I", 9.5, 0, 4.8, _OWN_WORDS)]]
    if view.own_goals:
        own.extend(_bullets(list(view.own_goals)))
    else:
        own.append([("", 11, 0, 5.6, _NO_OWN_GOALS)])
    sections = [(OWN_GOALS_HEADING, own)]
    if view.goals:
        sections.append(("Andra mål i planen", _bullets(list(view.goals))))
    actions = [
        [("B", 12, 0, 6.2, f"{n}. {action.label}"), *_rows(action.rows())]
        for n, action in enumerate(view.actions, start=1)
    ]
    sections.append(("Vem gör vad", actions))
    coordinators: list[list[_Line]] = [[("", 10.5, 0, 5.2, view.coordinator_role_line)]]
    coordinators.extend(
        [("B", 12, 0, 6.2, c.text), *_rows(c.contact.rows() if c.contact else [])]
        for c in view.coordinators
    )
    sections.append((view.coordinator_heading, coordinators))
    sections.append(("Nästa uppföljning", [[("", 11, 0, 5.6, view.follow_up_line)]]))
    if view.attendance is not None:
        sections.append(("Vilka var med på mötet", _bullets(view.attendance.lines())))
    agreement: list[list[_Line]] = [[("", 11, 0, 5.6, view.agreement.label)]]
    if view.agreement_note:
        agreement.append([("I", 11, 0, 5.6, f"Det här sa du: {view.agreement_note}")])
    sections.append(("Håller du med om planen?", agreement))
    return sections


def render_pdf(view: MinPlanView) -> bytes:
    """The plan as an A4 PDF with the same text as :func:`render_html`; "Sida n av m" on
    every page, an action kept on one page, no heading alone at a page's foot."""
    pdf = _MinPlanPDF(pdf_safe(view.footer_line))
    pdf.set_title(pdf_safe(view.title))
    pdf.set_creator("vardkedja")
    pdf.set_lang("sv")
    pdf.add_page()
    pdf.set_font(_FONT, "B", 18)
    pdf.multi_cell(0, 9, pdf_safe(view.title), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    header: list[_Line] = [("", 10.5, 0, 5.2, view.meeting_line)]
    if view.person_line:
        header.append(("", 10.5, 0, 5.2, view.person_line))
    if view.protection_line:
        header.append(("I", 10.5, 0, 5.2, view.protection_line))
    _block(pdf, header, after=3)
    pdf.set_fill_color(245, 245, 235)
    pdf.set_font(_FONT, "", 11)
    for n, line in enumerate(view.ownership_lines):
        pdf.set_font(_FONT, "B" if n == 0 else "", 11)
        pdf.multi_cell(
            0, 5.8, pdf_safe(line), fill=True, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    pdf.ln(5)
    for heading, blocks in _sections(view):
        _heading(pdf, heading, blocks[0])
        for lines in blocks:
            _block(pdf, lines, after=2.5 if len(lines) > 1 else 0.8)
        pdf.ln(3)
    return bytes(pdf.output())
