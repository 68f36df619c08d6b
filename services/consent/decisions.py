"""Sharing decisions: may A share this with B for this purpose, now?

The rules themselves are pure functions (:mod:`services.consent.decision`); this module
checks a question this member may answer (:func:`prepare_decision`, no database), reads the
person's terms and decides several questions at once (:func:`decide_many`, the decision
batcher's step, :mod:`services.consent.batching`), keeping each stated legal basis with its
verdict. Also the legal bases this member accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.consent import decision as rules
from services.consent.codes import LEGAL_BASIS_LABELS, RecordStatus
from services.consent.parties import parties_of
from services.consent.person import birth_date, key_of
from services.consent.repository import (
    TERMS_BLOCK,
    TERMS_CONSENT,
    TERMS_COPY,
    TERMS_REFUSAL,
    DecisionTermsRepository,
    LegalBasisUseRepository,
)
from services.consent.schemas import DecisionRequest, LegalBasisInfo
from shared.config import Settings
from shared.data.db import new_id, utcnow
from shared.domain.codes import OSL_BASES
from shared.identity.auth import Caller
from shared.web.errors import InvalidInput


def policy_of(*, settings: Settings) -> rules.Policy:
    """The configured legal-basis table and block overrides."""
    return rules.Policy(
        basis_purposes=settings.consent.legal_basis_purposes,
        block_overridden_by=frozenset(settings.consent.block_overridden_by),
    )


def legal_bases(*, settings: Settings) -> list[LegalBasisInfo]:
    """The legal bases this member accepts, the purposes each may cover, and more."""
    policy = policy_of(settings=settings)
    return [
        LegalBasisInfo(
            basis=basis,
            label=LEGAL_BASIS_LABELS.get(basis, basis),
            purposes=sorted(purposes),
            needs_ground=basis in OSL_BASES,
            overrides_block=basis in policy.block_overridden_by,
        )
        for basis, purposes in sorted(policy.basis_purposes.items())
    ]


@dataclass(frozen=True)
class Asked:
    """A question this member may answer, checked, with the person's key: ready to be
    decided against the stored terms."""

    question: rules.Question
    person_key: str
    personnummer: str
    protected_identity: bool
    claim: rules.LegalBasisClaim | None = None


@dataclass(frozen=True)
class Decided:
    """A decision with the legal-basis use kept for it (if a basis was stated)."""

    asked: Asked
    decision: rules.Decision
    legal_basis_use_id: str | None = None


def prepare_decision(*, settings: Settings, data: DecisionRequest) -> Asked:
    """Checks that this member may answer ``data`` and that a stated legal basis can apply
    (InvalidInput naming the field and rule if not); no database."""
    own = settings.member.orgnr
    if own not in (data.sender.orgnr, data.recipient.orgnr):
        raise InvalidInput.field(
            "recipient.orgnr",
            "own_member_not_involved",
            "this member decides only sharing it sends or receives",
        )
    if data.sender.orgnr == data.recipient.orgnr:
        raise InvalidInput.field(
            "recipient.orgnr", "same_member", "sender and recipient are the same member"
        )
    question = rules.Question(
        sender=rules.Party(data.sender.orgnr, data.sender.unit_id),
        recipient=rules.Party(data.recipient.orgnr, data.recipient.unit_id),
        purpose=str(data.purpose),
        categories=frozenset(str(c) for c in data.categories),
        at=data.at or utcnow(),
    )
    claim = None
    if data.legal_basis is not None:
        lb = data.legal_basis
        claim = rules.LegalBasisClaim(
            basis=str(lb.basis),
            justification=lb.justification,
            ground=str(lb.ground) if lb.ground else None,
        )
        kind = str(settings.member.kind)
        rules.check_legal_basis(
            claim,
            question=question,
            policy=policy_of(settings=settings),
            birth_date=birth_date(data.person.personnummer),
            sender_kind=kind if own == data.sender.orgnr else None,
            recipient_kind=kind if own == data.recipient.orgnr else None,
        )
    return Asked(
        question=question,
        person_key=key_of(settings=settings, personnummer=data.person.personnummer),
        personnummer=data.person.personnummer,
        protected_identity=data.person.protected_identity,
        claim=claim,
    )


def decide_on_terms(asked: Asked, rows: Sequence[Any], policy: rules.Policy) -> rules.Decision:
    """Decides ``asked`` on the person's rows of :class:`DecisionTermsRepository`."""
    consents: list[rules.ConsentTerms] = []
    refusals: list[rules.RefusalTerms] = []
    blocks: dict[str, tuple[rules.Party, list[rules.Lift]]] = {}
    for row in rows:
        if row.kind in (TERMS_CONSENT, TERMS_COPY):
            consents.append(
                rules.ConsentTerms(
                    id=row.id,
                    status=row.status,
                    parties=parties_of(row.parties),
                    purposes=frozenset(row.purposes),
                    categories=frozenset(row.categories),
                    valid_from=row.valid_from,
                    valid_to=row.valid_to,
                    protected_identity=bool(row.protected_identity),
                    withdrawn_purposes=frozenset(row.withdrawn_purposes or ()),
                )
            )
        elif row.kind == TERMS_REFUSAL:
            refusals.append(
                rules.RefusalTerms(
                    id=row.id,
                    parties=parties_of(row.parties),
                    purposes=frozenset(row.purposes),
                    active=row.status == RecordStatus.ACTIVE,
                )
            )
        elif row.kind == TERMS_BLOCK:  # active blocks only, one row per lift (or none)
            _, lifts = blocks.setdefault(
                row.id, (rules.Party(row.blocked_orgnr, row.blocked_unit_id), [])
            )
            if row.lift_starts_at is not None:
                lifts.append(rules.Lift(row.lift_starts_at, row.lift_ends_at))
    return rules.decide(
        asked.question,
        consents=consents,
        refusals=refusals,
        blocks=[
            rules.BlockTerms(id=block_id, party=party, lifts=tuple(lifts))
            for block_id, (party, lifts) in blocks.items()
        ],
        policy=policy,
        legal_basis=asked.claim,
        protected_identity=asked.protected_identity,
    )


async def decide_many(
    *,
    connection: AsyncSession | AsyncConnection,
    settings: Settings,
    asked: Sequence[tuple[Asked, Caller]],
) -> list[Decided | Exception]:
    """Decides several questions on one read of their people's terms, and keeps each stated
    legal basis with its verdict; per question its decision, or the error deciding it."""
    own = settings.member.orgnr
    policy = policy_of(settings=settings)
    keys = list(dict.fromkeys(a.person_key for a, _ in asked))
    terms = await DecisionTermsRepository(connection).for_people(keys, own)
    out: list[Decided | Exception] = []
    uses: list[dict[str, Any]] = []
    for item, caller in asked:
        try:
            decision = decide_on_terms(item, terms.get(item.person_key, ()), policy)
        except Exception as exc:  # a fault with one question fails that question only
            out.append(exc)
            continue
        use_id = None
        claim, question = item.claim, item.question
        if claim is not None:
            use_id = new_id()
            use = {
                "id": use_id,
                "owner_orgnr": own,
                "person_key": item.person_key,
                "basis": claim.basis,
                "ground": claim.ground,
                "justification": claim.justification,
                "purpose": question.purpose,
                "categories": sorted(question.categories),
                "sender_orgnr": question.sender.orgnr,
                "sender_unit": question.sender.unit_id,
                "recipient_orgnr": question.recipient.orgnr,
                "recipient_unit": question.recipient.unit_id,
                "verdict": str(decision.verdict),
                "decided_by_user": caller.sub,
                "decided_by_unit": caller.unit,
                "decided_at": utcnow(),
            }
            uses.append(use)
        out.append(Decided(item, decision, use_id))
    await LegalBasisUseRepository.insert_many(connection, uses)
    return out
