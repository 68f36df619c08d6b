"""The copies at the parties: what this member keeps of the consents other members record
and name it in (the worker's inbound handlers), and the ends that arrive before their copy.

A copy holds only what the receive-time check needs (no personnummer, giver or notes) and
moves only forward: a version at or below the one held is a replay or a reordering. Only
the recording member speaks for its consent; the first member a consent id was heard from
owns it here (ADR 0017). A copy is narrowed when the person withdraws some purposes, and
ended when the consent ends. An end or a narrowing that arrives before its copy is kept as a
tombstone until the copy comes, or until the inbox's retention has passed (ADR 0016).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from services.consent.codes import ConsentStatus
from services.consent.history import Actor, log_change
from services.consent.models import ConsentCopy, ConsentTombstone
from services.consent.person import key_of
from services.consent.repository import ConsentRepository, CopyRepository, TombstoneRepository
from shared.data.work import Work
from shared.identity.identifiers import IdentifierError
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import (
    ConsentEndedV1,
    ConsentNarrowedV1,
    ConsentRecordedV1,
)
from shared.messaging.inbox import Reject
from shared.messaging.ownership import newer, require_owner, require_sender
from shared.web.errors import NotFound

NOT_THE_RECORDER = "only the recording member sends its consent's events"
ANOTHER_MEMBERS = "the consent id belongs to another member"


COPIED = (
    "owner_orgnr",
    "protected_identity",
    "purposes",
    "categories",
    "valid_from",
    "valid_to",
    "recorded_by_unit",
    "recorded_at",
    "version",
)
"""What a copy keeps of a recorded event as it is (besides the parties and the person key)."""
REMEMBERED = ("owner_orgnr", "reason", "ended_at", "superseded_by", "version")
"""What a tombstone keeps of an ended event."""
NARROWED = "narrowed"
"""The reason of a tombstone that keeps a narrowing (not an end) until its copy comes."""


def _take(
    row: ConsentCopy | ConsentTombstone, payload: BaseModel, names: Sequence[str], **values: Any
) -> None:
    """Sets ``row``'s columns ``names`` from the payload's fields, and ``values``."""
    for name in names:
        setattr(row, name, getattr(payload, name))
    for name, value in values.items():
        setattr(row, name, value)


CopyNotFound = NotFound.kind(
    "consent-copy-not-found", "This member holds no copy of such a consent"
)


async def get_copy(work: Work, consent_id: str) -> ConsentCopy:
    """Gets this member's copy of another member's consent (CopyNotFound otherwise)."""
    copy = await CopyRepository(work.session).get(consent_id)
    if copy is None:
        raise CopyNotFound()
    return copy


async def _check_copy_owner(work: Work, event: CloudEvent, consent_id: str) -> None:
    """The first owner of a consent id binds it (``not_owner`` for any other member): the
    member whose copy or end this member keeps, or this member for its own consents. So an
    event of another member, whatever version it claims, changes nothing."""
    session = work.session
    held = (
        await CopyRepository(session).get(consent_id)
        or await TombstoneRepository(session).get(consent_id)
        or await ConsentRepository(session).get(consent_id)
    )
    held_by = None if held is None else held.owner_orgnr
    require_owner(held_by, event.sender_orgnr or "", ANOTHER_MEMBERS)


def _check_party(
    work: Work, payload: ConsentRecordedV1 | ConsentEndedV1 | ConsentNarrowedV1
) -> None:
    if work.member not in {p.orgnr for p in payload.parties}:
        raise Reject("not_a_party", "the consent does not name this member")


def _owned_by(held: ConsentCopy | ConsentTombstone | None, owner_orgnr: str) -> None:
    """``sender_not_owner`` if the copy or end held names another owner."""
    require_owner(
        None if held is None else held.owner_orgnr,
        owner_orgnr,
        ANOTHER_MEMBERS,
        rule="sender_not_owner",
    )


async def apply_consent_recorded(work: Work, event: CloudEvent, payload: ConsentRecordedV1) -> bool:
    """Stores (or updates) this member's copy of a consent naming it; True if applied. A copy
    whose end arrived first (a tombstone, ADR 0016) is stored ended."""
    await _check_copy_owner(work, event, payload.consent_id)
    require_sender(event, payload.owner_orgnr, NOT_THE_RECORDER)
    if payload.owner_orgnr == work.member:
        return False  # our own consent, already in the consent table
    _check_party(work, payload)
    try:
        key = key_of(settings=work.settings, personnummer=payload.personnummer)
    except IdentifierError as exc:
        raise Reject("invalid_personnummer", "the personnummer is not valid") from exc
    copies = CopyRepository(work.session)
    copy = await copies.get(payload.consent_id)
    _owned_by(copy, payload.owner_orgnr)
    if copy is not None and not newer(copy.version, payload.version):
        return False
    tombstone = None
    if copy is None:
        tombstone = await TombstoneRepository(work.session).get(payload.consent_id)
        _owned_by(tombstone, payload.owner_orgnr)
        copy = ConsentCopy(consent_id=payload.consent_id, status=str(ConsentStatus.ACTIVE))
    _take(
        copy,
        payload,
        COPIED,
        person_key=key,
        parties=[p.model_dump() for p in payload.parties],
        received_at=work.now,
        source_event_id=event.id,
    )
    await copies.save(copy)
    await log_change(
        work,
        copy,
        "copy_received",
        by=Actor(None, payload.recorded_by_unit),
        details={"version": payload.version},
    )
    if tombstone is not None:
        if tombstone.version > payload.version and tombstone.reason == NARROWED:
            await _narrow_copy(work, copy, tombstone, tombstone.source_event_id)
        elif tombstone.version > payload.version:
            await _end_copy(work, copy, tombstone, tombstone.source_event_id)
        await TombstoneRepository(work.session).remove(tombstone)  # the copy carries the end
    return True


async def _end_copy(
    work: Work, copy: ConsentCopy, end: ConsentEndedV1 | ConsentTombstone, event_id: str
) -> None:
    """Marks a copy ended (withdrawn, expired or superseded) as ``end`` says (the ended
    event ``event_id``, or the tombstone kept of it) and logs it for the person."""
    copy.status = str(ConsentStatus(end.reason))
    copy.end_reason = end.reason
    copy.ended_at = end.ended_at
    copy.version = end.version
    copy.source_event_id = event_id
    await CopyRepository(work.session).save(copy)
    await log_change(
        work,
        copy,
        f"copy_{end.reason}",
        by=Actor(None, None),
        details={"version": end.version, "superseded_by": end.superseded_by},
    )


async def apply_consent_ended(work: Work, event: CloudEvent, payload: ConsentEndedV1) -> bool:
    """Marks this member's copy withdrawn, expired or superseded; True if applied. An end
    that arrives before the copy is kept as a tombstone (ADR 0016) for the copy to meet."""
    return await _change_copy(work, event, payload, _end_copy)


async def _change_copy(
    work: Work,
    event: CloudEvent,
    payload: ConsentEndedV1 | ConsentNarrowedV1,
    change: Callable[[Work, ConsentCopy, Any, str], Awaitable[None]],
) -> bool:
    """Applies ``change`` (an end or a narrowing) to this member's copy if the payload is
    newer, from the consent's owner; remembers it when the copy has not come yet."""
    await _check_copy_owner(work, event, payload.consent_id)
    require_sender(event, payload.owner_orgnr, NOT_THE_RECORDER)
    if payload.owner_orgnr == work.member:
        return False
    copy = await CopyRepository(work.session).get(payload.consent_id)
    if copy is None:
        # Events of one key can still arrive out of order (a resent record falls behind a
        # later one, ADR 0005): remember the change until the copy comes.
        return await _remember_end(work, event, payload)
    if not newer(copy.version, payload.version):
        return False
    _owned_by(copy, payload.owner_orgnr)
    await change(work, copy, payload, event.id)
    return True


async def _remember_end(
    work: Work, event: CloudEvent, payload: ConsentEndedV1 | ConsentNarrowedV1
) -> bool:
    """Keeps (or brings forward) the tombstone of a consent whose copy has not arrived: its
    end, or its narrowing (the purposes in force and withdrawn)."""
    _check_party(work, payload)
    tombstones = TombstoneRepository(work.session)
    tombstone = await tombstones.get(payload.consent_id)
    _owned_by(tombstone, payload.owner_orgnr)
    if tombstone is not None and not newer(tombstone.version, payload.version):
        return False
    if tombstone is None:
        tombstone = ConsentTombstone(consent_id=payload.consent_id)
    if isinstance(payload, ConsentNarrowedV1):
        _take(
            tombstone,
            payload,
            ("owner_orgnr", "purposes", "withdrawn_purposes", "version"),
            reason=NARROWED,
            ended_at=payload.narrowed_at,
            superseded_by=None,
            received_at=work.now,
            source_event_id=event.id,
        )
    else:
        _take(
            tombstone,
            payload,
            REMEMBERED,
            purposes=None,
            withdrawn_purposes=None,
            received_at=work.now,
            source_event_id=event.id,
        )
    await tombstones.save(tombstone)
    return True


async def _narrow_copy(
    work: Work, copy: ConsentCopy, narrowed: ConsentNarrowedV1 | ConsentTombstone, event_id: str
) -> None:
    """Narrows a copy to the purposes still in force, as ``narrowed`` says (the narrowed
    event ``event_id``, or the tombstone kept of it), and logs it for the person."""
    copy.purposes = list(narrowed.purposes or ())
    copy.withdrawn_purposes = list(narrowed.withdrawn_purposes or ())
    copy.version = narrowed.version
    copy.source_event_id = event_id
    await CopyRepository(work.session).save(copy)
    await log_change(
        work,
        copy,
        "copy_narrowed",
        by=Actor(None, None),
        details={"version": copy.version, "withdrawn_purposes": copy.withdrawn_purposes},
    )


async def apply_consent_narrowed(work: Work, event: CloudEvent, payload: ConsentNarrowedV1) -> bool:
    """Narrows this member's copy to the purposes still in force; True if applied. A
    narrowing that arrives before the copy is kept as a tombstone (ADR 0016) for the copy to
    meet; one older than the copy (or its end) held changes nothing."""
    return await _change_copy(work, event, payload, _narrow_copy)


async def prune_tombstones(work: Work) -> int:
    """Deletes tombstones whose copy never came within the inbox's retention (ADR 0016)."""
    cut_off = work.now - dt.timedelta(days=work.settings.kafka.inbox_retention_days)
    return await TombstoneRepository(work.session).prune(cut_off)
