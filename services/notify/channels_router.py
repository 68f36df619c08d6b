"""HTTP API of units' notification channels and the rules table: what notify knows of a
unit's kind and mailbox, the admin's override, and which event goes where (thin: parse, the
unit of work, :mod:`channels`)."""

from __future__ import annotations

from fastapi import APIRouter

from services.notify import channels
from services.notify.access import ADMIN_ROLE, caller_of, require_admin
from services.notify.api import Reader, ReadWork, UnitId, WriteWork
from services.notify.channels import UnitNotOwn
from services.notify.content import KINDS
from services.notify.models import UnitChannel
from services.notify.schemas import RulesOut, UnitChannelOut, UnitChannelUpdate
from shared.identity.auth import ensure_unit
from shared.web.app import Ctx
from shared.web.errors import Forbidden, problem_responses

channels_router = APIRouter(prefix="/v1", tags=["administration"])


def _out(unit: UnitChannel) -> UnitChannelOut:
    return UnitChannelOut.model_validate(unit, from_attributes=True)


@channels_router.get(
    "/units/{unit_id}/channels",
    response_model=UnitChannelOut,
    summary="A unit's notification channels",
    description="The unit's kind and functional mailbox as notify knows them (from the "
    "member's directory, and the admin's override). The unit or `member_admin`. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def get_unit_channels(unit_id: UnitId, work: ReadWork) -> UnitChannelOut:
    ensure_unit(caller_of(work), unit_id, cross_unit_role=ADMIN_ROLE)
    return _out(await channels.get_unit_channel(work, unit_id))


@channels_router.put(
    "/units/{unit_id}/channels",
    response_model=UnitChannelOut,
    summary="Set a unit's functional mailbox",
    description="Overrides the functional mailbox the directory lists for the unit (or sets "
    "one where it lists none) and turns e-mail on or off for it. A functional mailbox, "
    "never a person's. Only a unit of your own member, as your directory announced it: "
    "another member's unit or an unknown id answers 404 (`unit-not-own`); a new unit can "
    "be set once its announcement has reached notify (seconds). `member_admin` only. "
    "Scope `notify:write`.",
    responses=problem_responses(Forbidden, UnitNotOwn),
)
async def set_unit_channels(
    unit_id: UnitId, body: UnitChannelUpdate, work: WriteWork
) -> UnitChannelOut:
    require_admin(caller_of(work))
    unit = await channels.set_unit_channel(
        work, unit_id, email=body.email, email_enabled=body.email_enabled
    )
    return _out(unit)


@channels_router.get(
    "/rules",
    response_model=RulesOut,
    summary="The rules table in force",
    description="Which event goes to which recipients on which channels "
    "(`VK_NOTIFY__RULES`), and the notification kinds subscriptions may name. "
    "Scope `notify:read`.",
    responses=problem_responses(Forbidden),
)
async def get_rules(caller: Reader, ctx: Ctx) -> RulesOut:
    return RulesOut(rules=ctx.settings.notify.rules, kinds=list(KINDS))
