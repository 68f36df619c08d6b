"""Domain rules of the notify service: events -> rules -> notifications and deliveries,
persistent timers, inboxes, subscriptions and the delivery log."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import Row as SqlRow
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.content import KINDS, Facts, NotificationData, derived_id
from services.notify.models import (
    Delivery,
    Notification,
    UnitChannel,
    WebhookSubscription,
    mailbox_of,
)
from services.notify.repository import (
    DeliveryRepository,
    NotificationRepository,
    SubscriptionRepository,
    TimerRepository,
    UnitChannelRepository,
)
from shared.config import NotifyRule, NotifySettings, Settings
from shared.data.db import new_id, utcnow
from shared.domain.calendar import end_of_day, to_local
from shared.domain.kinds import ReferralKind, spec
from shared.identity.auth import Caller
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    PLAN_ACTION_ENDED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_RECEIVED_V1,
    REFERRAL_STATUS_CHANGED_V1,
    SIP_ANSWERED_V1,
    SIP_INVITATION_V1,
    UNIT_REVIEW_DUE_V1,
    ConsentEndedV1,
    PlanActionEndedV1,
    ReferralDeadlineV1,
    ReferralReceivedV1,
    ReferralStatusChangedV1,
    SipAnsweredV1,
    SipInvitationV1,
    UnitChangedV1,
    UnitReviewDueV1,
)
from shared.web.errors import Conflict, Forbidden, InvalidInput, NotFound

ADMIN_ROLE = "member_admin"
# How long a dispatcher holds deliveries it is sending; after a crash others send them then.
LEASE = dt.timedelta(seconds=60)
COORDINATOR_KIND = "vardkedjekoordinator"
TIMER_KINDS = {
    "remind": "deadline.reminder",
    "overdue": "deadline.overdue",
    "escalate": "deadline.escalated",
}
HANDLED_EVENTS: tuple[str, ...] = (
    REFERRAL_RECEIVED_V1,
    REFERRAL_STATUS_CHANGED_V1,
    REFERRAL_DEADLINE_V1,
    SIP_INVITATION_V1,
    SIP_ANSWERED_V1,
    PLAN_ACTION_ENDED_V1,
    CONSENT_ENDED_V1,
    UNIT_REVIEW_DUE_V1,
)


class NotificationNotFound(NotFound):
    slug = "notification-not-found"
    title = "No such notification in your inboxes"


class SubscriptionNotFound(NotFound):
    slug = "subscription-not-found"
    title = "No such webhook subscription"


class DeliveryNotFound(NotFound):
    slug = "delivery-not-found"
    title = "No such delivery"


class UnitNotOwn(NotFound):
    slug = "unit-not-own"
    title = "No unit of your member with this id"


class NotRedeliverable(Conflict):
    slug = "not-redeliverable"
    title = "Only a dead or delivered webhook or e-mail delivery can be sent again"


class VersionMismatch(Conflict):
    status = 412
    slug = "precondition-failed"
    title = "The subscription has changed (If-Match does not match)"


# --- events -> facts ----------------------------------------------------------------------


def _kind(value: str) -> ReferralKind:
    return ReferralKind(value)


def facts_of(*, event_type: str, payload: BaseModel, own_orgnr: str) -> list[Facts]:
    """What an event says that notify may repeat, one item per unit to tell (pure)."""
    if isinstance(payload, ReferralReceivedV1):
        return [
            Facts(
                kind="referral.received",
                subject_type="referral",
                subject_id=payload.referral_id,
                unit_id=payload.unit_id,
                referral_kind=_kind(payload.kind),
                urgency=payload.urgency,
                deadline="acknowledge",
                counterpart_orgnr=payload.sender_orgnr,
            )
        ]
    if isinstance(payload, ReferralStatusChangedV1):
        return [
            Facts(
                kind="referral.status_changed",
                subject_type="referral",
                subject_id=payload.referral_id,
                unit_id=payload.unit_id,
                referral_kind=_kind(payload.kind),
                status=payload.new_status,
            )
        ]
    if isinstance(payload, ReferralDeadlineV1):
        if payload.state == "met":
            return []
        return [
            Facts(
                kind="deadline.reminder" if payload.state == "near" else "deadline.overdue",
                subject_type="referral",
                subject_id=payload.referral_id,
                unit_id=payload.unit_id,
                referral_kind=_kind(payload.kind),
                deadline=payload.deadline,
                due_at=payload.due_at,
            )
        ]
    if isinstance(payload, SipInvitationV1):
        return [
            Facts(
                kind="sip.invitation",
                subject_type="sip",
                subject_id=payload.sip_id,
                unit_id=payload.unit_id,
                referral_kind=ReferralKind.SIP_KALLELSE,
                deadline="answer" if payload.answer_by else None,
                due_at=payload.answer_by,
                counterpart_orgnr=payload.inviting_orgnr,
            )
        ]
    if isinstance(payload, SipAnsweredV1):
        return [
            Facts(
                kind="sip.answered",
                subject_type="sip",
                subject_id=payload.sip_id,
                unit_id=payload.unit_id,
                referral_kind=ReferralKind.SIP_KALLELSE,
                status=payload.answer,
                counterpart_orgnr=payload.answering_orgnr,
            )
        ]
    if isinstance(payload, PlanActionEndedV1):
        return [
            Facts(
                kind="plan.action_ended",
                subject_type="plan",
                subject_id=payload.plan_id,
                unit_id=payload.unit_id,
                status=payload.outcome,
                counterpart_orgnr=payload.owner_orgnr,
            )
        ]
    if isinstance(payload, ConsentEndedV1):
        units = sorted({p.unit_id or "" for p in payload.parties if p.orgnr == own_orgnr})
        return [
            Facts(
                kind="consent.ended",
                subject_type="consent",
                subject_id=payload.consent_id,
                unit_id=u or None,
                status=payload.reason,
                counterpart_orgnr=payload.owner_orgnr,
            )
            for u in units
        ]
    if isinstance(payload, UnitReviewDueV1):
        due = dt.datetime.combine(payload.due_since, dt.time(0), tzinfo=dt.UTC)
        return [
            Facts(
                kind="unit.review_due",
                subject_type="unit",
                subject_id=payload.unit_id,
                unit_id=payload.unit_id,
                deadline="review",
                due_at=due,
            )
        ]
    return []


# --- rules -> notifications -> deliveries -------------------------------------------------


Row = dict[str, Any]  # a row as inserted: column name -> value


@dataclass
class FanOut:
    """What events or timers added: their notification and delivery rows (as inserted), and
    the subscriptions and units these went to (so the dispatcher can send without reading)."""

    notifications: list[Row] = field(default_factory=list)
    deliveries: list[Row] = field(default_factory=list)
    # Rows of webhook_subscription and unit_channel (attributes named as the models').
    subscriptions: dict[str, SqlRow[Any]] = field(default_factory=dict)
    units: dict[str, SqlRow[Any]] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """The new notifications' ids."""
        return [n["id"] for n in self.notifications]

    def extend(self, other: FanOut) -> FanOut:
        self.notifications += other.notifications
        self.deliveries += other.deliveries
        self.subscriptions.update(other.subscriptions)
        self.units.update(other.units)
        return self


@dataclass(frozen=True)
class Origin:
    """One thing to notify about: a consumed event or a fired timer, and what it says."""

    origin_id: str
    event_type: str
    rule_event: str
    facts: list[Facts]


def rules_for(*, settings: NotifySettings, rule_event: str) -> list[NotifyRule]:
    """The rows of the rules table for ``rule_event`` (an event type or ``timer:<action>``)."""
    return [r for r in settings.rules if r.event == rule_event]


async def coordinator_units(*, session: AsyncSession, settings: NotifySettings) -> list[str]:
    """The coordinating function: configured units, else own units of kind vardkedjekoordinator."""
    if settings.coordinator_unit_ids:
        return list(settings.coordinator_unit_ids)
    return await UnitChannelRepository(session).ids_of_kind(COORDINATOR_KIND)


def _recipients(rule: NotifyRule, facts: Facts, coordinators: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for r in rule.recipients:
        if r == "unit":
            # Nothing silently dropped: without a unit the member's admins are told.
            out.append(("unit", facts.unit_id) if facts.unit_id else ("role", ADMIN_ROLE))
        elif r == "coordinator":
            out += [("unit", u) for u in coordinators] if coordinators else [("role", ADMIN_ROLE)]
        elif r.startswith("unit:"):
            out.append(("unit", r.removeprefix("unit:")))
        else:
            out.append(("role", r.removeprefix("role:")))
    return list(dict.fromkeys(out))


def link_of(*, settings: NotifySettings, notification_id: str) -> str:
    """The link every channel carries: the notification in the notify API."""
    return f"{settings.link_base_url.rstrip('/')}/v1/notifications/{notification_id}"


_DATA_COLUMNS = (
    "kind",
    "subject_type",
    "subject_id",
    "unit_id",
    "referral_kind",
    "urgency",
    "status",
    "deadline",
    "due_at",
    "counterpart_orgnr",
    "recipient_kind",
    "recipient",
    "created_at",
)


def data_of(
    *, notification: Notification | Mapping[str, Any], settings: NotifySettings
) -> NotificationData:
    """The channel-neutral view of a stored notification or row (allowed fields only)."""
    if isinstance(notification, Notification):
        row: Mapping[str, Any] = {c: getattr(notification, c) for c in ("id", *_DATA_COLUMNS)}
    else:
        row = notification
    return NotificationData(
        notification_id=row["id"],
        link=link_of(settings=settings, notification_id=row["id"]),
        **{c: row[c] for c in _DATA_COLUMNS},
    )


async def fan_out(
    *,
    session: AsyncSession,
    settings: Settings,
    origins: Sequence[Origin],
    lease_token: str | None = None,
) -> FanOut:
    """Creates the notifications and deliveries the rules ask for, once per origin."""
    # With ``lease_token`` the webhook and e-mail deliveries are leased to that dispatcher,
    # which sends them after the commit. Everything staged before is flushed with them.
    cfg = settings.notify
    now = utcnow()
    candidates: list[Row] = []
    channels_of: dict[str, list[str]] = {}
    coordinators: list[str] | None = None
    for origin in origins:
        for item in origin.facts:
            for rule in rules_for(settings=cfg, rule_event=origin.rule_event):
                if "coordinator" in rule.recipients and coordinators is None:
                    coordinators = await coordinator_units(session=session, settings=cfg)
                for recipient_kind, recipient in _recipients(rule, item, coordinators or []):
                    nid = derived_id(origin.origin_id, rule.id, recipient_kind, recipient)
                    if nid in channels_of:
                        continue
                    channels_of[nid] = list(rule.channels)
                    candidates.append(
                        _notification(nid, origin, rule, recipient_kind, recipient, item, now)
                    )
    # An origin handled before adds nothing (its ids are derived, so they are found).
    inserted = await NotificationRepository(session).insert_new(candidates)
    new = [n for n in candidates if n["id"] in inserted]
    out = await _deliveries_for(session, cfg, new, channels_of, now)
    if lease_token is not None:
        until = now + LEASE
        for d in out.deliveries:
            if d["status"] == "pending":
                d["lease_token"], d["lease_until"] = lease_token, until
    # New notifications have new deliveries (their ids derive from the notification's).
    await DeliveryRepository(session).insert_rows(out.deliveries)
    return out


def _notification(
    nid: str,
    origin: Origin,
    rule: NotifyRule,
    recipient_kind: str,
    recipient: str,
    item: Facts,
    now: dt.datetime,
) -> Row:
    return {
        "id": nid,
        "origin_id": origin.origin_id,
        "event_type": origin.event_type,
        "rule_id": rule.id,
        "recipient_kind": recipient_kind,
        "recipient": recipient,
        "kind": item.kind,
        "subject_type": item.subject_type,
        "subject_id": item.subject_id,
        "unit_id": item.unit_id,
        "referral_kind": item.referral_kind.value if item.referral_kind else None,
        "urgency": item.urgency,
        "status": item.status,
        "deadline": item.deadline,
        "due_at": item.due_at,
        "counterpart_orgnr": item.counterpart_orgnr,
        "created_at": now,
    }


async def _deliveries_for(
    session: AsyncSession,
    cfg: NotifySettings,
    notifications: list[Row],
    channels_of: dict[str, list[str]],
    now: dt.datetime,
) -> FanOut:
    subs_cache: dict[str | None, list[SqlRow[Any]]] = {}
    # The units' names and mailboxes, for e-mail only (none to look up with e-mail off).
    unit_ids = {
        n["recipient"]
        for n in notifications
        if n["recipient_kind"] == "unit" and "email" in channels_of[n["id"]]
    }
    if cfg.smtp.host is None:
        unit_ids.clear()
    units = await UnitChannelRepository(session).rows_by_ids(sorted(unit_ids))
    result = FanOut(notifications=notifications, units=units)
    out = result.deliveries

    def delivery(n: Row, channel: str, target: str, status: str, **values: Any) -> Row:
        # Every row has every column (one executemany for all of them).
        return {
            "id": derived_id(n["id"], channel, target),
            "notification_id": n["id"],
            "channel": channel,
            "target": target,
            "status": status,
            "attempts": 0,
            "next_attempt_at": None,
            "lease_until": None,
            "lease_token": None,
            "last_status_code": None,
            "last_outcome": None,
            "created_at": now,
            "delivered_at": None,
            "dead_at": None,
            "redeliveries": 0,
            **values,
        }

    for n in notifications:
        channels = channels_of[n["id"]]
        recipient_kind, recipient = n["recipient_kind"], n["recipient"]
        if "inbox" in channels:
            out.append(
                delivery(
                    n,
                    "inbox",
                    f"{recipient_kind}:{recipient}",
                    "delivered",
                    attempts=1,
                    delivered_at=now,
                    last_outcome="ok",
                )
            )
        if "webhook" in channels:
            scope = recipient if recipient_kind == "unit" else None
            if scope not in subs_cache:
                subs_cache[scope] = await SubscriptionRepository(session).matching(unit_id=scope)
            for sub in subs_cache[scope]:
                if n["kind"] in sub.event_types:
                    result.subscriptions[sub.id] = sub
                    out.append(delivery(n, "webhook", sub.id, "pending", next_attempt_at=now))
        if "email" in channels and recipient_kind == "unit":
            unit = units.get(recipient)
            mailbox = mailbox_of(unit) if unit is not None else None
            if cfg.smtp.host is None:
                out.append(delivery(n, "email", "-", "skipped", last_outcome="email_off"))
            elif mailbox is None:
                out.append(delivery(n, "email", "-", "skipped", last_outcome="no_mailbox"))
            else:
                out.append(delivery(n, "email", mailbox, "pending", next_attempt_at=now))
    return result


# --- timers -------------------------------------------------------------------------------


def deadline_timers(
    *,
    settings: NotifySettings,
    facts: Facts,
    deadline: str,
    due_at: dt.datetime,
    actions: Sequence[str],
    source_event_id: str,
    now: dt.datetime,
) -> list[Row]:
    """The reminder, overdue notice and escalation of one deadline (rows with derived ids)."""
    offsets = {
        "remind": -dt.timedelta(seconds=settings.remind_before_s),
        "overdue": dt.timedelta(0),
        "escalate": dt.timedelta(seconds=settings.escalate_after_s),
    }
    out: list[Row] = []
    due = due_at.isoformat()
    for action in actions:
        fire_at = due_at + offsets[action]
        # A reminder whose moment has passed is noise; overdue and escalation still fire.
        if action == "remind" and (fire_at <= now or settings.remind_before_s == 0):
            continue
        out.append(
            {
                "id": derived_id("timer", facts.subject_id, deadline, action, due),
                "action": action,
                "fire_at": fire_at,
                "state": "pending",
                "subject_type": facts.subject_type,
                "subject_id": facts.subject_id,
                "unit_id": facts.unit_id or "",
                "referral_kind": facts.referral_kind.value if facts.referral_kind else None,
                "urgency": facts.urgency,
                "deadline": deadline,
                "due_at": due_at,
                "counterpart_orgnr": facts.counterpart_orgnr,
                "source_event_id": source_event_id,
                "created_at": now,
                "fired_at": None,
            }
        )
    return out


async def cancel_deadline(*, session: AsyncSession, subject_id: str, deadline: str | None) -> int:
    """Cancels the pending timers of a subject's deadline (it was met or acknowledged)."""
    return await TimerRepository(session).cancel_pending(subject_id=subject_id, deadline=deadline)


async def fire_due_timers(*, session: AsyncSession, settings: Settings, limit: int = 100) -> int:
    """Fires the timers that are due: their notifications go through the rules table."""
    now = utcnow()
    repo = TimerRepository(session)
    origins: list[Origin] = []
    for timer in await repo.due(now=now, limit=limit):
        if not await repo.mark_fired(timer.id, now=now):
            continue
        facts = Facts(
            kind=TIMER_KINDS[timer.action],
            subject_type=timer.subject_type,
            subject_id=timer.subject_id,
            unit_id=timer.unit_id or None,
            referral_kind=ReferralKind(timer.referral_kind) if timer.referral_kind else None,
            urgency=timer.urgency,
            deadline=timer.deadline,
            due_at=timer.due_at,
            counterpart_orgnr=timer.counterpart_orgnr,
        )
        rule_event = f"timer:{timer.action}"
        origins.append(Origin(f"timer:{timer.id}", rule_event, rule_event, [facts]))
    if origins:
        await fan_out(session=session, settings=settings, origins=origins)
    return len(origins)


# --- consuming events ---------------------------------------------------------------------


@dataclass
class _Plan:
    origin: Origin
    timers: list[Row]
    cancels: list[tuple[str, str | None]]


def _plan(
    settings: Settings, event_id: str, event_type: str, payload: BaseModel, now: dt.datetime
) -> _Plan:
    """What one event asks for: its notifications' facts, timers to schedule, to cancel."""
    cfg = settings.notify
    facts = facts_of(event_type=event_type, payload=payload, own_orgnr=settings.member.orgnr)
    timers: list[Row] = []
    cancels: list[tuple[str, str | None]] = []

    def schedule(deadline: str, due_at: dt.datetime, actions: Sequence[str]) -> None:
        timers.extend(
            deadline_timers(
                settings=cfg,
                facts=facts[0],
                deadline=deadline,
                due_at=due_at,
                actions=actions,
                source_event_id=event_id,
                now=now,
            )
        )

    if isinstance(payload, ReferralReceivedV1):
        due = payload.acknowledge_by or end_of_day(
            spec(payload.kind).acknowledge_by(
                payload.urgency,
                to_local(payload.received_at).date(),
                settings.referral.acknowledge_working_days,
            )
        )
        facts = [f.model_copy(update={"due_at": due}) for f in facts]
        schedule("acknowledge", due, ("remind", "overdue", "escalate"))
    elif isinstance(payload, ReferralDeadlineV1):
        if payload.state == "met":
            cancels.append((payload.referral_id, payload.deadline))
        elif payload.state == "overdue":
            schedule(payload.deadline, payload.due_at, ("escalate",))
    elif isinstance(payload, ReferralStatusChangedV1):
        # Taken on (acknowledged), or beyond: accepted, declined, forwarded, withdrawn, ...
        if payload.direction == "incoming" and payload.new_status not in ("sent", "delivered"):
            cancels.append((payload.referral_id, None))
    elif isinstance(payload, SipInvitationV1) and payload.answer_by is not None:
        schedule("answer", payload.answer_by, ("remind", "overdue"))
    return _Plan(Origin(event_id, event_type, event_type, facts), timers, cancels)


async def notify_events(
    *,
    session: AsyncSession,
    settings: Settings,
    events: Sequence[tuple[str, str, BaseModel]],
    lease_token: str | None = None,
) -> FanOut:
    """Turns consumed events (id, type, payload) into notifications, deliveries and timers."""
    # One read per kind of row for the whole run, with the effect of one event at a time.
    now = utcnow()
    plans = [_plan(settings, eid, etype, payload, now) for eid, etype, payload in events]
    if len(plans) > 1 and any(p.cancels for p in plans):
        # Cancelling and scheduling must keep the events' order: one event at a time.
        out = FanOut()
        for one in events:
            out.extend(
                await notify_events(
                    session=session, settings=settings, events=[one], lease_token=lease_token
                )
            )
        return out
    for plan in plans:
        for subject_id, deadline in plan.cancels:
            await cancel_deadline(session=session, subject_id=subject_id, deadline=deadline)
    timers = {t["id"]: t for plan in plans for t in plan.timers}
    await TimerRepository(session).insert_new(list(timers.values()))
    return await fan_out(
        session=session,
        settings=settings,
        origins=[p.origin for p in plans],
        lease_token=lease_token,
    )


async def notify_event(
    *,
    session: AsyncSession,
    settings: Settings,
    event_id: str,
    event_type: str,
    payload: BaseModel,
    lease_token: str | None = None,
) -> FanOut:
    """Turns one consumed event into notifications, deliveries and timers."""
    return await notify_events(
        session=session,
        settings=settings,
        events=[(event_id, event_type, payload)],
        lease_token=lease_token,
    )


def _functional_email(contact_paths: list[dict[str, Any]]) -> str | None:
    for path in contact_paths:
        if path.get("channel") == "functional_email" and path.get("email"):
            return str(path["email"])
    return None


async def apply_units_changed(
    *, session: AsyncSession, own_orgnr: str, changes: Sequence[UnitChangedV1]
) -> int:
    """Keeps the kind and functional mailbox of this member's own units from the directory."""
    own = [c for c in changes if c.owner_orgnr == own_orgnr]
    if not own:
        return 0
    repo = UnitChannelRepository(session)
    known = await repo.by_ids(sorted({c.unit_id for c in own}))
    applied = 0
    for change in own:
        unit = known.get(change.unit_id)
        if unit is None:
            unit = UnitChannel(unit_id=change.unit_id, directory_version=0, email_enabled=True)
            session.add(unit)
            known[change.unit_id] = unit
        elif unit.directory_version >= change.version:
            continue
        unit.name = change.name
        unit.kind = change.kind
        unit.status = change.status
        unit.directory_email = _functional_email(change.contact_paths)
        unit.directory_version = change.version
        unit.updated_at = utcnow()
        applied += 1
    await session.flush()
    return applied


# Rows of each kind deleted per transaction: each batch holds the write lock (on SQLite, the
# database's one write lock) only briefly, so writers get in between batches.
PURGE_BATCH = 1000


async def purge_expired(
    *, session: AsyncSession, settings: NotifySettings, limit: int = PURGE_BATCH
) -> int:
    """Deletes up to ``limit`` notifications (with their delivery log) and up to ``limit``
    finished timers past retention; returns how many of both went (below ``limit``: done)."""
    cutoff = utcnow() - dt.timedelta(days=settings.retention_days)
    notifications = await NotificationRepository(session).delete_older_than(cutoff, limit=limit)
    timers = await TimerRepository(session).delete_finished_before(cutoff, limit=limit)
    return notifications + timers


# --- inboxes ------------------------------------------------------------------------------


def ensure_recipient(*, caller: Caller, recipient_kind: str, recipient: str) -> None:
    """Allow an inbox to its unit, to holders of its role, and to the member's admins."""
    if caller.has_role(ADMIN_ROLE):
        return
    if recipient_kind == "unit" and caller.unit == recipient:
        return
    if recipient_kind == "role" and caller.has_role(recipient):
        return
    raise Forbidden("the inbox belongs to another unit or role")


async def list_inbox(
    *,
    session: AsyncSession,
    recipient_kind: str,
    recipient: str,
    unread_only: bool,
    before_seq: int | None,
    limit: int,
) -> list[Notification]:
    """Lists an inbox, newest first."""
    return await NotificationRepository(session).inbox_page(
        recipient_kind=recipient_kind,
        recipient=recipient,
        unread_only=unread_only,
        before_seq=before_seq,
        limit=limit,
    )


async def get_notification(
    *, session: AsyncSession, caller: Caller, notification_id: str
) -> Notification:
    """Gets a notification from one of the caller's inboxes (404 for any other)."""
    n = await NotificationRepository(session).by_id(notification_id)
    if n is None:
        raise NotificationNotFound()
    try:
        ensure_recipient(caller=caller, recipient_kind=n.recipient_kind, recipient=n.recipient)
    except Forbidden:
        raise NotificationNotFound() from None
    return n


async def mark_read(*, session: AsyncSession, caller: Caller, notification_id: str) -> Notification:
    """Marks a notification read (the first reader is kept)."""
    n = await get_notification(session=session, caller=caller, notification_id=notification_id)
    if n.read_at is None:
        n.read_at = utcnow()
        n.read_by = caller.sub
        await session.flush()
    return n


async def acknowledge(
    *, session: AsyncSession, caller: Caller, notification_id: str
) -> Notification:
    """Acknowledges a notification and cancels its deadline's reminders and escalation."""
    n = await mark_read(session=session, caller=caller, notification_id=notification_id)
    if n.acknowledged_at is None:
        n.acknowledged_at = utcnow()
        n.acknowledged_by = caller.sub
        if n.deadline is not None:
            await cancel_deadline(session=session, subject_id=n.subject_id, deadline=n.deadline)
        await session.flush()
    return n


async def deliveries_of(
    *, session: AsyncSession, notification_id: str
) -> list[tuple[Delivery, list[Any]]]:
    """The delivery log of a notification: each channel's delivery and its attempts."""
    repo = DeliveryRepository(session)
    deliveries = await repo.of_notification(notification_id)
    attempts = await repo.attempts_of([d.id for d in deliveries])
    return [(d, [a for a in attempts if a.delivery_id == d.id]) for d in deliveries]


# --- failed deliveries --------------------------------------------------------------------


async def list_deliveries(
    *, session: AsyncSession, status: str, channel: str | None, after_id: str | None, limit: int
) -> list[Delivery]:
    """Lists deliveries in one status (``dead`` for the dead-letter list), by id."""
    return await DeliveryRepository(session).page_by_status(
        status=status, channel=channel, after_id=after_id, limit=limit
    )


async def get_delivery(*, session: AsyncSession, delivery_id: str) -> Delivery:
    """Gets one delivery."""
    d = await DeliveryRepository(session).get(delivery_id)
    if d is None:
        raise DeliveryNotFound()
    return d


async def redeliver(*, session: AsyncSession, delivery_id: str) -> Delivery:
    """Queues a dead (or delivered) webhook or e-mail delivery again, under the same id."""
    d = await get_delivery(session=session, delivery_id=delivery_id)
    if d.channel == "inbox" or d.status not in ("dead", "delivered"):
        raise NotRedeliverable(allowed=["dead", "delivered"])
    d.status = "pending"
    d.next_attempt_at = utcnow()
    d.lease_until = None
    d.lease_token = None
    d.dead_at = None
    d.redeliveries += 1
    await session.flush()
    return d


# --- webhook subscriptions ----------------------------------------------------------------

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme prefix, not a secret


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(*, secret: str, min_bytes: int) -> None:
    """Refuse a secret that is not ``whsec_<base64>`` of ``min_bytes``..64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput.field("secret", "secret_format", "must start with whsec_")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput.field(
            "secret", "secret_format", "whsec_ must be followed by base64"
        ) from None
    if len(raw) < min_bytes:
        raise InvalidInput.field(
            "secret", "secret_too_short", f"must decode to at least {min_bytes} bytes"
        )
    if len(raw) > 64:
        raise InvalidInput.field("secret", "secret_too_long", "must decode to at most 64 bytes")


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global


async def resolve_public(*, host: str) -> list[str]:
    """The addresses of ``host``; raises ValueError when one of them is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as exc:
        raise LookupError(host) from exc
    addresses = sorted({str(i[4][0]) for i in infos})
    if any(_private(a) for a in addresses):
        raise ValueError("private address")
    return addresses


async def check_webhook_url(*, url: str, settings: Settings) -> None:
    """Refuses a non-https URL in production and private addresses unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput.field("url", "url_format", "must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidInput.field("url", "url_credentials", "must not carry credentials")
    if settings.env == "production" and parts.scheme != "https":
        raise InvalidInput.field("url", "https_required", "must use https in production")
    if settings.notify.webhook_allow_private:
        return
    try:
        await resolve_public(host=parts.hostname)
    except LookupError:
        raise InvalidInput.field(
            "url", "unresolvable_host", "the host name does not resolve"
        ) from None
    except ValueError:
        raise InvalidInput.field(
            "url",
            "private_address",
            "points at a private, loopback or link-local address "
            "(VK_NOTIFY__WEBHOOK_ALLOW_PRIVATE allows it)",
        ) from None


def check_event_types(*, event_types: list[str]) -> None:
    """Refuse an unknown notification kind."""
    for i, kind in enumerate(event_types):
        if kind not in KINDS:
            raise InvalidInput.field(
                f"event_types.{i}", "unknown_event_type", "not a notification kind of this API"
            )


def ensure_subscription_scope(*, caller: Caller, unit_id: str | None) -> None:
    """A unit's subscriptions: that unit or the member's admins; member-wide: admins only."""
    if caller.has_role(ADMIN_ROLE):
        return
    if unit_id is not None and caller.unit == unit_id:
        return
    raise Forbidden("subscriptions of another unit, or member-wide, need the member_admin role")


async def create_subscription(
    *,
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    unit_id: str | None,
    url: str,
    event_types: list[str],
    secret: str | None,
) -> WebhookSubscription:
    """Creates a webhook subscription (checking URL, kinds and secret before storing)."""
    ensure_subscription_scope(caller=caller, unit_id=unit_id)
    check_event_types(event_types=event_types)
    if secret is not None:
        check_secret(secret=secret, min_bytes=settings.notify.webhook_secret_min_bytes)
    await check_webhook_url(url=url, settings=settings)
    now = utcnow()
    sub = WebhookSubscription(
        id=new_id(),
        unit_id=unit_id,
        url=url,
        event_types=list(dict.fromkeys(event_types)),
        secret=secret or generate_secret(),
        enabled=True,
        version=1,
        created_by=caller.sub,
        created_at=now,
        updated_at=now,
    )
    return await SubscriptionRepository(session).add(sub)


async def get_subscription(
    *, session: AsyncSession, caller: Caller, subscription_id: str
) -> WebhookSubscription:
    """Gets a subscription the caller may manage (404 for any other)."""
    sub = await SubscriptionRepository(session).get(subscription_id)
    if sub is None:
        raise SubscriptionNotFound()
    try:
        ensure_subscription_scope(caller=caller, unit_id=sub.unit_id)
    except Forbidden:
        raise SubscriptionNotFound() from None
    return sub


async def list_subscriptions(
    *, session: AsyncSession, caller: Caller, unit_id: str | None, after_id: str | None, limit: int
) -> list[WebhookSubscription]:
    """Lists the subscriptions of a unit (or, for admins without a unit, all)."""
    all_units = unit_id is None and caller.has_role(ADMIN_ROLE)
    scope = unit_id if unit_id is not None else caller.unit
    if not all_units:
        if scope is None:
            raise Forbidden("name a unit, or hold the member_admin role")
        ensure_subscription_scope(caller=caller, unit_id=scope)
    return await SubscriptionRepository(session).page(
        unit_id=scope, all_units=all_units, after_id=after_id, limit=limit
    )


async def update_subscription(
    *,
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    subscription_id: str,
    expected_version: int | None,
    url: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
) -> WebhookSubscription:
    """Changes a subscription's URL, kinds or enabled flag (If-Match on its version)."""
    sub = await get_subscription(session=session, caller=caller, subscription_id=subscription_id)
    if expected_version is not None and expected_version != sub.version:
        raise VersionMismatch()
    if event_types is not None:
        check_event_types(event_types=event_types)
    if url is not None:
        await check_webhook_url(url=url, settings=settings)
        sub.url = url
    if event_types is not None:
        sub.event_types = list(dict.fromkeys(event_types))
    if enabled is not None:
        sub.enabled = enabled
    sub.version += 1
    sub.updated_at = utcnow()
    await session.flush()
    return sub


async def rotate_secret(
    *,
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    subscription_id: str,
    secret: str | None,
) -> WebhookSubscription:
    """Replaces the signing secret; the old one keeps signing alongside for the grace period."""
    sub = await get_subscription(session=session, caller=caller, subscription_id=subscription_id)
    if secret is not None:
        check_secret(secret=secret, min_bytes=settings.notify.webhook_secret_min_bytes)
    now = utcnow()
    sub.previous_secret = sub.secret
    sub.previous_secret_until = now + dt.timedelta(seconds=settings.notify.secret_rotation_grace_s)
    sub.secret = secret or generate_secret()
    sub.version += 1
    sub.updated_at = now
    await session.flush()
    return sub


async def delete_subscription(
    *, session: AsyncSession, caller: Caller, subscription_id: str
) -> None:
    """Deletes a subscription (pending deliveries to it end as dead)."""
    sub = await get_subscription(session=session, caller=caller, subscription_id=subscription_id)
    await SubscriptionRepository(session).delete(sub)


# --- unit channels ------------------------------------------------------------------------


async def get_unit_channel(*, session: AsyncSession, unit_id: str) -> UnitChannel:
    """The unit's channel settings (empty defaults for a unit notify has not seen yet)."""
    unit = await UnitChannelRepository(session).get(unit_id)
    if unit is None:
        return UnitChannel(unit_id=unit_id, directory_version=0, email_enabled=True)
    return unit


async def set_unit_channel(
    *, session: AsyncSession, unit_id: str, email: str | None, email_enabled: bool
) -> UnitChannel:
    """Sets the unit's functional mailbox override and whether it gets e-mail.

    Only for a unit of this member: one the member's directory announced (``unit.changed``
    of an own unit, :func:`apply_units_changed`). Another member's unit, or an id nobody
    announced, is refused (404 ``unit-not-own``)."""
    repo = UnitChannelRepository(session)
    unit = await repo.get(unit_id)
    if unit is None or unit.directory_version < 1:
        raise UnitNotOwn(
            "notify knows no unit of your member with this id: it learns the member's own "
            "units from its directory (a new unit, once its announcement has arrived)"
        )
    unit.email = email
    unit.email_enabled = email_enabled
    unit.updated_at = utcnow()
    await session.flush()
    return unit
