"""Code lists shared by several services (domain.md's process names)."""

from __future__ import annotations

import enum


class ReferralKind(enum.StrEnum):
    """The kinds of referral and invitation that travel between members."""

    VARDKEDJEREMISS = "vardkedjeremiss"
    KONTAKTBEGARAN = "kontaktbegaran"
    SIP_KALLELSE = "sip_kallelse"
    UTSKRIVNINGSPLANERING = "utskrivningsplanering"
    HVB_UNDERRATTELSE = "hvb_underrattelse"


REFERRAL_KIND_LABELS: dict[ReferralKind, str] = {
    ReferralKind.VARDKEDJEREMISS: "Vårdkedjeremiss",
    ReferralKind.KONTAKTBEGARAN: "Kontaktbegäran",
    ReferralKind.SIP_KALLELSE: "Kallelse till SIP",
    ReferralKind.UTSKRIVNINGSPLANERING: "Utskrivningsplanering",
    ReferralKind.HVB_UNDERRATTELSE: "Underrättelse om HVB-placering",
}
