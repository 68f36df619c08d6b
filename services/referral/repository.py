"""All SQL of the referral service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, delete, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.referral.codes import (
    AWAITING_ACKNOWLEDGEMENT,
    AWAITING_ANSWER,
    AWAITING_INFORMATION,
    OPEN,
    Overdue,
)
from services.referral.models import (
    ConsentNarrowing,
    ConsentTombstone,
    Incoming,
    KnownMember,
    KnownUnit,
    Meeting,
    Plan,
    PlanAction,
    PlanBasis,
    PlanCoordinator,
    Recipient,
    Referral,
    TaskTombstone,
    Transition,
)
from shared.data.db import RepositoryBase
from shared.domain.calendar import to_local
from shared.domain.kinds import KINDS

OPEN_STATUSES = [s.value for s in OPEN]
AWAITING_ACKNOWLEDGEMENT_STATUSES = sorted(s.value for s in AWAITING_ACKNOWLEDGEMENT)
AWAITING_ANSWER_STATUSES = sorted(s.value for s in AWAITING_ANSWER)
AWAITING_INFORMATION_STATUSES = sorted(s.value for s in AWAITING_INFORMATION)


def _acknowledgement_late(
    task: type[Incoming] | type[Recipient], on: dt.date, now: dt.datetime | None
) -> ColumnElement[bool]:
    """Past ``acknowledge_by`` on the day ``on``; with ``now``, a kind acknowledged within
    hours (an orosanmälan) instead once its hours since it was received (the receiver's
    task) or sent (the sender's mirror, beside its referral) have passed."""
    by_day = task.acknowledge_by < on
    hourly = [(k.kind.value, k.acknowledge_hours) for k in KINDS.values() if k.acknowledge_hours]
    if now is None or not hourly:
        return by_day
    if issubclass(task, Incoming):
        kind, urgency, since = Incoming.kind, Incoming.urgency, Incoming.received_at
    else:
        kind, urgency, since = Referral.kind, Referral.urgency, Recipient.created_at
    by_hour = or_(
        *(
            and_(kind == k, urgency == u, since < now - dt.timedelta(hours=h))
            for k, hours in hourly
            for u, h in hours.items()
        )
    )
    return or_(and_(kind.not_in([k for k, _ in hourly]), by_day), by_hour)


def past_deadline(
    task: type[Incoming] | type[Recipient],
    which: Overdue,
    on: dt.date,
    now: dt.datetime | None = None,
) -> ColumnElement[bool]:
    """The tasks (the receiver's, or the sender's mirrors) past ``which`` deadline on the
    day ``on``: still awaiting the acknowledgement after ``acknowledge_by`` (with ``now``,
    a kind counted in hours once they have passed: a sender's mirror then needs its
    referral in the query), acknowledged and still awaiting the answer after
    ``answer_by``, or — the sender's own — still awaiting its komplettering after
    ``information_by`` (never a receiver's task: the sender owes it; a task waiting for
    information is overdue for nothing else)."""
    late = {
        Overdue.ACKNOWLEDGE: and_(
            task.status.in_(AWAITING_ACKNOWLEDGEMENT_STATUSES),
            _acknowledgement_late(task, on, now),
        ),
        Overdue.ANSWER: and_(task.status.in_(AWAITING_ANSWER_STATUSES), task.answer_by < on),
        Overdue.INFORMATION: and_(
            Recipient.status.in_(AWAITING_INFORMATION_STATUSES), Recipient.information_by < on
        )
        if issubclass(task, Recipient)
        else false(),
    }
    return or_(*late.values()) if which is Overdue.ANY else late[which]


def _any_recipient(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A referral with a recipient that meets ``condition``."""
    return exists().where(Recipient.referral_id == Referral.id, condition)


async def _prune(
    session: AsyncSession,
    model: type[TaskTombstone] | type[ConsentTombstone] | type[ConsentNarrowing],
    received_before: dt.datetime,
) -> int:
    """Deletes a kind of tombstone received before the cut-off; returns how many."""
    result = await session.execute(delete(model).where(model.received_at < received_before))
    return int(getattr(result, "rowcount", 0) or 0)


class ReferralRepository(RepositoryBase[Referral]):
    model = Referral

    async def page_sent_by(
        self,
        unit_id: str,
        *,
        kind: str | None = None,
        status: str | None = None,
        overdue: tuple[Overdue, dt.datetime] | None = None,
        updated_since: dt.datetime | None = None,
        after: str | None,
        limit: int,
    ) -> list[Referral]:
        """A page of the unit's sent referrals, newest first: of ``kind``, with a recipient
        in ``status``, with a recipient past a deadline (``overdue``: which, at the
        instant), with a recipient changed after ``updated_since``."""
        stmt = select(Referral).where(Referral.sender_unit_id == unit_id)
        if kind:
            stmt = stmt.where(Referral.kind == kind)
        if status:
            stmt = stmt.where(_any_recipient(Recipient.status == status))
        if overdue is not None:
            which, now = overdue
            late = past_deadline(Recipient, which, to_local(now).date(), now)
            stmt = stmt.where(_any_recipient(late))
        if updated_since is not None:
            stmt = stmt.where(_any_recipient(Recipient.updated_at > updated_since))
        if after:
            stmt = stmt.where(Referral.id < after)
        return list(await self.session.scalars(stmt.order_by(Referral.id.desc()).limit(limit)))

    async def for_person(self, key: str) -> list[Referral]:
        stmt = select(Referral).where(Referral.person_key == key).order_by(Referral.created_at)
        return list(await self.session.scalars(stmt))


class RecipientRepository(RepositoryBase[Recipient]):
    model = Recipient

    async def open_on_consent(self, consent_id: str) -> list[Recipient]:
        stmt = select(Recipient).where(
            Recipient.consent_id == consent_id, Recipient.status.in_(OPEN_STATUSES)
        )
        return list(await self.session.scalars(stmt))

    async def of_referral(self, referral_id: str) -> list[Recipient]:
        stmt = select(Recipient).where(Recipient.referral_id == referral_id)
        return list(await self.session.scalars(stmt.order_by(Recipient.created_at)))

    async def of_referrals(self, referral_ids: list[str]) -> dict[str, list[Recipient]]:
        out: dict[str, list[Recipient]] = {r: [] for r in referral_ids}
        if referral_ids:
            stmt = select(Recipient).where(Recipient.referral_id.in_(referral_ids))
            for row in await self.session.scalars(stmt.order_by(Recipient.created_at)):
                out[row.referral_id].append(row)
        return out


class IncomingRepository(RepositoryBase[Incoming]):
    model = Incoming

    async def open_on_consent(self, consent_id: str) -> list[Incoming]:
        stmt = select(Incoming).where(
            Incoming.consent_id == consent_id, Incoming.status.in_(OPEN_STATUSES)
        )
        return list(await self.session.scalars(stmt))

    async def page_for_unit(
        self,
        unit_id: str,
        *,
        statuses: list[str] | None,
        kind: str | None,
        overdue: tuple[Overdue, dt.datetime] | None,
        updated_since: dt.datetime | None = None,
        after: str | None,
        limit: int,
    ) -> list[Incoming]:
        """A page of the unit's inbox by id; ``overdue``: only tasks past that deadline
        (which, at the instant); ``updated_since``: only tasks changed after it."""
        stmt = select(Incoming).where(Incoming.unit_id == unit_id)
        if statuses:
            stmt = stmt.where(Incoming.status.in_(statuses))
        if kind:
            stmt = stmt.where(Incoming.kind == kind)
        if overdue is not None:
            which, now = overdue
            stmt = stmt.where(past_deadline(Incoming, which, to_local(now).date(), now))
        if updated_since is not None:
            stmt = stmt.where(Incoming.updated_at > updated_since)
        if after:
            stmt = stmt.where(Incoming.id > after)
        return list(await self.session.scalars(stmt.order_by(Incoming.id).limit(limit)))

    async def for_person(self, key: str) -> list[Incoming]:
        stmt = select(Incoming).where(Incoming.person_key == key).order_by(Incoming.received_at)
        return list(await self.session.scalars(stmt))


class TransitionRepository(RepositoryBase[Transition]):
    model = Transition

    async def of_task(self, task_id: str) -> list[Transition]:
        stmt = select(Transition).where(Transition.task_id == task_id).order_by(Transition.id)
        return list(await self.session.scalars(stmt))

    async def answered_here(self, task_id: str) -> bool:
        """Whether this member, as the receiver, already took a step on the task (filed it,
        or refused it at arrival and kept only the step)."""
        stmt = select(Transition.id).where(
            Transition.task_id == task_id, Transition.side == "receiver"
        )
        return (await self.session.scalar(stmt.limit(1))) is not None


class TaskTombstoneRepository(RepositoryBase[TaskTombstone]):
    model = TaskTombstone

    async def prune(self, received_before: dt.datetime) -> int:
        """Deletes tombstones whose task never came (received before the cut-off)."""
        return await _prune(self.session, TaskTombstone, received_before)


class ConsentTombstoneRepository(RepositoryBase[ConsentTombstone]):
    model = ConsentTombstone

    async def prune(self, received_before: dt.datetime) -> int:
        """Deletes the ends of consents heard before the cut-off."""
        return await _prune(self.session, ConsentTombstone, received_before)


class ConsentNarrowingRepository(RepositoryBase[ConsentNarrowing]):
    model = ConsentNarrowing

    async def prune(self, received_before: dt.datetime) -> int:
        """Deletes the narrowings of consents heard before the cut-off."""
        return await _prune(self.session, ConsentNarrowing, received_before)


class KnownUnitRepository(RepositoryBase[KnownUnit]):
    model = KnownUnit

    async def names(self, unit_ids: list[str]) -> dict[str, str]:
        if not unit_ids:
            return {}
        stmt = select(KnownUnit.unit_id, KnownUnit.name).where(KnownUnit.unit_id.in_(unit_ids))
        return {str(u): str(n) for u, n in (await self.session.execute(stmt)).all()}

    async def own_unit_id_by_hsa_id(self, owner_orgnr: str, hsa_id: str) -> str | None:
        """The id of ``owner_orgnr``'s unit with ``hsa_id``, if one is known."""
        stmt = select(KnownUnit.unit_id).where(
            KnownUnit.owner_orgnr == owner_orgnr, KnownUnit.hsa_id == hsa_id
        )
        return await self.session.scalar(stmt.limit(1))


class KnownMemberRepository(RepositoryBase[KnownMember]):
    model = KnownMember

    async def names(self) -> dict[str, str]:
        """Every known member's name, by organisationsnummer."""
        return {m.orgnr: m.name for m in await self.session.scalars(select(KnownMember))}


class MeetingRepository(RepositoryBase[Meeting]):
    model = Meeting

    async def of_plan(self, plan_id: str) -> list[Meeting]:
        """The plan's first meeting and its follow-ups, oldest first."""
        stmt = select(Meeting).where((Meeting.id == plan_id) | (Meeting.follow_up_of == plan_id))
        return list(await self.session.scalars(stmt.order_by(Meeting.created_at)))


class PlanRepository(RepositoryBase[Plan]):
    model = Plan

    async def for_person(self, key: str) -> list[Plan]:
        stmt = select(Plan).where(Plan.person_key == key).order_by(Plan.created_at)
        return list(await self.session.scalars(stmt))


class PlanActionRepository(RepositoryBase[PlanAction]):
    model = PlanAction

    async def replace(self, plan: Plan) -> None:
        """The plan's action rows and coordinator rows are now those of its JSON."""
        for model in (PlanAction, PlanCoordinator):
            await self.session.execute(delete(model).where(model.plan_id == plan.id))
        self.session.add_all(
            PlanAction(
                plan_id=plan.id,
                action_id=a["id"],
                position=a["position"],
                intervention=a["intervention"],
                orgnr=a.get("orgnr"),
                unit_id=a.get("unit_id"),
                status=a["status"],
                start_by=_date(a.get("start_by")),
                end_by=_date(a.get("end_by")),
                started_at=_instant(a.get("started_at")),
                ended_at=_instant(a.get("ended_at")),
            )
            for a in plan.actions
        )
        self.session.add_all(
            PlanCoordinator(plan_id=plan.id, orgnr=c["orgnr"], unit_id=c["unit_id"])
            for c in plan.coordinators
        )

    async def of_unit(self, orgnr: str, unit_id: str) -> list[PlanAction]:
        """The actions a unit owns, in plans this member holds, oldest plan first."""
        stmt = select(PlanAction).where(PlanAction.orgnr == orgnr, PlanAction.unit_id == unit_id)
        return list(
            await self.session.scalars(stmt.order_by(PlanAction.plan_id, PlanAction.position))
        )

    async def open_of_plans(self, plan_ids: list[str]) -> list[PlanAction]:
        """The actions of ``plan_ids`` that have not ended or been cancelled."""
        if not plan_ids:
            return []
        stmt = select(PlanAction).where(
            PlanAction.plan_id.in_(plan_ids), PlanAction.status.in_(("planned", "started"))
        )
        return list(
            await self.session.scalars(stmt.order_by(PlanAction.plan_id, PlanAction.position))
        )

    async def coordinated_by(self, orgnr: str, unit_id: str) -> list[str]:
        """The ids of the plans a unit coordinates."""
        stmt = select(PlanCoordinator.plan_id).where(
            PlanCoordinator.orgnr == orgnr, PlanCoordinator.unit_id == unit_id
        )
        return list(await self.session.scalars(stmt.order_by(PlanCoordinator.plan_id)))


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _instant(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class PlanBasisRepository(RepositoryBase[PlanBasis]):
    model = PlanBasis

    async def of_plan(self, plan_id: str) -> list[PlanBasis]:
        stmt = select(PlanBasis).where(PlanBasis.plan_id == plan_id)
        return list(await self.session.scalars(stmt))

    async def on_consent(self, consent_id: str) -> list[PlanBasis]:
        stmt = select(PlanBasis).where(PlanBasis.consent_id == consent_id)
        return list(await self.session.scalars(stmt))

    async def replace(self, plan_id: str, rows: list[PlanBasis]) -> None:
        """The plan's bases are now ``rows`` (those of the last share or arrival)."""
        await self.session.execute(delete(PlanBasis).where(PlanBasis.plan_id == plan_id))
        self.session.add_all(rows)
        await self.session.flush()
