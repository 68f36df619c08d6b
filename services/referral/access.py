"""Who may do what in the referral service: the unit a token names, the role that sees a
person with protected identity, and the problems a request is refused with.

Every operation on a referral, an invitation, a meeting or a plan is done by a unit (the
token's ``unit`` claim); the problem types here are shared by all of its rooms.
"""

from __future__ import annotations

from services.referral.models import Incoming
from services.referral.repository import IncomingRepository
from shared.data.work import Work
from shared.identity.auth import Caller
from shared.web.errors import Conflict, Forbidden, NotFound, PreconditionFailed

PROTECTED_ROLE = "protected_identity"  # may see referrals about a person with protected identity


ReferralNotFound = NotFound.kind("referral-not-found", "No such referral for your unit")
NoBasis = Forbidden.kind(
    "no-basis", "No consent or legal basis allows sending this referral to a recipient"
)
TransitionNotAllowed = Conflict.kind(
    "transition-not-allowed",
    "This step is not allowed from the referral's current status, or not by you",
)
StaleVersion = PreconditionFailed.kind(
    "referral-version-mismatch",
    "The referral has changed since you read it (If-Match does not match its ETag)",
)
NoUnitClaim = Forbidden.kind("no-unit", "This operation is done by a unit: the token names none")


def require_unit(caller: Caller) -> str:
    """The caller's unit (the token's ``unit`` claim)."""
    if not caller.unit:
        raise NoUnitClaim("the token has no unit claim")
    return caller.unit


def caller_of(work: Work) -> Caller:
    """The verified caller of a request's work (a step of a unit, never of the bus)."""
    assert work.caller is not None, "a step of a unit runs on behalf of a caller"
    return work.caller


def can_see(caller: Caller, incoming: Incoming) -> bool:
    """Only the receiving unit sees its inbox; a protected identity only with the role."""
    if caller.unit != incoming.unit_id:
        return False
    return not incoming.protected_identity or caller.has_role(PROTECTED_ROLE)


async def get_incoming(work: Work, task_id: str) -> Incoming:
    """An incoming referral of the caller's unit (ReferralNotFound for anyone else)."""
    incoming = await IncomingRepository(work.session).get(task_id)
    if incoming is None or not can_see(caller_of(work), incoming):
        raise ReferralNotFound("no such referral in your unit's inbox")
    return incoming
