"""A discharge told to a receiving member (``referral.discharge_recorded``): the ward that sent
a discharge planning recorded the person's discharge (:mod:`.handover`).

Only the planning's sender may say so (``sender_not_owner``), only of a task of that
planning (``not_a_discharge_planning``), and only the plan's owner may ask this member to
tell the plan's coordinators (``not_owner``). The first word is kept: a task shows the
discharge it was told first, and its unit is told once (notify: ``referral.discharged``);
each coordinating unit here of the linked SIP's plan, as this member's copy of the plan
has them, is told too. A task not filed here (refused, withdrawn first) has nothing to show.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.referral.codes import OPEN_AT_RECEIVER, Status
from services.referral.handover import DISCHARGE_PLANNING, tell_unit
from services.referral.handover_repository import ReceivedDischargeRepository
from services.referral.models import Incoming, ReceivedDischarge
from services.referral.plans import ACTIVE
from services.referral.repository import IncomingRepository, PlanRepository
from services.referral.schemas import TaskDischargeOut
from shared.data.work import Work
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import ReferralDischargeRecordedV1
from shared.messaging.inbox import Reject
from shared.messaging.ownership import require_owner, require_sender


async def apply_discharge_recorded(
    work: Work, event: CloudEvent, payload: ReferralDischargeRecordedV1
) -> None:
    """Shows the discharge on the planning's task here and tells its unit, and the plan's
    coordinating units here when asked (see the module's rules)."""
    if payload.recipient_orgnr != work.member:
        raise Reject("not_recipient", "the discharge is told to another member")
    require_sender(event, payload.sender_orgnr, "a member tells only of its own plannings")
    if payload.task_id is not None:
        await _on_task(work, event, payload, payload.task_id)
    if payload.coordinators and payload.plan_id is not None:
        await _tell_coordinators(work, event, payload, payload.plan_id)


async def _on_task(
    work: Work, event: CloudEvent, payload: ReferralDischargeRecordedV1, task_id: str
) -> None:
    incoming = await IncomingRepository(work.session).get(task_id)
    if incoming is None:
        return  # never filed here: refused at arrival, or withdrawn before it came
    require_sender(event, incoming.sender_orgnr, "only the planning's sender records its discharge")
    if incoming.referral_id != payload.referral_id or incoming.kind != DISCHARGE_PLANNING:
        raise Reject("not_a_discharge_planning", "the task is not of this discharge planning")
    repo = ReceivedDischargeRepository(work.session)
    if incoming.personnummer is None or await repo.get(task_id) is not None:
        return  # nothing about the person is kept here any more, or told before
    work.session.add(
        ReceivedDischarge(
            task_id=task_id,
            referral_id=payload.referral_id,
            sender_orgnr=incoming.sender_orgnr,
            discharged_on=payload.discharged_on,
            unplanned=payload.unplanned,
            received_at=work.now,
        )
    )
    await work.session.flush()
    if Status(incoming.status) in OPEN_AT_RECEIVER:
        await tell_unit(
            work,
            incoming.id,
            incoming.unit_id,
            "recipient",
            sender=incoming.sender_orgnr,
            unplanned=payload.unplanned,
        )


async def _tell_coordinators(
    work: Work, event: CloudEvent, payload: ReferralDischargeRecordedV1, plan_id: str
) -> None:
    plan = await PlanRepository(work.session).get(plan_id)
    if plan is None:
        return  # no copy here: no unit of this member is known to coordinate it
    require_owner(plan.owner_orgnr, event.sender_orgnr or "", "the plan is owned by another member")
    if plan.status != ACTIVE:
        return
    for c in plan.coordinators:
        if c.get("orgnr") == work.member and c.get("unit_id"):
            await tell_unit(
                work, plan.id, c["unit_id"], "coordinator",
                sender=payload.sender_orgnr, unplanned=payload.unplanned,
            )  # fmt: skip


async def received(work: Work, rows: Sequence[Incoming]) -> dict[str, ReceivedDischarge]:
    """The discharges told of the discharge plannings among ``rows``, by task id (one
    query)."""
    ids = [r.id for r in rows if r.kind == DISCHARGE_PLANNING]
    if not ids:
        return {}
    return {d.task_id: d for d in await ReceivedDischargeRepository(work.session).load_many(ids)}


def task_discharge_out(row: Incoming, told: ReceivedDischarge | None) -> TaskDischargeOut | None:
    """A discharge planning's expected day and, once told, the actual one."""
    if row.kind != DISCHARGE_PLANNING:
        return None
    expected = (row.details or {}).get("expected_discharge_date")
    return TaskDischargeOut(
        expected_discharge_date=expected if isinstance(expected, str) else None,
        discharged_on=told.discharged_on if told else None,
        unplanned=told.unplanned if told else None,
        told_at=told.received_at if told else None,
    )
