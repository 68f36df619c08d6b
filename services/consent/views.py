"""How the consent service shows its records: rows as the API's response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

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
    PurposeWithdrawal,
    RecordedBy,
    RefusalOut,
    Withdrawal,
)

OutT = TypeVar("OutT", bound=BaseModel)


def _out(model: type[OutT], row: Any, **shown: Any) -> OutT:
    """``model`` of ``row``: each field is the row's attribute of the same name, except those
    ``shown`` otherwise (stored parties, as dicts, are validated into :class:`Party`)."""
    return model.model_validate(
        {**{f: getattr(row, f) for f in model.model_fields if f not in shown}, **shown}
    )


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
    return _out(
        ConsentOut,
        c,
        person=_person(c),
        given_by=GivenBy.model_construct(
            kind=GiverKind(c.given_by_kind), name=c.given_by_name, reference=c.given_by_reference
        ),
        recorded_by=_recorded_by(c),
        supersedes=c.supersedes_id,
        superseded_by=c.superseded_by_id,
        withdrawal=withdrawal,
        purpose_withdrawals=[PurposeWithdrawal.model_validate(w) for w in c.purpose_withdrawals],
    )


def copy_out(c: ConsentCopy) -> CopyOut:
    return _out(CopyOut, c)


def refusal_out(r: Refusal) -> RefusalOut:
    return _out(RefusalOut, r, person=_person(r), recorded_by=_recorded_by(r))


def block_out(b: Block, lifts: Sequence[BlockLift]) -> BlockOut:
    return _out(
        BlockOut,
        b,
        person=_person(b),
        blocked=Party(orgnr=b.blocked_orgnr, unit_id=b.blocked_unit_id),
        recorded_by=_recorded_by(b),
        lifts=[
            LiftOut.model_validate(x, from_attributes=True) for x in lifts if x.block_id == b.id
        ],
    )


def use_out(u: LegalBasisUse) -> LegalBasisUseOut:
    return _out(
        LegalBasisUseOut,
        u,
        sender=Party(orgnr=u.sender_orgnr, unit_id=u.sender_unit),
        recipient=Party(orgnr=u.recipient_orgnr, unit_id=u.recipient_unit),
    )
