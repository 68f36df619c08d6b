"""Rules -> notifications -> deliveries: what the rules table asks for, for each thing to
notify about (a consumed event or a fired timer), and the deliveries of every channel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row as SqlRow

from services.notify.access import ADMIN_ROLE
from services.notify.content import Facts, NotificationData, derived_id
from services.notify.fhir_backport import FHIR_KINDS, FORMAT_FHIR, number_events
from services.notify.models import Notification, mailbox_of
from services.notify.repository import (
    DeliveryRepository,
    NotificationRepository,
    SubscriptionRepository,
    UnitChannelRepository,
)
from shared.config import NotifyRule, NotifySettings
from shared.data.work import Work

# How long a dispatcher holds deliveries it is sending; after a crash others send them then.
LEASE = dt.timedelta(seconds=60)
COORDINATOR_KIND = "vardkedjekoordinator"

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


async def coordinator_units(work: Work) -> list[str]:
    """The coordinating function: configured units, else own units of kind vardkedjekoordinator."""
    configured = work.settings.notify.coordinator_unit_ids
    if configured:
        return list(configured)
    return await UnitChannelRepository(work.session).ids_of_kind(COORDINATOR_KIND)


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
    "covers",
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
    work: Work, *, origins: Sequence[Origin], lease_token: str | None = None
) -> FanOut:
    """Creates the notifications and deliveries the rules ask for, once per origin."""
    # With ``lease_token`` the webhook and e-mail deliveries are leased to that dispatcher,
    # which sends them after the commit. Everything staged before is flushed with them.
    cfg = work.settings.notify
    candidates: list[Row] = []
    channels_of: dict[str, list[str]] = {}
    coordinators: list[str] | None = None
    for origin in origins:
        for item in origin.facts:
            for rule in rules_for(settings=cfg, rule_event=origin.rule_event):
                if "coordinator" in rule.recipients and coordinators is None:
                    coordinators = await coordinator_units(work)
                for recipient_kind, recipient in _recipients(rule, item, coordinators or []):
                    nid = derived_id(origin.origin_id, rule.id, recipient_kind, recipient)
                    if nid in channels_of:
                        continue
                    channels_of[nid] = list(rule.channels)
                    candidates.append(
                        _notification(
                            nid, origin, rule, (recipient_kind, recipient), item, work.now
                        )
                    )
    # An origin handled before adds nothing (its ids are derived, so they are found).
    inserted = await NotificationRepository(work.session).insert_new(candidates)
    new = [n for n in candidates if n["id"] in inserted]
    out = await _deliveries_for(work, new, channels_of)
    if lease_token is not None:
        until = work.now + LEASE
        for d in out.deliveries:
            if d["status"] == "pending":
                d["lease_token"], d["lease_until"] = lease_token, until
    # New notifications have new deliveries (their ids derive from the notification's).
    await DeliveryRepository(work.session).insert_rows(out.deliveries)
    return out


def _notification(
    nid: str,
    origin: Origin,
    rule: NotifyRule,
    recipient: tuple[str, str],
    item: Facts,
    now: dt.datetime,
) -> Row:
    return {
        "id": nid,
        "origin_id": origin.origin_id,
        "event_type": origin.event_type,
        "rule_id": rule.id,
        "recipient_kind": recipient[0],
        "recipient": recipient[1],
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
        "covers": None if item.covers is None else [k.value for k in item.covers],
        "created_at": now,
    }


def _delivery(n: Row, channel: str, target: str, status: str, **values: Any) -> Row:
    # Every row has every column (one executemany for all of them).
    return {
        "id": derived_id(n["id"], channel, target),
        "notification_id": n["id"],
        "channel": channel,
        "target": target,
        "status": status,
        "fhir_type": None,
        "fhir_event": None,
        "attempts": 0,
        "next_attempt_at": None,
        "lease_until": None,
        "lease_token": None,
        "last_status_code": None,
        "last_outcome": None,
        "created_at": n["created_at"],
        "delivered_at": None,
        "dead_at": None,
        "redeliveries": 0,
        **values,
    }


async def _deliveries_for(
    work: Work, notifications: list[Row], channels_of: dict[str, list[str]]
) -> FanOut:
    cfg, now = work.settings.notify, work.now
    subs_cache: dict[str | None, list[SqlRow[Any]]] = {}
    # The units' names and mailboxes, for e-mail only (none to look up with e-mail off).
    unit_ids = {
        n["recipient"]
        for n in notifications
        if n["recipient_kind"] == "unit" and "email" in channels_of[n["id"]]
    }
    if cfg.smtp.host is None:
        unit_ids.clear()
    units = await UnitChannelRepository(work.session).rows_by_ids(sorted(unit_ids))
    result = FanOut(notifications=notifications, units=units)
    out = result.deliveries
    fhir_events: list[Row] = []
    for n in notifications:
        channels = channels_of[n["id"]]
        recipient_kind, recipient = n["recipient_kind"], n["recipient"]
        if "inbox" in channels:
            out.append(
                _delivery(
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
                subs_cache[scope] = await SubscriptionRepository(work.session).matching(
                    unit_id=scope
                )
            for sub in subs_cache[scope]:
                if n["kind"] not in sub.event_types:
                    continue
                fhir = sub.format == FORMAT_FHIR
                if fhir and (n["kind"] not in FHIR_KINDS or n["subject_type"] != "referral"):
                    continue
                result.subscriptions[sub.id] = sub
                out.append(_delivery(n, "webhook", sub.id, "pending", next_attempt_at=now))
                if fhir:
                    fhir_events.append(out[-1])
        if "email" in channels and recipient_kind == "unit":
            unit = units.get(recipient)
            mailbox = mailbox_of(unit) if unit is not None else None
            if cfg.smtp.host is None:
                out.append(_delivery(n, "email", "-", "skipped", last_outcome="email_off"))
            elif mailbox is None:
                out.append(_delivery(n, "email", "-", "skipped", last_outcome="no_mailbox"))
            else:
                out.append(_delivery(n, "email", mailbox, "pending", next_attempt_at=now))
    if fhir_events:
        await number_events(work, fhir_events)
    return result
