"""Person search: everything this member holds for a person, with its history.

Staff with ``consent:person`` find the person's consents, the copies held of other
members' consents, refusals, blocks with their lifts, legal-basis uses and every change,
by the person key (:mod:`services.consent.person`): no table is scanned for a personnummer.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.consent.models import (
    Block,
    BlockLift,
    ChangeLogEntry,
    Consent,
    ConsentCopy,
    LegalBasisUse,
    Refusal,
)
from services.consent.person import key_of
from services.consent.refusals import block_lifts
from services.consent.repository import (
    BlockRepository,
    ChangeLogRepository,
    ConsentRepository,
    CopyRepository,
    LegalBasisUseRepository,
    RefusalRepository,
)
from shared.data.work import Work


@dataclass(frozen=True)
class PersonHeld:
    """What this member holds for one person, by record kind, oldest first."""

    consents: list[Consent]
    copies: list[ConsentCopy]
    refusals: list[Refusal]
    blocks: list[Block]
    lifts: list[BlockLift]
    legal_basis_uses: list[LegalBasisUse]
    history: list[ChangeLogEntry]


async def person_records(work: Work, personnummer: str) -> PersonHeld:
    """Everything this member holds for the person, with its history, by record kind."""
    own, session = work.member, work.session
    key = key_of(settings=work.settings, personnummer=personnummer)
    blocks = await BlockRepository(session).for_person(key, own)
    return PersonHeld(
        consents=await ConsentRepository(session).for_person(key, own),
        copies=await CopyRepository(session).for_person(key),
        refusals=await RefusalRepository(session).for_person(key, own),
        blocks=blocks,
        lifts=await block_lifts(work, [b.id for b in blocks]),
        legal_basis_uses=await LegalBasisUseRepository(session).for_person(key, own),
        history=await ChangeLogRepository(session).for_person(key),
    )
