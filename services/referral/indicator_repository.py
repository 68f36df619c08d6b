"""The SQL of the follow-up indicators (:mod:`services.referral.indicators`): this member's
referrals, tasks, acknowledgements, meetings, plans and plan notices of a period."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.models import (
    Incoming,
    Meeting,
    Plan,
    PlanNotice,
    Recipient,
    Referral,
    Transition,
)
from shared.data.db import IN_CHUNK


class IndicatorRepository:
    """Reads only: the indicators change nothing."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def referrals_sent(
        self, lo: dt.datetime, hi: dt.datetime, unit_id: str | None
    ) -> list[Referral]:
        """The referrals created from ``lo`` up to ``hi`` (by ``unit_id``, or by any unit)."""
        stmt = select(Referral).where(Referral.created_at >= lo, Referral.created_at < hi)
        if unit_id:
            stmt = stmt.where(Referral.sender_unit_id == unit_id)
        return list(await self.session.scalars(stmt))

    async def recipients_of(self, referral_ids: list[str]) -> list[Recipient]:
        """The receivers (the outgoing tasks) of ``referral_ids``."""
        if not referral_ids:
            return []
        stmt = select(Recipient).where(Recipient.referral_id.in_(referral_ids))
        return list(await self.session.scalars(stmt))

    async def incoming_received(
        self, lo: dt.datetime, hi: dt.datetime, unit_id: str | None
    ) -> list[Incoming]:
        """The tasks received from ``lo`` up to ``hi`` (at ``unit_id``, or at any unit)."""
        stmt = select(Incoming).where(Incoming.received_at >= lo, Incoming.received_at < hi)
        if unit_id:
            stmt = stmt.where(Incoming.unit_id == unit_id)
        return list(await self.session.scalars(stmt))

    async def acknowledged_at(self, task_ids: list[str], side: str) -> dict[str, dt.datetime]:
        """When each task was first acknowledged (on ``side``'s history)."""
        out: dict[str, dt.datetime] = {}
        for i in range(0, len(task_ids), IN_CHUNK):
            stmt = (
                select(Transition.task_id, Transition.at)
                .where(
                    Transition.task_id.in_(task_ids[i : i + IN_CHUNK]),
                    Transition.side == side,
                    Transition.to_status == "acknowledged",
                )
                .order_by(Transition.at)
            )
            for task_id, at in await self.session.execute(stmt):
                out.setdefault(task_id, at)
        return out

    async def meetings_from(self, task_ids: list[str]) -> list[Meeting]:
        """The meetings called on ``task_ids``, earliest first."""
        if not task_ids:
            return []
        stmt = select(Meeting).where(Meeting.origin_task_id.in_(task_ids))
        return list(await self.session.scalars(stmt.order_by(Meeting.at)))

    async def sips_for(self, person_keys: list[str]) -> list[Meeting]:
        """The SIP meetings of the people of ``person_keys``."""
        if not person_keys:
            return []
        stmt = select(Meeting).where(Meeting.kind == "sip", Meeting.person_key.in_(person_keys))
        return list(await self.session.scalars(stmt))

    async def plan_notices(self) -> set[tuple[str, str, str]]:
        """Which units were told that which plan action ended: (plan, action, unit)."""
        notices = await self.session.scalars(select(PlanNotice))
        return {(n.plan_id, n.action_id, n.unit_id) for n in notices}

    async def plans(self) -> list[Plan]:
        """Every plan this member holds."""
        return list(await self.session.scalars(select(Plan)))
