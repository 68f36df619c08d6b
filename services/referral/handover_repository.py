"""The SQL of the handover out of 24-hour care (:mod:`services.referral.handover`): the SIP
meetings linked to referrals this member sent, the discharges a ward recorded, what a
receiving member heard of them, and the SIP deadline's notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select

from services.referral.models import DeadlineNotice, Discharge, Meeting, ReceivedDischarge, Referral
from shared.data.db import IN_CHUNK, RepositoryBase

SIP_DEADLINE = "sip"


class DischargeRepository(RepositoryBase[Discharge]):
    model = Discharge

    async def recorded_between(
        self, since: dt.date, until: dt.date, unit_id: str | None
    ) -> list[Discharge]:
        """The discharges recorded with a day from ``since`` to ``until`` (of plannings one
        unit sent, or any of this member's units)."""
        stmt = select(Discharge).where(
            Discharge.discharged_on >= since, Discharge.discharged_on <= until
        )
        if unit_id:
            stmt = stmt.join(Referral, Referral.id == Discharge.referral_id).where(
                Referral.sender_unit_id == unit_id
            )
        return list(await self.session.scalars(stmt))


class ReceivedDischargeRepository(RepositoryBase[ReceivedDischarge]):
    model = ReceivedDischarge


class LinkedMeetingRepository(RepositoryBase[Meeting]):
    model = Meeting

    async def for_referrals(self, referral_ids: Iterable[str]) -> list[Meeting]:
        """The SIP meetings convened here for any of ``referral_ids``, earliest convened
        first."""
        ids = list(dict.fromkeys(referral_ids))
        out: list[Meeting] = []
        for i in range(0, len(ids), IN_CHUNK):
            stmt = select(Meeting).where(Meeting.for_referral_id.in_(ids[i : i + IN_CHUNK]))
            out.extend(await self.session.scalars(stmt))
        return sorted(out, key=lambda m: (m.created_at, m.id))

    async def sip_notices(self, referral_id: str) -> list[DeadlineNotice]:
        """The SIP deadline's notices sent for ``referral_id``."""
        stmt = select(DeadlineNotice).where(
            DeadlineNotice.subject_id == referral_id, DeadlineNotice.deadline == SIP_DEADLINE
        )
        return list(await self.session.scalars(stmt))
