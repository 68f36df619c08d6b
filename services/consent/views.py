"""How the consent service shows its records: rows as the API's response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.consent.codes import GiverKind
from services.consent.models import Block, BlockLift, Consent, ConsentCopy, LegalBasisUse, Refusal
from services.consent.schemas import (
    BlockOut,
    ConsentOut,
    CopyOut,
    GivenBy,
    LegalBasisUseOut,
    LiftOut,
    Party,
    PersonOut,
    RecordedBy,
    RefusalOut,
    Withdrawal,
)


def _parties(stored: Sequence[dict[str, Any]]) -> list[Party]:
    return [Party(orgnr=p["orgnr"], unit_id=p.get("unit_id")) for p in stored]


def _recorded_by(row: Consent | Refusal | Block) -> RecordedBy:
    return RecordedBy(org=row.owner_orgnr, unit_id=row.recorded_by_unit, user=row.recorded_by_user)


def _person(row: Consent | Refusal | Block) -> PersonOut:
    protected = row.protected_identity if isinstance(row, Consent) else False
    return PersonOut(personnummer=row.personnummer, protected_identity=protected)


def consent_out(c: Consent) -> ConsentOut:
    withdrawal = None
    if c.withdrawn_by_kind is not None and c.ended_at is not None:
        withdrawal = Withdrawal(
            at=c.ended_at,
            by_kind=c.withdrawn_by_kind,
            by_reference=c.withdrawn_by_reference,
            reason=c.withdrawal_reason or "",
            recorded_by_user=c.withdrawn_by_user,
        )
    return ConsentOut(
        id=c.id,
        owner_orgnr=c.owner_orgnr,
        person=_person(c),
        given_by=GivenBy.model_construct(
            kind=GiverKind(c.given_by_kind), name=c.given_by_name, reference=c.given_by_reference
        ),
        recorded_by=_recorded_by(c),
        form=c.form,
        form_note=c.form_note,
        signed_form_reference=c.signed_form_reference,
        purposes=c.purposes,
        parties=_parties(c.parties),
        categories=c.categories,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        status=c.status,
        person_informed=c.person_informed,
        supersedes=c.supersedes_id,
        superseded_by=c.superseded_by_id,
        withdrawal=withdrawal,
        ended_at=c.ended_at,
        version=c.version,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def copy_out(c: ConsentCopy) -> CopyOut:
    return CopyOut(
        consent_id=c.consent_id,
        owner_orgnr=c.owner_orgnr,
        protected_identity=c.protected_identity,
        parties=_parties(c.parties),
        purposes=c.purposes,
        categories=c.categories,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        status=c.status,
        end_reason=c.end_reason,
        ended_at=c.ended_at,
        recorded_by_unit=c.recorded_by_unit,
        recorded_at=c.recorded_at,
        received_at=c.received_at,
        version=c.version,
    )


def refusal_out(r: Refusal) -> RefusalOut:
    return RefusalOut(
        id=r.id,
        owner_orgnr=r.owner_orgnr,
        person=_person(r),
        refused_on=r.refused_on,
        parties=_parties(r.parties),
        purposes=r.purposes,
        note=r.note,
        recorded_by=_recorded_by(r),
        status=r.status,
        revoked_at=r.revoked_at,
        revocation_reason=r.revocation_reason,
        created_at=r.created_at,
    )


def block_out(b: Block, lifts: Sequence[BlockLift]) -> BlockOut:
    return BlockOut(
        id=b.id,
        owner_orgnr=b.owner_orgnr,
        person=_person(b),
        blocked=Party(orgnr=b.blocked_orgnr, unit_id=b.blocked_unit_id),
        reason=b.reason,
        recorded_by=_recorded_by(b),
        status=b.status,
        removed_at=b.removed_at,
        lifts=[
            LiftOut.model_validate(x, from_attributes=True) for x in lifts if x.block_id == b.id
        ],
        created_at=b.created_at,
    )


def use_out(u: LegalBasisUse) -> LegalBasisUseOut:
    return LegalBasisUseOut(
        id=u.id,
        basis=u.basis,
        ground=u.ground,
        justification=u.justification,
        purpose=u.purpose,
        categories=u.categories,
        sender=Party(orgnr=u.sender_orgnr, unit_id=u.sender_unit),
        recipient=Party(orgnr=u.recipient_orgnr, unit_id=u.recipient_unit),
        verdict=u.verdict,
        decided_by_user=u.decided_by_user,
        decided_by_unit=u.decided_by_unit,
        decided_at=u.decided_at,
    )
