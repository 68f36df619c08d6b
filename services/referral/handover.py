"""The handover out of 24-hour care (issue 22, ADR 0026): the SIP that answers an HVB
notification or a discharge planning, whether the home kommun and out-patient care are
ready on the day of discharge, and the ward's record of the discharge itself.

- **The linked SIP.** A SIP meeting names the referral it answers (``for_referral_id``): an
  HVB notification or discharge planning a unit of this member sent about the same person.
  The sender's view shows it (the one held most recently, else the one convened last).
- **The SIP deadline.** A kind with ``KindSpec.sip_working_days`` (an HVB notification)
  owes that SIP by :func:`sip_by`: the working days after sending
  (``VK_REFERRAL__SIP_WORKING_DAYS``), or the day of the placement if that comes first. The
  deadline check (:mod:`.deadlines`) reminds and alerts the sending unit (deadline
  ``sip``); convening the SIP tells notify it is met.
- **Ready for discharge** (:func:`missing`): the linked SIP's plan is recorded and, for every
  recipient still taking part, its huvudman — the home kommun, out-patient care — owns at
  least one action in the plan (actions of the sending ward itself do not count) and every
  such action not cancelled has started or ended. An action counts for every recipient of
  its member: the intake that receives the planning seldom carries the action out itself.
- **The discharge** (:func:`record_discharge`): the sending unit records the day, whether it
  was unplanned and a note of its own (never sent). Every member holding an open task of
  the planning is told at once (``referral.discharge_recorded``, ids and dates), and so are
  the plan's coordinating units, each by its own member; the receiving side is
  :mod:`.discharge_receiving`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.referral.access import ReferralNotFound, caller_of, require_unit
from services.referral.codes import FINAL, Status
from services.referral.deadline_repository import DeadlineRepository
from services.referral.details import HvbDetails, PlacementForm
from services.referral.handover_repository import (
    SIP_DEADLINE,
    DischargeRepository,
    LinkedMeetingRepository,
)
from services.referral.models import Discharge, Meeting, Plan, Recipient, Referral
from services.referral.repository import PlanRepository, RecipientRepository, ReferralRepository
from services.referral.schemas import (
    DischargeIn,
    DischargeMissing,
    DischargeStatus,
    HvbStatus,
    LinkedSipOut,
    RecordedDischargeOut,
)
from shared.data.work import Work
from shared.domain.calendar import add_working_days, end_of_day, to_local
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers import normalise_personnummer
from shared.identity.person import member_secret, person_key
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGE_RECORDED_V1,
    REFERRAL_DISCHARGED_V1,
    ReferralDeadlineV1,
    ReferralDischargedV1,
    ReferralDischargeRecordedV1,
)
from shared.web.errors import Conflict, Forbidden, InvalidInput

HVB = ReferralKind.HVB_UNDERRATTELSE.value
DISCHARGE_PLANNING = ReferralKind.UTSKRIVNINGSPLANERING.value
LINKED_KINDS = frozenset({HVB, DISCHARGE_PLANNING})
"""The kinds a SIP may answer (``for_referral_id``)."""
CONFIRMED = frozenset({"acknowledged", "accepted", "in_progress", "completed"})
"""A recipient of a discharge planning in one of these has confirmed it."""
LEFT = frozenset(
    {Status.DECLINED, Status.WITHDRAWN, Status.CANCELLED, Status.RETURNED, Status.UNDELIVERABLE}
)
"""A recipient in one of these takes no part in the handover (it declined, or never had it)."""
STARTED = frozenset({"started", "ended"})

NotSendingUnit = Forbidden.kind(
    "not-the-sending-unit", "Only the unit that sent the discharge planning records its discharge"
)
DischargeAlreadyRecorded = Conflict.kind(
    "discharge-already-recorded", "The discharge of this planning is already recorded"
)
PlanningClosed = Conflict.kind(
    "discharge-planning-closed", "Every recipient of this discharge planning has closed its task"
)


@dataclass(frozen=True)
class Handover:
    """What a referral of a linked kind has beside its recipients: the SIP answering it and
    that SIP's plan, and (a discharge planning) the discharge recorded."""

    sip: Meeting | None = None
    plan: Plan | None = None
    recorded: Discharge | None = None


def _chosen(meetings: Sequence[Meeting]) -> Meeting | None:
    """The linked SIP shown: the one held (its plan recorded) last, else the one convened
    last (``meetings`` earliest convened first)."""
    held = [m for m in meetings if m.status == "held"]
    shown = held or list(meetings)
    return shown[-1] if shown else None


async def handovers(work: Work, referrals: Sequence[Referral]) -> dict[str, Handover]:
    """The handover of each referral of a linked kind among ``referrals``, by id (one query
    per table for all of them)."""
    ids = [r.id for r in referrals if r.kind in LINKED_KINDS]
    if not ids:
        return {}
    by_referral: dict[str, list[Meeting]] = {}
    for m in await LinkedMeetingRepository(work.session).for_referrals(ids):
        by_referral.setdefault(m.for_referral_id or "", []).append(m)
    sips = {rid: _chosen(by_referral.get(rid, [])) for rid in ids}
    plans = {
        p.id: p
        for p in await PlanRepository(work.session).load_many(
            m.id for m in sips.values() if m is not None
        )
    }
    recorded = {d.referral_id: d for d in await DischargeRepository(work.session).load_many(ids)}
    return {
        rid: Handover(sip, plans.get(sip.id) if sip else None, recorded.get(rid))
        for rid, sip in sips.items()
    }


# --- the linked SIP and its deadline ---------------------------------------------------


async def linked_referral(work: Work, referral_id: str, personnummer: str) -> Referral:
    """The referral a SIP about ``personnummer`` answers: an HVB notification or discharge
    planning a unit of this member sent about that person (422 on ``for_referral_id``)."""
    referral = await ReferralRepository(work.session).get(referral_id)
    if referral is None or referral.kind not in LINKED_KINDS:
        raise InvalidInput.field(
            "for_referral_id",
            "not_an_hvb_notification_or_discharge_planning",
            "a SIP answers an HVB notification or a discharge planning your member sent",
        )
    key = person_key(member_secret(work.settings), normalise_personnummer(personnummer))
    if referral.person_key != key:
        raise InvalidInput.field(
            "for_referral_id", "not_the_referrals_person", "the SIP is about the referral's person"
        )
    return referral


async def sip_convened(work: Work, referral: Referral) -> None:
    """A SIP answering ``referral`` was convened: the sending unit's SIP deadline is met,
    which cancels what notify still has pending of it (once; only if it was told of it)."""
    notices = await LinkedMeetingRepository(work.session).sip_notices(referral.id)
    told = {n.state for n in notices if n.unit_id == referral.sender_unit_id}
    due = sip_by(referral, work.settings.referral.sip_working_days)
    if due is None or not told or "met" in told:
        return
    DeadlineRepository(work.session).note(
        (referral.id, SIP_DEADLINE, "met", referral.sender_unit_id)
    )
    event = ReferralDeadlineV1(
        referral_id=referral.id, kind=referral.kind, unit_id=referral.sender_unit_id,
        deadline=SIP_DEADLINE, due_at=end_of_day(due), state="met",
    )  # fmt: skip
    topic = topics.internal(work.member)
    await work.publish(topic, REFERRAL_DEADLINE_V1, event, subject=referral.id, key=referral.id)


def _day(value: Any) -> dt.date | None:
    """An ISO date in a referral's details (written by the sending unit; else None)."""
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def sip_by(referral: Referral, working_days: Mapping[str, int]) -> dt.date | None:
    """The last day to convene the SIP ``referral`` calls for: the member's working days for
    its kind (``working_days``: ``VK_REFERRAL__SIP_WORKING_DAYS``) after the day it was
    sent, or the day its
    details name — the placement, the expected discharge — when that comes first and is not
    before the day it was sent (a notification of a placement already begun gets the days).
    None for a kind that owes no SIP."""
    days = working_days.get(referral.kind)
    if days is None:
        return None
    sent_on = to_local(referral.created_at).date()
    due = add_working_days(sent_on, days) if days > 0 else sent_on
    details = referral.details or {}
    cap = _day(details.get("placement_date")) or _day(details.get("expected_discharge_date"))
    return cap if cap is not None and sent_on <= cap < due else due


def linked_sip_out(handover: Handover | None) -> LinkedSipOut | None:
    sip = handover.sip if handover else None
    if sip is None:
        return None
    return LinkedSipOut(
        meeting_id=sip.id,
        convener_unit_id=sip.convener_unit_id,
        at=sip.at,
        status=sip.status,
        plan_recorded=handover is not None and handover.plan is not None,
        convened_at=sip.created_at,
    )


def hvb_status(work: Work, referral: Referral, handover: Handover | None) -> HvbStatus | None:
    """An HVB notification's placement and SIP deadline (a block from before the form was
    asked shows what it has)."""
    if referral.kind != HVB:
        return None
    details = referral.details or {}
    # As the block is read (one from before issue 22: not stated, open-ended); else what
    # the sending unit stored, shown as far as it goes.
    with contextlib.suppress(ValidationError):
        details = HvbDetails.model_validate(details).model_dump(mode="json")
    form = details.get("placement_form")
    known = next((f for f in PlacementForm if f.value == form), None)
    due = sip_by(referral, work.settings.referral.sip_working_days)
    convened = handover is not None and handover.sip is not None
    today = to_local(work.now).date()
    return HvbStatus(
        placement_form=known.value if known else None,
        placement_form_label=known.label if known else None,
        placement_date=_day(details.get("placement_date")),
        expected_end_date=_day(details.get("expected_end_date")),
        open_ended=bool(details.get("open_ended")),
        sip_by=due,
        sip_convened=convened,
        sip_overdue=not convened and due is not None and today > due,
    )


# --- ready for discharge ---------------------------------------------------------------


def _started_by(action: dict[str, Any], day: dt.date | None) -> bool:
    """Whether the action has started (ended counts: it started first), by ``day`` if
    given (its ``started_at`` in Sweden on or before it)."""
    if action.get("status") not in STARTED:
        return False
    if day is None:
        return True
    at = action.get("started_at")
    try:
        started = dt.datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        return False
    return started is not None and to_local(started).date() <= day


def missing(
    referral: Referral,
    recipients: Sequence[Recipient],
    handover: Handover | None,
    me: str,
    *,
    by: dt.date | None = None,
) -> list[DischargeMissing]:
    """What keeps a discharge planning from being ready (none: ready): a SIP, its plan, and
    per recipient still taking part, an action of its huvudman — not the sending ward's own,
    not cancelled — and every such action started (``by``: started by that day)."""
    if handover is None or handover.sip is None:
        return [DischargeMissing(what="sip")]
    plan = handover.plan
    if plan is None:
        return [DischargeMissing(what="plan")]
    taking_part = [r for r in recipients if Status(r.status) not in LEFT]
    if not taking_part:
        return [DischargeMissing(what="recipient")]
    ward = (me, referral.sender_unit_id)
    out = []
    for r in taking_part:
        theirs = [
            a
            for a in plan.actions
            if a.get("orgnr") == r.orgnr
            and (a.get("orgnr"), a.get("unit_id")) != ward
            and a.get("status") != "cancelled"
        ]
        waiting = [str(a["id"]) for a in theirs if not _started_by(a, by)]
        if not theirs:
            out.append(DischargeMissing(what="action", orgnr=r.orgnr, unit_id=r.unit_id))
        elif waiting:
            out.append(
                DischargeMissing(
                    what="not_started", orgnr=r.orgnr, unit_id=r.unit_id, action_ids=waiting
                )
            )
    return out


def discharge_status(
    work: Work, referral: Referral, recipients: Sequence[Recipient], handover: Handover | None
) -> DischargeStatus | None:
    """A discharge planning's date, SIP, confirmations, readiness and recorded discharge."""
    if referral.kind != DISCHARGE_PLANNING:
        return None
    confirmed = [r for r in recipients if r.status in CONFIRMED]
    gaps = missing(referral, recipients, handover, work.member)
    recorded = handover.recorded if handover else None
    return DischargeStatus(
        expected_discharge_date=referral.details["expected_discharge_date"],
        sip_exists=referral.details.get("sip_exists", "unknown"),
        confirmed_by=[{"orgnr": r.orgnr, "unit_id": r.unit_id} for r in confirmed],
        all_confirmed=len(confirmed) == len(recipients) > 0,
        ready_for_discharge=not gaps,
        missing=gaps,
        discharged=RecordedDischargeOut(
            discharged_on=recorded.discharged_on,
            unplanned=recorded.unplanned,
            note=recorded.note,
            actions_started=recorded.actions_started,
            recorded_at=recorded.recorded_at,
        )
        if recorded is not None
        else None,
    )


# --- the discharge ---------------------------------------------------------------------


async def record_discharge(
    work: Work, referral_id: str, data: DischargeIn
) -> tuple[Referral, list[Recipient], Handover]:
    """The sending unit records the person's discharge from its planning (once, while a
    recipient's task is open) and every party is told at once."""
    unit = require_unit(caller_of(work))
    # Locked: two recordings of one planning are decided one after the other.
    referral = await ReferralRepository(work.session).lock(referral_id)
    if referral is None or referral.kind != DISCHARGE_PLANNING:
        raise ReferralNotFound("no such discharge planning")
    if referral.sender_unit_id != unit:
        raise NotSendingUnit("the planning was sent by another unit")
    today = to_local(work.now).date()
    if data.discharged_on > today:
        raise InvalidInput.field("discharged_on", "not_in_future", "the day has not come yet")
    if data.discharged_on < to_local(referral.created_at).date():
        raise InvalidInput.field(
            "discharged_on", "before_planning", "the day is before the planning was sent"
        )
    if await DischargeRepository(work.session).get(referral.id) is not None:
        raise DischargeAlreadyRecorded("recorded before: it is recorded once")
    recipients = await RecipientRepository(work.session).of_referral(referral.id)
    open_ = [r for r in recipients if Status(r.status) not in FINAL]
    if not open_:
        raise PlanningClosed("no recipient's task is open")
    before = (await handovers(work, [referral]))[referral.id]
    row = Discharge(
        referral_id=referral.id,
        discharged_on=data.discharged_on,
        unplanned=data.unplanned,
        note=data.note,
        actions_started=not missing(
            referral, recipients, before, work.member, by=data.discharged_on
        ),
        recorded_by=caller_of(work).sub,
        recorded_at=work.now,
    )
    work.session.add(row)
    await work.session.flush()
    await _tell(work, referral, open_, before.plan, row)
    return referral, recipients, Handover(before.sip, before.plan, row)


async def _tell(
    work: Work, referral: Referral, open_: Sequence[Recipient], plan: Plan | None, row: Discharge
) -> None:
    """Every member holding an open task of the planning, one event per task; the plan's
    coordinating units, each by its own member (this member's at once)."""
    me = work.member
    coordinating = {
        c["orgnr"] for c in (plan.coordinators if plan and plan.status == "active" else [])
    }
    by_member: dict[str, list[Recipient]] = {}
    for r in open_:
        by_member.setdefault(r.orgnr, []).append(r)

    async def send(orgnr: str, task_id: str | None, coordinators: bool) -> None:
        key = task_id or referral.id
        payload = ReferralDischargeRecordedV1(
            task_id=task_id, referral_id=referral.id, sender_orgnr=me,
            sender_unit_id=referral.sender_unit_id, recipient_orgnr=orgnr,
            plan_id=plan.id if plan and coordinators else None, coordinators=coordinators,
            discharged_on=row.discharged_on, unplanned=row.unplanned, recorded_at=work.now,
        )  # fmt: skip
        topic = topics.inbound(orgnr)
        await work.publish(topic, REFERRAL_DISCHARGE_RECORDED_V1, payload, subject=key, key=key)

    for orgnr, tasks in by_member.items():
        for i, task in enumerate(tasks):
            await send(orgnr, task.id, i == 0 and orgnr in coordinating and orgnr != me)
    for orgnr in sorted(coordinating - set(by_member) - {me}):
        await send(orgnr, None, True)
    if plan is not None and me in coordinating:
        for c in plan.coordinators:
            if c["orgnr"] == me:
                await tell_unit(
                    work, plan.id, c["unit_id"], "coordinator", sender=me, unplanned=row.unplanned
                )


async def tell_unit(
    work: Work, subject: str, unit_id: str, audience: str, *, sender: str, unplanned: bool
) -> None:
    """Tells a unit of this member that the person of a discharge planning was discharged
    (notify: ``referral.discharged``; ``subject`` is its task, or the plan it coordinates)."""
    event = ReferralDischargedV1(
        referral_id=subject, kind=DISCHARGE_PLANNING, unit_id=unit_id, audience=audience,
        sender_orgnr=sender, unplanned=unplanned, at=work.now,
    )  # fmt: skip
    topic = topics.internal(work.member)
    await work.publish(topic, REFERRAL_DISCHARGED_V1, event, subject=subject, key=subject)
