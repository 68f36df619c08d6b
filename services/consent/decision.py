"""The sharing decision as a pure function: no database, no clock, no settings object.

``decide`` answers "may member/unit A share these categories about this person with
member/unit B for this purpose at this time?" from what the service loaded for the
person. Deny by default: only a consent that covers every part of the question, or a
stated and justified legal basis, allows. The order of the rules:

1. Contact details of a person with protected identity are never shared.
1a. A report made under a duty to report (an LVM report, an orosanmälan) is denied without
   its legal basis: it never travels on a consent.
2. A legal basis (when stated) allows, unless the person blocked the recipient and the
   basis is not one that overrides a block (reporting duties and emergencies do).
3. A block of the recipient denies (unless temporarily lifted at that moment).
4. A refusal naming either side for this purpose answers ``refused``.
5. An active consent naming both sides, the purpose and every category, valid on that day,
   allows; otherwise the nearest miss is explained (a purpose the person withdrew from a
   consent still in force for others is named as withdrawn).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from services.consent.codes import (
    CATEGORY_LABELS,
    LEGAL_BASIS_LABELS,
    PURPOSE_LABELS,
    Category,
    ConsentStatus,
    Verdict,
)
from shared.domain.calendar import to_local
from shared.domain.codes import OSL_BASES, LegalBasis, OslGround
from shared.domain.kinds import legal_basis_only_purposes
from shared.web.errors import FieldProblem, InvalidInput

LEGAL_BASIS_ONLY = legal_basis_only_purposes()
"""Purposes that travel on a legal basis only: without one they are denied."""

# (sender kind, recipient kind) each legal basis requires; None: any.
BASIS_DIRECTION: dict[str, tuple[str | None, str | None]] = {
    LegalBasis.OSL_25_12: ("region", "kommun"),
    LegalBasis.OSL_26_9: ("kommun", "region"),
    LegalBasis.LVM_ANMALAN: ("region", "kommun"),
    LegalBasis.OROSANMALAN: (None, "kommun"),
    LegalBasis.NODSITUATION: (None, None),
}


@dataclass(frozen=True)
class Party:
    """A member, or one unit of it, named by a consent, refusal or block."""

    orgnr: str
    unit_id: str | None = None

    def covers(self, orgnr: str, unit_id: str | None) -> bool:
        """A member-wide party covers every unit of it; a unit party only that unit."""
        if self.orgnr != orgnr:
            return False
        return self.unit_id is None or self.unit_id == unit_id


@dataclass(frozen=True)
class ConsentTerms:
    """What a decision needs of a consent (the owner's record or a party's copy)."""

    id: str
    status: str
    parties: tuple[Party, ...]
    purposes: frozenset[str]
    categories: frozenset[str]
    valid_from: dt.date
    valid_to: dt.date
    protected_identity: bool = False
    withdrawn_purposes: frozenset[str] = frozenset()
    """Purposes the person withdrew while the consent stays in force for the rest."""


@dataclass(frozen=True)
class RefusalTerms:
    """A refusal: the parties it names and the purposes (empty: every purpose)."""

    id: str
    parties: tuple[Party, ...]
    purposes: frozenset[str]
    active: bool = True


@dataclass(frozen=True)
class Lift:
    """A temporary lift of a block, ``starts_at`` inclusive to ``ends_at`` exclusive."""

    starts_at: dt.datetime
    ends_at: dt.datetime


@dataclass(frozen=True)
class BlockTerms:
    """A block (spärr) of a member or unit from receiving anything about the person."""

    id: str
    party: Party
    active: bool = True
    lifts: tuple[Lift, ...] = ()

    def applies(self, orgnr: str, unit_id: str | None, at: dt.datetime) -> bool:
        """Whether the block stops sending to ``orgnr``/``unit_id`` at ``at``."""
        if not self.active or not self.party.covers(orgnr, unit_id):
            return False
        return not any(lift.starts_at <= at < lift.ends_at for lift in self.lifts)

    def lifted_until(self, orgnr: str, unit_id: str | None, at: dt.datetime) -> dt.datetime | None:
        """When the lift that lets ``orgnr``/``unit_id`` receive at ``at`` ends (the latest
        end among the lifts in force then); None when this block does not stop them."""
        if not self.active or not self.party.covers(orgnr, unit_id):
            return None
        ends = [lift.ends_at for lift in self.lifts if lift.starts_at <= at < lift.ends_at]
        return max(ends) if ends else None


@dataclass(frozen=True)
class LegalBasisClaim:
    """A legal basis stated by the asker, with its ground and justification."""

    basis: str
    justification: str
    ground: str | None = None


@dataclass(frozen=True)
class Question:
    """May ``sender`` share ``categories`` with ``recipient`` for ``purpose`` at ``at``?"""

    sender: Party
    recipient: Party
    purpose: str
    categories: frozenset[str]
    at: dt.datetime


@dataclass(frozen=True)
class Reason:
    """Why, in words the person can read, with a code for machines."""

    code: str
    text: str


@dataclass(frozen=True)
class Decision:
    """The answer, its basis and the obligations that come with an allowance."""

    verdict: Verdict
    reasons: tuple[Reason, ...]
    consent_id: str | None = None
    legal_basis: str | None = None
    categories: frozenset[str] = field(default_factory=frozenset)
    valid_until: dt.date | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


@dataclass(frozen=True)
class Policy:
    """The configurable parts: which purposes each legal basis may cover, and which bases
    apply even where the person has blocked the recipient."""

    basis_purposes: Mapping[str, Iterable[str]]
    block_overridden_by: frozenset[str]


def _names(values: Iterable[str], labels: Mapping[str, str]) -> str:
    return ", ".join(labels.get(v, v) for v in sorted(values))


def _party_text(party: Party) -> str:
    return f"{party.orgnr} (enhet {party.unit_id})" if party.unit_id else party.orgnr


def swedish_day(at: dt.datetime) -> dt.date:
    """The day of ``at`` in Sweden (a naive time is taken as UTC): a consent's validity
    dates are the days written on it in Sweden, and the expiry job, the referral service's
    deadlines and the recording's checks count the same days, whatever offset the caller
    wrote ``at`` in."""
    return to_local(at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)).date()


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years from ``birth`` to ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def check_legal_basis(
    claim: LegalBasisClaim,
    *,
    question: Question,
    policy: Policy,
    birth_date: dt.date | None,
    sender_kind: str | None,
    recipient_kind: str | None,
) -> None:
    """Refuses (InvalidInput naming the field and rule) a legal basis that cannot apply."""
    problems: list[FieldProblem] = []

    def bad(field_: str, rule: str, message: str) -> None:
        problems.append(FieldProblem(field=f"legal_basis.{field_}", rule=rule, message=message))

    allowed = set(policy.basis_purposes.get(claim.basis, ()))
    if question.purpose not in allowed:
        bad(
            "basis",
            "purpose_not_covered",
            f"{claim.basis} may not cover the purpose {question.purpose} "
            f"(it covers: {', '.join(sorted(allowed)) or 'nothing'})",
        )
    if not claim.justification.strip():
        bad("justification", "missing", "a legal basis needs a justification")
    if claim.basis in OSL_BASES:
        if claim.ground is None:
            bad("ground", "missing", "OSL 25:12 and 26:9 need a ground")
        elif (
            claim.ground == OslGround.UNDER_18
            and birth_date is not None
            and age_on(birth_date, swedish_day(question.at)) >= 18
        ):
            bad("ground", "not_under_18", "the person is 18 or older on that day")
    elif claim.ground is not None:
        bad("ground", "not_applicable", "a ground is given only with OSL 25:12 or 26:9")
    want_sender, want_recipient = BASIS_DIRECTION.get(claim.basis, (None, None))
    if (want_sender and sender_kind and want_sender != sender_kind) or (
        want_recipient and recipient_kind and want_recipient != recipient_kind
    ):
        bad(
            "basis",
            "wrong_direction",
            f"{claim.basis} applies from {want_sender or 'any member'} "
            f"to {want_recipient or 'any member'} only",
        )
    if problems:
        n = len(problems)
        raise InvalidInput(
            f"the legal basis cannot apply ({n} problem{'s' * (n != 1)})", errors=problems
        )


def _block_reason(block: BlockTerms) -> Reason:
    return Reason(
        "blocked",
        f"Personen har spärrat {_party_text(block.party)} från att ta emot uppgifter.",
    )


def _consent_miss(consent: ConsentTerms, q: Question) -> tuple[int, Reason] | None:
    """How far a consent got (higher is nearer) and why it fails; None if it covers ``q``."""
    if consent.status != ConsentStatus.ACTIVE:
        word = {
            ConsentStatus.WITHDRAWN: "återkallats",
            ConsentStatus.EXPIRED: "upphört att gälla",
            ConsentStatus.SUPERSEDED: "ersatts av ett nytt samtycke",
        }.get(ConsentStatus(consent.status), consent.status)
        return 0, Reason(f"consent_{consent.status}", f"Samtycket har {word}.")
    day = swedish_day(q.at)
    if day < consent.valid_from:
        return 1, Reason(
            "consent_not_yet_valid", f"Samtycket gäller först från {consent.valid_from}."
        )
    if day > consent.valid_to:
        return 1, Reason("consent_expired", f"Samtycket gällde till och med {consent.valid_to}.")
    for side in (q.sender, q.recipient):
        if not any(p.covers(side.orgnr, side.unit_id) for p in consent.parties):
            return 2, Reason("party_not_covered", f"Samtycket omfattar inte {_party_text(side)}.")
    if q.purpose not in consent.purposes:
        label = PURPOSE_LABELS.get(q.purpose, q.purpose)
        if q.purpose in consent.withdrawn_purposes:
            return 3, Reason(
                "purpose_withdrawn", f"Personen har återkallat samtycket till ändamålet {label}."
            )
        return 3, Reason("purpose_not_covered", f"Samtycket omfattar inte ändamålet {label}.")
    missing = q.categories - consent.categories
    if missing:
        return 4, Reason(
            "categories_not_covered",
            f"Samtycket omfattar inte uppgifterna: {_names(missing, CATEGORY_LABELS)}.",
        )
    return None


def _lift_last_day(q: Question, blocks: Sequence[BlockTerms]) -> dt.date | None:
    """The last day (in Sweden) a temporary lift lets the recipient receive (the earliest of the
    lifts in force at ``q.at``), or None when no lifted block applies. An allowance given
    inside a lift holds no longer than the lift: the block stops sending again after it."""
    ends = [
        end
        for b in blocks
        if (end := b.lifted_until(q.recipient.orgnr, q.recipient.unit_id, q.at)) is not None
    ]
    if not ends:
        return None
    # ``ends_at`` is exclusive: the last day is the day of its last instant.
    return swedish_day(min(ends) - dt.timedelta(microseconds=1))


def _earliest(first: dt.date, other: dt.date | None) -> dt.date:
    return first if other is None else min(first, other)


def decide(
    q: Question,
    *,
    consents: Sequence[ConsentTerms],
    refusals: Sequence[RefusalTerms],
    blocks: Sequence[BlockTerms],
    policy: Policy,
    legal_basis: LegalBasisClaim | None = None,
    protected_identity: bool = False,
) -> Decision:
    """Decides the question (see the module docstring for the order of the rules)."""
    protected = protected_identity or any(c.protected_identity for c in consents)
    if protected and Category.CONTACT_DETAILS in q.categories:
        return Decision(
            Verdict.DENIED,
            (
                Reason(
                    "protected_identity",
                    "Personen har skyddad identitet: kontaktuppgifter lämnas aldrig ut.",
                ),
            ),
        )
    if legal_basis is None and q.purpose in LEGAL_BASIS_ONLY:
        return Decision(
            Verdict.DENIED,
            (
                Reason(
                    "legal_basis_required",
                    "En anmälan enligt anmälningsskyldighet lämnas med stöd av sin lagliga "
                    "grund, aldrig med samtycke.",
                ),
            ),
        )
    block = next(
        (b for b in blocks if b.applies(q.recipient.orgnr, q.recipient.unit_id, q.at)), None
    )

    if legal_basis is not None:
        if block is not None and legal_basis.basis not in policy.block_overridden_by:
            return Decision(Verdict.DENIED, (_block_reason(block),))
        label = LEGAL_BASIS_LABELS.get(legal_basis.basis, legal_basis.basis)
        return Decision(
            Verdict.ALLOWED,
            (Reason("legal_basis", f"Uppgifterna lämnas ut utan samtycke med stöd av {label}."),),
            legal_basis=legal_basis.basis,
            categories=q.categories,
            valid_until=_earliest(swedish_day(q.at), _lift_last_day(q, blocks)),
        )

    if block is not None:
        return Decision(Verdict.DENIED, (_block_reason(block),))

    for refusal in refusals:
        if not refusal.active or (refusal.purposes and q.purpose not in refusal.purposes):
            continue
        side = next(
            (
                s
                for s in (q.sender, q.recipient)
                if any(p.covers(s.orgnr, s.unit_id) for p in refusal.parties)
            ),
            None,
        )
        if side is not None:
            return Decision(
                Verdict.REFUSED,
                (
                    Reason(
                        "refused",
                        f"Personen har sagt nej till att uppgifter delas med {_party_text(side)}.",
                    ),
                ),
            )

    covering = [c for c in consents if _consent_miss(c, q) is None]
    if covering:
        best = max(covering, key=lambda c: (c.valid_to, c.id))
        return Decision(
            Verdict.ALLOWED,
            (Reason("consent", f"Personen har samtyckt (samtycke {best.id})."),),
            consent_id=best.id,
            categories=q.categories,
            # Inside a temporary lift of a block: no longer than the lift (the earlier end).
            valid_until=_earliest(best.valid_to, _lift_last_day(q, blocks)),
        )
    misses = [m for c in consents if (m := _consent_miss(c, q)) is not None]
    if not misses:
        return Decision(
            Verdict.DENIED,
            (Reason("no_consent", "Det finns inget samtycke och ingen laglig grund."),),
        )
    nearest = max(m[0] for m in misses)
    reasons = tuple(dict.fromkeys(r for level, r in misses if level == nearest))
    return Decision(Verdict.DENIED, reasons)
