"""Domain rules of the consent service: recording, withdrawing, deciding, copies, history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.consent import decision as rules
from services.consent.codes import (
    LEGAL_BASIS_LABELS,
    ConsentForm,
    ConsentStatus,
    EndReason,
    GiverKind,
    RecordStatus,
    WithdrawerKind,
)
from services.consent.models import (
    Block,
    BlockLift,
    ChangeLogEntry,
    Consent,
    ConsentCopy,
    ConsentTombstone,
    Refusal,
)
from services.consent.person import birth_date, person_key, secret_of
from services.consent.repository import (
    TERMS_BLOCK,
    TERMS_CONSENT,
    TERMS_COPY,
    TERMS_REFUSAL,
    AuditCopyRepository,
    AuditLogRepository,
    BlockRepository,
    ChangeLogRepository,
    ConsentRepository,
    CopyRepository,
    DecisionTermsRepository,
    LegalBasisUseRepository,
    RefusalRepository,
    TombstoneRepository,
)
from services.consent.schemas import (
    BlockCreate,
    ConsentCreate,
    DecisionRequest,
    LegalBasisInfo,
    LiftCreate,
    PartyIn,
    RecordedByIn,
    RefusalCreate,
    WithdrawRequest,
)
from shared.config import Settings
from shared.data.db import new_id, utcnow
from shared.domain.codes import OSL_BASES
from shared.identity.auth import Caller, ensure_unit
from shared.identity.identifiers import IdentifierError
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    CONSENT_RECORDED_V1,
    AuditRecordedV1,
    ConsentEndedV1,
    ConsentPartyRef,
    ConsentRecordedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.outbox import Outbox
from shared.web.errors import Conflict, FieldProblem, InvalidInput, NotFound, PreconditionFailed
from shared.web.etag import etag

SYSTEM_USER = "consent-worker"


class ConsentNotFound(NotFound):
    slug = "consent-not-found"
    title = "No such consent recorded by this member"


class CopyNotFound(NotFound):
    slug = "consent-copy-not-found"
    title = "This member holds no copy of such a consent"


class RefusalNotFound(NotFound):
    slug = "refusal-not-found"
    title = "No such refusal recorded by this member"


class BlockNotFound(NotFound):
    slug = "block-not-found"
    title = "No such block recorded by this member"


class ConsentNotActive(Conflict):
    slug = "consent-not-active"
    title = "The consent is no longer active (withdrawn, expired or superseded)"


class RecordNotActive(Conflict):
    slug = "record-not-active"
    title = "The refusal or block is no longer active"


class RefusalInForce(Conflict):
    slug = "refusal-in-force"
    title = "An active refusal of the person covers these parties and purposes"


class ConsentInForce(Conflict):
    slug = "consent-in-force"
    title = "An active consent of the person covers these parties and purposes"


class ConsentVersionMismatch(PreconditionFailed):
    slug = "consent-version-mismatch"
    title = "The consent has changed since you read it (If-Match does not match its ETag)"


def _problems(problems: Sequence[FieldProblem]) -> InvalidInput:
    n = len(problems)
    return InvalidInput(f"{n} field{'s' * (n != 1)} invalid", errors=problems)


def _party_dicts(parties: Iterable[PartyIn]) -> list[dict[str, Any]]:
    return [{"orgnr": p.orgnr, "unit_id": p.unit_id} for p in parties]


def _parties(stored: Iterable[dict[str, Any]]) -> tuple[rules.Party, ...]:
    return tuple(rules.Party(p["orgnr"], p.get("unit_id")) for p in stored)


def key_of(*, settings: Settings, personnummer: str) -> str:
    """The person key of ``personnummer`` under this member's secret."""
    return person_key(secret_of(settings), personnummer)


def _recorder(caller: Caller, given: RecordedByIn | None) -> tuple[str, str | None]:
    """(user, unit) that recorded: from the body for system integrations, else the token."""
    user = given.user if given and given.user else caller.sub
    unit = given.unit_id if given and given.unit_id else caller.unit
    if given and given.unit_id and caller.unit is not None:
        ensure_unit(caller, given.unit_id)
    return user, unit


async def _log(
    session: AsyncSession,
    *,
    person_key: str,
    subject_type: str,
    subject_id: str,
    action: str,
    actor_org: str,
    actor_user: str | None,
    actor_unit: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    await ChangeLogRepository(session).add(
        ChangeLogEntry(
            person_key=person_key,
            subject_type=subject_type,
            subject_id=subject_id,
            action=action,
            occurred_at=utcnow(),
            actor_org=actor_org,
            actor_user=actor_user,
            actor_unit=actor_unit,
            details=details or {},
        )
    )


async def _log_change(
    session: AsyncSession,
    row: Consent | Refusal | Block,
    action: str,
    *,
    user: str | None,
    unit: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Adds a change of this member's own record to the person's history."""
    await _log(
        session,
        person_key=row.person_key,
        subject_type=row.__tablename__,
        subject_id=row.id,
        action=action,
        actor_org=row.owner_orgnr,
        actor_user=user,
        actor_unit=unit,
        details=details,
    )


def _check_parties(
    parties: Sequence[PartyIn], *, owner_orgnr: str, federation: Sequence[str], field: str
) -> list[FieldProblem]:
    """Named members only: known to the federation, no duplicates, the owner included, and
    at least one other member (a consent is never a blanket "everyone")."""
    problems: list[FieldProblem] = []
    seen: set[tuple[str, str | None]] = set()
    for i, party in enumerate(parties):
        if federation and party.orgnr not in federation:
            problems.append(
                FieldProblem(
                    field=f"{field}.{i}.orgnr",
                    rule="unknown_party",
                    message="not a member of the federation",
                )
            )
        if (party.orgnr, party.unit_id) in seen:
            problems.append(
                FieldProblem(field=f"{field}.{i}", rule="duplicate_party", message="named twice")
            )
        seen.add((party.orgnr, party.unit_id))
    members = {p.orgnr for p in parties}
    if parties and owner_orgnr not in members:
        problems.append(
            FieldProblem(
                field=field, rule="owner_not_party", message="your own member must be a party"
            )
        )
    elif parties and len(members) < 2:
        problems.append(
            FieldProblem(
                field=field,
                rule="no_other_member",
                message="name at least one other member to share with",
            )
        )
    return problems


def _check_validity(
    valid_from: dt.date, valid_to: dt.date, *, today: dt.date, max_days: int
) -> list[FieldProblem]:
    if valid_to < valid_from:
        return [
            FieldProblem(field="valid_to", rule="end_before_start", message="ends before it starts")
        ]
    problems = []
    if (valid_to - valid_from).days > max_days:
        problems.append(
            FieldProblem(
                field="valid_to",
                rule="beyond_max_validity",
                message=f"a consent may be valid for at most {max_days} days",
            )
        )
    if valid_to < today:
        problems.append(
            FieldProblem(field="valid_to", rule="in_the_past", message="the end date has passed")
        )
    return problems


def _check_form(data: ConsentCreate) -> list[FieldProblem]:
    problems = []
    if data.form is ConsentForm.ORAL and not data.form_note:
        problems.append(
            FieldProblem(
                field="form_note",
                rule="required_for_oral",
                message="an oral consent needs a note of how and when it was given",
            )
        )
    if data.form is ConsentForm.WRITTEN and not data.signed_form_reference:
        problems.append(
            FieldProblem(
                field="signed_form_reference",
                rule="required_for_written",
                message="say where the signed form is kept",
            )
        )
    if data.given_by.kind is not GiverKind.PERSON and not data.given_by.reference:
        problems.append(
            FieldProblem(
                field="given_by.reference",
                rule="required_for_representative",
                message="a representative's consent needs the reference it rests on",
            )
        )
    if not data.person_informed:
        problems.append(
            FieldProblem(
                field="person_informed",
                rule="must_be_confirmed",
                message="confirm the person was told the purpose and what refusing means",
            )
        )
    return problems


def _overlaps(a: Sequence[rules.Party], b: Sequence[rules.Party]) -> bool:
    return any(
        x.orgnr == y.orgnr and (x.unit_id is None or y.unit_id is None or x.unit_id == y.unit_id)
        for x in a
        for y in b
    )


def _party_refs(stored: Iterable[dict[str, Any]]) -> list[ConsentPartyRef]:
    return [ConsentPartyRef(orgnr=p["orgnr"], unit_id=p.get("unit_id")) for p in stored]


async def _to_parties(
    session: AsyncSession,
    outbox: Outbox,
    parties: Iterable[dict[str, Any]],
    type_: str,
    payload: ConsentRecordedV1 | ConsentEndedV1,
    *,
    consent: Consent,
) -> None:
    """One event per named member, on its inbound topic (its own member's included)."""
    for orgnr in dict.fromkeys(p["orgnr"] for p in parties):
        await outbox.publish(
            session,
            topics.inbound(orgnr),
            type_,
            payload,
            subject=consent.id,
            key=consent.id,
            aggversion=consent.version,
        )


async def _end(
    *,
    session: AsyncSession,
    outbox: Outbox,
    consent: Consent,
    reason: EndReason,
    actor_user: str | None,
    actor_unit: str | None,
    superseded_by: str | None = None,
) -> None:
    """Ends a consent (withdrawn, expired or superseded) and tells every party."""
    consent.status = str(ConsentStatus(reason))
    consent.ended_at = utcnow()
    consent.superseded_by_id = superseded_by
    try:
        await session.flush()  # bumps the version the event carries
    except StaleDataError as exc:  # another request ended or changed it meanwhile
        raise ConsentNotActive("the consent changed meanwhile; read it again") from exc
    assert consent.ended_at is not None
    await _to_parties(
        session,
        outbox,
        consent.parties,
        CONSENT_ENDED_V1,
        ConsentEndedV1(
            consent_id=consent.id,
            owner_orgnr=consent.owner_orgnr,
            reason=str(reason),
            ended_at=consent.ended_at,
            parties=_party_refs(consent.parties),
            purposes=consent.purposes,
            superseded_by=superseded_by,
            version=consent.version,
        ),
        consent=consent,
    )
    await _log_change(
        session,
        consent,
        str(reason),
        user=actor_user,
        unit=actor_unit,
        details={"version": consent.version, "superseded_by": superseded_by},
    )


async def record_consent(
    *,
    session: AsyncSession,
    outbox: Outbox,
    settings: Settings,
    caller: Caller,
    data: ConsentCreate,
) -> Consent:
    """Records a consent of this member and sends a copy to every party it names."""
    owner = settings.member.orgnr
    problems = [
        *_check_parties(
            data.parties, owner_orgnr=owner, federation=settings.federation_members, field="parties"
        ),
        *_check_validity(
            data.valid_from,
            data.valid_to,
            today=utcnow().date(),
            max_days=settings.consent.max_validity_days,
        ),
        *_check_form(data),
    ]
    if problems:
        raise _problems(problems)
    key = key_of(settings=settings, personnummer=data.person.personnummer)
    repo = ConsentRepository(session)
    previous: Consent | None = None
    if data.supersedes is not None:
        previous = await repo.get_owned(data.supersedes, owner)
        if previous is None or previous.person_key != key:
            raise InvalidInput.field(
                "supersedes", "unknown_consent", "no consent of this person recorded here"
            )
        if previous.status != ConsentStatus.ACTIVE:
            raise ConsentNotActive(f"the consent to supersede is {previous.status}")
    parties = _party_dicts(data.parties)
    purposes = list(dict.fromkeys(str(p) for p in data.purposes))
    for refusal in await RefusalRepository(session).for_person(key, owner):
        if (
            refusal.status == RecordStatus.ACTIVE
            and _overlaps(_parties(refusal.parties), _parties(parties))
            and (not refusal.purposes or set(refusal.purposes) & set(purposes))
        ):
            raise RefusalInForce(
                f"refusal {refusal.id} covers these parties; revoke it first if the "
                "person has changed their mind"
            )
    user, unit = _recorder(caller, data.recorded_by)
    consent = Consent(
        owner_orgnr=owner,
        person_key=key,
        personnummer=data.person.personnummer,
        protected_identity=data.person.protected_identity,
        recorded_by_user=user,
        recorded_by_unit=unit,
        given_by_kind=str(data.given_by.kind),
        given_by_name=data.given_by.name,
        given_by_reference=data.given_by.reference,
        form=str(data.form),
        form_note=data.form_note,
        signed_form_reference=data.signed_form_reference,
        person_informed=data.person_informed,
        purposes=purposes,
        parties=parties,
        categories=list(dict.fromkeys(str(c) for c in data.categories)),
        valid_from=data.valid_from,
        valid_to=data.valid_to,
        status=str(ConsentStatus.ACTIVE),
        supersedes_id=data.supersedes,
    )
    await repo.add(consent)
    if previous is not None:
        await _end(
            session=session,
            outbox=outbox,
            consent=previous,
            reason=EndReason.SUPERSEDED,
            actor_user=user,
            actor_unit=unit,
            superseded_by=consent.id,
        )
    await _to_parties(
        session,
        outbox,
        consent.parties,
        CONSENT_RECORDED_V1,
        ConsentRecordedV1(
            consent_id=consent.id,
            owner_orgnr=owner,
            personnummer=consent.personnummer,
            protected_identity=consent.protected_identity,
            parties=_party_refs(consent.parties),
            purposes=consent.purposes,
            categories=consent.categories,
            valid_from=consent.valid_from,
            valid_to=consent.valid_to,
            recorded_by_unit=consent.recorded_by_unit,
            recorded_at=consent.created_at,
            version=consent.version,
        ),
        consent=consent,
    )
    await _log_change(
        session,
        consent,
        "recorded",
        user=user,
        unit=unit,
        details={
            "version": consent.version,
            "purposes": consent.purposes,
            "categories": consent.categories,
            "parties": consent.parties,
            "valid_from": consent.valid_from.isoformat(),
            "valid_to": consent.valid_to.isoformat(),
            "form": consent.form,
            "supersedes": consent.supersedes_id,
        },
    )
    return consent


async def get_own_consent(*, session: AsyncSession, consent_id: str, owner_orgnr: str) -> Consent:
    """Gets a consent this member recorded (ConsentNotFound otherwise)."""
    consent = await ConsentRepository(session).get_owned(consent_id, owner_orgnr)
    if consent is None:
        raise ConsentNotFound()
    return consent


async def withdraw_consent(
    *,
    session: AsyncSession,
    outbox: Outbox,
    caller: Caller,
    consent: Consent,
    data: WithdrawRequest,
    expected_version: int | None = None,
) -> Consent:
    """Withdraws a consent at once and tells every party (409 if not active, 412 if stale)."""
    if expected_version is not None and expected_version != consent.version:
        raise ConsentVersionMismatch(headers={"ETag": etag(consent.version)})
    if consent.status != ConsentStatus.ACTIVE:
        raise ConsentNotActive(f"the consent is {consent.status}")
    by = data.withdrawn_by
    if by.kind not in (WithdrawerKind.PERSON, WithdrawerKind.STAFF) and not by.reference:
        raise InvalidInput.field(
            "withdrawn_by.reference",
            "required_for_representative",
            "a representative's withdrawal needs the reference it rests on",
        )
    consent.withdrawn_by_kind = str(by.kind)
    consent.withdrawn_by_reference = by.reference
    consent.withdrawal_reason = data.reason
    consent.withdrawn_by_user = caller.sub
    await _end(
        session=session,
        outbox=outbox,
        consent=consent,
        reason=EndReason.WITHDRAWN,
        actor_user=caller.sub,
        actor_unit=caller.unit,
    )
    return consent


async def expire_due(
    *, session: AsyncSession, outbox: Outbox, owner_orgnr: str, today: dt.date, batch: int = 500
) -> int:
    """Expires active consents past their end date, tells their parties; returns how many."""
    due = await ConsentRepository(session).due_to_expire(owner_orgnr, today, batch)
    for consent in due:
        await _end(
            session=session,
            outbox=outbox,
            consent=consent,
            reason=EndReason.EXPIRED,
            actor_user=SYSTEM_USER,
            actor_unit=None,
        )
    return len(due)


async def get_copy(*, session: AsyncSession, consent_id: str) -> ConsentCopy:
    """Gets this member's copy of another member's consent (CopyNotFound otherwise)."""
    copy = await CopyRepository(session).get(consent_id)
    if copy is None:
        raise CopyNotFound()
    return copy


# --- refusals and blocks ---------------------------------------------------------------


async def record_refusal(
    *, session: AsyncSession, settings: Settings, caller: Caller, data: RefusalCreate
) -> Refusal:
    """Records that the person refused sharing with the named parties."""
    owner = settings.member.orgnr
    problems = [
        p
        for p in _check_parties(
            data.parties, owner_orgnr=owner, federation=settings.federation_members, field="parties"
        )
        # A refusal may name a single member (e.g. only the region).
        if p.rule in ("unknown_party", "duplicate_party")
    ]
    if data.refused_on > utcnow().date():
        problems.append(
            FieldProblem(field="refused_on", rule="in_the_future", message="not yet happened")
        )
    if problems:
        raise _problems(problems)
    user, unit = _recorder(caller, data.recorded_by)
    key = key_of(settings=settings, personnummer=data.person.personnummer)
    parties = _party_dicts(data.parties)
    purposes = list(dict.fromkeys(str(p) for p in data.purposes))
    # A refusal after a consent is a withdrawal: it goes through withdrawal, so the parties
    # holding copies are told and never act on a consent the person took back.
    for consent in await ConsentRepository(session).for_person(key, owner):
        if (
            consent.status == ConsentStatus.ACTIVE
            and _overlaps(_parties(consent.parties), _parties(parties))
            and (not purposes or set(consent.purposes) & set(purposes))
        ):
            raise ConsentInForce(
                f"consent {consent.id} covers these parties; withdraw it (its parties are "
                "told), then record the refusal"
            )
    refusal = Refusal(
        owner_orgnr=owner,
        person_key=key,
        personnummer=data.person.personnummer,
        recorded_by_user=user,
        recorded_by_unit=unit,
        refused_on=data.refused_on,
        parties=parties,
        purposes=purposes,
        note=data.note,
        status=str(RecordStatus.ACTIVE),
    )
    await RefusalRepository(session).add(refusal)
    await _log_change(
        session,
        refusal,
        "recorded",
        user=user,
        unit=unit,
        details={"parties": refusal.parties, "purposes": refusal.purposes},
    )
    return refusal


async def get_own_refusal(*, session: AsyncSession, refusal_id: str, owner_orgnr: str) -> Refusal:
    """Gets a refusal this member recorded (RefusalNotFound otherwise)."""
    refusal = await RefusalRepository(session).get_owned(refusal_id, owner_orgnr)
    if refusal is None:
        raise RefusalNotFound()
    return refusal


async def revoke_refusal(
    *, session: AsyncSession, caller: Caller, refusal: Refusal, reason: str
) -> Refusal:
    """Revokes a refusal (the person changed their mind); 409 if already revoked."""
    if refusal.status != RecordStatus.ACTIVE:
        raise RecordNotActive(f"the refusal is {refusal.status}")
    refusal.status = str(RecordStatus.REVOKED)
    refusal.revoked_at = utcnow()
    refusal.revoked_by_user = caller.sub
    refusal.revocation_reason = reason
    await session.flush()
    await _log_change(
        session,
        refusal,
        "revoked",
        user=caller.sub,
        unit=caller.unit,
    )
    return refusal


async def record_block(
    *, session: AsyncSession, settings: Settings, caller: Caller, data: BlockCreate
) -> Block:
    """Records a block of a member or unit from receiving anything about the person."""
    owner = settings.member.orgnr
    federation = settings.federation_members
    if federation and data.blocked.orgnr not in federation:
        raise InvalidInput.field("blocked.orgnr", "unknown_party", "not a member of the federation")
    if data.blocked.orgnr == owner and data.blocked.unit_id is None:
        raise InvalidInput.field(
            "blocked.unit_id", "own_member", "block a unit of your own member, not all of it"
        )
    user, unit = _recorder(caller, data.recorded_by)
    key = key_of(settings=settings, personnummer=data.person.personnummer)
    block = Block(
        owner_orgnr=owner,
        person_key=key,
        personnummer=data.person.personnummer,
        recorded_by_user=user,
        recorded_by_unit=unit,
        blocked_orgnr=data.blocked.orgnr,
        blocked_unit_id=data.blocked.unit_id,
        reason=data.reason,
        status=str(RecordStatus.ACTIVE),
    )
    await BlockRepository(session).add(block)
    await _log_change(
        session,
        block,
        "recorded",
        user=user,
        unit=unit,
        details={"blocked": {"orgnr": block.blocked_orgnr, "unit_id": block.blocked_unit_id}},
    )
    return block


async def get_own_block(*, session: AsyncSession, block_id: str, owner_orgnr: str) -> Block:
    """Gets a block this member recorded (BlockNotFound otherwise)."""
    block = await BlockRepository(session).get_owned(block_id, owner_orgnr)
    if block is None:
        raise BlockNotFound()
    return block


async def block_lifts(*, session: AsyncSession, block_ids: Sequence[str]) -> list[BlockLift]:
    """The temporary lifts of these blocks, oldest first."""
    return await BlockRepository(session).lifts_for(block_ids)


async def lift_block(
    *, session: AsyncSession, settings: Settings, caller: Caller, block: Block, data: LiftCreate
) -> BlockLift:
    """Lifts a block for at most the configured number of days, with a reason."""
    if block.status != RecordStatus.ACTIVE:
        raise RecordNotActive(f"the block is {block.status}")
    now = utcnow()
    starts = data.starts_at or now
    max_days = settings.consent.block_lift_max_days
    if data.ends_at <= starts:
        raise InvalidInput.field("ends_at", "end_before_start", "the lift ends before it starts")
    if data.ends_at - starts > dt.timedelta(days=max_days):
        raise InvalidInput.field(
            "ends_at", "beyond_max_lift", f"a block may be lifted for at most {max_days} days"
        )
    if data.ends_at <= now:
        raise InvalidInput.field("ends_at", "in_the_past", "the lift would already be over")
    lift = await BlockRepository(session).add_lift(
        BlockLift(
            block_id=block.id,
            starts_at=starts,
            ends_at=data.ends_at,
            reason=data.reason,
            lifted_by_user=caller.sub,
            lifted_by_unit=caller.unit,
            created_at=now,
        )
    )
    await _log_change(
        session,
        block,
        "lifted",
        user=caller.sub,
        unit=caller.unit,
        details={"starts_at": starts.isoformat(), "ends_at": data.ends_at.isoformat()},
    )
    return lift


async def remove_block(*, session: AsyncSession, caller: Caller, block: Block) -> Block:
    """Removes a block for good (the person's wish); 409 if already removed."""
    if block.status != RecordStatus.ACTIVE:
        raise RecordNotActive(f"the block is {block.status}")
    block.status = str(RecordStatus.REMOVED)
    block.removed_at = utcnow()
    block.removed_by_user = caller.sub
    await session.flush()
    await _log_change(
        session,
        block,
        "removed",
        user=caller.sub,
        unit=caller.unit,
    )
    return block


# --- decisions -------------------------------------------------------------------------


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
                    parties=_parties(row.parties),
                    purposes=frozenset(row.purposes),
                    categories=frozenset(row.categories),
                    valid_from=row.valid_from,
                    valid_to=row.valid_to,
                    protected_identity=bool(row.protected_identity),
                )
            )
        elif row.kind == TERMS_REFUSAL:
            refusals.append(
                rules.RefusalTerms(
                    id=row.id,
                    parties=_parties(row.parties),
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
    session: AsyncSession | AsyncConnection,
    settings: Settings,
    asked: Sequence[tuple[Asked, Caller]],
) -> list[Decided | Exception]:
    """Decides several questions on one read of their people's terms, and keeps each stated
    legal basis with its verdict; per question its decision, or the error deciding it."""
    own = settings.member.orgnr
    policy = policy_of(settings=settings)
    keys = list(dict.fromkeys(a.person_key for a, _ in asked))
    terms = await DecisionTermsRepository(session).for_people(keys, own)
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
    await LegalBasisUseRepository.insert_many(session, uses)
    return out


# --- person search ---------------------------------------------------------------------


async def person_records(
    *, session: AsyncSession, settings: Settings, personnummer: str
) -> dict[str, Any]:
    """Everything this member holds for the person, with its history, by record kind."""
    own = settings.member.orgnr
    key = key_of(settings=settings, personnummer=personnummer)
    blocks = await BlockRepository(session).for_person(key, own)
    return {
        "consents": await ConsentRepository(session).for_person(key, own),
        "copies": await CopyRepository(session).for_person(key),
        "refusals": await RefusalRepository(session).for_person(key, own),
        "blocks": blocks,
        "lifts": await block_lifts(session=session, block_ids=[b.id for b in blocks]),
        "legal_basis_uses": await LegalBasisUseRepository(session).for_person(key, own),
        "history": await ChangeLogRepository(session).for_person(key),
    }


# --- copies at the parties (the worker's inbound handlers) -----------------------------


def _check_sender(event: CloudEvent, owner_orgnr: str) -> None:
    if event.sender_orgnr != owner_orgnr.replace("-", ""):
        raise Reject("sender_not_owner", "only the recording member sends its consent's events")


async def apply_consent_recorded(
    *, session: AsyncSession, settings: Settings, event: CloudEvent, payload: ConsentRecordedV1
) -> bool:
    """Stores (or updates) this member's copy of a consent naming it; True if applied. A copy
    whose end arrived first (a tombstone, ADR 0016) is stored ended."""
    own = settings.member.orgnr
    _check_sender(event, payload.owner_orgnr)
    if payload.owner_orgnr == own:
        return False  # our own consent, already in the consent table
    if own not in {p.orgnr for p in payload.parties}:
        raise Reject("not_a_party", "the consent does not name this member")
    try:
        key = key_of(settings=settings, personnummer=payload.personnummer)
    except IdentifierError as exc:
        raise Reject("invalid_personnummer", "the personnummer is not valid") from exc
    repo = CopyRepository(session)
    copy = await repo.get(payload.consent_id)
    if copy is not None and copy.owner_orgnr != payload.owner_orgnr:
        raise Reject("sender_not_owner", "the consent id belongs to another member")
    if copy is not None and copy.version >= payload.version:
        return False
    tombstone = None
    if copy is None:
        tombstone = await TombstoneRepository(session).get(payload.consent_id)
        if tombstone is not None and tombstone.owner_orgnr != payload.owner_orgnr:
            raise Reject("sender_not_owner", "the consent id belongs to another member")
        copy = ConsentCopy(consent_id=payload.consent_id, status=str(ConsentStatus.ACTIVE))
        session.add(copy)
    copy.owner_orgnr = payload.owner_orgnr
    copy.person_key = key
    copy.protected_identity = payload.protected_identity
    copy.parties = [p.model_dump() for p in payload.parties]
    copy.purposes = list(payload.purposes)
    copy.categories = list(payload.categories)
    copy.valid_from = payload.valid_from
    copy.valid_to = payload.valid_to
    copy.recorded_by_unit = payload.recorded_by_unit
    copy.recorded_at = payload.recorded_at
    copy.version = payload.version
    copy.received_at = utcnow()
    copy.source_event_id = event.id
    await session.flush()
    await _log(
        session,
        person_key=key,
        subject_type="consent_copy",
        subject_id=payload.consent_id,
        action="copy_received",
        actor_org=payload.owner_orgnr,
        actor_user=None,
        actor_unit=payload.recorded_by_unit,
        details={"version": payload.version},
    )
    if tombstone is not None:
        if tombstone.version > payload.version:
            await _end_copy(
                session,
                copy,
                reason=tombstone.reason,
                ended_at=tombstone.ended_at,
                version=tombstone.version,
                superseded_by=tombstone.superseded_by,
                event_id=tombstone.source_event_id,
            )
        await session.delete(tombstone)  # the copy now carries the end
        await session.flush()
    return True


async def _end_copy(
    session: AsyncSession,
    copy: ConsentCopy,
    *,
    reason: str,
    ended_at: dt.datetime,
    version: int,
    superseded_by: str | None,
    event_id: str,
) -> None:
    """Marks a copy ended (withdrawn, expired or superseded) and logs it for the person."""
    copy.status = str(ConsentStatus(reason))
    copy.end_reason = reason
    copy.ended_at = ended_at
    copy.version = version
    copy.source_event_id = event_id
    await session.flush()
    await _log(
        session,
        person_key=copy.person_key,
        subject_type="consent_copy",
        subject_id=copy.consent_id,
        action=f"copy_{reason}",
        actor_org=copy.owner_orgnr,
        actor_user=None,
        actor_unit=None,
        details={"version": version, "superseded_by": superseded_by},
    )


async def apply_consent_ended(
    *, session: AsyncSession, settings: Settings, event: CloudEvent, payload: ConsentEndedV1
) -> bool:
    """Marks this member's copy withdrawn, expired or superseded; True if applied. An end
    that arrives before the copy is kept as a tombstone (ADR 0016) for the copy to meet."""
    own = settings.member.orgnr
    _check_sender(event, payload.owner_orgnr)
    if payload.owner_orgnr == own:
        return False
    copy = await CopyRepository(session).get(payload.consent_id)
    if copy is None:
        # Events of one key can still arrive out of order (a resent record falls behind a
        # later one, ADR 0005): remember the end until the copy comes.
        return await _remember_end(session, own=own, event=event, payload=payload)
    if copy.version >= payload.version:
        return False
    if copy.owner_orgnr != payload.owner_orgnr:
        raise Reject("sender_not_owner", "the consent id belongs to another member")
    await _end_copy(
        session,
        copy,
        reason=payload.reason,
        ended_at=payload.ended_at,
        version=payload.version,
        superseded_by=payload.superseded_by,
        event_id=event.id,
    )
    return True


async def _remember_end(
    session: AsyncSession, *, own: str, event: CloudEvent, payload: ConsentEndedV1
) -> bool:
    """Keeps (or brings forward) the tombstone of a consent whose copy has not arrived."""
    if own not in {p.orgnr for p in payload.parties}:
        raise Reject("not_a_party", "the consent does not name this member")
    repo = TombstoneRepository(session)
    tombstone = await repo.get(payload.consent_id)
    if tombstone is not None and tombstone.owner_orgnr != payload.owner_orgnr:
        raise Reject("sender_not_owner", "the consent id belongs to another member")
    if tombstone is not None and tombstone.version >= payload.version:
        return False
    if tombstone is None:
        tombstone = ConsentTombstone(consent_id=payload.consent_id)
        session.add(tombstone)
    tombstone.owner_orgnr = payload.owner_orgnr
    tombstone.reason = payload.reason
    tombstone.ended_at = payload.ended_at
    tombstone.superseded_by = payload.superseded_by
    tombstone.version = payload.version
    tombstone.received_at = utcnow()
    tombstone.source_event_id = event.id
    await session.flush()
    return True


async def prune_tombstones(*, session: AsyncSession, settings: Settings) -> int:
    """Deletes tombstones whose copy never came within the inbox's retention (ADR 0016)."""
    cut_off = utcnow() - dt.timedelta(days=settings.kafka.inbox_retention_days)
    return await TombstoneRepository(session).prune(cut_off)


# --- audit extract ---------------------------------------------------------------------


async def apply_audit_recorded(
    *, session: AsyncSession, settings: Settings, event: CloudEvent, payload: AuditRecordedV1
) -> bool:
    """Keeps another service's audit record for the person's extract; True if stored."""
    return (
        await apply_audit_records(session=session, settings=settings, arrived=[(event, payload)])
        == 1
    )


async def apply_audit_records(
    *,
    session: AsyncSession,
    settings: Settings,
    arrived: Sequence[tuple[CloudEvent, AuditRecordedV1]],
) -> int:
    """Keeps other services' audit records for the persons' extracts (a consumed run of
    them: one look for those already kept, one insert); returns how many were stored. A
    record from another member, or naming an invalid person id, rejects the run (the inbox
    then takes its events one at a time)."""
    rows: dict[str, dict[str, Any]] = {}
    for event, payload in arrived:
        if event.sender_orgnr != settings.member.digits:
            raise Reject("sender_not_member", "only this member's services send audit records")
        if payload.service == "consent" or event.id in rows:
            continue  # read from this service's own audit log / a repeat in this run
        try:
            key = key_of(settings=settings, personnummer=payload.person_id)
        except IdentifierError as exc:
            raise Reject("invalid_personnummer", "the person id is not valid") from exc
        rows[event.id] = {
            "source_event_id": event.id,
            "service": payload.service,
            "occurred_at": payload.occurred_at,
            "person_key": key,
            "actor_sub": payload.actor_sub,
            "actor_org": payload.actor_org,
            "actor_unit": payload.actor_unit,
            "action": payload.action,
            "purpose": payload.purpose,
            "outcome": payload.outcome,
            "resource_type": payload.resource_type,
            "resource_id": payload.resource_id,
        }
    repo = AuditCopyRepository(session)
    for seen in await repo.seen_among(list(rows)):
        del rows[seen]
    await repo.add_rows(list(rows.values()))
    return len(rows)


async def audit_entries(
    *,
    session: AsyncSession,
    settings: Settings,
    audit_table: Any,
    personnummer: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> list[dict[str, Any]]:
    """Every access to the person's data in this member's four services, oldest first."""
    key = key_of(settings=settings, personnummer=personnummer)
    held = await CopyRepository(session).for_person(key)
    own = await AuditLogRepository(session, audit_table).for_person(
        personnummer, copy_ids=[c.consent_id for c in held], since=since, until=until
    )
    copies = await AuditCopyRepository(session).for_person(key, since=since, until=until)
    fields = (
        "occurred_at",
        "service",
        "action",
        "actor_sub",
        "actor_org",
        "actor_unit",
        "purpose",
        "outcome",
        "resource_type",
        "resource_id",
    )
    entries = [{f: getattr(r, f) for f in fields} for r in own]
    entries += [{f: getattr(c, f) for f in fields} for c in copies]
    return sorted(entries, key=lambda e: e["occurred_at"])
