"""Scenario 6: events of one case delivered shuffled, to the real handlers.

Kafka keeps one key's records in order, so shuffling needs an outside hand: the test stops
the consuming worker (cleanly), lets the events be written in order, resets the worker's
consumer group to the end of its topic (skipping the originals, as an operator can), puts
the same records (from the senders' outboxes: same ids, bodies and headers) on the topic
again in another order, and starts the worker again. The services' handlers run unchanged.

Cases (each case is one consent or one task, i.e. one key):

a. **Consent copies at Växjö** (``services.consent.copies.apply_consent_recorded`` /
   ``apply_consent_ended``, versioned): Region records consents and withdraws each; half
   of the cases are delivered in order, half reversed (the withdrawal first).
b. **An arriving referral at Växjö** (``receive_referral`` / ``apply_withdrawal``): Region
   sends a kontaktbegäran and withdraws it at once; half in order, half reversed.
c. **The receiver's reports at Region** (``apply_reported_transition``, with
   ``receiver_version``): Växjö moves each task delivered -> acknowledged -> accepted ->
   in_progress -> completed; the five reports reach Region in a random order per task.
d. **A stale report after the sender's own step**: Växjö files a referral and reports
   ``delivered`` while Region's referral worker is down; meanwhile Region withdraws it;
   then the worker reads the (older) ``delivered`` report (no shuffling needed: the
   ordinary race between a sender's step and the receiver's report).

Promise 3: a stale or out-of-order event never rolls state back. After everything is
consumed, each case's state must be the one its newest event says (the owner's status for
(a), withdrawn or never filed for (b), completed at version 5 for (c), withdrawn for (d)),
and no history step may leave a final status. Figures: cases per part, how many were
delivered out of order, and how many ended in the wrong state or rolled back.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.consent.models import Consent, ConsentCopy
from services.referral.codes import FINAL
from services.referral.models import Incoming, Recipient, Transition
from shared.messaging.events import topics
from shared.messaging.kafka import OutgoingRecord
from shared.service import load_spec
from tests.e2e.test_referral_federation import kontaktbegaran, synthetic_person
from tests.helpers.harness import eventually
from tests.reliability.conftest import FEDERATION_BACKEND, SharedFederation
from tests.reliability.fed import (
    ORG_REGION,
    ORG_VAXJO,
    Site,
    auth,
    group_of,
    pause,
    record_consent,
    resume,
    start,
    stopped,
)
from tests.reliability.report import report, scaled
from tests.reliability.tools import (
    commit_group,
    committed_total,
    log_ends,
    outbox_records,
    produce_raw,
    query,
    read_all,
    settle,
)
from vardkedja.federation import Federation

pytestmark = pytest.mark.e2e

CONSENT_OUTBOX = load_spec("consent").infra.outbox
REFERRAL_OUTBOX = load_spec("referral").infra.outbox
REFERRAL_RW = ["referral:read", "referral:write"]
TRANSITIONED = "se.vardkedja.referral.transitioned.v1"
SENT = "se.vardkedja.referral.sent.v1"
FINAL_STATUSES = {s.value for s in FINAL}
LIFECYCLE = ["acknowledged", "accepted", "in_progress", "completed"]


def _db(fed: Federation, orgnr: str, service: str) -> str:
    return fed.database_url_for[(orgnr, service)]


async def _unsent(db_url: str, outbox: Any) -> int:
    q = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
    [(n,)] = await query(db_url, q)
    return int(n)


def _by_key(records: list[OutgoingRecord]) -> dict[bytes, list[OutgoingRecord]]:
    out: dict[bytes, list[OutgoingRecord]] = {}
    for r in records:
        out.setdefault(r.key or b"", []).append(r)
    return out


async def _skip_to_end(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    ends = log_ends(await read_all(bootstrap, topic, quiet=0.5))
    await commit_group(bootstrap, group, topic, ends)
    return ends


class TestShuffledEventsNeverRollStateBack:
    async def test_each_case_ends_in_the_state_of_its_newest_event(
        self, shared_federation: SharedFederation
    ) -> None:
        sf = shared_federation
        fed, bootstrap = sf.fed, sf.broker.bootstrap
        rng = random.Random()
        n = scaled(4, minimum=2, env="VK_RELIABILITY_SHUFFLED_CASES")
        sender = auth(ORG_REGION, sf.sender_unit, REFERRAL_RW)
        receiver = auth(ORG_VAXJO, sf.intake, REFERRAL_RW)
        consent_writer = auth(ORG_REGION, sf.sender_unit, ["consent:read", "consent:write"])
        recipients = [{"orgnr": ORG_VAXJO, "unit_id": sf.intake}]
        region_ref, vaxjo_ref = _db(fed, ORG_REGION, "referral"), _db(fed, ORG_VAXJO, "referral")
        async with httpx.AsyncClient(timeout=30) as client:
            region, vaxjo = Site(client, fed.members[0]), Site(client, fed.members[1])
            person = synthetic_person(6000)
            await record_consent(client, fed, person, sf.sender_unit)

            async def send(key: str) -> dict[str, Any]:
                body = kontaktbegaran(person, resolve=None, recipients=recipients)
                r = await region.post(
                    "referral", "/v1/referrals", body, {**sender, "Idempotency-Key": key}
                )
                assert r.status_code == 201, r.text
                [task] = r.json()["recipients"]
                return {**task, "referral_id": r.json()["id"]}

            async def withdraw(task: dict[str, Any]) -> None:
                g = await region.get("referral", f"/v1/referrals/{task['referral_id']}", sender)
                [mine] = g.json()["recipients"]
                r = await region.post(
                    "referral",
                    f"/v1/referrals/{task['task_id']}/withdraw",
                    {"reason": "Personen vill inte längre."},
                    {**sender, "If-Match": f'"{mine["version"]}"'},
                )
                assert r.status_code == 200, r.text

            async def mirror(task_id: str) -> Any:
                [row] = await query(
                    region_ref,
                    select(Recipient.status, Recipient.remote_version).where(
                        Recipient.id == task_id
                    ),
                )
                return row

            # (c) tasks delivered and reported back, all in order.
            lifecycle = [await send(f"s6-c-{i}-{rng.random()}") for i in range(n)]

            async def delivered() -> bool:
                rows = [await mirror(t["task_id"]) for t in lifecycle]
                return all(r.remote_version >= 1 for r in rows)

            await eventually(delivered, within=90, what="(c) delivered and reported")

            # (d) sent while Växjö's referral worker stalls, so its report comes later.
            vaxjo_worker = fed.find(ORG_VAXJO, "referral", "worker")
            pause(vaxjo_worker)
            stale = await send(f"s6-d-{rng.random()}")

            async def published() -> bool:
                return await _unsent(region_ref, REFERRAL_OUTBOX) == 0

            await eventually(published, within=60, what="(d) published by Region")
            await stopped(fed, fed.find(ORG_REGION, "referral", "worker"))
            resume(vaxjo_worker)

            async def filed() -> bool:
                got = await query(
                    vaxjo_ref, select(Incoming.id).where(Incoming.id == stale["task_id"])
                )
                return bool(got) and await _unsent(vaxjo_ref, REFERRAL_OUTBOX) == 0

            await eventually(filed, within=60, what="(d) filed at Växjö, its report sent")
            await withdraw(stale)  # Region has not seen the delivered report yet

            # (c) Växjö moves each task through its lifecycle; the reports queue at Region.
            for task in lifecycle:
                path = f"/v1/incoming/{task['task_id']}"
                etag = (await vaxjo.get("referral", path, receiver)).headers["ETag"]
                for to in LIFECYCLE:
                    step: dict[str, Any] = {"to": to}
                    if to == "completed":
                        step["outcome"] = "Boendestöd beviljat."
                        step["result"] = {"decision": "granted", "intervention": "boendestod"}
                    r = await vaxjo.post(
                        "referral", f"{path}/transitions", step, {**receiver, "If-Match": etag}
                    )
                    assert r.status_code == 200, r.text
                    etag = r.headers["ETag"]

            async def reported() -> bool:
                return await _unsent(vaxjo_ref, REFERRAL_OUTBOX) == 0

            await eventually(reported, within=60, what="(c) reports published by Växjö")

            # (b) sent and withdrawn at once while Region's relay is down (the events wait
            # in its outbox; the test delivers them).
            await stopped(fed, vaxjo_worker)
            arriving = []
            for i in range(n):
                task = await send(f"s6-b-{i}-{rng.random()}")
                await withdraw(task)
                arriving.append(task)

            # (a) consents recorded and withdrawn while Växjö's consent worker is stopped.
            await stopped(fed, fed.find(ORG_VAXJO, "consent", "worker"))
            consents = []
            for i in range(n):
                cid = await record_consent(
                    client, fed, synthetic_person(6100 + i), sf.sender_unit, wait=False
                )
                r = await region.post(
                    "consent",
                    f"/v1/consents/{cid}/withdraw",
                    {"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
                    consent_writer,
                )
                assert r.status_code == 200, r.text
                consents.append(cid)
            region_consent = _db(fed, ORG_REGION, "consent")

            async def consents_published() -> bool:
                return await _unsent(region_consent, CONSENT_OUTBOX) == 0

            await eventually(consents_published, within=60, what="(a) published by Region")

        # Skip what the stopped workers have not read, then deliver it shuffled.
        inbound_v, inbound_r = topics.inbound(ORG_VAXJO), topics.inbound(ORG_REGION)
        await _skip_to_end(bootstrap, group_of(ORG_VAXJO, "consent", "inbound"), inbound_v)
        await _skip_to_end(bootstrap, group_of(ORG_VAXJO, "referral", "inbound"), inbound_v)
        await _skip_to_end(bootstrap, group_of(ORG_REGION, "referral", "inbound"), inbound_r)
        shuffled: list[OutgoingRecord] = []
        out_of_order = Counter[str]()
        consent_events = _by_key(
            await outbox_records(region_consent, CONSENT_OUTBOX, topic=inbound_v)
        )
        for i, cid in enumerate(consents):
            events = consent_events[cid.encode()]
            assert len(events) == 2
            if i % 2 == 0:
                events = events[::-1]
                out_of_order["a"] += 1
            shuffled += events
        referral_events = _by_key(
            await outbox_records(region_ref, REFERRAL_OUTBOX, topic=inbound_v)
        )
        for i, task in enumerate(arriving):
            events = referral_events[task["task_id"].encode()]
            assert len(events) == 2
            if i % 2 == 0:
                events = events[::-1]
                out_of_order["b"] += 1
            shuffled += events
        reports = _by_key(
            await outbox_records(vaxjo_ref, REFERRAL_OUTBOX, topic=inbound_r, types=[TRANSITIONED])
        )
        back: list[OutgoingRecord] = []
        for task in lifecycle:
            events = list(reports[task["task_id"].encode()])
            assert len(events) == 5
            while events == sorted(events, key=reports[task["task_id"].encode()].index):
                rng.shuffle(events)
            out_of_order["c"] += 1
            back += events
        back += reports[stale["task_id"].encode()]  # (d): in order, only late
        await produce_raw(bootstrap, shuffled + back)
        start(fed, ORG_VAXJO, "consent", "worker")
        start(fed, ORG_VAXJO, "referral", "worker")
        start(fed, ORG_REGION, "referral", "worker")

        ids_a = list(consents)
        ids_b = [t["task_id"] for t in arriving]
        ids_c = [t["task_id"] for t in lifecycle]

        async def consumed() -> bool:
            for group, topic in (
                (group_of(ORG_VAXJO, "consent", "inbound"), inbound_v),
                (group_of(ORG_VAXJO, "referral", "inbound"), inbound_v),
                (group_of(ORG_REGION, "referral", "inbound"), inbound_r),
            ):
                ends = log_ends(await read_all(bootstrap, topic, quiet=0.3))
                got = await committed_total(bootstrap, group, topic)
                if any(got[p] < e for p, e in ends.items()):
                    return False
            unsent = [
                await _unsent(region_ref, REFERRAL_OUTBOX),
                await _unsent(vaxjo_ref, REFERRAL_OUTBOX),
            ]
            return not any(unsent) and (await mirror(stale["task_id"])).remote_version >= 2

        settled, settle_s = await settle(consumed, within=120, every=1.0)
        await asyncio.sleep(1.0)  # the last confirmations reach their handlers

        copies = {
            r.consent_id: r.status
            for r in await query(
                _db(fed, ORG_VAXJO, "consent"),
                select(ConsentCopy.consent_id, ConsentCopy.status).where(
                    ConsentCopy.consent_id.in_(ids_a)
                ),
            )
        }
        owners = {
            r.id: r.status
            for r in await query(
                region_consent, select(Consent.id, Consent.status).where(Consent.id.in_(ids_a))
            )
        }
        wrong_a = [c for c in ids_a if copies.get(c) != owners[c]]
        held = {
            r.id: r.status
            for r in await query(
                vaxjo_ref, select(Incoming.id, Incoming.status).where(Incoming.id.in_(ids_b))
            )
        }
        wrong_b = [t for t in ids_b if t in held and held[t] != "withdrawn"]
        mirrors = {t: await mirror(t) for t in [*ids_c, stale["task_id"]]}
        wrong_c = [
            t for t in ids_c if (mirrors[t].status, mirrors[t].remote_version) != ("completed", 5)
        ]
        steps = await query(
            region_ref,
            select(Transition.task_id, Transition.from_status, Transition.to_status).where(
                Transition.task_id.in_([*ids_c, stale["task_id"]]), Transition.side == "sender"
            ),
        )
        rollbacks = [
            f"{r.from_status}->{r.to_status}"
            for r in steps
            if r.from_status in FINAL_STATUSES and r.to_status != r.from_status
        ]
        figures = {
            "backend": FEDERATION_BACKEND,
            "a_consent_copies": {
                "cases": len(ids_a),
                "withdrawal_first": out_of_order["a"],
                "wrong_final_state": len(wrong_a),
                "wrong_states": sorted(Counter(copies.get(c) for c in wrong_a).items()),
            },
            "b_arriving_referrals": {
                "cases": len(ids_b),
                "withdrawal_first": out_of_order["b"],
                "never_filed": len(set(ids_b) - set(held)),
                "filed_and_open": len(wrong_b),
            },
            "c_reports_at_sender": {
                "cases": len(ids_c),
                "shuffled": out_of_order["c"],
                "wrong_final_state": len(wrong_c),
            },
            "d_stale_report_after_withdrawal": {
                "final": mirrors[stale["task_id"]].status,
            },
            "rollbacks_at_sender": dict(Counter(rollbacks)),
            "settled": settled,
            "settle_s": settle_s,
        }
        report("s6-shuffled", figures)
        assert settled, "the workers did not consume everything"
        assert not wrong_a, "a consent copy is not in the owner's state"
        assert not wrong_b, "a withdrawn referral is filed and open at the receiver"
        assert not wrong_c, "a sender's mirror is not at the receiver's newest report"
        assert not rollbacks, "the sender's mirror left a final status"
        assert mirrors[stale["task_id"]].status == "withdrawn"
