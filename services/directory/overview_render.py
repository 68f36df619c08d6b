"""The printable overview of a member's contact paths, printed: HTML, PDF and CSV.

:func:`render_html`, :func:`render_pdf` and :func:`render_csv` print an
:class:`~services.directory.overview.Overview` built by
:func:`~services.directory.overview.build_overview`; they read nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos

from services.directory.overview import Contact, Overview, UnitSummary
from shared.web.csvout import write_csv
from shared.web.pdf import PDF_ENCODING, pdf_safe
from shared.web.templates import templates

__all__ = ["CSV_COLUMNS", "render_csv", "render_html", "render_pdf"]

CSV_COLUMNS: Final = (
    "kontaktorsak",
    "enhet",
    "huvudman",
    "kanal",
    "kontakt",
    "kommuner",
    "oppettider",
)

# --- HTML ------------------------------------------------------------------------------------

_TEMPLATES: Final = templates(__file__)


def render_html(overview: Overview) -> str:
    """The overview as a printable HTML page (A4 print styles, autoescaped)."""
    return _TEMPLATES.get_template("kontaktvagar.html").render(ov=overview)


# --- PDF -------------------------------------------------------------------------------------


class _OverviewPDF(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = PDF_ENCODING
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
