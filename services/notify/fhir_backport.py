"""FHIR subscriptions: webhooks whose body is a notification of the HL7 Subscriptions R5
Backport (R4, ``hl7.fhir.uv.subscriptions-backport``), content ``id-only``.

A ``fhir-backport-id-only`` webhook subscription is told only of the status changes of its
unit's referral tasks (topic :data:`TOPIC`). Its body is a ``history`` Bundle whose first
entry is the ``SubscriptionStatus`` Parameters (``backport-subscription-status-r4``); an
event names the Task by its full URL at the member's FHIR facade (``fhir_base_url``) and
carries no resource: ids only, never personal data. It is signed and retried exactly as
any other webhook (ADR 0012). On creation a ``handshake`` is queued (the subscription is
``active`` once one is answered 2xx, ``error`` while it fails); a ``heartbeat`` when
nothing was queued for ``heartbeat_period_s``; ``events_since_start`` numbers the events.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from services.notify.content import derived_id
from services.notify.repository import DeliveryRepository, SubscriptionRepository
from shared.data.work import Work

TOPIC: Final = "https://vardkedja.se/fhir/SubscriptionTopic/task-status-changed"
FORMAT_VARDKEDJA: Final = "vardkedja"
FORMAT_FHIR: Final = "fhir-backport-id-only"
FORMATS: Final = (FORMAT_VARDKEDJA, FORMAT_FHIR)
# The notification kinds a FHIR subscription is told of: a referral task's status change.
FHIR_KINDS: Final = ("referral.status_changed",)
FHIR_JSON: Final = "application/fhir+json"
STATUS_PROFILE: Final = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-status-r4"
)
NOTIFICATION_PROFILE: Final = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-notification-r4"
)
HANDSHAKE: Final = "handshake"
HEARTBEAT: Final = "heartbeat"
EVENT: Final = "event-notification"
# Deliveries of no notification: the subscription's own signals.
SIGNALS: Final = (HANDSHAKE, HEARTBEAT)


@dataclass(frozen=True)
class FhirChannel:
    """What a FHIR subscription adds to a webhook subscription."""

    base_url: str
    heartbeat_period_s: int | None = None


def _instant(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_parameters(
    *,
    base: str,
    subscription_id: str,
    status: str,
    type_: str,
    events_since_start: int,
    event: tuple[int, dt.datetime, str] | None = None,
) -> dict[str, Any]:
    """The ``SubscriptionStatus`` as R4 ``Parameters``; ``event`` is (number, when, Task id)."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{base}/Subscription/{subscription_id}"},
        },
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": type_},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]
    if event is not None:
        number, at, task_id = event
        parameters.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(number)},
                    {"name": "timestamp", "valueInstant": _instant(at)},
                    {"name": "focus", "valueReference": {"reference": f"{base}/Task/{task_id}"}},
                ],
            }
        )
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification_body(
    delivery: Mapping[str, Any], sub: Any, notification: Mapping[str, Any] | None
) -> bytes:
    """The webhook body of a FHIR subscription's delivery: the notification Bundle."""
    base = str(sub.fhir_base_url).rstrip("/")
    type_ = delivery["fhir_type"]
    event = None
    if type_ == EVENT:
        assert notification is not None
        number = int(delivery["fhir_event"])
        event = (number, notification["created_at"], str(notification["subject_id"]))
        since = number
    else:
        since = int(sub.events_since_start)
    status = "requested" if type_ == HANDSHAKE else (sub.fhir_status or "active")
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{derived_id('fhir-status', delivery['id'])}",
            "resource": status_parameters(
                base=base,
                subscription_id=sub.id,
                status=status,
                type_=type_,
                events_since_start=since,
                event=event,
            ),
            "request": {"method": "GET", "url": f"{base}/Subscription/{sub.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if event is not None:
        # id-only: the focus's full URL, never its content.
        entries.append(
            {
                "fullUrl": f"{base}/Task/{event[2]}",
                "request": {"method": "PUT", "url": f"Task/{event[2]}"},
                "response": {"status": "200"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "id": delivery["id"],
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": _instant(delivery["created_at"]),
        "entry": entries,
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def signal_row(subscription_id: str, type_: str, now: dt.datetime) -> dict[str, Any]:
    """A pending delivery of a handshake or heartbeat (no notification: its id is derived)."""
    origin = derived_id("fhir", subscription_id, type_, now.isoformat())
    return {
        "id": derived_id(origin, "webhook", subscription_id),
        "notification_id": origin,
        "channel": "webhook",
        "target": subscription_id,
        "status": "pending",
        "fhir_type": type_,
        "fhir_event": None,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "lease_token": None,
        "last_status_code": None,
        "last_outcome": None,
        "created_at": now,
        "delivered_at": None,
        "dead_at": None,
        "redeliveries": 0,
    }


async def queue_handshake(work: Work, subscription_id: str) -> None:
    """Queues the handshake of a new FHIR subscription (the dispatcher's poll sends it)."""
    await DeliveryRepository(work.session).insert_rows(
        [signal_row(subscription_id, HANDSHAKE, work.now)]
    )


async def queue_heartbeats(work: Work) -> int:
    """Queues a heartbeat for every active FHIR subscription with nothing queued for its
    period; how many."""
    repo = SubscriptionRepository(work.session)
    due = [
        s
        for s in await repo.with_heartbeat(FORMAT_FHIR)
        if s.heartbeat_period_s is not None
        and (
            s.last_sent_at is None
            or s.last_sent_at + dt.timedelta(seconds=s.heartbeat_period_s) <= work.now
        )
    ]
    if not due:
        return 0
    await DeliveryRepository(work.session).insert_rows(
        [signal_row(s.id, HEARTBEAT, work.now) for s in due]
    )
    for s in due:
        s.last_sent_at = work.now
    await work.session.flush()
    return len(due)


async def number_events(work: Work, deliveries: list[dict[str, Any]]) -> None:
    """Numbers the event notifications of FHIR subscriptions in ``deliveries`` (rows of one
    fan-out, in order): ``fhir_event`` from each subscription's ``events_since_start``."""
    by_sub: dict[str, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_sub.setdefault(d["target"], []).append(d)
    repo = SubscriptionRepository(work.session)
    for sub_id, rows in by_sub.items():
        last = await repo.count_events(sub_id, n=len(rows), now=work.now)
        for i, d in enumerate(rows):
            d["fhir_type"], d["fhir_event"] = EVENT, last - len(rows) + 1 + i
