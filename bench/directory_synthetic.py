"""A large synthetic directory for benchmarks: every kommun and region of Sweden as a member.

The federation is the 290 kommuner (``shared.identity.identifiers.all_kommuner``) and a region per
county (``shared.identity.identifiers.counties``), each with a fictitious but Luhn-valid
organisationsnummer derived from its code. Units are built from templates and the
directory's code lists, so names and missions carry realistic Swedish vocabulary (å, ä, ö)
for full-text search: every member gets its intake unit (a kommun its socialtjänstens
mottagning, a region its remissport), the rest are spread over the members with a seeded
RNG, so the same seed always gives the same directory.

    python -m bench.directory_synthetic --units 20000 --out bench/results/synthetic-directory.jsonl

writes one ``UnitChangedV1`` payload (version 1, deterministic uuid5 unit id) per line, ready
to feed into a read replica; ``--format units`` writes ``{"owner_orgnr", "unit"}`` lines with
the UnitCreate-shaped entry instead.

Everything is fictitious: phone numbers are from the series PTS reserves for fiction
(070-174 06 05 - 070-174 06 99) or the national 1177, addresses are on the reserved
``.example`` domain, and no entry names a person.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from stdnum import luhn

from services.directory.codes import INTERVENTION_LABELS, Intervention, UnitKind
from services.directory.schemas import UnitCreate
from shared.domain.hours import OpeningHours
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers import all_kommuner, counties
from shared.messaging.events.payloads import UnitChangedV1

__all__ = [
    "CHANGED_AT",
    "UNIT_NAMESPACE",
    "SyntheticMember",
    "as_events",
    "generate",
    "kommun_orgnr",
    "main",
    "members",
    "region_orgnr",
    "unit_id",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "synthetic-directory.jsonl"

UNIT_NAMESPACE: Final = uuid.UUID("5b7f3c1e-9d2a-5e8b-a4c6-0f1e2d3c4b5a")
"""uuid5 namespace of the synthetic unit ids."""

CHANGED_AT: Final = dt.datetime(2026, 1, 12, 7, 0, tzinfo=dt.UTC)
"""``changed_at`` of every synthetic event (a fixed instant keeps the output reproducible)."""

_AS_OF: Final = "2026-01-12T08:00:00+01:00"
# PTS's series for fiction (film, TV, books): these numbers reach nobody.
_PHONES: Final = tuple(f"070-174 06 {n:02d}" for n in range(5, 100))


# --- members ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticMember:
    """One huvudman of the synthetic federation."""

    orgnr: str
    name: str
    kind: str  # "region" | "kommun"
    county_code: str
    kommunkoder: tuple[str, ...]  # the kommuner it serves
    place: str  # the kommun's or county's short name, for names and addresses
    domain: str  # its e-mail domain (on .example)


def _with_check_digit(nine: str) -> str:
    return f"{nine[:6]}-{nine[6:]}{luhn.calc_check_digit(nine)}"


def region_orgnr(county_code: str) -> str:
    """A fictitious, Luhn-valid organisationsnummer for the region of a county (2321cc-900c).

    Real regions are 232100-xxxx; a county code of 01 or more never collides with them.
    """
    return _with_check_digit(f"2321{county_code}900")


def kommun_orgnr(kommunkod: str) -> str:
    """A fictitious, Luhn-valid organisationsnummer for a kommun (2120cc-kk9c for kod cckk).

    Real kommuner are 212000-xxxx; a county code of 01 or more never collides with them.
    """
    return _with_check_digit(f"2120{kommunkod[:2]}{kommunkod[2:]}9")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


@lru_cache(maxsize=1)
def members() -> tuple[SyntheticMember, ...]:
    """The 290 kommuner (by code) and then the 21 regions (by county code)."""
    kommuner = all_kommuner()
    by_county: dict[str, list[str]] = {}
    for k in kommuner:
        by_county.setdefault(k.county_code, []).append(k.code)
    result = [
        SyntheticMember(
            orgnr=kommun_orgnr(k.code),
            name=k.name,
            kind="kommun",
            county_code=k.county_code,
            kommunkoder=(k.code,),
            place=k.short_name,
            domain=f"{_slug(k.short_name)}.kommun.example",
        )
        for k in kommuner
    ]
    result += [
        SyntheticMember(
            orgnr=region_orgnr(c.code),
            name=f"Region {c.short_name}",
            kind="region",
            county_code=c.code,
            kommunkoder=tuple(by_county[c.code]),
            place=c.short_name,
            domain=f"region-{_slug(c.short_name)}.example",
        )
        for c in counties()
    ]
    return tuple(result)


@lru_cache(maxsize=1)
def _kommun_names() -> dict[str, str]:
    return {k.code: k.short_name for k in all_kommuner()}


# --- vocabulary -------------------------------------------------------------------------------

K = UnitKind
I = Intervention  # noqa: E741 - a short alias keeps the tables readable
R = ReferralKind

_DISTRICT_HEADS: Final = (
    "Björk", "Ek", "Lind", "Gran", "Sjö", "Äng", "Hög", "Berg", "Strand", "Löv", "Åker",
    "Näs", "Tall", "Sol", "Rönn", "Ås", "Vik", "Ljung", "Häll", "Älv", "Mål", "Kvarn",
)  # fmt: skip
_DISTRICT_TAILS: Final = (
    "backen", "dalen", "lunden", "gården", "ängen", "viken", "holmen", "torp", "åsen",
    "hagen", "liden", "berga", "näset", "sund", "slätt", "höjden", "vallen", "kulla",
)  # fmt: skip

# Name templates: {ort} the unit's kommun, {omr} an invented district, {lan} the county.
_NAMES: Final[dict[UnitKind, tuple[str, ...]]] = {
    K.REMISSPORT: ("Psykiatrins remissport {lan}", "Remissporten vuxenpsykiatri {ort}"),
    K.BEROENDEMOTTAGNING: (
        "Beroendemottagningen {ort}",
        "Beroendecentrum {ort}",
        "Mottagningen för beroende och samsjuklighet {ort}",
        "Spelberoendemottagningen {lan}",
        "LARO-mottagningen {ort}",
    ),
    K.VUXENPSYKIATRI: (
        "Allmänpsykiatrisk mottagning {ort}",
        "Vuxenpsykiatrin {omr}",
        "Psykiatriska öppenvårdsmottagningen {ort}",
    ),
    K.PSYKOSENHET: ("Psykosenheten {ort}", "Psykosmottagningen {lan}"),
    K.AKUTPSYKIATRI: ("Akutpsykiatrisk avdelning {ort}", "Psykiatriska akutmottagningen {ort}"),
    K.PRIMARVARD: (
        "Vårdcentralen {omr}",
        "Vårdcentralen {ort} centrum",
        "Hälsocentralen {omr}",
        "{omr}s vårdcentral",
    ),
    K.SOCIALTJANSTENS_MOTTAGNING: (
        "Socialtjänstens mottagning vuxna {ort}",
        "Mottagningsenheten individ- och familjeomsorg {ort}",
        "Vuxenmottagningen {ort}",
    ),
    K.MYNDIGHETSUTOVNING_VUXNA: (
        "Myndighetsutövning vuxna {ort}",
        "Vuxenenheten, missbruk och beroende {ort}",
        "Utredningsenheten vuxna {ort}",
    ),
    K.BOENDESTOD: (
        "Boendestöd {ort}",
        "Boendestödet {omr}",
        "Stödboendet {omr}",
        "Bostad först {ort}",
    ),
    K.SYSSELSATTNING: (
        "Daglig sysselsättning {omr}",
        "Arbetsträningen {ort}",
        "Sysselsättningen {omr}",
    ),
    K.BEHANDLINGSHEM_HVB: ("Behandlingshemmet {omr}", "{omr} behandlingshem", "HVB {omr}"),
    K.HELDYGNSVARD: (
        "Beroendeavdelningen {ort}",
        "Avdelningen för abstinensbehandling {ort}",
        "Heldygnsvård beroende {lan}",
    ),
    K.INTEGRERAD_BEROENDEMOTTAGNING: (
        "Integrerad beroendemottagning {ort}",
        "Samverkansmottagningen {ort}",
    ),
    K.ANHORIGSTOD: ("Anhörigstöd {ort}", "Anhörigcentrum {ort}", "Stöd till anhöriga, {ort}"),
    K.VARDKEDJEKOORDINATOR: (
        "Vårdkedjekoordinator {ort}",
        "Samordningsfunktionen för vårdkedjan {lan}",
    ),
    K.BARN_OCH_UNGDOM: (
        "Barn och familj {ort}",
        "Öppenvården barn och unga {ort}",
        "Ungdomsteamet {ort}",
    ),
    K.MOTTAGNING_UNGA_VUXNA: (
        "Mini-Maria {ort}",
        "Mottagningen för unga vuxna {ort}",
        "Ungdomsmottagningen {omr}",
    ),
}

# A region's units of these kinds are named differently from a kommun's.
_REGION_NAMES: Final[dict[UnitKind, tuple[str, ...]]] = {
    K.BARN_OCH_UNGDOM: ("Barn- och ungdomspsykiatrin {ort}", "BUP {lan}, mottagning {ort}"),
    K.ANHORIGSTOD: ("Anhörigstöd inom psykiatrin {lan}",),
}

_OPENERS: Final[dict[UnitKind, tuple[str, ...]]] = {
    K.REMISSPORT: (
        "Tar emot remisser till specialistpsykiatrin i {lan} och fördelar dem till rätt enhet.",
        "Gemensam ingång för remisser till vuxenpsykiatrin; en vårdkedjeremiss leder till ett "
        "remissmöte med alla berörda enheter.",
    ),
    K.BEROENDEMOTTAGNING: (
        "Specialiserad öppenvård för vuxna med skadligt bruk av eller beroende av alkohol, "
        "narkotika, läkemedel eller spel om pengar.",
        "Utreder och behandlar beroende och gör abstinensbedömningar för patienter i och "
        "omkring {ort}.",
    ),
    K.VUXENPSYKIATRI: (
        "Specialistpsykiatrisk öppenvård för vuxna med måttlig till svår psykisk ohälsa.",
        "Utreder och behandlar depression, ångestsyndrom och neuropsykiatriska tillstånd, även "
        "vid samtidigt skadligt bruk.",
    ),
    K.PSYKOSENHET: (
        "Utreder och behandlar vuxna med psykossjukdom i öppenvård och med mobila team.",
    ),
    K.AKUTPSYKIATRI: (
        "Akut psykiatrisk bedömning och heldygnsvård dygnet runt, även vid berusning och "
        "abstinens.",
    ),
    K.PRIMARVARD: (
        "Primärvård för alla åldrar; uppmärksammar riskbruk tidigt genom frågor om alkohol och "
        "andra droger.",
        "Vårdcentral i {ort} som erbjuder rådgivande samtal och hänvisar vidare till "
        "beroendevården vid behov.",
    ),
    K.SOCIALTJANSTENS_MOTTAGNING: (
        "Kommunens gemensamma ingång för vuxna med skadligt bruk eller beroende i {ort}.",
        "Tar emot ansökningar, anmälningar och kontaktbegäran från regionen; en kontaktbegäran "
        "behandlas som en ansökan.",
    ),
    K.MYNDIGHETSUTOVNING_VUXNA: (
        "Utreder behov och beslutar om insatser enligt socialtjänstlagen för vuxna med "
        "skadligt bruk eller beroende.",
        "Socialsekreterare som handlägger ärenden om vuxna med missbruk och ansöker vid behov "
        "om vård enligt LVM.",
    ),
    K.BOENDESTOD: (
        "Personellt boendestöd i den egna bostaden för vuxna med skadligt bruk eller beroende.",
        "Stödboende som mellansteg mellan placering på HVB och eget boende.",
    ),
    K.SYSSELSATTNING: (
        "Sysselsättning med låg tröskel utan krav på drogfrihet, som ett första steg mot "
        "arbete eller studier.",
        "Arbetsträning och praktik för vuxna som vill komma närmare arbetsmarknaden.",
    ),
    K.BEHANDLINGSHEM_HVB: (
        "Hem för vård eller boende för vuxna med skadligt bruk eller beroende som behöver "
        "behandling i heldygnsform.",
        "Behandlingshem med primärbehandling och utslussning till eget boende i {ort}.",
    ),
    K.HELDYGNSVARD: (
        "Heldygnsvård för abstinensbehandling och stabilisering när öppenvård inte räcker.",
    ),
    K.INTEGRERAD_BEROENDEMOTTAGNING: (
        "Mottagningen drivs gemensamt av kommun och region och samlar hälso- och sjukvård och "
        "socialtjänst under samma tak.",
    ),
    K.ANHORIGSTOD: (
        "Stöd till anhöriga och närstående till personer med skadligt bruk eller beroende, "
        "enskilt och i grupp.",
    ),
    K.VARDKEDJEKOORDINATOR: (
        "Sammanhållande funktion mellan kommun och region med mandat att kalla till möten och "
        "följa upp insatser i vårdkedjan.",
    ),
    K.BARN_OCH_UNGDOM: (
        "Öppenvård för barn, unga och familjer, bland annat när en förälder har ett skadligt "
        "bruk eller beroende.",
        "Stöd och behandling för ungdomar med riskbruk och för barn som anhöriga.",
    ),
    K.MOTTAGNING_UNGA_VUXNA: (
        "Mottagning för unga med riskbruk, skadligt bruk eller beroende av alkohol, narkotika "
        "eller spel om pengar.",
    ),
}

_SIP_CLOSER: Final = (
    "Verksamheten tar emot kallelser till SIP och deltar i planeringen inför utskrivning från "
    "heldygnsvård."
)
_CLOSERS: Final = (
    "Samverkar med socialtjänsten i {ort} och med regionens beroendevård så att ingen faller "
    "mellan stolarna.",
    "Kontakt kan tas av individen själv, av anhöriga eller av professionella.",
    "Uppgifter om individen lämnas bara med samtycke eller stöd i lag.",
    "Arbetet följer Socialstyrelsens nationella riktlinjer för vård och stöd vid missbruk och "
    "beroende.",
    "Väntetiden till ett första besök är normalt kortare än två veckor.",
    "Barn som anhöriga uppmärksammas alltid när en förälder får insatser.",
    "Återfall ses som en del av förändringsarbetet och leder inte till att insatsen avslutas.",
)

_INTERVENTIONS: Final[dict[UnitKind, tuple[Intervention, ...]]] = {
    K.REMISSPORT: (I.PSYKIATRISK_BEDOMNING, I.SIP_SAMORDNING),
    K.BEROENDEMOTTAGNING: (
        I.ABSTINENSBEDOMNING, I.ABSTINENSBEHANDLING, I.NEDTRAPPNING,
        I.LAKEMEDELSASSISTERAD_BEHANDLING, I.MOTIVATIONSSAMTAL, I.KBT,
        I.ATERFALLSPREVENTION, I.PROVTAGNING, I.NALOXON, I.SPEL_OM_PENGAR,
    ),
    K.VUXENPSYKIATRI: (I.PSYKIATRISK_BEDOMNING, I.KBT, I.SIP_SAMORDNING, I.MOTIVATIONSSAMTAL),
    K.PSYKOSENHET: (I.PSYKIATRISK_BEDOMNING, I.SIP_SAMORDNING, I.ANHORIGSTOD),
    K.AKUTPSYKIATRI: (
        I.PSYKIATRISK_BEDOMNING, I.ABSTINENSBEDOMNING, I.ABSTINENSBEHANDLING, I.HELDYGNSVARD,
        I.TILLNYKTRING,
    ),
    K.PRIMARVARD: (I.MOTIVATIONSSAMTAL, I.PROVTAGNING, I.ABSTINENSBEDOMNING, I.KBT),
    K.SOCIALTJANSTENS_MOTTAGNING: (
        I.UTREDNING_SOL, I.MOTIVATIONSSAMTAL, I.BOENDESTOD, I.SYSSELSATTNING,
        I.VALD_I_NARA_RELATION,
    ),
    K.MYNDIGHETSUTOVNING_VUXNA: (I.UTREDNING_SOL, I.HVB_PLACERING, I.SIP_SAMORDNING),
    K.BOENDESTOD: (I.BOENDESTOD, I.BOSTAD_FORST, I.ATERFALLSPREVENTION, I.EFTERVARD),
    K.SYSSELSATTNING: (I.SYSSELSATTNING,),
    K.BEHANDLINGSHEM_HVB: (
        I.PRIMARBEHANDLING, I.TOLVSTEGSBEHANDLING, I.EFTERVARD, I.ATERFALLSPREVENTION,
        I.HVB_PLACERING, I.KBT,
    ),
    K.HELDYGNSVARD: (
        I.ABSTINENSBEDOMNING, I.ABSTINENSBEHANDLING, I.HELDYGNSVARD, I.SIP_SAMORDNING,
        I.TILLNYKTRING,
    ),
    K.INTEGRERAD_BEROENDEMOTTAGNING: (
        I.MOTIVATIONSSAMTAL, I.KBT, I.ATERFALLSPREVENTION, I.PROVTAGNING, I.NALOXON,
        I.SPRUTUTBYTE, I.UTREDNING_SOL, I.SIP_SAMORDNING,
    ),
    K.ANHORIGSTOD: (I.ANHORIGSTOD, I.BARN_SOM_ANHORIGA, I.VALD_I_NARA_RELATION),
    K.VARDKEDJEKOORDINATOR: (I.SIP_SAMORDNING,),
    K.BARN_OCH_UNGDOM: (
        I.FAMILJEBEHANDLING, I.BARN_SOM_ANHORIGA, I.MOTIVATIONSSAMTAL, I.PSYKIATRISK_BEDOMNING,
    ),
    K.MOTTAGNING_UNGA_VUXNA: (
        I.MOTIVATIONSSAMTAL, I.PROVTAGNING, I.FAMILJEBEHANDLING, I.KBT, I.ANHORIGSTOD,
        I.SPEL_OM_PENGAR,
    ),
}  # fmt: skip

_ADULTS = ("Vuxna med skadligt bruk eller beroende", 18, None)
_TARGETS: Final[dict[UnitKind, tuple[tuple[str, int | None, int | None], ...]]] = {
    K.REMISSPORT: (("Vuxna med psykisk ohälsa och samtidigt skadligt bruk", 18, None),),
    K.BEROENDEMOTTAGNING: (
        _ADULTS,
        ("Personer med opioidberoende i läkemedelsassisterad behandling", 18, None),
        ("Personer med spelproblem och deras anhöriga", 18, None),
    ),
    K.VUXENPSYKIATRI: (("Vuxna med måttlig till svår psykisk ohälsa", 18, None),),
    K.PSYKOSENHET: (("Vuxna med psykossjukdom", 18, None), ("Anhöriga", None, None)),
    K.AKUTPSYKIATRI: (("Vuxna i akut psykiatriskt tillstånd", 18, None),),
    K.PRIMARVARD: (("Alla åldrar, listade vid vårdcentralen", None, None),),
    K.SOCIALTJANSTENS_MOTTAGNING: (
        _ADULTS,
        ("Anhöriga och professionella som söker råd", None, None),
    ),
    K.MYNDIGHETSUTOVNING_VUXNA: (_ADULTS,),
    K.BOENDESTOD: (("Vuxna med skadligt bruk eller beroende i eget boende", 18, None),),
    K.SYSSELSATTNING: (("Vuxna som står långt från arbetsmarknaden", 18, None),),
    K.BEHANDLINGSHEM_HVB: (_ADULTS, ("Vuxna med långvarigt beroende", 20, None)),
    K.HELDYGNSVARD: (("Vuxna med svår abstinens", 18, None),),
    K.INTEGRERAD_BEROENDEMOTTAGNING: (_ADULTS,),
    K.ANHORIGSTOD: (("Vuxna anhöriga", 18, None), ("Barn och unga som anhöriga", 7, 17)),
    K.VARDKEDJEKOORDINATOR: (("Vuxna med insatser från flera huvudmän", 18, None),),
    K.BARN_OCH_UNGDOM: (
        ("Barn och unga och deras familjer", 0, 20),
        ("Ungdomar med riskbruk", 13, 17),
    ),
    K.MOTTAGNING_UNGA_VUXNA: (
        ("Unga med riskbruk eller skadligt bruk", 13, 25),
        ("Unga vuxna med skadligt bruk", 18, 25),
    ),
}  # fmt: skip

_PSYCHIATRY_RECEIVES = (R.HVB_UNDERRATTELSE, R.SIP_KALLELSE, R.UTSKRIVNINGSPLANERING)
_RECEIVES: Final[dict[UnitKind, tuple[ReferralKind, ...]]] = {
    K.REMISSPORT: (R.VARDKEDJEREMISS,),
    K.BEROENDEMOTTAGNING: _PSYCHIATRY_RECEIVES,
    K.VUXENPSYKIATRI: _PSYCHIATRY_RECEIVES,
    K.PSYKOSENHET: _PSYCHIATRY_RECEIVES,
    K.AKUTPSYKIATRI: _PSYCHIATRY_RECEIVES,
    K.HELDYGNSVARD: _PSYCHIATRY_RECEIVES,
    K.INTEGRERAD_BEROENDEMOTTAGNING: _PSYCHIATRY_RECEIVES,
    K.PRIMARVARD: (R.SIP_KALLELSE, R.UTSKRIVNINGSPLANERING),
    K.SOCIALTJANSTENS_MOTTAGNING: (R.KONTAKTBEGARAN, R.SIP_KALLELSE, R.UTSKRIVNINGSPLANERING),
    K.MYNDIGHETSUTOVNING_VUXNA: (R.SIP_KALLELSE, R.UTSKRIVNINGSPLANERING),
    K.BOENDESTOD: (R.SIP_KALLELSE,),
    K.SYSSELSATTNING: (),
    K.BEHANDLINGSHEM_HVB: (R.SIP_KALLELSE, R.UTSKRIVNINGSPLANERING),
    K.ANHORIGSTOD: (),
    K.VARDKEDJEKOORDINATOR: (R.SIP_KALLELSE,),
    K.BARN_OCH_UNGDOM: (R.SIP_KALLELSE,),
    K.MOTTAGNING_UNGA_VUXNA: (R.SIP_KALLELSE,),
}

_INBOX_REASONS: Final[dict[ReferralKind, str]] = {
    R.VARDKEDJEREMISS: "Vårdkedjeremiss till specialistpsykiatrin",
    R.KONTAKTBEGARAN: "Kontaktbegäran från regionen",
    R.SIP_KALLELSE: "Kallelse till SIP",
    R.UTSKRIVNINGSPLANERING: "Utskrivningsplanering",
    R.HVB_UNDERRATTELSE: "Underrättelse om placering på HVB",
}
_KONTAKTBEGARAN_TOPICS: Final = (
    "boendestöd",
    "sysselsättning",
    "stöd vid skadligt bruk",
    "behandling i öppenvård",
)
_PHONE_REASONS: Final = (
    "Rådgivning för professionella",
    "Samråd om pågående ärende",
    "Frågor om plats och studiebesök",
    "Frågor om remissgången",
    "Rådgivning för anhöriga",
)
_MAILBOX: Final[dict[UnitKind, str]] = {
    K.REMISSPORT: "remissporten",
    K.BEROENDEMOTTAGNING: "beroendemottagningen",
    K.VUXENPSYKIATRI: "psykiatrimottagningen",
    K.PSYKOSENHET: "psykosenheten",
    K.AKUTPSYKIATRI: "akutpsykiatrin",
    K.PRIMARVARD: "vardcentralen",
    K.SOCIALTJANSTENS_MOTTAGNING: "socialtjansten-vuxen",
    K.MYNDIGHETSUTOVNING_VUXNA: "myndighet-vuxen",
    K.BOENDESTOD: "boendestodet",
    K.SYSSELSATTNING: "sysselsattningen",
    K.BEHANDLINGSHEM_HVB: "behandlingshemmet",
    K.HELDYGNSVARD: "beroendeavdelningen",
    K.INTEGRERAD_BEROENDEMOTTAGNING: "integrerad-beroende",
    K.ANHORIGSTOD: "anhorigstodet",
    K.VARDKEDJEKOORDINATOR: "vardkedjekoordinator",
    K.BARN_OCH_UNGDOM: "barn-och-unga",
    K.MOTTAGNING_UNGA_VUXNA: "unga-vuxna",
}

_ALWAYS_OPEN: Final = frozenset({K.AKUTPSYKIATRI, K.HELDYGNSVARD, K.BEHANDLINGSHEM_HVB})
_WITH_CAPACITY: Final = frozenset({K.BEHANDLINGSHEM_HVB, K.HELDYGNSVARD})
# Kinds a region runs for the whole county; others cover a few neighbouring kommuner.
_COUNTY_WIDE: Final = frozenset(
    {K.REMISSPORT, K.AKUTPSYKIATRI, K.PSYKOSENHET, K.HELDYGNSVARD, K.VARDKEDJEKOORDINATOR}
)
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri")

_REGION_KINDS: Final[dict[UnitKind, float]] = {
    K.PRIMARVARD: 8,
    K.BEROENDEMOTTAGNING: 4,
    K.VUXENPSYKIATRI: 4,
    K.BARN_OCH_UNGDOM: 2,
    K.PSYKOSENHET: 1,
    K.AKUTPSYKIATRI: 1,
    K.HELDYGNSVARD: 1,
    K.INTEGRERAD_BEROENDEMOTTAGNING: 1,
    K.MOTTAGNING_UNGA_VUXNA: 1,
    K.VARDKEDJEKOORDINATOR: 0.5,
    K.ANHORIGSTOD: 0.5,
    K.REMISSPORT: 0.3,
}
_KOMMUN_KINDS: Final[dict[UnitKind, float]] = {
    K.BOENDESTOD: 3,
    K.MYNDIGHETSUTOVNING_VUXNA: 2,
    K.SYSSELSATTNING: 2,
    K.BARN_OCH_UNGDOM: 2,
    K.ANHORIGSTOD: 1.5,
    K.BEHANDLINGSHEM_HVB: 1,
    K.MOTTAGNING_UNGA_VUXNA: 1,
    K.SOCIALTJANSTENS_MOTTAGNING: 0.5,
    K.INTEGRERAD_BEROENDEMOTTAGNING: 0.5,
    K.VARDKEDJEKOORDINATOR: 0.5,
}
_REGION_WEIGHT: Final = 12.0  # a region owns about as many units as a dozen kommuner


# --- units ------------------------------------------------------------------------------------


def _district(rng: random.Random) -> str:
    return rng.choice(_DISTRICT_HEADS) + rng.choice(_DISTRICT_TAILS)


def _label(code: Intervention) -> str:
    label = INTERVENTION_LABELS[code]
    # "Motivationssamtal (MI)" reads "motivationssamtal (MI)" mid-sentence; "KBT" stays.
    return label[0].lower() + label[1:] if label[1:2].islower() else label


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " och " + items[-1]


def _coverage(rng: random.Random, member: SyntheticMember, kind: UnitKind, home: str) -> list[str]:
    if member.kind == "kommun":
        if rng.random() < 0.08:  # a shared service with neighbours (gemensam nämnd)
            county = [k for k in _county_kommuner(member.county_code) if k != home]
            extra = rng.sample(county, min(len(county), rng.randint(1, 2)))
            return sorted([home, *extra])
        return [home]
    county = list(member.kommunkoder)
    if kind in _COUNTY_WIDE or len(county) <= 2:
        return county
    width = rng.randint(1, min(5, len(county)))
    start = max(0, min(county.index(home) - rng.randint(0, width - 1), len(county) - width))
    return county[start : start + width]


@lru_cache(maxsize=32)
def _county_kommuner(county_code: str) -> tuple[str, ...]:
    return tuple(k.code for k in all_kommuner() if k.county_code == county_code)


def _weekly(opens: str, closes: str, friday: str | None = None) -> list[dict[str, str]]:
    return [
        {"day": d, "opens": opens, "closes": friday if d == "fri" and friday else closes}
        for d in _WEEKDAYS
    ]


def _opening_hours(rng: random.Random, kind: UnitKind) -> dict[str, Any]:
    if kind in _ALWAYS_OPEN:
        return {"always_open": True, "note": "Bemannat dygnet runt"}
    variant = rng.randrange(5)
    if variant == 0:
        return {"weekly": _weekly("08:00", "16:30")}
    if variant == 1:
        return {"weekly": _weekly("08:00", "16:30", friday="15:00")}
    if variant == 2:
        weekly = _weekly("08:00", "12:00") + _weekly("13:00", "16:00")
        return {"weekly": weekly, "note": "Lunchstängt 12–13"}
    if variant == 3:
        weekly = _weekly("07:30", "16:00")
        weekly[1]["closes"] = "19:00"
        return {"weekly": weekly, "note": "Kvällsöppet tisdagar"}
    return {
        "weekly": _weekly("08:00", "16:30"),
        "special_days": [{"date": "2026-09-04", "closed": True, "note": "Personaldag"}],
    }


def _contact_paths(
    rng: random.Random,
    member: SyntheticMember,
    kind: UnitKind,
    receives: Sequence[ReferralKind],
    place: str,
) -> list[dict[str, Any]]:
    # A region has units all over the county: the place tells its mailboxes apart.
    mailbox = _MAILBOX[kind] if member.kind == "kommun" else f"{_MAILBOX[kind]}-{_slug(place)}"
    paths: list[dict[str, Any]] = []
    for referral_kind in receives[:2]:
        paths.append({"reason": _INBOX_REASONS[referral_kind], "channel": "inbox"})
    if R.KONTAKTBEGARAN in receives:
        topic = rng.choice(_KONTAKTBEGARAN_TOPICS)
        paths.append({"reason": f"Kontaktbegäran om {topic}", "channel": "inbox"})
    paths.append(
        {"reason": rng.choice(_PHONE_REASONS), "channel": "phone", "phone": rng.choice(_PHONES)}
    )
    if kind is K.PRIMARVARD:
        paths.append(
            {"reason": "Sjukvårdsrådgivning och tidsbokning", "channel": "phone", "phone": "1177"}
        )
    if receives and rng.random() < 0.7:
        paths.append(
            {
                "reason": "Säker post",
                "channel": "secure_mail",
                "secure_mail": f"{mailbox}@sakerpost.{member.domain}",
            }
        )
    if rng.random() < 0.3:
        paths.append(
            {
                "reason": "Allmänna frågor (aldrig personuppgifter)",
                "channel": "functional_email",
                "email": f"{mailbox}@{member.domain}",
            }
        )
    if rng.random() < 0.2:
        paths.append(
            {
                "reason": "Handlingar per post",
                "channel": "postal_address",
                "postal": {
                    "street": f"Box {rng.randint(100, 99999)}",
                    "postcode": f"{rng.randint(100, 989)} {rng.randint(0, 99):02d}",
                    "city": place,
                },
            }
        )
    return paths


def _unit(rng: random.Random, member: SyntheticMember, kind: UnitKind) -> dict[str, Any]:
    home = rng.choice(member.kommunkoder)
    place = _kommun_names()[home]
    words = {"ort": place, "omr": _district(rng), "lan": member.place}
    names = _REGION_NAMES.get(kind, _NAMES[kind]) if member.kind == "region" else _NAMES[kind]
    name = rng.choice(names).format(**words)
    codes = _INTERVENTIONS[kind]
    interventions = rng.sample(codes, rng.randint(1, min(5, len(codes))))
    sentences = [rng.choice(_OPENERS[kind]).format(**words)]
    sentences.append(f"Insatserna omfattar {_listing([_label(c) for c in interventions])}.")
    receives = _RECEIVES[kind]
    closers = (*_CLOSERS, _SIP_CLOSER) if R.SIP_KALLELSE in receives else _CLOSERS
    sentences += [s.format(**words) for s in rng.sample(closers, rng.randint(0, 2))]
    targets = _TARGETS[kind]
    target_groups = [
        {"description": d, "age_min": lo, "age_max": hi}
        for d, lo, hi in rng.sample(targets, rng.randint(1, len(targets)))
    ]
    unit: dict[str, Any] = {
        "name": name,
        "kind": str(kind),
        "mission": " ".join(sentences),
        "target_groups": target_groups,
        "interventions": [str(c) for c in interventions],
        "kommunkoder": _coverage(rng, member, kind, home),
        "contact_paths": _contact_paths(rng, member, kind, receives, place),
        "opening_hours": _opening_hours(rng, kind),
        "referral_kinds": [str(r) for r in receives],
    }
    if kind in _WITH_CAPACITY:
        total = rng.randint(6, 30)
        unit["capacity"] = {
            "free_places": rng.randint(0, total // 3),
            "total_places": total,
            "as_of": _AS_OF,
        }
    if rng.random() < 0.03:
        unit["valid_from"] = (
            dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 180))
        ).isoformat()
    return unit


def _cumulative(weights: dict[UnitKind, float]) -> tuple[list[UnitKind], list[float]]:
    kinds = list(weights)
    cumulative: list[float] = []
    total = 0.0
    for kind in kinds:
        total += weights[kind]
        cumulative.append(total)
    return kinds, cumulative


def generate(n_units: int, seed: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """``n_units`` synthetic units as (owner orgnr, UnitCreate-shaped dict), grouped by owner.

    Each member first gets its intake unit (kommuner first, so any ``n_units`` >= 290
    covers every kommun); the rest go to members at random, regions weighing more. The
    same ``seed`` gives the same list.
    """
    if n_units < 0:
        raise ValueError("n_units must be zero or more")
    rng = random.Random(seed)
    federation = members()
    counts = [1 if i < n_units else 0 for i in range(len(federation))]
    weights = [
        _REGION_WEIGHT if m.kind == "region" else rng.lognormvariate(0.0, 0.7) for m in federation
    ]
    for i in rng.choices(
        range(len(federation)), weights=weights, k=max(0, n_units - len(federation))
    ):
        counts[i] += 1
    tables = {"region": _cumulative(_REGION_KINDS), "kommun": _cumulative(_KOMMUN_KINDS)}
    intake = {"region": K.REMISSPORT, "kommun": K.SOCIALTJANSTENS_MOTTAGNING}
    units: list[tuple[str, dict[str, Any]]] = []
    for member, count in zip(federation, counts, strict=True):
        if count == 0:
            continue
        kinds, cumulative = tables[member.kind]
        more = rng.choices(kinds, cum_weights=cumulative, k=count - 1)
        for kind in [intake[member.kind], *more]:
            units.append((member.orgnr, _unit(rng, member, kind)))
    return units


def unit_id(owner_orgnr: str, index: int) -> str:
    """The deterministic id of the ``index``-th generated unit (uuid5)."""
    return str(uuid.uuid5(UNIT_NAMESPACE, f"{owner_orgnr}/{index}"))


def _owner_form(data: dict[str, Any], hours_cache: dict[str, str]) -> dict[str, Any]:
    """``data`` validated and normalised as the owner's directory stores it (JSON form).

    Opening hours are validated once per distinct schedule (the generator uses a handful);
    they are independent of the other fields, and their checks are most of the cost.
    """
    hours = data.get("opening_hours")
    fields: dict[str, Any] = UnitCreate.model_validate({**data, "opening_hours": None}).model_dump(
        mode="json"
    )
    if hours is not None:
        key = json.dumps(hours, sort_keys=True)
        if key not in hours_cache:
            hours_cache[key] = OpeningHours.model_validate(hours).model_dump_json()
        fields["opening_hours"] = json.loads(hours_cache[key])
    return fields


def as_events(
    units: Iterable[tuple[str, dict[str, Any]]], *, changed_at: dt.datetime = CHANGED_AT
) -> list[dict[str, Any]]:
    """``UnitChangedV1`` payloads (version 1, active) for ``generate``'s units, as JSON dicts.

    Each entry is validated and normalised as the owner's directory would publish it (phone
    numbers in E.164, canonical opening hours), and each payload is checked against
    ``UnitChangedV1``. The unit id is a uuid5 of the owner and the unit's position in the
    list, so the same list always gives the same ids.
    """
    hours_cache: dict[str, str] = {}
    when = changed_at.isoformat()
    events: list[dict[str, Any]] = []
    for index, (owner, data) in enumerate(units):
        payload = {
            "unit_id": unit_id(owner, index),
            "owner_orgnr": owner,
            **_owner_form(data, hours_cache),
            "status": "active",
            "status_message": None,
            "reviewed_at": None,
            "reviewed_by": None,
            "version": 1,
            "changed_at": when,
        }
        UnitChangedV1.model_validate(payload)  # the shape every replica accepts
        events.append(payload)
    return events


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=20_000, help="how many units")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed (same seed, same output)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines file")
    parser.add_argument(
        "--format",
        choices=("events", "units"),
        default="events",
        help="UnitChangedV1 payloads (default) or {owner_orgnr, unit} entries",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    units = generate(args.units, seed=args.seed)
    generated = time.perf_counter()
    rows: list[dict[str, Any]]
    if args.format == "events":
        rows = as_events(units)
    else:
        rows = [{"owner_orgnr": owner, "unit": unit} for owner, unit in units]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    done = time.perf_counter()
    covered = {k for _, u in units for k in u["kommunkoder"]}
    owners = {owner for owner, _ in units}
    print(
        f"{len(units)} units of {len(owners)} members covering {len(covered)} kommuner; "
        f"generated in {generated - started:.2f} s, {args.format} written in "
        f"{done - generated:.2f} s to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
