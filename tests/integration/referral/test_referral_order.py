"""Events of one task or consent that reach a member out of order, or late (ADR 0005: a
resent record can fall behind a later one of its key; different keys have no order at all).

The consumer that should see them out of order is stopped (its records stay on the topic);
the test hands it the sender's records from the sender's outbox (same ids, bodies and
headers) in the order it chooses, through the consumer's own unit of work (inbox and
handler). Everything else runs live over the broker. Each case ends in the state of its
newest event and never leaves a final status (ADR 0016)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import select

from services.consent.models import ConsentCopy
from services.referral.codes import FINAL
from services.referral.models import (
    ConsentTombstone,
    Incoming,
    Recipient,
    TaskTombstone,
    Transition,
)
from shared.data.db import Database
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    REFERRAL_SENT_V1,
    REFERRAL_TRANSITIONED_V1,
)
from shared.messaging.inbox import EventConsumer
from shared.messaging.kafka import ReceivedRecord
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.consent.helpers import new_person
from tests.integration.test_housekeeping import captured

from .conftest import (
    CONSENT,
    CONSENT_RW,
    REFERRAL,
    REGION_BEROENDE,
    VAXJO_SOC,
    Member,
    Pair,
    auth,
)
from .test_referral_flow import (
    RECEIVER,
    SENDER,
    copy_arrived,
    kontaktbegaran,
    recipient_status,
    record_consent,
    step,
)

FINAL_STATUSES = {s.value for s in FINAL}


async def hold(member: Member, service: str) -> EventConsumer:
    """Stops ``service``'s inbound consumer of ``member`` and waits until it has stopped:
    what reaches its topic from now on waits there, and the test hands it records."""
    i = 0
    for worker in member.workers:
        i += 1  # the relay's task comes first
        for consumer in worker.consumers:
            if worker.spec.name == service and consumer.spec.name == "inbound":
                consumer.stop()
                await asyncio.wait_for(member.tasks[i], timeout=30)
                return consumer
            i += 1
    raise AssertionError(f"no inbound consumer of {service}")


async def records(db: Database, service: str, topic: str, *types: str) -> list[ReceivedRecord]:
    """The records ``service``'s outbox holds for ``topic`` (of ``types``), oldest first, as
    a consumer of that topic receives them."""
    outbox = (CONSENT if service == "consent" else REFERRAL).infra.outbox
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(outbox).where(outbox.c.topic == topic).order_by(outbox.c.seq)
            )
        ).all()
    out = []
    for offset, r in enumerate(rows):
        headers = [(k, v.encode()) for k, v in r.headers]
        if types and dict(headers).get("ce_type", b"").decode() not in types:
            continue
        out.append(
            ReceivedRecord(
                topic, 0, 10_000 + offset, r.key.encode() if r.key else None, bytes(r.body), headers
            )
        )
    return out


async def send(member: Member, person: str) -> tuple[str, str]:
    """Region's kontaktbegäran to Växjö's intake: (referral id, task id)."""
    async with member.referral() as c:
        r = await c.post("/v1/referrals", json=kontaktbegaran(person), headers=SENDER)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["recipients"][0]["task_id"]


async def withdraw(member: Member, referral_id: str, task_id: str) -> None:
    version = (await recipient_status(member, referral_id))["version"]
    async with member.referral() as c:
        r = await c.post(
            f"/v1/referrals/{task_id}/withdraw",
            json={"reason": "Personen vill inte längre.", "by_person": True},
            headers={**SENDER, "If-Match": f'"{version}"'},
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "withdrawn"


async def sender_steps(member: Member, task_id: str) -> list[Transition]:
    async with member.referral_db.sessionmaker() as s:
        stmt = (
            select(Transition)
            .where(Transition.task_id == task_id, Transition.side == "sender")
            .order_by(Transition.id)
        )
        return list(await s.scalars(stmt))


async def mirror(member: Member, task_id: str) -> Recipient:
    async with member.referral_db.sessionmaker() as s:
        row = await s.get(Recipient, task_id)
    assert row is not None
    return row


async def receiver_row(member: Member, model: Any, key: str) -> Any:
    async with member.referral_db.sessionmaker() as s:
        return await s.get(model, key)


def left_a_final_status(steps: list[Transition]) -> list[str]:
    return [
        f"{s.from_status}->{s.to_status}"
        for s in steps
        if s.from_status in FINAL_STATUSES and s.to_status != s.from_status
    ]


async def filed_at_vaxjo(vaxjo: Member, task: str) -> None:
    await eventually(lambda: receiver_row(vaxjo, Incoming, task), within=30, what="filed")


async def completed_at_vaxjo(vaxjo: Member, tasks: list[str]) -> None:
    """Växjö files each of ``tasks``, then acknowledges, accepts and completes it."""
    for task in tasks:
        await filed_at_vaxjo(vaxjo, task)
        for body in (
            {"to": "acknowledged"},
            {"to": "accepted"},
            {
                "to": "completed",
                "outcome": "Boendestöd beviljat.",
                "result": {"decision": "granted", "intervention": "boendestod"},
            },
        ):
            assert (await step(vaxjo, task, RECEIVER, **body)).status_code == 200


async def with_copy(pair: Pair) -> tuple[str, str]:
    """A person with a consent Region recorded, its copy arrived at Växjö."""
    person = new_person()
    consent_id = await record_consent(pair.region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(pair.vaxjo, consent_id), within=30, what="consent copy")
    return person, consent_id


class TestTheSendersMirrorNeverMovesBack:
    async def test_a_delivered_report_after_the_senders_withdrawal_is_not_applied(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        at_region = await hold(region, "referral")
        referral_id, task_id = await send(region, person)
        await eventually(
            lambda: receiver_row(vaxjo, Incoming, task_id), within=30, what="filed at Växjö"
        )
        inbound = topics.inbound(ORG_REGION)
        [delivered] = await records(vaxjo.referral_db, "referral", inbound)
        await withdraw(region, referral_id, task_id)  # Region has not seen "delivered"

        assert await at_region.handle(delivered) == "applied"
        assert (await mirror(region, task_id)).status == "withdrawn"

        # Växjö applies the withdrawal and confirms it (version 2): still withdrawn.
        async def confirmed() -> bool:
            return len(await records(vaxjo.referral_db, "referral", inbound)) == 2

        await eventually(confirmed, within=30, what="Växjö's confirmation")
        [_, confirmation] = await records(vaxjo.referral_db, "referral", inbound)
        assert await at_region.handle(confirmation) == "applied"
        assert await at_region.handle(delivered) == "duplicate"
        row = await mirror(region, task_id)
        assert (row.status, row.remote_version) == ("withdrawn", 2)
        steps = await sender_steps(region, task_id)
        assert left_a_final_status(steps) == []
        assert [(s.from_status, s.to_status) for s in steps] == [
            (None, "sent"),
            ("sent", "withdrawn"),
            ("withdrawn", "withdrawn"),  # confirmed by the receiver
        ]

    async def test_shuffled_reports_end_at_the_newest_and_a_late_withdrawal_stays_withdrawn(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        at_region = await hold(region, "referral")
        first_id, first = await send(region, person)
        second_id, second = await send(region, person)
        await completed_at_vaxjo(vaxjo, [first, second])
        # Region withdraws the second before it has heard of any step: too late.
        await withdraw(region, second_id, second)

        async def reports() -> dict[str, list[ReceivedRecord]]:
            got = await records(vaxjo.referral_db, "referral", topics.inbound(ORG_REGION))
            return {t: [r for r in got if r.key == t.encode()] for t in (first, second)}

        async def all_there() -> bool:
            return [len(v) for v in (await reports()).values()] == [4, 5]

        await eventually(all_there, within=30, what="every report and the answer")
        by_task = await reports()
        for record in reversed(by_task[first]):  # completed first: the rest are older
            assert await at_region.handle(record) == "applied"
        for record in by_task[second]:
            assert await at_region.handle(record) == "applied"

        done = await mirror(region, first)
        assert (done.status, done.remote_version, done.outcome) == (
            "completed",
            4,
            "Boendestöd beviljat.",
        )
        assert [s.to_status for s in await sender_steps(region, first)] == ["sent", "completed"]
        late = await mirror(region, second)
        assert (late.status, late.remote_version) == ("withdrawn", 5)
        steps = await sender_steps(region, second)
        assert left_a_final_status(steps) == []
        # The receiver's answer is kept: the withdrawal came after it completed the task.
        assert steps[-1].reason == "the receiver reports completed; the referral stays withdrawn"
        assert (await recipient_status(region, first_id))["status"] == "completed"


class TestAWithdrawalBeforeItsReferral:
    async def test_the_referral_is_never_filed_and_the_sender_gets_its_confirmation(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        at_vaxjo = await hold(vaxjo, "referral")
        referral_id, task_id = await send(region, person)
        await withdraw(region, referral_id, task_id)
        sent, withdrawal = await records(
            region.referral_db, "referral", topics.inbound(ORG_VAXJO), REFERRAL_SENT_V1,
            REFERRAL_TRANSITIONED_V1,
        )  # fmt: skip

        assert await at_vaxjo.handle(withdrawal) == "applied"
        assert await at_vaxjo.handle(withdrawal) == "duplicate"
        assert await receiver_row(vaxjo, TaskTombstone, task_id) is not None
        assert await at_vaxjo.handle(sent) == "applied"
        assert await at_vaxjo.handle(sent) == "duplicate"

        # Nothing about the person is kept at Växjö, nothing reaches the unit's inbox.
        assert await receiver_row(vaxjo, Incoming, task_id) is None
        assert await receiver_row(vaxjo, TaskTombstone, task_id) is None
        async with vaxjo.referral() as c:
            assert (await c.get("/v1/incoming", headers=RECEIVER)).json()["items"] == []
        async with vaxjo.referral_db.sessionmaker() as s:
            steps = list(await s.scalars(select(Transition).where(Transition.task_id == task_id)))
        assert [(t.side, t.from_status, t.to_status, t.by_orgnr) for t in steps] == [
            ("receiver", "sent", "withdrawn", ORG_REGION)
        ]

        async def confirmed() -> bool:
            steps = await sender_steps(region, task_id)
            return steps[-1].reason == "confirmed by the receiver"

        await eventually(confirmed, within=30, what="the confirmation at Region")
        assert (await mirror(region, task_id)).status == "withdrawn"

    async def test_a_withdrawal_after_a_refusal_at_arrival_leaves_no_tombstone(
        self, members: Pair
    ) -> None:
        # The consent ends before the referral arrives: Växjö refuses it at arrival and
        # holds nothing; the withdrawal that follows has nothing to wait for.
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_copy(members)
        at_vaxjo = await hold(vaxjo, "referral")
        referral_id, task_id = await send(region, person)
        await withdraw(region, referral_id, task_id)
        await withdraw_consent(region, consent_id)
        [ended] = await records(
            region.consent_app.state.ctx.db, "consent", topics.inbound(ORG_VAXJO), CONSENT_ENDED_V1
        )
        sent, withdrawal = await records(region.referral_db, "referral", topics.inbound(ORG_VAXJO))
        for record in (ended, sent, withdrawal):
            assert await at_vaxjo.handle(record) == "applied"
        assert await receiver_row(vaxjo, Incoming, task_id) is None
        assert await receiver_row(vaxjo, TaskTombstone, task_id) is None


async def withdraw_consent(member: Member, consent_id: str) -> None:
    async with member.consent() as c:
        r = await c.post(
            f"/v1/consents/{consent_id}/withdraw",
            json={"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
            headers=auth(ORG_REGION, REGION_BEROENDE, CONSENT_RW),
        )
    assert r.status_code == 200, r.text


class TestAReferralAfterItsConsentEnded:
    async def test_it_is_not_filed_though_the_consent_service_lags(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_copy(members)
        await hold(vaxjo, "consent")  # Växjö's consent service will not hear of the end
        at_vaxjo = await hold(vaxjo, "referral")
        _, task_id = await send(region, person)
        await withdraw_consent(region, consent_id)
        [ended] = await records(
            region.consent_app.state.ctx.db, "consent", topics.inbound(ORG_VAXJO), CONSENT_ENDED_V1
        )
        [sent] = await records(region.referral_db, "referral", topics.inbound(ORG_VAXJO))

        assert await at_vaxjo.handle(ended) == "applied"
        assert await at_vaxjo.handle(ended) == "duplicate"
        assert await receiver_row(vaxjo, ConsentTombstone, consent_id) is not None
        assert await at_vaxjo.handle(sent) == "applied"
        assert await at_vaxjo.handle(sent) == "duplicate"

        # Växjö's consent service still says active; its referral service knows better.
        async with vaxjo.consent_app.state.ctx.db.sessionmaker() as s:
            copy = await s.get(ConsentCopy, consent_id)
        assert copy is not None
        assert copy.status == "active"
        assert await receiver_row(vaxjo, Incoming, task_id) is None
        async with vaxjo.referral_db.sessionmaker() as s:
            steps = list(await s.scalars(select(Transition).where(Transition.task_id == task_id)))
        assert [(t.to_status, t.reason) for t in steps] == [
            ("undeliverable", "no_basis_at_receiver: consent_withdrawn")
        ]

        # Region's mirror ends closed (cancelled by its own consent event, or undeliverable
        # as Växjö reports, whichever Region's worker reads first) and stays closed.
        async def reported() -> bool:
            row = await mirror(region, task_id)
            return row.remote_version >= 1 and row.status in FINAL_STATUSES

        await eventually(reported, within=30, what="Växjö's report read at Region")
        assert left_a_final_status(await sender_steps(region, task_id)) == []


class TestARunOfStepsInOneUnitOfWork:
    """A partition's records that arrive together are applied in one transaction (the
    consumer's batch path); the referral worker loads the tasks a run of steps reads at
    once. The run must end exactly where the same steps one by one end."""

    async def test_reports_and_withdrawals_end_as_one_by_one_and_each_table_is_read_once(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        # Three tasks Växjö completes, reported back while Region's consumer is held.
        at_region = await hold(region, "referral")
        reported = [(await send(region, person))[1] for _ in range(3)]
        # Two more that Region withdraws while Växjö's consumer is held.
        withdrawn = [await send(region, person) for _ in range(2)]
        await completed_at_vaxjo(vaxjo, reported)
        for _, task in withdrawn:
            await filed_at_vaxjo(vaxjo, task)
        at_vaxjo = await hold(vaxjo, "referral")
        for referral_id, task in withdrawn:
            await withdraw(region, referral_id, task)

        async def reports() -> list[ReceivedRecord]:
            return await of_tasks(vaxjo, ORG_REGION, REFERRAL_TRANSITIONED_V1, reported)

        async def withdrawals() -> list[ReceivedRecord]:
            return await of_tasks(
                region, ORG_VAXJO, REFERRAL_TRANSITIONED_V1, [t for _, t in withdrawn]
            )

        await eventually(lambda: _has(reports, 12), within=30, what="every report")
        await eventually(lambda: _has(withdrawals, 2), within=30, what="both withdrawals")

        # The consumer's own batch path (what a fetch of several records of one partition
        # takes): True = applied in one unit of work, not fallen back to one by one.
        with captured(at_region.db, ("SELECT",)) as at_sender:
            assert await at_region._apply_batch(await reports()) is True
        with captured(at_vaxjo.db, ("SELECT",)) as at_receiver:
            assert await at_vaxjo._apply_batch(await withdrawals()) is True

        for task in reported:
            done = await mirror(region, task)
            assert (done.status, done.remote_version, done.outcome) == (
                "completed",
                4,
                "Boendestöd beviljat.",
            )
            assert [s.to_status for s in await sender_steps(region, task)] == [
                "sent",
                "delivered",
                "acknowledged",
                "accepted",
                "completed",
            ]
        for _, task in withdrawn:
            assert (await receiver_row(vaxjo, Incoming, task)).status == "withdrawn"
        # Twelve reports on three mirrors: one read of the mirrors and one of their
        # referrals; two withdrawals: one read of the tasks held at Växjö.
        assert len(_reads_of(at_sender, "recipient")) == 1
        assert len(_reads_of(at_sender, "referral")) == 1
        assert len(_reads_of(at_receiver, "incoming")) == 1

    async def test_arriving_referrals_are_filed_as_one_by_one_and_each_table_is_read_once(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, _ = await with_copy(members)
        at_vaxjo = await hold(vaxjo, "referral")
        tasks = [(await send(region, person))[1] for _ in range(3)]

        async def arrivals() -> list[ReceivedRecord]:
            return await of_tasks(region, ORG_VAXJO, REFERRAL_SENT_V1, tasks)

        await eventually(lambda: _has(arrivals, 3), within=30, what="the three referrals")
        run = await arrivals()
        with captured(at_vaxjo.db, ("SELECT",)) as reads:
            assert await at_vaxjo._apply_batch(run) is True
        for task in tasks:
            filed = await receiver_row(vaxjo, Incoming, task)
            assert (filed.status, filed.unit_id) == ("delivered", VAXJO_SOC)
        # Three arrivals: one read each of what the receiver holds about them.
        for table in ("incoming", "task_tombstone", "known_unit", "consent_tombstone"):
            assert len(_reads_of(reads, table)) == 1, table
        # The run again (a replay after a broker loss): nothing is filed twice.
        assert await at_vaxjo._apply_batch(run) is False  # the inbox knows these events
        for record in run:
            assert await at_vaxjo.handle(record) == "duplicate"


async def of_tasks(frm: Member, to: str, type_: str, tasks: list[str]) -> list[ReceivedRecord]:
    """The records of ``type_`` about ``tasks`` that ``frm``'s referral outbox holds for
    ``to``'s inbound topic, as that member's consumer receives them."""
    got = await records(frm.referral_db, "referral", topics.inbound(to), type_)
    keys = {t.encode() for t in tasks}
    return [r for r in got if r.key in keys]


async def _has(fetch: Any, n: int) -> bool:
    return len(await fetch()) == n


def _reads_of(statements: list[tuple[str, Any]], table: str) -> list[str]:
    """The SELECTs among ``statements`` that read ``table``."""
    return [s for s, _ in statements if re.search(rf"\bFROM {table}\b", s)]
