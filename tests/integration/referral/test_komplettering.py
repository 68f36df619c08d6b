"""Komplettering and structured results across two members over the real broker (issue 22,
points 6 and 7): the kommun holding a kontaktbegäran asks the region for more information
instead of declining, the region answers with text and a document, and the kommun sees the
answer and goes on to accept and complete it with a structured result the region sees. While
the task waits the kommun's clock stands still and the region's own deadline runs; refused
answers (another unit, a task not waiting, bad input) store nothing, and an answer from
another member is dead-lettered."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.referral import komplettering
from services.referral.models import Incoming, Recipient
from shared.domain.calendar import add_working_days, to_local, working_days_between
from shared.messaging.events import CloudEvent, topics
from shared.messaging.events.payloads import (
    REFERRAL_INFORMATION_SUPPLIED_V1,
    ReferralInformationSuppliedV1,
)
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules, problem
from tests.helpers.signed import signed
from tests.integration.test_outbox_inbox import produce_raw

from .conftest import REFERRAL, REGION_BEROENDE, REGION_PORT, RW, Member, Pair, auth
from .test_referral_answers import check, deadline_events
from .test_referral_attachments import dead_letters, pdf, uploaded
from .test_referral_flow import kontaktbegaran, step
from .test_referral_flow import recipient_status as mirror
from .test_referral_order import with_copy

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
OTHER_UNIT = auth(ORG_REGION, REGION_PORT, RW)  # the same member, not the sending unit
RECEIVER = auth(ORG_VAXJO, "vx-soc-vuxna", RW)
QUESTION = "Har personen en egen bostad i dag, eller var bor hen?"
ANSWER = "Personen har eget kontrakt på Storgatan sedan i höstas."
GRANTED = {"decision": "granted", "intervention": "boendestod", "started_on": "2026-12-01"}


async def send(region: Member, person: str) -> tuple[str, str]:
    """A kontaktbegäran (normal urgency) from the region to the kommun; (referral, task)."""
    async with region.referral() as c:
        r = await c.post(
            "/v1/referrals", json=kontaktbegaran(person, urgency="normal"), headers=SENDER
        )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["recipients"][0]["task_id"]


async def mirror_is(region: Member, referral_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def there() -> bool:
        found.update(await mirror(region, referral_id))
        return bool(found["status"] == status)

    await eventually(there, within=30, what=f"{status} at the region")
    return found


async def held(vaxjo: Member, task_id: str) -> dict[str, Any]:
    async with vaxjo.referral() as c:
        r = await c.get(f"/v1/incoming/{task_id}", headers=RECEIVER)
    assert r.status_code == 200, r.text
    task: dict[str, Any] = r.json()
    return task


async def held_is(vaxjo: Member, task_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def there() -> bool:
        async with vaxjo.referral_db.sessionmaker() as s:
            if await s.get(Incoming, task_id) is None:
                return False
        found.update(await held(vaxjo, task_id))
        return bool(found["status"] == status)

    await eventually(there, within=30, what=f"{status} at the kommun")
    return found


async def asked(pair: Pair) -> tuple[str, str]:
    """A kontaktbegäran the kommun acknowledged and asked about, the question arrived at
    the region; (referral, task)."""
    person, _ = await with_copy(pair)
    referral_id, task_id = await send(pair.region, person)
    await held_is(pair.vaxjo, task_id, "delivered")
    assert (await step(pair.vaxjo, task_id, RECEIVER, to="acknowledged")).status_code == 200
    r = await step(pair.vaxjo, task_id, RECEIVER, to="information_requested", question=QUESTION)
    assert r.status_code == 200, r.text
    await mirror_is(pair.region, referral_id, "information_requested")
    return referral_id, task_id


async def answer(
    region: Member,
    referral_id: str,
    task_id: str,
    body: dict[str, Any],
    headers: dict[str, str] = SENDER,
    *,
    version: int | None = None,
    key: str | None = None,
) -> httpx.Response:
    """The answer to the kommun's question, with the mirror's current version."""
    if version is None:
        version = int((await mirror(region, referral_id))["version"])
    more = {"If-Match": f'"{version}"'} | ({"Idempotency-Key": key} if key else {})
    async with region.referral() as c:
        return await c.post(
            f"/v1/referrals/{referral_id}/recipients/{task_id}/information",
            json=body,
            headers={**headers, **more},
        )


async def history(member: Member, task_id: str, headers: dict[str, str]) -> list[str]:
    async with member.referral() as c:
        r = await c.get(f"/v1/tasks/{task_id}/history", headers=headers)
    assert r.status_code == 200, r.text
    return [f"{h['actor']}:{h['to_status']}" for h in r.json()]


async def outbox_of(member: Member, event_type: str) -> int:
    ob = REFERRAL.infra.outbox
    async with member.referral_db.sessionmaker() as s:
        n = await s.scalar(
            select(func.count()).select_from(ob).where(ob.c.event_type == event_type)
        )
    return int(n or 0)


class TestAKomplettering:
    async def test_the_kommun_asks_the_region_answers_and_the_kommun_goes_on_to_complete(
        self, members: Pair, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="vardkedja")
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)

        # The kommun's task waits: the question is on it, and it may only decline now.
        task = await held(vaxjo, task_id)
        assert task["status"] == "information_requested"
        assert task["allowed_transitions"] == ["declined"]
        [round_] = task["komplettering"]
        assert (round_["round"], round_["question"], round_["answer"]) == (1, QUESTION, None)
        assert task["reason"] is None  # the question is not a reason
        # The region sees it with its own day to answer by (its member's policy).
        seen = await mirror(region, referral_id)
        [there] = seen["komplettering"]
        assert there["question"] == QUESTION
        asked_on = to_local(dt.datetime.fromisoformat(there["asked_at"])).date()
        settings = region.referral_app.state.ctx.settings
        assert (
            seen["information_by"]
            == komplettering.information_by(settings, "normal", asked_on).isoformat()
        )

        # The region answers with a text and a document; a retry replays the answer.
        document = await uploaded(region, pdf(300))
        body = {"text": ANSWER, "attachment_ids": [document]}
        r = await answer(region, referral_id, task_id, body, key="komplettering-1")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "acknowledged"
        assert out["information_by"] is None
        assert out["komplettering"][0]["answer"] == ANSWER
        assert out["komplettering"][0]["attachment_ids"] == [document]
        assert r.headers["ETag"] == f'"{out["version"]}"'
        again = await answer(
            region, referral_id, task_id, body, version=out["version"] - 1, key="komplettering-1"
        )
        assert again.json() == out
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await outbox_of(region, REFERRAL_INFORMATION_SUPPLIED_V1) == 1

        # The kommun sees the answer and its document, and holds the task again.
        task = await held_is(vaxjo, task_id, "acknowledged")
        [round_] = task["komplettering"]
        assert (round_["answer"], round_["attachment_ids"]) == (ANSWER, [document])
        assert round_["answered_at"] is not None

        async def document_there() -> bool:
            return [d["id"] for d in (await held(vaxjo, task_id))["documents"]] == [document]

        await eventually(document_there, within=30, what="the answer's document at the kommun")
        assert "accepted" in task["allowed_transitions"]
        for body in (
            {"to": "accepted"},
            {"to": "completed", "outcome": "Boendestöd beviljat.", "result": GRANTED},
        ):
            r = await step(vaxjo, task_id, RECEIVER, **body)
            assert r.status_code == 200, r.text
        assert r.json()["result"] == {**GRANTED, "text": None}

        # The region sees the structured result with the outcome.
        done = await mirror_is(region, referral_id, "completed")
        assert (done["outcome"], done["result"]) == (
            "Boendestöd beviljat.",
            {**GRANTED, "text": None},
        )
        assert done["komplettering"][0]["answer"] == ANSWER
        # Both histories show the question and the answer as steps.
        assert await history(vaxjo, task_id, RECEIVER) == [
            "system:delivered",
            "holder:acknowledged",
            "holder:information_requested",
            "sender:acknowledged",
            "holder:accepted",
            "holder:completed",
        ]
        assert await history(region, task_id, SENDER) == [
            "sender:sent",
            "system:delivered",
            "holder:acknowledged",
            "holder:information_requested",
            "sender:acknowledged",
            "system:acknowledged",  # the kommun confirms the answer
            "holder:accepted",
            "holder:completed",
        ]
        # Neither the question nor the answer reached a log line.
        assert caplog.records
        assert QUESTION not in caplog.text
        assert ANSWER not in caplog.text

    async def test_a_decline_states_its_result_and_the_region_sees_it(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)
        result = {"decision": "referred_on", "text": "Hänvisad till Alvesta kommun."}
        # No answer came: the kommun declines the waiting task.
        r = await step(
            vaxjo, task_id, RECEIVER, to="declined", reason="Bor i Alvesta.", result=result
        )
        assert r.status_code == 200, r.text
        declined = await mirror_is(region, referral_id, "declined")
        assert declined["reason"] == "Bor i Alvesta."
        assert declined["result"] == {**result, "intervention": None, "started_on": None}
        # The question stays unanswered, and the region can answer no more.
        assert declined["komplettering"][0]["answered_at"] is None
        late = await answer(region, referral_id, task_id, {"text": ANSWER})
        refused = problem(late, 409, "transition-not-allowed")
        assert "allowed for the sender: none" in refused["detail"]
        assert "allowed" not in refused  # no step left


class TestTheClocks:
    async def test_the_kommun_waits_unchased_the_region_is_chased_the_wait_moves_answer_by(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)
        seen = await mirror(region, referral_id)
        answer_by = dt.date.fromisoformat((await held(vaxjo, task_id))["answer_by"])
        info_by = dt.date.fromisoformat(seen["information_by"])
        far = info_by + dt.timedelta(days=30)

        # The kommun's task is overdue for nothing while it waits, however late.
        assert await check(vaxjo, far) == []
        assert (await held(vaxjo, task_id))["overdue"] is False
        async with vaxjo.referral() as c:
            r = await c.get("/v1/incoming?overdue=any", headers=RECEIVER)
        assert r.json()["items"] == []
        # The region's own deadline: reminded as it comes near, alerted once it has passed.
        near = add_working_days(info_by, 0) - dt.timedelta(days=1)
        assert await check(region, near) == [
            (task_id, REGION_BEROENDE, "information", "near", "actor")
        ]
        passed = info_by + dt.timedelta(days=1)
        assert await check(region, passed) == [
            (task_id, REGION_BEROENDE, "information", "overdue", "actor")
        ]
        assert await check(region, far) == []  # once; and no alert of the kommun's answer
        async with region.referral() as c:
            r = await c.get("/v1/outgoing?overdue=information", headers=SENDER)
        assert [i["id"] for i in r.json()["items"]] == []  # not yet, today

        # The question was asked three working days ago (on both sides).
        today = to_local(dt.datetime.now(dt.UTC)).date()
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
        for member, model in ((vaxjo, Incoming), (region, Recipient)):
            async with member.referral_db.transaction() as s:
                row = await s.get(model, task_id)
                assert row is not None
                row.komplettering = [{**row.komplettering[0], "asked_at": earlier.isoformat()}]
        waited = working_days_between(to_local(earlier).date(), today)
        assert waited > 0
        sender_answer_by = dt.date.fromisoformat(seen["answer_by"])

        r = await answer(region, referral_id, task_id, {"text": ANSWER})
        assert r.status_code == 200, r.text
        # Each side's answer_by moved on by the working days it waited.
        assert r.json()["answer_by"] == add_working_days(sender_answer_by, waited).isoformat()
        task = await held_is(vaxjo, task_id, "acknowledged")
        assert task["answer_by"] == add_working_days(answer_by, waited).isoformat()
        # The region's deadline is met: notify cancels what it has pending, nothing more.
        events = await deadline_events(region)
        assert (task_id, REGION_BEROENDE, "information", "met", "actor") in events
        assert [e for e in await check(region, far) if e[2] == "information"] == []


class TestRefusedAnswers:
    async def test_another_unit_a_task_not_waiting_and_bad_input_store_nothing(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)
        before = await mirror(region, referral_id)

        # Another unit of the region: 403 with its rule, before anything is read of it.
        r = await answer(region, referral_id, task_id, {"text": ANSWER}, OTHER_UNIT)
        problem(r, 403, "not-the-sender")
        assert ANSWER not in r.text
        # The wrong referral: 404; bad input: 422 naming field and rule.
        r = await answer(
            region, "no-such-referral", task_id, {"text": ANSWER}, version=before["version"]
        )
        problem(r, 404, "referral-not-found")
        r = await answer(region, referral_id, task_id, {})
        assert field_rules(problem(r, 422)) == {"body": "answer_required"}
        r = await answer(region, referral_id, task_id, {"attachment_ids": ["no-such-upload"]})
        assert field_rules(problem(r, 422)) == {"attachment_ids.0": "unknown_attachment"}
        # No If-Match: 428.
        async with region.referral() as c:
            r = await c.post(
                f"/v1/referrals/{referral_id}/recipients/{task_id}/information",
                json={"text": ANSWER},
                headers=SENDER,
            )
        problem(r, 428)
        assert await mirror(region, referral_id) == before
        assert await outbox_of(region, REFERRAL_INFORMATION_SUPPLIED_V1) == 0

        # Answered once; a second answer finds the task no longer waiting: 409 naming the
        # steps the sender may take.
        assert (await answer(region, referral_id, task_id, {"text": ANSWER})).status_code == 200
        r = await answer(region, referral_id, task_id, {"text": "Igen."})
        body = problem(r, 409, "transition-not-allowed")
        assert body["allowed"] == ["withdrawn"]
        assert "withdrawn" in body["detail"]

        # The kommun: a question is required to ask, and a result to complete or decline.
        await held_is(vaxjo, task_id, "acknowledged")
        version = (await held(vaxjo, task_id))["version"]
        r = await step(vaxjo, task_id, RECEIVER, to="information_requested")
        assert field_rules(problem(r, 422)) == {"question": "question_required"}
        r = await step(vaxjo, task_id, RECEIVER, to="declined", reason="Nej.")
        assert field_rules(problem(r, 422)) == {"result": "result_required"}
        r = await step(vaxjo, task_id, RECEIVER, to="declined", reason="Nej.", result=GRANTED)
        assert field_rules(problem(r, 422)) == {"result.decision": "granted_only_when_completing"}
        r = await step(
            vaxjo,
            task_id,
            RECEIVER,
            to="declined",
            reason="Nej.",
            result={"decision": "refused", "started_on": "2026-12-01"},
        )
        assert field_rules(problem(r, 422)) == {"result": "started_on_needs_intervention"}
        assert (await held(vaxjo, task_id))["version"] == version


def supplied(sender: str, task_id: str, referral_id: str, round_: int = 1) -> CloudEvent:
    """An answer to a question as ``sender``'s referral service would write it."""
    payload = ReferralInformationSuppliedV1(
        task_id=task_id,
        referral_id=referral_id,
        kind="kontaktbegaran",
        by_orgnr=sender,
        by_unit_id=REGION_BEROENDE,
        round=round_,
        answer="Förfalskat svar.",
        at=dt.datetime.now(dt.UTC),
    )
    return CloudEvent(
        source=f"urn:vardkedja:{sender.replace('-', '')}:referral",
        type=REFERRAL_INFORMATION_SUPPLIED_V1,
        subject=task_id,
        partitionkey=task_id,
        data=payload.model_dump(mode="json"),
    )


class TestHostileAnswers:
    async def test_an_answer_from_another_member_or_to_no_open_question_is_dead_lettered(
        self, members: Pair
    ) -> None:
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)
        person, _ = await with_copy(members)
        other_referral, not_asked = await send(region, person)
        await held_is(vaxjo, not_asked, "delivered")
        forged = [
            # Alvesta, signing as itself, answers the region's task.
            supplied(ORG_ALVESTA, task_id, referral_id),
            # The region's own, to a task that asked nothing, to a round never asked, and of
            # another referral.
            supplied(ORG_REGION, not_asked, other_referral),
            supplied(ORG_REGION, task_id, referral_id, round_=2),
            supplied(ORG_REGION, task_id, other_referral),
            supplied(ORG_REGION, "no-such-task", referral_id),
        ]
        bootstrap = region.referral_app.state.settings.kafka.bootstrap_servers
        await produce_raw(bootstrap, [signed(e, topics.inbound(ORG_VAXJO)) for e in forged])

        async def all_refused() -> bool:
            return len(await dead_letters(vaxjo)) == len(forged)

        await eventually(all_refused, within=30, what="every forged answer dead-lettered")
        reasons = {d["event_id"]: d["reason"] for d in await dead_letters(vaxjo)}
        assert [reasons[e.id] for e in forged] == [
            "sender_not_owner",
            "not_awaiting_information",
            "stale_round",
            "not_owner",
            "unknown_task",
        ]
        # Nothing of them is stored: the task still waits, its question unanswered.
        task = await held(vaxjo, task_id)
        assert task["status"] == "information_requested"
        assert task["komplettering"][0]["answer"] is None
        assert (await held(vaxjo, not_asked))["komplettering"] == []
        # The region's genuine answer still goes through.
        assert (await answer(region, referral_id, task_id, {"text": ANSWER})).status_code == 200
        assert (await held_is(vaxjo, task_id, "acknowledged"))["komplettering"][0][
            "answer"
        ] == ANSWER


class TestTheIndicators:
    async def test_rounds_per_kind_and_the_decisions_of_kontaktbegaran(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        referral_id, task_id = await asked(members)
        assert (await answer(region, referral_id, task_id, {"text": ANSWER})).status_code == 200
        await held_is(vaxjo, task_id, "acknowledged")
        r = await step(
            vaxjo,
            task_id,
            RECEIVER,
            to="information_requested",
            question="Och vem är kontaktperson?",
        )
        assert r.status_code == 200, r.text
        r = await step(
            vaxjo,
            task_id,
            RECEIVER,
            to="declined",
            reason="Inget svar.",
            result={"decision": "person_declined"},
        )
        assert r.status_code == 200, r.text
        await mirror_is(region, referral_id, "declined")
        today = to_local(dt.datetime.now(dt.UTC)).date().isoformat()
        period = f"from={today}&to={today}"
        reader = auth(ORG_REGION, REGION_BEROENDE, ["referral:read"])
        async with region.referral() as c:
            data = (await c.get(f"/v1/indicators?{period}", headers=reader)).json()
            csv = (await c.get(f"/v1/indicators?{period}&format=csv", headers=reader)).text
        sent = data["outgoing"]["kontaktbegaran"]
        assert (sent["komplettering_rounds"], sent["with_komplettering"]) == (2, 1)
        assert data["kontaktbegaran_decisions"] == {"person_declined": 1}
        assert "komplettering_rounds,outgoing,kontaktbegaran,2" in csv
        assert "kontaktbegaran_decision_person_declined,outgoing,kontaktbegaran,1" in csv
        async with vaxjo.referral() as c:
            theirs = (
                await c.get(
                    f"/v1/indicators?{period}", headers=auth(ORG_VAXJO, None, ["referral:read"])
                )
            ).json()
        received = theirs["incoming"]["kontaktbegaran"]
        assert (received["komplettering_rounds"], received["with_komplettering"]) == (2, 1)
        # Aggregates only: no question, answer or person in them.
        assert QUESTION not in str(data) + csv
