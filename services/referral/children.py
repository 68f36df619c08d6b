"""Children asked every time (issue 22; 004: "måste barns och ungas situation
uppmärksammas"): every referral answers whether there are children in the household or
close to the person — yes, no, or unknown with why — and a yes brings two prompts to the
sending unit and to the receiving unit: the support for children as relatives, and the
path for a report of concern (an orosanmälan, a kind of its own)."""

from __future__ import annotations

from typing import Any

from shared.domain.kinds import ReferralKind

PROMPTS: tuple[dict[str, str], ...] = (
    {
        "code": "barn_som_anhoriga",
        "text": "Det finns barn i hushållet eller nära personen. Hälso- och sjukvården ska "
        "särskilt beakta barnets behov av information, råd och stöd (5 kap. 7 § hälso- och "
        "sjukvårdslagen): erbjud stöd till barn som anhöriga.",
    },
    {
        "code": "orosanmalan",
        "text": "Finns oro för ett barn? Den som arbetar inom hälso- och sjukvården eller "
        "socialtjänsten ska genast anmäla det till socialtjänsten: skicka en orosanmälan "
        "(kind orosanmalan) till kommunens barn och familj, eller socialjouren när barnet "
        "kan behöva skydd genast.",
    },
)
"""What a yes brings: fixed texts, no personal data."""


def prompts(kind: str, children_in_household: str) -> list[dict[str, Any]]:
    """The prompts for a referral of ``kind`` with this answer (none but for a yes; none on
    an orosanmälan, which is the report itself)."""
    if children_in_household != "yes" or kind == ReferralKind.OROSANMALAN:
        return []
    return [dict(p) for p in PROMPTS]
