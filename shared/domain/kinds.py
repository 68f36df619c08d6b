"""The kinds of referral and invitation, each described once.

Everything one kind means to the federation stands in its :class:`KindSpec`: its label,
the consent purpose it is shared for and the information categories it carries, the legal
bases that may carry it without consent, how soon the receiving unit acknowledges it and
how soon after that it accepts or declines it (by urgency, in working days), which kinds of
unit naturally receive it, the block of details it carries in the API and whether some of
the common fields are required for it. The rest derives from this table: the payload
patterns of the events, the consent purposes and the legal bases' default table, routing in
the directory, the deadlines of the referral service and notify, the labels of
notifications and overviews, the API docs.

Adding a kind: a member of :class:`ReferralKind`, its :class:`KindSpec` in :data:`KINDS`,
and its details model in ``services/referral/details.py`` (CONTRIBUTING.md, "Adding a
referral kind"). A unit test fails when a kind lacks an entry anywhere.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shared.domain.calendar import add_working_days


class ReferralKind(enum.StrEnum):
    """The kinds of referral and invitation that travel between members."""

    VARDKEDJEREMISS = "vardkedjeremiss"
    KONTAKTBEGARAN = "kontaktbegaran"
    SIP_KALLELSE = "sip_kallelse"
    UTSKRIVNINGSPLANERING = "utskrivningsplanering"
    HVB_UNDERRATTELSE = "hvb_underrattelse"
    SAMORDNINGSMOTE = "samordningsmote"
    LVM_ANMALAN = "lvm_anmalan"
    OROSANMALAN = "orosanmalan"


URGENCIES = ("normal", "urgent", "acute")
"""How urgent a referral is; every kind gives a deadline for each."""


@dataclass(frozen=True)
class KindSpec:
    """What one kind of referral means, in one place."""

    kind: ReferralKind
    label: str
    """How a person reads the kind (notifications, overviews, the directory's search)."""
    purpose: str
    """The consent purpose it is shared for (``services/consent``'s purposes)."""
    purpose_label: str
    """How a person reads that purpose in a decision's reasons and the audit extract."""
    categories: tuple[str, ...]
    """The information categories it carries (the consent must cover them)."""
    legal_bases: tuple[str, ...]
    """Legal bases that may carry it without consent (the default table; configurable)."""
    acknowledge_working_days: Mapping[str, int]
    """Working days the receiving unit has to acknowledge it, by urgency (0: the same day)."""
    answer_working_days: Mapping[str, int]
    """Working days the receiving unit has, once it has acknowledged it, to accept or
    decline it (answer an invitation), by urgency (0: the day it acknowledged)."""
    natural_receivers: tuple[str, ...]
    """Unit kinds that naturally receive it, most natural first (directory routing)."""
    intake_order: tuple[str, ...]
    """The intake units to fall back on when no natural receiver covers the person."""
    details_field: str
    """The name of its block of details in the API (``services/referral/details.py``)."""
    details_required: bool = True
    needs_required: bool = False
    drug_free_required: bool = False
    consent_allowed: bool = True
    """False for a report made under a duty to report: it travels on its legal basis only
    (``legal_bases``), never on a consent — the sender states the basis, the consent
    service refuses a consent for its purpose and denies it without a basis."""
    receiver_unit_kinds: tuple[str, ...] = ()
    """When set, the only unit kinds that may receive it (an orosanmälan goes to the kommun's
    children-and-family function or its out-of-hours service, never to an adult function):
    the directory refuses a unit of another kind listing it, the referral service refuses
    to send it there."""
    acknowledge_hours: Mapping[str, int] | None = None
    """When set, the acknowledgement is due this many hours after sending, by urgency, day
    and night (an orosanmälan: the protection assessment is due at once); the working-day
    table then gives only the day the worklists count it overdue from."""
    sip_working_days: int | None = None
    """When set, the sending member convenes a SIP for the person within this many working
    days of sending it, or by the day its details name (an HVB's ``placement_date``, a
    discharge's ``expected_discharge_date``) if that comes first: a SIP meeting naming the
    referral (``for_referral_id``) meets it; the sending unit is reminded as the day comes
    near and alerted once it has passed without one (deadline ``sip``). None: none owed."""

    def acknowledge_by(
        self, urgency: str, received: dt.date, overrides: Mapping[str, Mapping[str, int]]
    ) -> dt.date:
        """The last day to acknowledge a referral of this kind received on ``received``:
        working days from the kind's table, or from ``overrides`` (a member's settings)."""
        return working_days_after(received, self.acknowledge_days(urgency, overrides))

    def acknowledge_days(self, urgency: str, overrides: Mapping[str, Mapping[str, int]]) -> int:
        """The working days to acknowledge a referral of this kind and ``urgency``: the
        kind's table, or ``overrides`` (a member's settings)."""
        return self._days(self.acknowledge_working_days, urgency, overrides)

    def acknowledge_due_at(self, urgency: str, sent_at: dt.datetime) -> dt.datetime | None:
        """The instant the acknowledgement is due for a kind counted in hours (None for a
        kind counted in working days: due at the end of its ``acknowledge_by`` day)."""
        if self.acknowledge_hours is None:
            return None
        return sent_at + dt.timedelta(hours=self.acknowledge_hours[urgency])

    def answer_by(
        self,
        urgency: str,
        acknowledged_on: dt.date,
        overrides: Mapping[str, Mapping[str, int]],
        *,
        given: dt.date | None = None,
    ) -> dt.date:
        """The last day to accept or decline a referral of this kind (or answer an
        invitation) acknowledged on ``acknowledged_on``: the day the sender ``given`` (a SIP
        invitation's ``answer_by``) when there is one, else working days from the kind's
        table, or from ``overrides`` (a member's settings)."""
        if given is not None:
            return given
        return working_days_after(
            acknowledged_on, self._days(self.answer_working_days, urgency, overrides)
        )

    def _days(
        self, table: Mapping[str, int], urgency: str, overrides: Mapping[str, Mapping[str, int]]
    ) -> int:
        """The working days of ``urgency``: the member's own (``overrides``, by kind), else
        the kind's ``table`` (a kind or urgency the member left out keeps the table's)."""
        days = overrides.get(self.kind, table).get(urgency)
        return table[urgency] if days is None else days


def working_days_after(day: dt.date, working_days: int) -> dt.date:
    """``working_days`` Swedish working days after ``day`` (0: the day itself): how every
    deadline of a kind counts its days (and ``GET /v1/deadlines/count`` shows it)."""
    return add_working_days(day, working_days) if working_days > 0 else day


_REGION_INTAKE = ("remissport", "socialtjanstens_mottagning")
_KOMMUN_INTAKE = ("socialtjanstens_mottagning", "remissport")
_OSL = ("osl_25_12", "osl_26_9")


def _days(normal: int, urgent: int, acute: int) -> Mapping[str, int]:
    return MappingProxyType({"normal": normal, "urgent": urgent, "acute": acute})


KINDS: Mapping[ReferralKind, KindSpec] = MappingProxyType(
    {
        spec.kind: spec
        for spec in (
            KindSpec(
                kind=ReferralKind.VARDKEDJEREMISS,
                label="Vårdkedjeremiss",
                purpose="vardkedjeremiss",
                purpose_label="vårdkedjeremiss",
                categories=("contact_details", "needs_summary"),
                legal_bases=(*_OSL, "nodsituation"),
                acknowledge_working_days=_days(5, 2, 0),
                answer_working_days=_days(10, 3, 0),
                natural_receivers=("remissport",),
                intake_order=_REGION_INTAKE,
                details_field="vardkedjeremiss",
                details_required=False,
                drug_free_required=True,
            ),
            KindSpec(
                kind=ReferralKind.KONTAKTBEGARAN,
                label="Kontaktbegäran",
                purpose="kontaktbegaran",
                purpose_label="kontaktbegäran",
                categories=("contact_details", "needs_summary"),
                legal_bases=("osl_25_12", "nodsituation"),
                acknowledge_working_days=_days(3, 1, 0),
                answer_working_days=_days(5, 2, 0),
                natural_receivers=("socialtjanstens_mottagning", "myndighetsutovning_vuxna"),
                intake_order=_KOMMUN_INTAKE,
                details_field="kontaktbegaran",
                needs_required=True,
            ),
            KindSpec(
                kind=ReferralKind.SIP_KALLELSE,
                label="Kallelse till SIP",
                purpose="sip",
                purpose_label="samordnad individuell plan (SIP)",
                categories=("contact_details", "needs_summary", "plan"),
                legal_bases=_OSL,
                acknowledge_working_days=_days(3, 1, 0),
                # An invitation may name its own day (``answer_by``), which wins.
                answer_working_days=_days(3, 1, 0),
                natural_receivers=("vardkedjekoordinator",),
                intake_order=_KOMMUN_INTAKE,
                details_field="sip",
            ),
            KindSpec(
                kind=ReferralKind.UTSKRIVNINGSPLANERING,
                label="Utskrivningsplanering",
                purpose="utskrivningsplanering",
                purpose_label="utskrivningsplanering",
                categories=("contact_details", "needs_summary", "plan"),
                legal_bases=(*_OSL, "nodsituation"),
                # A discharge is near, so its planning is acknowledged sooner.
                acknowledge_working_days=_days(1, 1, 0),
                answer_working_days=_days(2, 1, 0),
                natural_receivers=("socialtjanstens_mottagning", "vardkedjekoordinator"),
                intake_order=_KOMMUN_INTAKE,
                details_field="discharge",
            ),
            KindSpec(
                kind=ReferralKind.HVB_UNDERRATTELSE,
                label="Underrättelse om HVB-placering",
                purpose="hvb_underrattelse",
                purpose_label="underrättelse om placering på HVB",
                categories=("contact_details", "social_situation"),
                legal_bases=("osl_26_9",),
                acknowledge_working_days=_days(5, 2, 0),
                answer_working_days=_days(5, 2, 0),
                natural_receivers=("remissport", "beroendemottagning"),
                intake_order=_REGION_INTAKE,
                details_field="hvb",
                # The kommun convenes the SIP the region is invited to before the placement
                # (Samsjuklighetsutredningen; the Blekinge report, 002_*).
                sip_working_days=10,
            ),
            KindSpec(
                kind=ReferralKind.SAMORDNINGSMOTE,
                label="Kallelse till samordningsmöte",
                purpose="vardkedjesamordning",
                purpose_label="samordning av vårdkedjan",
                categories=("needs_summary", "plan"),
                legal_bases=_OSL,
                acknowledge_working_days=_days(3, 1, 0),
                answer_working_days=_days(3, 1, 0),  # an invitation, like a SIP's
                natural_receivers=("vardkedjekoordinator",),
                intake_order=_KOMMUN_INTAKE,
                details_field="samordningsmote",
            ),
            KindSpec(
                kind=ReferralKind.LVM_ANMALAN,
                label="Anmälan enligt 6 § LVM",
                purpose="lvm_anmalan",
                purpose_label="anmälan enligt 6 § LVM",
                categories=("contact_details", "needs_summary", "social_situation"),
                legal_bases=("lvm_anmalan",),
                # The kommun investigates without delay (11 § LVM): the same or the next day.
                acknowledge_working_days=_days(1, 0, 0),
                answer_working_days=_days(2, 1, 0),
                natural_receivers=("myndighetsutovning_vuxna", "socialtjanstens_mottagning"),
                intake_order=_KOMMUN_INTAKE,
                details_field="lvm",
                needs_required=True,
                consent_allowed=False,
            ),
            KindSpec(
                kind=ReferralKind.OROSANMALAN,
                label="Orosanmälan om barn",
                purpose="orosanmalan",
                purpose_label="orosanmälan om ett barn",
                categories=("contact_details", "social_situation"),
                legal_bases=("orosanmalan",),
                acknowledge_working_days=_days(0, 0, 0),
                # A protection assessment is due at once (the Social Services Act): hours.
                acknowledge_hours=MappingProxyType({"normal": 24, "urgent": 4, "acute": 1}),
                answer_working_days=_days(1, 0, 0),
                natural_receivers=("barn_och_familj", "socialjour"),
                intake_order=("barn_och_familj", "socialjour"),
                details_field="orosanmalan",
                consent_allowed=False,
                receiver_unit_kinds=("barn_och_familj", "socialjour"),
            ),
        )
    }
)
"""Every kind's spec, in the order of :class:`ReferralKind`."""


def spec(kind: str) -> KindSpec:
    """The spec of ``kind`` (a :class:`ReferralKind` or its value; KeyError otherwise)."""
    return KINDS[ReferralKind(kind)]


KIND_PATTERN = "^(" + "|".join(k.value for k in ReferralKind) + ")$"
"""The pattern of a kind in an event payload (derived: every kind, nothing else)."""

REFERRAL_KIND_LABELS: Mapping[ReferralKind, str] = MappingProxyType(
    {k: s.label for k, s in KINDS.items()}
)


@dataclass(frozen=True)
class OtherPurpose:
    """A consent purpose that is not a kind of referral (joint work around them)."""

    purpose: str
    label: str
    legal_bases: tuple[str, ...] = field(default=())


OTHER_PURPOSES: tuple[OtherPurpose, ...] = ()
"""Purposes of sharing besides the kinds' (none now: the coordination of the care chain,
``vardkedjesamordning``, is the purpose of the professional meeting's invitation)."""


def legal_basis_only_purposes() -> frozenset[str]:
    """The purposes that travel on a legal basis only (never on a consent)."""
    return frozenset(s.purpose for s in KINDS.values() if not s.consent_allowed)


def purposes() -> dict[str, str]:
    """Every consent purpose and its label: the kinds' first, then the others."""
    out = {s.purpose: s.purpose_label for s in KINDS.values()}
    out.update({p.purpose: p.label for p in OTHER_PURPOSES})
    return out


def legal_basis_purposes(bases: tuple[str, ...]) -> dict[str, list[str]]:
    """The default table of which purposes each legal basis may cover, derived from the
    kinds (and the other purposes)."""
    out: dict[str, list[str]] = {b: [] for b in bases}
    for purpose, covered_by in [
        *((s.purpose, s.legal_bases) for s in KINDS.values()),
        *((p.purpose, p.legal_bases) for p in OTHER_PURPOSES),
    ]:
        for basis in covered_by:
            out[basis].append(purpose)
    return out


def _acknowledge_text(s: KindSpec) -> str:
    if s.acknowledge_hours is not None:
        return "/".join(str(s.acknowledge_hours[u]) for u in URGENCIES) + " hours"
    return "/".join(str(s.acknowledge_working_days[u]) for u in URGENCIES) + " working days"


def categories_table() -> str:
    """The information categories each kind shares, and on what, as a Markdown table
    (generated from :data:`KINDS`: the API docs of ``POST /v1/referrals`` and
    ``docs/kinds.md``)."""
    rows = [
        "| Kind | Label | Information categories | Consent purpose | Without consent, on |"
        " Acknowledge (normal/urgent/acute) | Details block |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in KINDS.values():
        purpose = f"`{s.purpose}`" if s.consent_allowed else f"`{s.purpose}` (never a consent)"
        rows.append(
            f"| `{s.kind.value}` | {s.label} | {', '.join(f'`{c}`' for c in s.categories)} "
            f"| {purpose} | {', '.join(f'`{b}`' for b in s.legal_bases)} "
            f"| {_acknowledge_text(s)} | `{s.details_field}` |"
        )
    return "\n".join(rows)


def kinds_markdown() -> str:
    """``docs/kinds.md``: every kind and the information categories it shares (``vardkedja
    kinds`` prints it)."""
    return (
        "# Kinds of referral and the information they share\n\n"
        "Generated from the kinds registry (`shared/domain/kinds.py`) by `vardkedja kinds`"
        " (`make kinds`); do not edit by hand.\n\n"
        "A referral shares exactly its kind's information categories. It travels on the "
        "person's consent to the kind's purpose, which must cover those categories, or on a "
        "stated legal basis that may carry the kind without consent; a report made under a "
        "duty to report travels on its legal basis only. The acknowledgement deadline is "
        "counted in Swedish working days after the day the referral is sent (weekends, "
        "public holidays and midsommar-, jul- and nyårsafton not counted; a member may set "
        "its own days, `VK_REFERRAL__ACKNOWLEDGE_WORKING_DAYS`) or, for a kind counted in "
        "hours, day and night: `GET /v1/deadlines/count` shows any count.\n\n"
        f"{categories_table()}\n"
    )
