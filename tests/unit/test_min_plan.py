"""Min plan, the person's own printable plan: the HTML page and the PDF say the same plain
Swedish — goals in the person's words first, who does what and how to reach them, the
coordinators, the follow-up, who took part, whether the person agrees — and never an id,
a code or, with protected identity, the personnummer or the meeting place."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from pypdf import PdfReader

from services.referral.min_plan import (
    CARE_CHAIN_TITLE,
    RELATIVE,
    SIP_TITLE,
    YOU,
    Action,
    ActionStatus,
    Agreement,
    Attendance,
    Contact,
    Coordinator,
    MinPlanView,
    Who,
    date_sv,
    render_html,
    render_pdf,
    title_for,
)
from shared.domain.codes import Intervention
from shared.domain.contact import PostalAddress

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
PERSONNUMMER = "191212121212"
PLACE = "Avdelning 12, Centrallasarettet Växjö"

BEROENDE = Who("Beroendemottagningen Växjö", "Region Kronoberg")
BOENDESTOD = Who("Boendestödet", "Växjö kommun")
KOORD_KOMMUN = Coordinator(
    "Vårdkedjekoordinator vuxen",
    "Växjö kommun",
    Contact(
        phone="+46470410000",
        email="vardkedjan@vaxjo.se",
        opening_hours=("Mån–Fre 08:00–16:00",),
    ),
)
KOORD_REGION = Coordinator(
    "Vårdkedjekoordinator psykiatri",
    "Region Kronoberg",
    Contact(
        phone="+46470586000",
        postal=PostalAddress(street="Box 1223", postcode="351 12", city="Växjö"),
    ),
)


def plan(**changes: object) -> MinPlanView:
    view = MinPlanView(
        title=SIP_TITLE,
        made_on=dt.date(2026, 12, 10),
        personnummer=PERSONNUMMER,
        meeting_place=PLACE,
        own_goals=("Jag vill ha en egen lägenhet", "Träffa min dotter varje vecka"),
        goals=("Drogfrihet",),
        actions=(
            Action(
                what=Intervention.ABSTINENSBEHANDLING,
                who=BEROENDE,
                status=ActionStatus.STARTED,
                description="Behandling på mottagningen två gånger i veckan.",
                start_by=dt.date(2026, 12, 20),
                end_by=dt.date(2027, 3, 31),
                contact=Contact(
                    phone="+46470586100",
                    email="beroendemottagningen@kronoberg.se",
                    postal=PostalAddress(street="Strandvägen 8", postcode="352 34", city="Växjö"),
                    opening_hours=("Mån–Fre 07:30–16:00", "Stängt helgdagar"),
                ),
            ),
            Action(
                what="boendestod",  # a code as stored: printed as its label
                who=BOENDESTOD,
                start_by=dt.date(2027, 2, 1),
                contact=Contact(phone="+46470410500", note="Fråga efter boendestödjarna"),
            ),
            Action(
                what="Ansöka om sjukpenning",
                who=Who("Försäkringskassan"),
                status=ActionStatus.PLANNED,
                end_by=dt.date(2027, 1, 15),
                contact=Contact(phone="+46771524524"),
            ),
            Action(what=Intervention.ANHORIGSTOD, who=RELATIVE, status=ActionStatus.CANCELLED),
        ),
        coordinators=(KOORD_KOMMUN, KOORD_REGION),
        next_follow_up=dt.date(2027, 2, 1),
        attendance=Attendance(units=(BEROENDE, BOENDESTOD), person=True, relatives=1),
        agreement=Agreement.AGREES,
        agreement_note="Jag vill börja med boendet",
    )
    return replace(view, **changes)  # type: ignore[arg-type]


def html_text(html: str) -> str:
    """The text a reader sees (tags dropped, entities decoded, spaces collapsed)."""

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.skip = False

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.skip = tag in {"style", "title"}

        def handle_endtag(self, tag: str) -> None:
            self.skip = False
            self.parts.append(" ")

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join("".join(parser.parts).split())


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as pypdf extracts it, spaces collapsed."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def same_lines(text: str) -> str:
    """The HTML page lists "label: text" as a <dt> and a <dd>, the PDF as one line."""
    return text.replace(": ", " ")


@pytest.fixture(scope="module")
def rendered() -> tuple[str, str, str]:
    view = plan()
    html = render_html(view)
    pdf = render_pdf(view)
    assert pdf.startswith(b"%PDF")
    return html, html_text(html), pdf_text(pdf)


EXPECTED = [
    SIP_TITLE,
    "Planen är din.",
    "Kontakta någon av dina samordnare",
    "Planen gjordes på mötet 10 december 2026",
    "Personnummer: 19121212-1212",
    PLACE,
    # the person's own goals, marked as theirs
    "Mina egna mål",
    "Med mina egna ord",
    "Jag vill ha en egen lägenhet",
    "Träffa min dotter varje vecka",
    "Andra mål i planen",
    "Drogfrihet",
    # the actions: labels, who, dates in words, status, contact paths
    "Vem gör vad",
    "1. Abstinensbehandling",
    "Beroendemottagningen Växjö, Region Kronoberg",
    "Behandling på mottagningen två gånger i veckan.",
    "Börjar: senast 20 december 2026",
    "Klart: senast 31 mars 2027",
    "Läge: Påbörjad",
    "Telefon: 0470-58 61 00",
    "E-post: beroendemottagningen@kronoberg.se",
    "Adress: Strandvägen 8, 352 34 Växjö",
    "Öppettider: Mån–Fre 07:30–16:00; Stängt helgdagar",
    "2. Boendestöd",
    "Boendestödet, Växjö kommun",
    "Börjar: senast 1 februari 2027",
    "Läge: Planerad",
    "Telefon: 0470-41 05 00",
    "Fråga efter boendestödjarna",
    "3. Ansöka om sjukpenning",
    "Vem: Försäkringskassan",
    "Klart: senast 15 januari 2027",
    "Telefon: 0771-52 45 24",
    "4. Anhörigstöd",
    "Vem: En anhörig",
    "Läge: Avbruten",
    # the coordinators
    "Dina samordnare",
    "Vårdkedjekoordinator vuxen, Växjö kommun",
    "Telefon: 0470-41 00 00",
    "E-post: vardkedjan@vaxjo.se",
    "Öppettider: Mån–Fre 08:00–16:00",
    "Vårdkedjekoordinator psykiatri, Region Kronoberg",
    "Adress: Box 1223, 351 12 Växjö",
    # follow-up, attendance, agreement
    "Nästa uppföljning är 1 februari 2027",
    "Vilka var med på mötet",
    "En anhörig",
    "Håller du med om planen?",
    "Du har sagt att du håller med om planen.",
    "Det här sa du: Jag vill börja med boendet",
]


@pytest.mark.parametrize("which", ["html", "pdf"])
def test_the_plan_says_it_all_in_plain_swedish(rendered: tuple[str, str, str], which: str) -> None:
    text = same_lines(rendered[1] if which == "html" else rendered[2])
    missing = [e for e in EXPECTED if same_lines(e) not in text]
    assert not missing, f"{which} lacks {missing}"
    # own goals come first, before the plan's other goals and the actions
    assert (
        text.index("Mina egna mål") < text.index("Andra mål i planen") < text.index("Vem gör vad")
    )
    # the actions in the plan's order
    assert (
        text.index("1. Abstinensbehandling")
        < text.index("2. Boendestöd")
        < text.index("3. Ansöka om sjukpenning")
    )


@pytest.mark.parametrize("which", ["html", "pdf"])
def test_no_ids_codes_or_iso_dates(rendered: tuple[str, str, str], which: str) -> None:
    text = rendered[0] if which == "html" else rendered[2]
    assert not UUID.search(text)
    for code in (
        "boendestod",
        "abstinensbehandling",
        "anhorigstod",
        "planned",
        "started",
        "cancelled",
        "agrees",
        "+46",
    ):
        assert code not in text, code
    assert not re.search(r"\b20[0-9]{2}-[0-9]{2}-[0-9]{2}\b", text)  # dates are in words
    assert not re.search(r"\b[0-9]{6}-[0-9]{4}\b", text)  # no organisationsnummer


@pytest.mark.parametrize("which", ["html", "pdf"])
def test_protected_identity_shows_no_personnummer_and_no_place(which: str) -> None:
    view = plan(protected_identity=True)  # given them anyway: they are still left out
    text = html_text(render_html(view)) if which == "html" else pdf_text(render_pdf(view))
    raw = render_html(view) if which == "html" else text
    for leak in (
        PERSONNUMMER,
        "19121212-1212",
        "121212-1212",
        "Personnummer:",
        "Avdelning 12",
        "Centrallasarettet",
    ):
        assert leak not in raw, leak
    assert "Du har skyddade personuppgifter" in text
    assert "Planen gjordes på mötet 10 december 2026." in text
    # the functions' own contact paths are still there
    assert same_lines("Telefon: 0470-58 61 00") in same_lines(text)


def test_names_are_escaped_in_html() -> None:
    view = plan(
        own_goals=("<script>alert(1)</script> & mer",),
        actions=(Action(what="Samtal <b>", who=Who("Enhet <i>x</i>", "Kommun & Co")),),
        agreement_note='"<img src=x>"',
    )
    html = render_html(view)
    assert "<script>" not in html
    assert "<b>" not in html
    assert "<i>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; mer" in html
    assert "Enhet &lt;i&gt;x&lt;/i&gt;, Kommun &amp; Co" in html
    assert "Samtal &lt;b&gt;" in html
    assert "<script>alert(1)</script> & mer" in html_text(html)


def test_the_page_works_offline() -> None:
    html = render_html(plan())
    assert "<script" not in html
    assert not re.search(r"\b(src|href)=", html)
    assert "@import" not in html
    assert "url(" not in html
    assert "http" not in html
    assert "@media print" in html
    assert "@page" in html


def test_one_coordinator_no_follow_up_nothing_recorded() -> None:
    view = plan(
        title=title_for("remissmote"),
        coordinators=(KOORD_KOMMUN,),
        next_follow_up=None,
        own_goals=(),
        agreement=Agreement.NOT_RECORDED,
        agreement_note=None,
        attendance=Attendance(units=(BEROENDE,), person=False, relatives=2),
        changed_on=dt.date(2027, 1, 5),
    )
    for text in (html_text(render_html(view)), pdf_text(render_pdf(view))):
        assert CARE_CHAIN_TITLE in text
        assert "Din samordnare" in text
        assert "Kontakta din samordnare" in text
        assert "Ingen dag för nästa uppföljning är bestämd ännu" in text
        assert "Inga egna mål är antecknade ännu" in text
        assert "Det är inte antecknat om du håller med om planen." in text
        assert "Du var inte med på mötet" in text
        assert "2 anhöriga" in text
        assert "Den ändrades senast 5 januari 2027." in text


def test_a_long_plan_runs_onto_more_pages_with_every_action() -> None:
    actions = tuple(
        replace(plan().actions[0], description=f"Steg {n} i behandlingen.") for n in range(30)
    )
    pdf = render_pdf(plan(actions=actions))
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 2
    text = pdf_text(pdf)
    assert all(f"Steg {n} i behandlingen." in text for n in range(30))
    assert f"Sida 1 av {len(reader.pages)}" in text


def test_text_outside_the_pdf_fonts_does_not_break_it() -> None:
    view = plan(own_goals=("Łódź 漢 “citat” \x07",), actions=(Action(what="x", who=YOU),))
    assert "Lódz ? “citat”" in pdf_text(render_pdf(view))


def test_a_plan_has_one_or_two_coordinators() -> None:
    with pytest.raises(ValueError, match="coordinators"):
        plan(coordinators=())
    with pytest.raises(ValueError, match="coordinators"):
        plan(coordinators=(KOORD_KOMMUN, KOORD_REGION, KOORD_KOMMUN))


@pytest.mark.parametrize(
    ("day", "words"),
    [
        (dt.date(2027, 2, 1), "1 februari 2027"),
        (dt.date(2026, 12, 31), "31 december 2026"),
        (dt.date(2027, 5, 9), "9 maj 2027"),
        (dt.date(2027, 8, 15), "15 augusti 2027"),
    ],
)
def test_dates_in_words(day: dt.date, words: str) -> None:
    assert date_sv(day) == words


def test_titles() -> None:
    assert title_for("sip") == "Min plan – samordnad individuell plan (SIP)"
    assert title_for("remissmote") == "Min plan – vårdkedjan"
