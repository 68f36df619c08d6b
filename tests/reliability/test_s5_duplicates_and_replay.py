"""Scenario 5: duplicates injected, and a full replay of a topic from offset 0.

Two parts, both over real processes and the real broker:

1. **The harness** (exact counts): its outbox's events are put on the topic by the test
   instead of the relay, each one 1-3 times, the copies at random later places (as a
   producer that resent, or a replay, would). A consumer process
   (``tests.helpers.consumer_proc``) applies them; then the whole topic is read again from
   offset 0 twice: by a new consumer group, and by the first group after its offsets were
   reset to 0 (an operator's reset). Every effect exactly once; every other delivery is
   counted as a duplicate by the consumer that dropped it.
2. **The consent service** (real handlers): Region records consents naming Växjö and
   withdraws half of them; Växjö's consent worker keeps its copies. Then every event on
   Växjö's inbound topic is produced again 1-3 times, Växjö's consent worker is stopped,
   its group's offsets are reset to 0, and it is started again: it reads the whole topic
   (originals and copies) a second time. Each copy must still have been received once and
   withdrawn at most once (its change log), with the owner's status.

Figures: events, records delivered, copies per event, duplicates dropped per pass, effects
applied per pass, lost, duplicated effects, order inversions, seconds per pass.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.consent.models import ChangeLogEntry, Consent, ConsentCopy
from shared.messaging.broker import Broker
from shared.messaging.events import topics
from shared.messaging.kafka import OutgoingRecord, ensure_topics
from shared.service import load_spec
from tests.conftest import kafka_settings, make_settings
from tests.e2e.test_referral_federation import synthetic_person
from tests.helpers.harness import Harness, eventually, infra
from tests.integration.test_outbox_inbox import (
    _spawn_consumer,
    assert_in_order_once,
    new_topic,
)
from tests.reliability.conftest import FEDERATION_BACKEND, SharedFederation
from tests.reliability.fed import (
    ORG_REGION,
    ORG_VAXJO,
    Site,
    auth,
    consent_copy_status,
    group_of,
    record_consent,
    start,
    stopped,
)
from tests.reliability.report import report, scaled, seconds_since
from tests.reliability.tools import (
    commit_group,
    committed_total,
    copies_per_event,
    inversions,
    log_ends,
    outbox_records,
    per_key,
    produce_raw,
    query,
    read_all,
    stop_proc,
    wait_line,
)

pytestmark = pytest.mark.e2e

KEYS = [f"case-{i}" for i in range(4)]


def with_copies(records: list[OutgoingRecord], rng: random.Random) -> list[OutgoingRecord]:
    """Each record once in its place, plus 0-2 copies somewhere up to 20 places later."""
    placed: list[tuple[float, OutgoingRecord]] = []
    for i, rec in enumerate(records):
        placed.append((float(i), rec))
        placed += [(i + rng.uniform(0.01, 20), rec) for _ in range(rng.randint(0, 2))]
    return [rec for _, rec in sorted(placed, key=lambda p: p[0])]


async def _consume_all(
    db_url: str, bootstrap: str, topic: str, group: str, ends: dict[int, int]
) -> tuple[dict[str, int], float]:
    """Run a consumer process of ``group`` until it has committed the whole topic; its
    counts and the seconds it took."""
    t0 = time.monotonic()
    proc = _spawn_consumer(db_url, bootstrap, topic, group, "none")
    try:
        await wait_line(proc, "ready")  # its SIGTERM handler is in place

        async def done() -> bool:
            got = await committed_total(bootstrap, group, topic)
            return all(got[p] >= n for p, n in ends.items())

        await eventually(done, within=120, what=f"{group} at the end of {topic}")
    finally:
        counts: dict[str, int] = json.loads(stop_proc(proc))
    return counts, seconds_since(t0)


class TestDuplicatesAndReplay:
    async def test_every_event_1_to_3_times_then_replayed_twice_applies_once(
        self, broker: Broker, db_url: str, backend: str
    ) -> None:
        per_key_n = scaled(50, env="VK_RELIABILITY_DUPLICATE_EVENTS")
        topic = new_topic()
        h = await Harness(make_settings(db_url=db_url, bootstrap=broker.bootstrap), topic).setup()
        for seq in range(per_key_n):
            for key in KEYS:
                await h.write(key, seq)
        total = per_key_n * len(KEYS)
        originals = await outbox_records(db_url, infra.outbox, topic=topic)
        injected = with_copies(originals, random.Random())
        await ensure_topics(kafka_settings(broker.bootstrap), [topic])  # as the relay would
        await produce_raw(broker.bootstrap, injected)
        records = await read_all(broker.bootstrap, topic)
        ends = log_ends(records)
        copies = copies_per_event(records)

        group = f"g-{uuid.uuid4().hex[:6]}"
        first, first_s = await _consume_all(db_url, broker.bootstrap, topic, group, ends)
        after_first = await h.effects()
        fresh, fresh_s = await _consume_all(
            db_url, broker.bootstrap, topic, f"g-{uuid.uuid4().hex[:6]}", ends
        )
        await commit_group(broker.bootstrap, group, topic, dict.fromkeys(ends, 0))
        reset, reset_s = await _consume_all(db_url, broker.bootstrap, topic, group, ends)
        effects = await h.effects()
        figures = {
            "backend": backend,
            "events": total,
            "records_delivered": len(records),
            "copies_per_event": dict(sorted(Counter(copies.values()).items())),
            "passes": {
                "first": {"applied": first["applied"], "duplicates": first["duplicate"]},
                "new_group_from_0": {"applied": fresh["applied"], "duplicates": fresh["duplicate"]},
                "offsets_reset_to_0": {
                    "applied": reset["applied"],
                    "duplicates": reset["duplicate"],
                },
            },
            "lost": total - len(set(effects)),
            "duplicated_effects": len(effects) - len(set(effects)),
            "order_inversions": inversions(per_key(effects)),
            "seconds_per_pass": [first_s, fresh_s, reset_s],
        }
        report("s5-duplicates-replay", figures, variant=backend)
        assert len(records) > total, "some events were delivered more than once"
        assert_in_order_once(after_first, dict.fromkeys(KEYS, per_key_n))
        assert effects == after_first, "a replay changed nothing"
        assert (first["applied"], first["duplicate"]) == (total, len(records) - total)
        assert (fresh["applied"], fresh["duplicate"]) == (0, len(records))
        assert (reset["applied"], reset["duplicate"]) == (0, len(records))


class TestConsentCopiesUnderDuplicatesAndReplay:
    async def test_each_copy_received_once_and_withdrawn_at_most_once(
        self, shared_federation: SharedFederation
    ) -> None:
        fed, bootstrap = shared_federation.fed, shared_federation.broker.bootstrap
        n = scaled(6, minimum=2, env="VK_RELIABILITY_REPLAY_CONSENTS")
        unit = shared_federation.sender_unit
        region_db = fed.database_url_for[(ORG_REGION, "consent")]
        vaxjo_db = fed.database_url_for[(ORG_VAXJO, "consent")]
        writer = auth(ORG_REGION, unit, ["consent:read", "consent:write"])
        async with httpx.AsyncClient(timeout=30) as client:
            consents = [
                await record_consent(client, fed, synthetic_person(5000 + i), unit)
                for i in range(n)
            ]
            withdrawn = set(consents[::2])
            for consent_id in withdrawn:
                r = await Site(client, fed.members[0]).post(
                    "consent",
                    f"/v1/consents/{consent_id}/withdraw",
                    {"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
                    writer,
                )
                assert r.status_code == 200, r.text

            async def copies_current() -> bool:
                for c in consents:
                    want = "withdrawn" if c in withdrawn else "active"
                    if await consent_copy_status(client, fed, c) != want:
                        return False
                return True

            await eventually(copies_current, within=120, what="Växjö's copies up to date")

            # Duplicates: every record of Växjö's inbound topic once more, 1-3 times.
            topic = topics.inbound(ORG_VAXJO)
            ours = await outbox_records(region_db, load_spec("consent").infra.outbox, topic=topic)
            injected = with_copies(ours, random.Random())
            await produce_raw(bootstrap, injected)
            # A full replay: the worker stopped, its group's offsets reset to 0, started.
            t0 = time.monotonic()
            worker = fed.find(ORG_VAXJO, "consent", "worker")
            await stopped(fed, worker)
            group = group_of(ORG_VAXJO, "consent", "inbound")
            records = await read_all(bootstrap, topic)
            ends = log_ends(records)
            await commit_group(bootstrap, group, topic, dict.fromkeys(ends, 0))
            start(fed, ORG_VAXJO, "consent", "worker")

            async def replayed() -> bool:
                got = await committed_total(bootstrap, group, topic)
                return all(got[p] >= e for p, e in ends.items())

            await eventually(replayed, within=120, what="the replay of Växjö's inbound topic")
            replay_s = seconds_since(t0)
            still_current = await copies_current()

        ids = list(consents)
        log = await query(
            vaxjo_db,
            select(ChangeLogEntry.subject_id, ChangeLogEntry.action).where(
                ChangeLogEntry.subject_id.in_(ids)
            ),
        )
        actions: Counter[tuple[str, str]] = Counter((r.subject_id, r.action) for r in log)
        copies = {
            r.consent_id: r
            for r in await query(
                vaxjo_db,
                select(ConsentCopy.consent_id, ConsentCopy.status).where(
                    ConsentCopy.consent_id.in_(ids)
                ),
            )
        }
        owners = {
            r.id: r.status
            for r in await query(
                region_db, select(Consent.id, Consent.status).where(Consent.id.in_(ids))
            )
        }
        wrong: list[Any] = [c for c in ids if c not in copies or copies[c].status != owners[c]]
        figures = {
            "backend": FEDERATION_BACKEND,
            "consents": n,
            "withdrawn": len(withdrawn),
            "records_on_topic": len(records),
            "ours_injected_again": len(injected),
            "copy_received_per_consent": sorted(actions[(c, "copy_received")] for c in ids),
            "copy_withdrawn_per_withdrawn": sorted(
                actions[(c, "copy_withdrawn")] for c in withdrawn
            ),
            "lost": sum(1 for c in ids if actions[(c, "copy_received")] == 0),
            "duplicated_effects": sum(n - 1 for n in actions.values() if n > 1),
            "status_differs_from_owner": len(wrong),
            "replay_s": replay_s,
        }
        report("s5-duplicates-replay-consent", figures)
        assert figures["lost"] == 0
        assert figures["duplicated_effects"] == 0
        assert all(actions[(c, "copy_withdrawn")] == 1 for c in withdrawn)
        assert not wrong
        assert still_current
