"""Forwarded invitations: an invited unit passes its invitation to a meeting on to another
unit, and the meeting follows.

An invitation is a task of the convener's member (:mod:`.meetings`); the invited unit holds
it and may forward it like any referral. Forwarding does not send the forwarder's copy on
(its stored details hold the meeting's ``invitation`` and ``meeting_id``, which are no
kind's block, and another member's copy is no invitation of the convener's): the
convener's meeting invites the unit named in the forwarder's place with its invitation as
it stored it — one more participant with its own invitation task and answer, who gets the
plan when it accepts (:func:`services.referral.plans.share_on_acceptance`) — after the
checks of any participant: the unit can be invited, and the convener's consent service
allows the invitation from the convener's unit to it (all or nothing, as at convening).
The forwarding unit's participation shows ``forwarded`` and where it went; the convener's
unit is told as for any forward (the status change of its task).

Where the convener is of the forwarding unit's member, the forward does all of it at once:
a refusal answers the forwarding unit and nothing is stored. Where it is not, the
forwarding unit's member checks what it can answer for now — the unit can be invited, and
its own consent service allows the person's information to go from the forwarding unit to
that unit (a refusal answers the forwarding unit; nothing is stored) — and the convener's
member follows when the report arrives (:func:`follow_forward`), checking again; a refusal
there is kept on the forwarding unit's participation (``forwarded_to.refused``), where the
convener sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.referral.access import NoBasis
from services.referral.codes import FINAL, Actor, Status
from services.referral.details import UnitRef
from services.referral.models import Incoming, Meeting, Recipient, Referral
from services.referral.moves import Step
from services.referral.repository import (
    MeetingRepository,
    RecipientRepository,
    ReferralRepository,
)
from services.referral.sending import basis_for, send_to_one_more
from services.referral.siblings import Clients, claim
from shared.data.work import Work
from shared.messaging.events.payloads import ReferralTransitionedV1
from shared.web.errors import InvalidInput

TARGET = "forward_to"
"""The request field a problem with the unit forwarded to is about."""


def is_invitation(incoming: Incoming) -> bool:
    """Whether a task held here is an invitation to a meeting."""
    return bool(incoming.details.get("invitation"))


@dataclass(frozen=True)
class _Invited:
    """One participation in a meeting of this member: the invitation task, the invitation
    (the convener's referral) and the meeting, locked."""

    task: Recipient
    referral: Referral
    meeting: Meeting


async def forward(
    work: Work, clients: Clients, incoming: Incoming, target: UnitRef
) -> dict[str, str]:
    """The holding unit forwards its invitation to ``target``: the convener's meeting
    invites that unit in its place (at once when the convener is of this member). Returns
    what the report to the convener says of it: the unit, and its task when it is known."""
    if (target.orgnr, target.unit_id) == (work.member, incoming.unit_id):
        raise InvalidInput.field(
            f"{TARGET}.unit_id", "not_another_unit", "forward to a unit other than your own"
        )
    if (target.orgnr, target.unit_id) == (incoming.sender_orgnr, incoming.sender_unit_id):
        raise InvalidInput.field(
            f"{TARGET}.unit_id",
            "the_convener",
            "the convener holds the meeting: decline the invitation instead",
        )
    if incoming.sender_orgnr == work.member:
        invited = await _participation(work, incoming.id)
        # A task the convener has closed (withdrawn, say) brings nobody in: the convener's
        # member does not follow a forward its own view of the task does not show.
        if invited is not None and Status(invited.task.status) not in FINAL:
            return await _invite(work, clients, invited, target, report=True)
    await _may_forward(work, clients, incoming, target)
    return {"orgnr": target.orgnr, "unit_id": target.unit_id}


async def _may_forward(work: Work, clients: Clients, incoming: Incoming, target: UnitRef) -> None:
    """What the forwarding unit's member answers for before the convener's member invites
    ``target``: an active unit it knows, and a basis for the person's information to go
    from the forwarding unit to it (422 or 403 :data:`NoBasis`)."""
    await basis_for(
        work,
        clients,
        incoming,
        target,
        sender_unit=incoming.unit_id,
        legal_basis=claim(incoming.basis),
        problem_field=TARGET,
    )


async def follow_forward(work: Work, clients: Clients, payload: ReferralTransitionedV1) -> bool:
    """At the convener's member: an invited unit reported that it forwarded its invitation;
    the meeting invites the unit it named in its place, or keeps why it could not (the unit
    cannot be invited here, or no basis: ``forwarded_to.refused``). True if it was followed
    now (False: not an invitation of a meeting here, not forwarded, or followed already)."""
    if payload.actor == Actor.SENDER or payload.to_status != Status.FORWARDED.value:
        return False
    invited = await _participation(work, payload.task_id)
    if invited is None or invited.task.status != Status.FORWARDED.value:
        return False
    if _followed(invited.meeting, invited.task.id):
        return False  # the forward did it at once (one member), or a replay
    target = _target(payload.forwarded_to)
    if target is None:
        await _refused(work, invited, {}, "invalid_target")
        return True
    try:
        await _invite(work, clients, invited, target, report=False)
    except InvalidInput as problem:
        rule = problem.errors[0].rule if problem.errors else "invalid_target"
        await _refused(work, invited, _ref(target), rule)
    except NoBasis:
        await _refused(work, invited, _ref(target), "no_basis")
    return True


def _target(reported: dict[str, str] | None) -> UnitRef | None:
    """The unit a report names (another member's word: None unless it is a unit ref)."""
    if not reported:
        return None
    try:
        return UnitRef.model_validate(
            {"orgnr": reported.get("orgnr"), "unit_id": reported.get("unit_id")}
        )
    except ValidationError:
        return None


def _ref(target: UnitRef) -> dict[str, str]:
    return {"orgnr": target.orgnr, "unit_id": target.unit_id}


async def _participation(work: Work, task_id: str) -> _Invited | None:
    """The participation of the invitation task ``task_id`` in a meeting this member
    convened (the meeting locked: its participants change), or None."""
    task = await RecipientRepository(work.session).get(task_id)
    if task is None:
        return None
    referral = await ReferralRepository(work.session).get(task.referral_id)
    if referral is None or not referral.details.get("invitation"):
        return None
    meeting = await MeetingRepository(work.session).lock(str(referral.details.get("meeting_id")))
    if meeting is None or not any(p["task_id"] == task.id for p in meeting.participants):
        return None
    return _Invited(task, referral, meeting)


def _followed(meeting: Meeting, task_id: str) -> bool:
    """Whether the forward of ``task_id`` has been followed (its unit, or why not, kept)."""
    return any(p["task_id"] == task_id and p.get("forwarded_to") for p in meeting.participants)


async def _open_task_of(work: Work, meeting: Meeting, target: UnitRef) -> str | None:
    """The task of ``target`` in the meeting that is still open or accepted, if it has one
    (a unit is not invited twice; one that declined or left may be invited again)."""
    repo = RecipientRepository(work.session)
    for p in meeting.participants:
        if (p["orgnr"], p["unit_id"]) == (target.orgnr, target.unit_id):
            task = await repo.get(p["task_id"])
            if task is not None and Status(task.status) not in FINAL:
                return str(p["task_id"])
    return None


async def _invite(
    work: Work, clients: Clients, invited: _Invited, target: UnitRef, *, report: bool
) -> dict[str, str]:
    """The meeting invites ``target`` in the place of the forwarding participant, with the
    convener's invitation as stored (422 or 403 :data:`NoBasis` when it may not; nothing
    is stored then). Returns where the invitation went on: the unit and its task.
    ``report``: the forwarding unit's report of the step, still to come, brings that to
    the task (its row is the closed loop's to change: a report applied meanwhile must not
    make the forward fail)."""
    task, meeting = invited.task, invited.meeting
    joined: list[dict[str, Any]] = []
    task_id = await _open_task_of(work, meeting, target)
    if task_id is None:
        recipient = await send_to_one_more(
            work,
            clients,
            invited.referral,
            target,
            legal_basis=claim(task.basis),  # the basis the forwarder's invitation went on
            step=Step(
                Status.SENT,
                Actor.SENDER,
                f"forwarded by the invited unit {task.unit_id}",
                by_orgnr=task.orgnr,
                by_unit_id=task.unit_id,
            ),
            problem_field=TARGET,
        )
        task_id = recipient.id
        joined = [{**_ref(target), "task_id": task_id, "forwarded_from": task.id}]
    forwarded_to = {**_ref(target), "task_id": task_id}
    await _record(work, invited, forwarded_to, joined, on_task=not report)
    return forwarded_to


async def _refused(work: Work, invited: _Invited, target: dict[str, str], rule: str) -> None:
    """Keeps on the forwarding unit's participation that the meeting could not invite
    ``target`` in its place, and why (``rule``)."""
    await _record(work, invited, {**target, "refused": rule}, [], on_task=True)


async def _record(
    work: Work,
    invited: _Invited,
    forwarded_to: dict[str, str],
    joined: list[dict[str, Any]],
    *,
    on_task: bool,
) -> None:
    """Where the forwarding unit's invitation went, on its participation (and ``on_task``:
    on its task); ``joined``: the participant it brought in."""
    task, meeting = invited.task, invited.meeting
    meeting.participants = [
        {**p, "forwarded_to": forwarded_to} if p["task_id"] == task.id else p
        for p in meeting.participants
    ] + joined
    if on_task:
        task.forwarded_to = forwarded_to
    await work.session.flush()
