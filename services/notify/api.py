"""What every notify router shares: the scopes, the path and query parameters, the unit of
work each request's step runs in, and the API view of a delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

from services.notify.models import Delivery, DeliveryAttempt
from services.notify.schemas import AttemptOut, DeliveryOut
from shared.data.work import Work
from shared.identity.auth import Caller, require_scopes
from shared.web.app import Ctx, DbSession

Reader = Annotated[Caller, Depends(require_scopes("notify:read"))]
Writer = Annotated[Caller, Depends(require_scopes("notify:write"))]
UnitId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", description="unit id")]
Role = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9_]+$", description="role name")]
ObjectId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{36}$")]
Cursor = Annotated[str | None, Query(max_length=200, description="from `next_cursor`")]
Limit = Annotated[int, Query(ge=1, le=500)]


async def _reading(caller: Reader, session: DbSession, ctx: Ctx) -> Work:
    return Work(session, ctx.outbox, ctx.settings, caller)


async def _writing(caller: Writer, session: DbSession, ctx: Ctx) -> Work:
    return Work(session, ctx.outbox, ctx.settings, caller)


# The request's step on behalf of a caller with the ``notify:read`` (``notify:write``) scope.
ReadWork = Annotated[Work, Depends(_reading)]
WriteWork = Annotated[Work, Depends(_writing)]


def delivery_out(d: Delivery, log: list[DeliveryAttempt]) -> DeliveryOut:
    """The API view of a delivery with its attempts."""
    out = DeliveryOut.model_validate(d, from_attributes=True)
    out.log = [AttemptOut.model_validate(a, from_attributes=True) for a in log]
    return out
