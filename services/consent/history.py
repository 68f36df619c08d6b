"""The person's history: who changed which of the person's records, when and how.

Every change of a consent, refusal or block this member records, and every copy of another
member's consent it receives or sees end, adds an entry to the change log in the same unit
of work (:class:`~shared.data.work.Work`) as the change itself, stamped with the step's
instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.consent.models import Block, ChangeLogEntry, Consent, ConsentCopy, Refusal
from services.consent.repository import ChangeLogRepository
from services.consent.schemas import RecordedByIn
from shared.data.work import Work
from shared.identity.auth import ensure_unit

SYSTEM_USER = "consent-worker"
"""Who ends a consent the worker ends (an expiry)."""


@dataclass(frozen=True)
class Actor:
    """The user and unit a change is logged for (no user: another member's change)."""

    user: str | None
    unit: str | None


def actor(work: Work) -> Actor:
    """Who makes this step: its caller, or the worker itself (an event, a timer)."""
    caller = work.caller
    return Actor(SYSTEM_USER, None) if caller is None else Actor(caller.sub, caller.unit)


def recorder(work: Work, given: RecordedByIn | None) -> Actor:
    """The user and unit that recorded: from the body for system integrations, else the token
    (a unit named in the body must be the caller's, if the token names one)."""
    by, caller = actor(work), work.caller
    user = given.user if given and given.user else by.user
    unit = given.unit_id if given and given.unit_id else by.unit
    if given and given.unit_id and caller is not None and caller.unit is not None:
        ensure_unit(caller, given.unit_id)
    return Actor(user, unit)


async def log_change(
    work: Work,
    row: Consent | Refusal | Block | ConsentCopy,
    action: str,
    *,
    by: Actor,
    details: dict[str, Any] | None = None,
) -> None:
    """Adds a change of a record (this member's own, or its copy of another member's
    consent, logged for the consent's owner) to the person's history."""
    await ChangeLogRepository(work.session).add(
        ChangeLogEntry(
            person_key=row.person_key,
            subject_type=row.__tablename__,
            subject_id=row.consent_id if isinstance(row, ConsentCopy) else row.id,
            action=action,
            occurred_at=work.now,
            actor_org=row.owner_orgnr,
            actor_user=by.user,
            actor_unit=by.unit,
            details=details or {},
        )
    )
