"""Code lists and the lifecycle of a referral (one state machine for every kind).

The states follow FHIR Task (requested → received → accepted/rejected → in-progress →
completed; cancelled; entered-in-error) and NHS e-RS / 360X closed-loop practice, named in
the domain's words. A referral has one *holder* at a time: after delivery the receiving
unit holds it and moves it on; the sender may only withdraw it (and revise and resend a
declined one), and answer the holder's request for more information (komplettering,
Inera's KOM, e-RS "return to referrer"), which gives the task back to the holder. Every
transition is reported back to the sender (closed loop).
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Where a referral to one recipient unit is."""

    SENT = "sent"  # in the outbox / on its way
    DELIVERED = "delivered"  # filed in the receiving unit's inbox (the basis re-checked)
    ACKNOWLEDGED = "acknowledged"  # kvitterad: a person at the unit has taken it
    # komplettering: the holder asked the sender a question; the sender answers (the task
    # goes back to acknowledged), and until then the holder's answer clock stands still
    INFORMATION_REQUESTED = "information_requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"  # with a reason; the sender may revise and send again
    FORWARDED = "forwarded"  # passed to another unit (that unit gets a new referral)
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # with an outcome
    WITHDRAWN = "withdrawn"  # by the sender, or because the person declined
    CANCELLED = "cancelled"  # the basis was withdrawn or expired (automatic)
    RETURNED = "returned"  # felsänd: sent to the wrong unit
    UNDELIVERABLE = "undeliverable"  # the receiving member refused it (basis, unit)


class Actor(enum.StrEnum):
    """Who may make a transition."""

    HOLDER = "holder"  # the receiving unit
    SENDER = "sender"  # the sending unit
    SYSTEM = "system"  # the services themselves (delivery, cancellation)


FINAL = frozenset(
    {
        Status.COMPLETED,
        Status.WITHDRAWN,
        Status.CANCELLED,
        Status.RETURNED,
        Status.DECLINED,
        Status.FORWARDED,
        Status.UNDELIVERABLE,
    }
)
OPEN: tuple[Status, ...] = tuple(s for s in Status if s not in FINAL)
"""Every status a task can still leave (the one definition: repositories, the transitions
a sender's withdrawal and a cancellation take, the deadlines)."""
OPEN_AT_RECEIVER = frozenset(
    {
        Status.DELIVERED,
        Status.ACKNOWLEDGED,
        Status.INFORMATION_REQUESTED,
        Status.ACCEPTED,
        Status.IN_PROGRESS,
    }
)

AWAITING_ACKNOWLEDGEMENT = frozenset({Status.SENT, Status.DELIVERED})
"""A task in one of these waits for its unit's acknowledgement (``acknowledge_by``; at the
receiver a task is never ``sent``)."""
AWAITING_ANSWER = frozenset({Status.ACKNOWLEDGED})
"""A task in one of these waits for its unit to accept or decline it (``answer_by``)."""
AWAITING_INFORMATION = frozenset({Status.INFORMATION_REQUESTED})
"""A task in one of these waits for its *sender* to answer the holder's question
(komplettering): the sender's mirror by ``information_by``; the holder's clocks stand still."""


class Overdue(enum.StrEnum):
    """Which deadline a worklist's ``overdue`` filter asks about."""

    ACKNOWLEDGE = "acknowledge"  # not acknowledged by ``acknowledge_by``
    ANSWER = "answer"  # acknowledged, not accepted or declined by ``answer_by``
    # the sender's own: asked for more information, not answered by ``information_by``
    INFORMATION = "information"
    ANY = "any"  # any of them


# (from, to) -> who may do it. Anything not listed is refused with 409 naming the allowed.
TRANSITIONS: dict[tuple[Status, Status], Actor] = {
    (Status.SENT, Status.DELIVERED): Actor.SYSTEM,
    (Status.SENT, Status.UNDELIVERABLE): Actor.SYSTEM,
    (Status.DELIVERED, Status.ACKNOWLEDGED): Actor.HOLDER,
    (Status.DELIVERED, Status.RETURNED): Actor.HOLDER,
    (Status.ACKNOWLEDGED, Status.ACCEPTED): Actor.HOLDER,
    (Status.ACKNOWLEDGED, Status.DECLINED): Actor.HOLDER,
    (Status.ACKNOWLEDGED, Status.FORWARDED): Actor.HOLDER,
    (Status.ACKNOWLEDGED, Status.RETURNED): Actor.HOLDER,
    (Status.ACKNOWLEDGED, Status.INFORMATION_REQUESTED): Actor.HOLDER,
    # The sender's answer gives the task back to the holder, which goes on from there (or
    # declines it when no answer comes).
    (Status.INFORMATION_REQUESTED, Status.ACKNOWLEDGED): Actor.SENDER,
    (Status.INFORMATION_REQUESTED, Status.DECLINED): Actor.HOLDER,
    (Status.ACCEPTED, Status.IN_PROGRESS): Actor.HOLDER,
    (Status.ACCEPTED, Status.COMPLETED): Actor.HOLDER,
    (Status.IN_PROGRESS, Status.COMPLETED): Actor.HOLDER,
    **{(s, Status.WITHDRAWN): Actor.SENDER for s in OPEN},
    **{(s, Status.CANCELLED): Actor.SYSTEM for s in OPEN},
}

# What a transition needs in its body.
NEEDS_REASON = frozenset({Status.DECLINED, Status.RETURNED, Status.WITHDRAWN})
NEEDS_OUTCOME = frozenset({Status.COMPLETED})
NEEDS_TARGET = frozenset({Status.FORWARDED})
NEEDS_QUESTION = frozenset({Status.INFORMATION_REQUESTED})
NEEDS_RESULT = frozenset({Status.COMPLETED, Status.DECLINED})
"""A referral (never an invitation to a meeting) completed or declined states its result."""
NOT_FOR_INVITATIONS = frozenset({Status.INFORMATION_REQUESTED})
"""Steps an invitation to a meeting never takes (the invited unit answers or forwards it)."""


def allowed_from(status: Status, actor: Actor, *, invitation: bool = False) -> list[Status]:
    """The statuses ``actor`` may move a referral (``invitation``: an invitation to a
    meeting) to from ``status``."""
    return [
        to
        for (frm, to), who in TRANSITIONS.items()
        if frm is status and who is actor and not (invitation and to in NOT_FOR_INVITATIONS)
    ]


def _ahead(status: Status) -> frozenset[Status]:
    seen: set[Status] = set()
    todo = [status]
    while todo:
        here = todo.pop()
        for frm, to in TRANSITIONS:
            if frm is here and to not in seen:
                seen.add(to)
                todo.append(to)
    return frozenset(seen)


AHEAD: dict[Status, frozenset[Status]] = {s: _ahead(s) for s in Status}
"""The statuses a referral can still reach from each status, by any number of steps (none
from a final status). A report the sender gets moves its mirror only to one of these: a
newer report may overtake older ones, so a step can be skipped, never taken back. The one
loop is komplettering: ``acknowledged`` and ``information_requested`` reach each other (and so
themselves), as every round of questions does; the report's version orders those steps."""


class Urgency(enum.StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    ACUTE = "acute"


class Decision(enum.StrEnum):
    """What the holder decided, in a completed or declined referral's structured result."""

    GRANTED = "granted"  # beviljat: the help (an intervention) is given
    REFUSED = "refused"  # avslag
    REFERRED_ON = "referred_on"  # hänvisat: to another actor or unit
    PERSON_DECLINED = "person_declined"  # the person did not want it


DECLINE_DECISIONS = frozenset({Decision.REFUSED, Decision.REFERRED_ON, Decision.PERSON_DECLINED})
"""A declined referral's decision is one of these (nothing granted)."""


class Tristate(enum.StrEnum):
    """yes / no / unknown (children in the household, drug-free status)."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"
