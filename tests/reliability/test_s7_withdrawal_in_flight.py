"""Scenario 7: a consent withdrawn while referrals are in flight.

Region Kronoberg's Beroendemottagningen POSTs kontaktbegäran resting on one written consent
to Växjö's intake at a steady rate (the shared two-member federation of processes). In the
middle of the stream Region's referral worker stalls (SIGSTOP) for a while, so referrals
accepted then wait in its outbox — in flight — and the person withdraws the consent at
Region's consent service. Then the worker continues and those referrals travel on. The
stream goes on after the withdrawal.

Zero disclosures after the withdrawal takes effect:

- a referral POSTed after the withdrawal was answered is refused at Region (accepted = 0);
- at Växjö nothing is filed that was POSTed after the withdrawal;
- nothing is filed after Växjö's copy of the consent says withdrawn (the receive-time
  check), and after everything settled no referral on the consent is open in Växjö's
  worklist (what was filed before is cancelled).

The second case is the same with Växjö's consent worker crashed (SIGKILL) just before the
withdrawal and started again 4 s after the stalled referrals travel on: the receiving
referral service hears of the withdrawal on its own, while its consent service's copy still
says active for a while.

Figures: accepted before / during / after the withdrawal, refused after, in flight at the
withdrawal, filed / refused (undeliverable) / cancelled at Växjö, disclosures after the
withdrawal (by the three rules above), and the propagation: seconds from the withdrawal's
answer to Växjö's copy saying withdrawn, and to the last referral on the consent being
closed at Växjö.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.consent.models import ChangeLogEntry
from services.referral.codes import OPEN_AT_RECEIVER
from services.referral.models import Incoming, Recipient, Transition
from tests.e2e.test_referral_federation import kontaktbegaran, synthetic_person
from tests.reliability.conftest import FEDERATION_BACKEND, SharedFederation
from tests.reliability.fed import (
    ORG_REGION,
    ORG_VAXJO,
    Site,
    auth,
    pause,
    record_consent,
    respawn,
    resume,
)
from tests.reliability.report import report, scaled
from tests.reliability.tools import query, settle

pytestmark = pytest.mark.e2e

REFERRAL_RW = ["referral:read", "referral:write"]
OPEN = {s.value for s in OPEN_AT_RECEIVER}


@dataclass
class Post:
    at: dt.datetime
    status: int = 0
    task_id: str | None = None


def _seconds(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


class TestConsentWithdrawnWhileReferralsAreInFlight:
    @pytest.mark.parametrize("case", ["receiver_up", "receiver_consent_worker_down"])
    async def test_nothing_is_disclosed_after_the_withdrawal(
        self, shared_federation: SharedFederation, case: str
    ) -> None:
        sf = shared_federation
        fed = sf.fed
        rate = 8.0
        seconds = scaled(6, minimum=4, env="VK_RELIABILITY_WITHDRAWAL_SECONDS")
        mid = seconds / 2
        posts: list[Post] = []
        sender = auth(ORG_REGION, sf.sender_unit, REFERRAL_RW)
        region_ref = fed.database_url_for[(ORG_REGION, "referral")]
        vaxjo_ref = fed.database_url_for[(ORG_VAXJO, "referral")]
        withdrawn: dict[str, dt.datetime] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            region = Site(client, fed.members[0])
            person = synthetic_person(7000 + (case == "receiver_up"))
            consent_id = await record_consent(client, fed, person, sf.sender_unit)
            body = kontaktbegaran(
                person, resolve=None, recipients=[{"orgnr": ORG_VAXJO, "unit_id": sf.intake}]
            )

            async def send(i: int) -> None:
                post = Post(at=dt.datetime.now(dt.UTC))
                posts.append(post)
                headers = {**sender, "Idempotency-Key": f"s7-{case}-{consent_id}-{i}"}
                r = await region.post("referral", "/v1/referrals", body, headers)
                post.status = r.status_code
                if r.status_code == 201:
                    post.task_id = r.json()["recipients"][0]["task_id"]

            async def stream() -> None:
                start, tasks = time.monotonic(), []
                for i in range(int(rate * seconds)):
                    await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                    tasks.append(asyncio.create_task(send(i)))
                await asyncio.gather(*tasks)

            async def withdrawal() -> None:
                start = time.monotonic()
                relay = fed.find(ORG_REGION, "referral", "worker")
                await asyncio.sleep(mid - 1.5)
                pause(relay)  # what is accepted from now on waits in Region's outbox
                if case == "receiver_consent_worker_down":
                    consent_worker = fed.find(ORG_VAXJO, "consent", "worker")
                    consent_worker.process.kill()
                await asyncio.sleep(max(0.0, start + mid - time.monotonic()))
                withdrawn["sent"] = dt.datetime.now(dt.UTC)
                r = await region.post(
                    "consent",
                    f"/v1/consents/{consent_id}/withdraw",
                    {"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}},
                    auth(ORG_REGION, sf.sender_unit, ["consent:read", "consent:write"]),
                )
                assert r.status_code == 200, r.text
                withdrawn["answered"] = dt.datetime.now(dt.UTC)
                await asyncio.sleep(1.0)
                resume(relay)  # the referrals in flight travel on
                if case == "receiver_consent_worker_down":
                    await asyncio.sleep(4.0)
                    await respawn(fed, consent_worker)

            await asyncio.gather(stream(), withdrawal())
            t_w = withdrawn["answered"]
            accepted = {p.task_id: p for p in posts if p.status == 201 and p.task_id}

            async def receiver_rows() -> tuple[dict[str, Any], dict[str, list[Any]]]:
                filed = {
                    r.id: r
                    for r in await query(
                        vaxjo_ref,
                        select(Incoming.id, Incoming.status, Incoming.received_at).where(
                            Incoming.consent_id == consent_id
                        ),
                    )
                }
                steps: dict[str, list[Any]] = {}
                for r in await query(
                    vaxjo_ref,
                    select(Transition.task_id, Transition.to_status, Transition.at)
                    .where(Transition.task_id.in_(list(accepted)))
                    .order_by(Transition.id),
                ):
                    steps.setdefault(r.task_id, []).append(r)
                return filed, steps

            consent_db = fed.database_url_for[(ORG_VAXJO, "consent")]

            async def copy_withdrawn() -> list[Any]:
                return await query(
                    consent_db,
                    select(ChangeLogEntry.occurred_at).where(
                        ChangeLogEntry.subject_id == consent_id,
                        ChangeLogEntry.action == "copy_withdrawn",
                    ),
                )

            async def settled() -> bool:
                _, steps = await receiver_rows()
                mirror = await query(
                    region_ref,
                    select(Recipient.id, Recipient.status).where(Recipient.id.in_(list(accepted))),
                )
                answered = all(t in steps for t in accepted)  # filed or refused at Växjö
                reported = all(s != "sent" for _, s in mirror)
                return answered and reported and bool(await copy_withdrawn())

            ok, drain_s = await settle(settled, within=120)
            await asyncio.sleep(1.0)  # cancellations that follow a filing
            filed, steps = await receiver_rows()
            copy_log = await copy_withdrawn()

        copy_withdrawn_at = min((r.occurred_at for r in copy_log), default=None)
        before = [p for p in accepted.values() if p.at < withdrawn["sent"]]
        during = [p for p in accepted.values() if withdrawn["sent"] <= p.at <= t_w]
        after = [p for p in posts if p.at > t_w]
        accepted_after = [p for p in after if p.status == 201]
        outcome = Counter(s[-1].to_status for t, s in steps.items() if t in accepted)
        filed_late = [
            t
            for t, r in filed.items()
            if copy_withdrawn_at is not None and r.received_at > copy_withdrawn_at
        ]
        open_now = [t for t, r in filed.items() if r.status in OPEN]
        closed_at = [
            s.at
            for rows in steps.values()
            for s in rows
            if s.to_status in ("cancelled", "undeliverable")
        ]
        figures = {
            "backend": FEDERATION_BACKEND,
            "case": case,
            "posts": len(posts),
            "accepted_before_withdrawal": len(before),
            "accepted_during_withdrawal": len(during),
            "accepted_after_withdrawal": len(accepted_after),
            "refused_after_withdrawal": dict(Counter(p.status for p in after if p.status != 201)),
            "in_flight_at_withdrawal": sum(
                1 for t in accepted if t not in filed or filed[t].received_at > t_w
            ),
            "at_receiver": dict(outcome),
            "disclosures_after_withdrawal": {
                "posted_after_and_filed": sum(1 for p in accepted_after if p.task_id in filed),
                "filed_after_receiver_copy_withdrawn": len(filed_late),
                "open_at_receiver_after_settling": len(open_now),
            },
            "propagation_s": {
                "withdrawal_to_receiver_copy": _seconds(t_w, copy_withdrawn_at),
                "withdrawal_to_last_closed_at_receiver": _seconds(
                    t_w, max(closed_at, default=None)
                ),
            },
            "settled": ok,
            "drain_s": drain_s,
        }
        report("s7-withdrawal-in-flight", figures, variant=case)
        assert before, "referrals were accepted before the withdrawal"
        assert not accepted_after, "Region accepted a referral after the withdrawal"
        assert ok, "not every accepted referral was answered by Växjö"
        assert not filed_late, "Växjö filed a referral after its copy said withdrawn"
        assert not open_now, "a referral on the withdrawn consent is open in Växjö's worklist"
