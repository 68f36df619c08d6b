"""Reminders and escalation on persistent timers: scheduled once from deadline events,
fired through the rules table, cancelled by an acknowledgement or a met deadline."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select

from services.notify.consume import notify_events
from services.notify.models import Notification, Timer
from services.notify.timers import fire_due_timers
from shared.config import Settings
from shared.data.db import Database, new_id, utcnow
from shared.domain.calendar import add_working_days, end_of_day, to_local
from shared.domain.kinds import spec
from shared.messaging.events.payloads import (
    REFERRAL_DEADLINE_V1,
    REFERRAL_STATUS_CHANGED_V1,
    ReferralDeadlineV1,
    ReferralStatusChangedV1,
)
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    ADMIN,
    COORDINATOR,
    INTAKE,
    OTHER_UNIT,
    auth,
    handle,
    notify_settings,
    received,
    work_of,
)


async def timers(db: Database, subject_id: str) -> list[Timer]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(Timer).where(Timer.subject_id == subject_id).order_by(Timer.fire_at)
        )
        return list(rows.scalars())


async def fire(db: Database, settings: Settings) -> int:
    async with db.transaction() as session:
        return await fire_due_timers(work_of(session, settings))


async def kinds(db: Database) -> list[tuple[str, str, str]]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Notification).order_by(Notification.seq))
        return [(n.kind, n.recipient_kind, n.recipient) for n in rows.scalars()]


class TestScheduling:
    async def test_a_received_referral_schedules_reminder_overdue_and_escalation_once(
        self, db: Database, settings: Settings
    ) -> None:
        due = utcnow() + dt.timedelta(days=2)
        event, event_id = received(acknowledge_by=due), new_id()
        await handle(db, settings, event, event_id=event_id)
        await handle(db, settings, event, event_id=new_id())  # the same event, another id
        rows = await timers(db, event[1].referral_id)  # type: ignore[attr-defined]
        assert [(t.action, t.fire_at - due) for t in rows] == [
            ("remind", -dt.timedelta(seconds=settings.notify.remind_before_s)),
            ("overdue", dt.timedelta(0)),
            ("escalate", dt.timedelta(seconds=settings.notify.escalate_after_s)),
        ]
        assert {t.state for t in rows} == {"pending"}

    async def test_without_a_deadline_the_referral_services_policy_applies(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        """One deadline policy: an event that names no ``acknowledge_by`` gets the one the
        referral service would have set — the kind's working days by urgency (the kinds
        registry, or the member's own table), to the end of that day."""
        _type, payload = received(kind="utskrivningsplanering")
        payload = payload.model_copy(update={"acknowledge_by": None})
        await handle(db, settings, (_type, payload))
        [item] = (await client.get(f"/v1/units/{INTAKE}/notifications", headers=auth())).json()[
            "items"
        ]
        due = dt.datetime.fromisoformat(item["due_at"])
        received_on = to_local(payload.received_at).date()  # type: ignore[attr-defined]
        days = settings.referral.acknowledge_working_days["utskrivningsplanering"]["normal"]
        assert due == end_of_day(add_working_days(received_on, days))
        assert due == end_of_day(
            spec("utskrivningsplanering").acknowledge_by("normal", received_on, {})
        )

    async def test_a_reminder_whose_moment_has_passed_is_not_scheduled(
        self, db: Database, settings: Settings
    ) -> None:
        event = received(acknowledge_by=utcnow() + dt.timedelta(minutes=5))
        await handle(db, settings, event)
        rows = await timers(db, event[1].referral_id)  # type: ignore[attr-defined]
        assert [t.action for t in rows] == ["overdue", "escalate"]


class TestFiring:
    async def test_due_timers_notify_the_unit_then_escalate_to_the_coordinator(
        self, db_url: str, db: Database
    ) -> None:
        settings = notify_settings(
            db_url, coordinator_unit_ids=[COORDINATOR], remind_before_s=2, escalate_after_s=1
        )
        event = received(acknowledge_by=utcnow() + dt.timedelta(seconds=3))
        await handle(db, settings, event)

        async def all_fired() -> bool:
            await fire(db, settings)
            return len(await kinds(db)) == 4

        await eventually(all_fired, within=30, what="three timers fired")
        assert await kinds(db) == [
            ("referral.received", "unit", INTAKE),
            ("deadline.reminder", "unit", INTAKE),
            ("deadline.overdue", "unit", INTAKE),
            ("deadline.escalated", "unit", COORDINATOR),
        ]
        rows = await timers(db, event[1].referral_id)  # type: ignore[attr-defined]
        assert {t.state for t in rows} == {"fired"}
        assert await fire(db, settings) == 0  # a fired timer never fires again

    async def test_without_a_coordinator_the_escalation_goes_to_the_admins(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        settings = settings.model_copy(
            update={"notify": settings.notify.model_copy(update={"escalate_after_s": 0})}
        )
        await handle(db, settings, received(acknowledge_by=utcnow() - dt.timedelta(seconds=1)))
        assert await fire(db, settings) == 2
        page = (
            await client.get("/v1/roles/member_admin/notifications", headers=auth(**ADMIN))
        ).json()
        assert [i["kind"] for i in page["items"]] == ["deadline.escalated"]


class TestCancelling:
    async def test_acknowledging_the_notification_cancels_reminders_and_escalation(
        self, db: Database, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        event = received()
        [nid] = await handle(db, settings, event)
        r = await client.post(f"/v1/notifications/{nid}/acknowledge", headers=auth())
        assert r.status_code == 200
        rows = await timers(db, event[1].referral_id)  # type: ignore[attr-defined]
        assert {t.state for t in rows} == {"cancelled"}

    async def test_a_met_deadline_or_an_acknowledged_status_cancels(
        self, db: Database, settings: Settings
    ) -> None:
        event = received()
        referral_id = event[1].referral_id  # type: ignore[attr-defined]
        await handle(db, settings, event)
        status = ReferralStatusChangedV1(
            referral_id=referral_id,
            kind="kontaktbegaran",
            unit_id=INTAKE,
            direction="incoming",
            old_status="delivered",
            new_status="acknowledged",
            changed_at=utcnow(),
            version=2,
        )
        await handle(db, settings, (REFERRAL_STATUS_CHANGED_V1, status))
        assert {t.state for t in await timers(db, referral_id)} == {"cancelled"}

        overdue = ReferralDeadlineV1(
            referral_id=referral_id,
            kind="kontaktbegaran",
            unit_id=INTAKE,
            deadline="first_meeting",
            due_at=utcnow() - dt.timedelta(hours=1),
            state="overdue",
        )
        await handle(db, settings, (REFERRAL_DEADLINE_V1, overdue))
        pending = [t for t in await timers(db, referral_id) if t.state == "pending"]
        assert [(t.action, t.deadline) for t in pending] == [("escalate", "first_meeting")]
        met = overdue.model_copy(update={"state": "met"})
        await handle(db, settings, (REFERRAL_DEADLINE_V1, met))
        assert [t for t in await timers(db, referral_id) if t.state == "pending"] == []


class TestChasingAnAnswer:
    """An acknowledged task not accepted or declined by ``answer_by`` (the referral worker's
    ``referral.deadline`` events, ``deadline: answer``): the receiving unit is reminded as
    the day comes near and when it passes (then escalated like any overdue deadline, until
    it answers); the unit that sent it is alerted once, never escalated."""

    @staticmethod
    def answer(
        task_id: str, state: str, *, unit_id: str = INTAKE, audience: str = "actor"
    ) -> tuple[str, ReferralDeadlineV1]:
        return REFERRAL_DEADLINE_V1, ReferralDeadlineV1(
            referral_id=task_id,
            kind="sip_kallelse",
            unit_id=unit_id,
            deadline="answer",
            due_at=utcnow() + dt.timedelta(days=1 if state == "near" else -1),
            state=state,
            audience=audience,
        )

    async def test_the_receiving_unit_is_reminded_near_and_at_passing_until_it_answers(
        self, db_url: str, db: Database
    ) -> None:
        settings = notify_settings(db_url, coordinator_unit_ids=[COORDINATOR], escalate_after_s=0)
        task_id = new_id()
        await handle(db, settings, self.answer(task_id, "near"))
        assert await timers(db, task_id) == []  # a reminder now, nothing to time
        await handle(db, settings, self.answer(task_id, "overdue"))
        assert [(t.action, t.deadline) for t in await timers(db, task_id)] == [
            ("escalate", "answer")
        ]
        assert await kinds(db) == [
            ("deadline.reminder", "unit", INTAKE),
            ("deadline.overdue", "unit", INTAKE),
        ]
        # The unit accepts: the escalation is cancelled before it fires.
        accepted = ReferralStatusChangedV1(
            referral_id=task_id,
            kind="sip_kallelse",
            unit_id=INTAKE,
            direction="incoming",
            old_status="acknowledged",
            new_status="accepted",
            changed_at=utcnow(),
            version=3,
        )
        await handle(db, settings, (REFERRAL_STATUS_CHANGED_V1, accepted))
        assert {t.state for t in await timers(db, task_id)} == {"cancelled"}
        assert await fire(db, settings) == 0
        assert "deadline.escalated" not in [k for k, _, _ in await kinds(db)]

    async def test_unanswered_without_an_answer_it_is_escalated(
        self, db_url: str, db: Database
    ) -> None:
        settings = notify_settings(db_url, coordinator_unit_ids=[COORDINATOR], escalate_after_s=0)
        task_id = new_id()
        await handle(db, settings, self.answer(task_id, "overdue"))
        assert await fire(db, settings) == 1
        assert await kinds(db) == [
            ("deadline.overdue", "unit", INTAKE),
            ("deadline.escalated", "unit", COORDINATOR),
        ]

    async def test_the_sender_is_alerted_once_and_never_escalated(
        self, db_url: str, db: Database, client: httpx.AsyncClient
    ) -> None:
        settings = notify_settings(db_url, coordinator_unit_ids=[COORDINATOR], escalate_after_s=0)
        task_id, event_id = new_id(), new_id()
        alert = self.answer(task_id, "overdue", unit_id=OTHER_UNIT, audience="sender")
        await handle(db, settings, alert, event_id=event_id)
        await handle(db, settings, alert, event_id=event_id)  # redelivered: nothing more
        assert await timers(db, task_id) == []
        assert await fire(db, settings) == 0
        assert await kinds(db) == [("deadline.unanswered", "unit", OTHER_UNIT)]
        page = (
            await client.get(f"/v1/units/{OTHER_UNIT}/notifications", headers=auth(unit=OTHER_UNIT))
        ).json()
        [item] = page["items"]
        assert (item["subject_id"], item["deadline"], item["referral_kind"]) == (
            task_id,
            "answer",
            "sip_kallelse",
        )
        assert item["title"].startswith("Inget svar: Kallelse till SIP har inte besvarats")

    async def test_a_late_plan_action_goes_to_its_owner_and_the_plans_coordinators_untimed(
        self, db_url: str, db: Database, client: httpx.AsyncClient
    ) -> None:
        # The referral service escalates a late action itself, to the plan's coordinating
        # units (audience coordinator): notify times no escalation of its own for it.
        settings = notify_settings(db_url, coordinator_unit_ids=[COORDINATOR], escalate_after_s=0)
        plan_id, action_id = new_id(), new_id()

        def late(unit_id: str, audience: str) -> tuple[str, ReferralDeadlineV1]:
            return REFERRAL_DEADLINE_V1, ReferralDeadlineV1(
                referral_id=plan_id, kind="sip_kallelse", unit_id=unit_id,
                deadline="action_start", due_at=utcnow() - dt.timedelta(days=1),
                state="overdue", audience=audience, action_id=action_id,
            )  # fmt: skip

        await handle(db, settings, late(INTAKE, "actor"))
        await handle(db, settings, late(OTHER_UNIT, "coordinator"))
        assert await timers(db, plan_id) == []
        assert await fire(db, settings) == 0
        assert await kinds(db) == [
            ("deadline.overdue", "unit", INTAKE),
            ("deadline.escalated", "unit", OTHER_UNIT),
        ]
        page = (
            await client.get(f"/v1/units/{OTHER_UNIT}/notifications", headers=auth(unit=OTHER_UNIT))
        ).json()
        [item] = page["items"]
        assert (item["subject_type"], item["subject_id"], item["deadline"]) == (
            "plan",
            plan_id,
            "action_start",
        )
        assert item["title"].startswith("Eskalering: Planerad insats är försenad sedan")


class TestRunsOfEvents:
    async def test_a_run_of_events_has_the_effect_of_one_event_at_a_time(
        self, db: Database, settings: Settings
    ) -> None:
        referral = received()
        referral_id = referral[1].referral_id  # type: ignore[attr-defined]
        met = ReferralDeadlineV1(
            referral_id=referral_id,
            kind="kontaktbegaran",
            unit_id=INTAKE,
            deadline="acknowledge",
            due_at=referral[1].acknowledge_by,  # type: ignore[attr-defined]
            state="met",
        )
        others = [received() for _ in range(3)]
        async with db.transaction() as session:
            out = await notify_events(
                work_of(session, settings),
                events=[
                    (new_id(), *referral),
                    *[(new_id(), *o) for o in others],
                    (new_id(), REFERRAL_DEADLINE_V1, met),
                ],
            )
        assert len(out.notifications) == 4
        # The met deadline, later in the run, cancelled what the first event scheduled.
        assert {t.state for t in await timers(db, referral_id)} == {"cancelled"}
        for other in others:
            rows = await timers(db, other[1].referral_id)  # type: ignore[attr-defined]
            assert {t.state for t in rows} == {"pending"}
