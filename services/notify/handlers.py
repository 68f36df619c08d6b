"""Event handlers and periodic jobs of the notify worker.

One consumer reads the member's internal topic (referral, SIP, plan and review events), its
inbound topic (consent ended) and ``vardkedja.directory`` (its own units' kinds and
functional mailboxes, ADR 0012). Each event's notifications, deliveries and timers are
written in the inbox's transaction (a run of events at once when the consumer catches up);
the moment it commits, the dispatcher sends the new webhooks and e-mails.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.channels import apply_units_changed
from services.notify.consume import HANDLED_EVENTS, notify_events
from services.notify.dispatch import Dispatcher
from services.notify.fhir_backport import queue_heartbeats
from services.notify.retention import PURGE_BATCH, purge_expired
from services.notify.timers import fire_due_timers
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import UNIT_CHANGED_V1, UnitChangedV1
from shared.messaging.inbox import ConsumerSpec, Delivery, Handler, Reject
from shared.messaging.ownership import require_sender
from shared.messaging.periodic import PeriodicJob
from shared.service import ServiceContext


def dispatcher_of(ctx: ServiceContext) -> Dispatcher:
    """The worker's one dispatcher (made on first use)."""
    found = ctx.extras.get("dispatcher")
    if not isinstance(found, Dispatcher):
        found = Dispatcher(ctx.settings, ctx.db)
        ctx.extras["dispatcher"] = found
    return found


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """One consumer of the internal and inbound topics and of the directory."""
    settings = ctx.settings
    orgnr = settings.member.orgnr
    dispatcher = dispatcher_of(ctx)

    def work(session: AsyncSession) -> Work:
        """The step of one event (or one run of them): from the bus, so no caller."""
        return Work(session, ctx.outbox, settings)

    async def on_events(session: AsyncSession, deliveries: list[Delivery]) -> None:
        try:
            created = await notify_events(
                work(session),
                events=[(d.event.id, d.event.type, d.payload) for d in deliveries],
                lease_token=dispatcher.token,
            )
        except ValidationError as exc:
            # An id that is a personnummer (or otherwise not repeatable) never will be.
            raise Reject("not_notifiable", "the event holds a field notify may not repeat") from exc
        jobs = dispatcher.jobs_for(created)
        if jobs:
            # Sent the moment the inbox's transaction commits; never if it rolls back.
            sa_event.listen(
                session.sync_session, "after_commit", lambda _s: dispatcher.submit(jobs), once=True
            )

    async def on_event(session: AsyncSession, delivery: Delivery) -> None:
        await on_events(session, [delivery])

    def own_units(deliveries: list[Delivery]) -> list[UnitChangedV1]:
        out = []
        for d in deliveries:
            payload = d.payload
            assert isinstance(payload, UnitChangedV1)
            if payload.owner_orgnr != orgnr:
                continue  # another member's unit: not ours to notify
            require_sender(d.event, orgnr, "a member may only publish its own units")
            out.append(payload)
        return out

    async def on_unit_changed(session: AsyncSession, delivery: Delivery) -> None:
        await on_units_changed(session, [delivery])

    async def on_units_changed(session: AsyncSession, deliveries: list[Delivery]) -> None:
        await apply_units_changed(work(session), own_units(deliveries))

    handlers: dict[str, Handler] = dict.fromkeys(HANDLED_EVENTS, on_event)
    handlers[UNIT_CHANGED_V1] = on_unit_changed
    return [
        ConsumerSpec(
            name="events",
            topics=[topics.internal(orgnr), topics.inbound(orgnr), topics.DIRECTORY],
            handlers=handlers,
            batch_handlers={
                **dict.fromkeys(HANDLED_EVENTS, on_events),
                UNIT_CHANGED_V1: on_units_changed,
            },
        )
    ]


async def on_worker_stop(ctx: ServiceContext) -> None:
    """Finish the sends in flight and record them, so a clean stop leaves nothing to resend."""
    await dispatcher_of(ctx).close()


def periodic(ctx: ServiceContext) -> list[PeriodicJob]:
    """The dispatcher, the timer check, FHIR subscriptions' heartbeats and the retention
    clean-up."""
    settings = ctx.settings
    dispatcher = dispatcher_of(ctx)

    async def fire_timers() -> None:
        async with ctx.db.transaction() as session:
            fired = await fire_due_timers(Work(session, ctx.outbox, settings))
        if fired:
            dispatcher.wake()

    async def heartbeats() -> None:
        async with ctx.db.transaction() as session:
            queued = await queue_heartbeats(Work(session, ctx.outbox, settings))
        if queued:
            dispatcher.wake()

    async def purge() -> None:
        # A bounded batch a transaction, so the clean-up never holds the write lock for long.
        while True:
            async with ctx.db.transaction() as session:
                gone = await purge_expired(session=session, settings=settings.notify)
            if gone < PURGE_BATCH:
                return

    return [
        PeriodicJob("notify-dispatch", 0.0, dispatcher.run_once),
        PeriodicJob("notify-timers", settings.notify.timer_poll_interval_s, fire_timers),
        PeriodicJob("notify-heartbeats", settings.notify.timer_poll_interval_s, heartbeats),
        PeriodicJob("notify-retention", 3600.0, purge),
    ]
