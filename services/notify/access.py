"""Who may act in notify: the member's admin role and the caller of a request's step."""

from __future__ import annotations

from shared.data.work import Work
from shared.identity.auth import Caller
from shared.web.errors import Forbidden

ADMIN_ROLE = "member_admin"


def caller_of(work: Work) -> Caller:
    """Who asked for this step (every step that reads or changes an inbox or a
    subscription is a request's, made on behalf of its verified token)."""
    if work.caller is None:
        raise Forbidden("this step needs the caller of a request")
    return work.caller


def require_admin(caller: Caller) -> None:
    """Only the member's admins (``member_admin``)."""
    if not caller.has_role(ADMIN_ROLE):
        raise Forbidden("needs the member_admin role")
