"""Refusals and blocks this member records: the person said no (a refusal), or keeps a
member or unit from receiving anything about them (a block, spärr), with temporary lifts.

Both stand until the person changes their mind: a refusal is revoked, a block removed.
Neither is sent to other members: they bind this member's own decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from services.consent.codes import RecordStatus
from services.consent.decision import swedish_day
from services.consent.history import Actor, actor, log_change, recorder
from services.consent.models import Block, BlockLift, Refusal
from services.consent.parties import check_parties, in_force, invalid, owned, party_dicts
from services.consent.person import key_of
from services.consent.repository import BlockRepository, ConsentRepository, RefusalRepository
from services.consent.schemas import BlockCreate, LiftCreate, RefusalCreate
from shared.data.work import Work
from shared.web.errors import Conflict, FieldProblem, InvalidInput, NotFound

RefusalNotFound = NotFound.kind("refusal-not-found", "No such refusal recorded by this member")
BlockNotFound = NotFound.kind("block-not-found", "No such block recorded by this member")
RecordNotActive = Conflict.kind("record-not-active", "The refusal or block is no longer active")
ConsentInForce = Conflict.kind(
    "consent-in-force", "An active consent of the person covers these parties and purposes"
)


def _standing(work: Work, data: RefusalCreate | BlockCreate) -> dict[str, Any]:
    """The columns a new refusal or block starts with: whose, about whom, recorded by whom
    (InvalidInput or Forbidden for a unit not the caller's), active."""
    by = recorder(work, data.recorded_by)
    return {
        "owner_orgnr": work.member,
        "person_key": key_of(settings=work.settings, personnummer=data.person.personnummer),
        "personnummer": data.person.personnummer,
        "recorded_by_user": by.user,
        "recorded_by_unit": by.unit,
        "status": str(RecordStatus.ACTIVE),
    }


def _ensure_active(row: Refusal | Block) -> None:
    if row.status != RecordStatus.ACTIVE:
        raise RecordNotActive(f"the {row.__tablename__} is {row.status}")


async def record_refusal(work: Work, data: RefusalCreate) -> Refusal:
    """Records that the person refused sharing with the named parties."""
    owner, settings = work.member, work.settings
    problems = [
        p
        for p in check_parties(
            data.parties, owner_orgnr=owner, federation=settings.federation_members, field="parties"
        )
        # A refusal may name a single member (e.g. only the region).
        if p.rule in ("unknown_party", "duplicate_party")
    ]
    if data.refused_on > swedish_day(work.now):
        problems.append(
            FieldProblem(field="refused_on", rule="in_the_future", message="not yet happened")
        )
    if problems:
        raise invalid(problems)
    standing = _standing(work, data)
    key = standing["person_key"]
    parties = party_dicts(data.parties)
    purposes = list(dict.fromkeys(str(p) for p in data.purposes))
    # A refusal after a consent is a withdrawal: it goes through withdrawal, so the parties
    # holding copies are told and never act on a consent the person took back.
    consents = await ConsentRepository(work.session).for_person(key, owner)
    consent = in_force(consents, parties, purposes)
    if consent is not None:
        raise ConsentInForce(
            f"consent {consent.id} covers these parties; withdraw it (its parties are "
            "told), then record the refusal"
        )
    refusal = await RefusalRepository(work.session).add(
        Refusal(
            **standing,
            refused_on=data.refused_on,
            parties=parties,
            purposes=purposes,
            note=data.note,
        )
    )
    await log_change(
        work,
        refusal,
        "recorded",
        by=Actor(refusal.recorded_by_user, refusal.recorded_by_unit),
        details={"parties": refusal.parties, "purposes": refusal.purposes},
    )
    return refusal


async def get_own_refusal(work: Work, refusal_id: str) -> Refusal:
    """Gets a refusal this member recorded (RefusalNotFound otherwise)."""
    return await owned(work, Refusal, refusal_id, RefusalNotFound)


async def revoke_refusal(work: Work, refusal: Refusal, reason: str) -> Refusal:
    """Revokes a refusal (the person changed their mind); 409 if already revoked."""
    _ensure_active(refusal)
    by = actor(work)
    refusal.status = str(RecordStatus.REVOKED)
    refusal.revoked_at = work.now
    refusal.revoked_by_user = by.user
    refusal.revocation_reason = reason
    await RefusalRepository(work.session).save(refusal)
    await log_change(work, refusal, "revoked", by=by)
    return refusal


async def record_block(work: Work, data: BlockCreate) -> Block:
    """Records a block of a member or unit from receiving anything about the person."""
    owner, settings = work.member, work.settings
    federation = settings.federation_members
    if federation and data.blocked.orgnr not in federation:
        raise InvalidInput.field("blocked.orgnr", "unknown_party", "not a member of the federation")
    if data.blocked.orgnr == owner and data.blocked.unit_id is None:
        raise InvalidInput.field(
            "blocked.unit_id", "own_member", "block a unit of your own member, not all of it"
        )
    block = await BlockRepository(work.session).add(
        Block(
            **_standing(work, data),
            blocked_orgnr=data.blocked.orgnr,
            blocked_unit_id=data.blocked.unit_id,
            reason=data.reason,
        )
    )
    await log_change(
        work,
        block,
        "recorded",
        by=Actor(block.recorded_by_user, block.recorded_by_unit),
        details={"blocked": {"orgnr": block.blocked_orgnr, "unit_id": block.blocked_unit_id}},
    )
    return block


async def get_own_block(work: Work, block_id: str) -> Block:
    """Gets a block this member recorded (BlockNotFound otherwise)."""
    return await owned(work, Block, block_id, BlockNotFound)


async def block_lifts(work: Work, block_ids: Sequence[str]) -> list[BlockLift]:
    """The temporary lifts of these blocks, oldest first."""
    return await BlockRepository(work.session).lifts_for(block_ids)


async def lift_block(work: Work, block: Block, data: LiftCreate) -> BlockLift:
    """Lifts a block for at most the configured number of days, with a reason."""
    _ensure_active(block)
    now = work.now
    starts = data.starts_at or now
    max_days = work.settings.consent.block_lift_max_days
    if data.ends_at <= starts:
        raise InvalidInput.field("ends_at", "end_before_start", "the lift ends before it starts")
    if data.ends_at - starts > dt.timedelta(days=max_days):
        raise InvalidInput.field(
            "ends_at", "beyond_max_lift", f"a block may be lifted for at most {max_days} days"
        )
    if data.ends_at <= now:
        raise InvalidInput.field("ends_at", "in_the_past", "the lift would already be over")
    by = actor(work)
    assert by.user is not None
    lift = await BlockRepository(work.session).add_lift(
        BlockLift(
            block_id=block.id,
            starts_at=starts,
            ends_at=data.ends_at,
            reason=data.reason,
            lifted_by_user=by.user,
            lifted_by_unit=by.unit,
            created_at=now,
        )
    )
    await log_change(
        work,
        block,
        "lifted",
        by=by,
        details={"starts_at": starts.isoformat(), "ends_at": data.ends_at.isoformat()},
    )
    return lift


async def remove_block(work: Work, block: Block) -> Block:
    """Removes a block for good (the person's wish); 409 if already removed."""
    _ensure_active(block)
    by = actor(work)
    block.status = str(RecordStatus.REMOVED)
    block.removed_at = work.now
    block.removed_by_user = by.user
    await BlockRepository(work.session).save(block)
    await log_change(work, block, "removed", by=by)
    return block
