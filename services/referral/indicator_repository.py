"""The SQL of the follow-up indicators (:mod:`services.referral.indicators`): this member's
referrals, tasks, acknowledgements, meetings, plans and plan notices of a period."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.referral import models
from shared.data.db import IN_CHUNK

RowT = TypeVar("RowT", models.Referral, models.Incoming)


class IndicatorRepository:
    """Reads only (the indicators change nothing), of the period from ``lo`` up to ``hi``
    and of one unit (``unit_id``) or all."""

    def __init__(
        self, session: AsyncSession, lo: dt.datetime, hi: dt.datetime, unit_id: str | None
    ) -> None:
        self.session = session
        self.lo, self.hi, self.unit_id = lo, hi, unit_id

    async def _in_period(
        self,
        model: type[RowT],
        at: InstrumentedAttribute[dt.datetime],
        unit: InstrumentedAttribute[str],
    ) -> list[RowT]:
        """The rows of ``model`` whose ``at`` is in the period and, when the repository is
        of one unit, whose ``unit`` is that unit."""
        stmt = select(model).where(at >= self.lo, at < self.hi)
        if self.unit_id:
            stmt = stmt.where(unit == self.unit_id)
        return list(await self.session.scalars(stmt))

    async def referrals_sent(self) -> list[models.Referral]:
        """The referrals created in the period (by the unit, or by any of this member's)."""
        row = models.Referral
        return await self._in_period(row, row.created_at, row.sender_unit_id)

    async def incoming_received(self) -> list[models.Incoming]:
        """The tasks received in the period (at the unit, or at any of this member's)."""
        row = models.Incoming
        return await self._in_period(row, row.received_at, row.unit_id)

    async def recipients_of(self, referral_ids: list[str]) -> list[models.Recipient]:
        """The receivers (the outgoing tasks) of ``referral_ids``."""
        if not referral_ids:
            return []
        stmt = select(models.Recipient).where(models.Recipient.referral_id.in_(referral_ids))
        return list(await self.session.scalars(stmt))

    async def acknowledged_at(self, task_ids: list[str], side: str) -> dict[str, dt.datetime]:
        """When each task was first acknowledged (on ``side``'s history)."""
        out: dict[str, dt.datetime] = {}
        for i in range(0, len(task_ids), IN_CHUNK):
            stmt = (
                select(models.Transition.task_id, models.Transition.at)
                .where(
                    models.Transition.task_id.in_(task_ids[i : i + IN_CHUNK]),
                    models.Transition.side == side,
                    models.Transition.to_status == "acknowledged",
                )
                .order_by(models.Transition.at)
            )
            for task_id, at in await self.session.execute(stmt):
                out.setdefault(task_id, at)
        return out

    async def meetings_from(self, task_ids: list[str]) -> list[models.Meeting]:
        """The meetings called on ``task_ids``, earliest first."""
        if not task_ids:
            return []
        stmt = select(models.Meeting).where(models.Meeting.origin_task_id.in_(task_ids))
        return list(await self.session.scalars(stmt.order_by(models.Meeting.at)))

    async def sips_for(self, person_keys: list[str]) -> list[models.Meeting]:
        """The SIP meetings of the people of ``person_keys``."""
        if not person_keys:
            return []
        stmt = select(models.Meeting).where(
            models.Meeting.kind == "sip", models.Meeting.person_key.in_(person_keys)
        )
        return list(await self.session.scalars(stmt))

    async def plan_notices(self) -> set[tuple[str, str, str]]:
        """Which units were told that which plan action ended: (plan, action, unit)."""
        notices = await self.session.scalars(select(models.PlanNotice))
        return {(n.plan_id, n.action_id, n.unit_id) for n in notices}

    async def action_overdue_notices(self) -> list[models.DeadlineNotice]:
        """The overdue notices this member sent of plan actions' deadlines (to the owner
        unit, and the escalations to the plans' coordinating units)."""
        stmt = select(models.DeadlineNotice).where(
            models.DeadlineNotice.deadline.in_(("action_start", "action_end")),
            models.DeadlineNotice.state == "overdue",
        )
        return list(await self.session.scalars(stmt))

    async def plans(self) -> list[models.Plan]:
        """Every plan this member holds."""
        return list(await self.session.scalars(select(models.Plan)))

    async def meetings(self) -> list[models.Meeting]:
        """Every meeting this member's units convened, earliest first."""
        stmt = select(models.Meeting).order_by(models.Meeting.at)
        return list(await self.session.scalars(stmt))
