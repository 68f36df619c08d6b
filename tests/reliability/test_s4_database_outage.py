"""Scenario 4: a database unavailable for a while, during requests and during consumption.

Region Kronoberg and Växjö kommun run their consent services (API and worker each a
process) over a broker of the test's own. Both members record consents at a steady rate,
each naming the other, so each member's worker keeps copies of the other's. Then Växjö's
consent database goes away for a while and comes back:

- **PostgreSQL**: the database stops taking connections (``ALTER DATABASE ... WITH
  ALLOW_CONNECTIONS false``) and every session on it is terminated
  (``pg_terminate_backend``); afterwards connections are allowed again.
- **SQLite**: another process holds the write lock (``BEGIN EXCLUSIVE``,
  ``tests.reliability.procs lock``) and lets go afterwards. Readers go on (WAL); writers
  wait, up to the driver's 30 s, so an outage shorter than that delays answers instead of
  failing them.

Requests to Växjö during the outage must get a clear answer: 2xx (stored), or 503 as
``application/problem+json`` (try again later); nothing half-stored (a refused request left
no consent; an accepted one is there afterwards). Consumption pauses and resumes: every
consent of Region gets exactly one copy at Växjö, and every consent of Växjö (kept in its
outbox while its database was away) reaches Region once.

Figures: requests by answer (during the outage and in all), answers that are neither 2xx
nor 503 problem+json, half-stored, accepted but missing, copies lost and duplicated in both
directions, and the seconds from the end of the outage to the first accepted request and
the first copy received at Växjö, and to drain.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.consent.models import ChangeLogEntry, Consent, ConsentCopy
from shared.messaging.broker import Broker
from shared.web.errors import PROBLEM_JSON
from tests.conftest import BACKENDS, PG_ADMIN_DSN
from tests.e2e.test_referral_federation import synthetic_person, written_consent
from tests.reliability.fed import ORG_REGION, ORG_VAXJO, Site, auth, running_federation
from tests.reliability.report import report, scaled
from tests.reliability.tools import query, settle, spawn, stop_proc, wait_line

pytestmark = pytest.mark.e2e


@dataclass
class Request:
    side: str
    ref: str
    at: dt.datetime
    status: int = 0
    content_type: str = ""
    answered: dt.datetime | None = None
    error: str | None = None


class Outage:
    """Makes one service database unavailable and available again."""

    def __init__(self, url: str, work: Path) -> None:
        self.url = url
        self.work = work
        self.holder: Any = None

    async def begin(self) -> None:
        if self.url.startswith("sqlite"):
            path = str(make_url(self.url).database)
            self.holder = spawn("tests.reliability.procs", "lock", path, log=self.work / "lock.log")
            await wait_line(self.holder, "locked")
            return
        name = self.url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()

    async def end(self) -> None:
        if self.url.startswith("sqlite"):
            await asyncio.to_thread(stop_proc, self.holder)
            return
        name = self.url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        finally:
            await admin.close()


def _clear(r: Request) -> bool:
    return 200 <= r.status < 300 or (r.status == 503 and r.content_type == PROBLEM_JSON)


class TestDatabaseOutage:
    @pytest.mark.parametrize("backend", BACKENDS)
    async def test_requests_get_clear_answers_and_consumption_resumes(
        self, private_broker: Broker, tmp_path: Path, backend: str
    ) -> None:
        rate = 4.0  # per member
        seconds = scaled(14, env="VK_RELIABILITY_DB_SECONDS")
        outage_from, outage_s = 3.0, 8.0
        requests: list[Request] = []
        window: dict[str, dt.datetime] = {}
        async with (
            running_federation(
                tmp_path, private_broker.bootstrap, backend=backend, services=("consent",)
            ) as fed,
            httpx.AsyncClient(timeout=90) as client,
        ):
            vaxjo_db = fed.database_url_for[(ORG_VAXJO, "consent")]
            region_db = fed.database_url_for[(ORG_REGION, "consent")]
            sites = {"region": Site(client, fed.members[0]), "vaxjo": Site(client, fed.members[1])}
            orgs = {"region": ORG_REGION, "vaxjo": ORG_VAXJO}
            outage = Outage(vaxjo_db, tmp_path)

            async def record(side: str, i: int) -> None:
                ref = f"s4-{side}-{i:04d}"
                req = Request(side, ref, dt.datetime.now(dt.UTC))
                requests.append(req)
                body = {**written_consent(synthetic_person(4000 + i)), "signed_form_reference": ref}
                headers = {
                    **auth(orgs[side], "mottagning", ["consent:read", "consent:write"]),
                    "Idempotency-Key": f"{ref}-{backend}",
                }
                try:
                    r = await sites[side].post("consent", "/v1/consents", body, headers)
                    req.status, req.content_type = r.status_code, r.headers.get("content-type", "")
                except httpx.HTTPError as exc:
                    req.error = type(exc).__name__
                req.answered = dt.datetime.now(dt.UTC)

            async def stream() -> None:
                start, tasks = time.monotonic(), []
                for i in range(int(rate * seconds)):
                    await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                    tasks += [asyncio.create_task(record(s, i)) for s in sites]
                await asyncio.gather(*tasks)

            async def fault() -> None:
                await asyncio.sleep(outage_from)
                await outage.begin()
                window["from"] = dt.datetime.now(dt.UTC)
                await asyncio.sleep(outage_s)
                await outage.end()
                window["to"] = dt.datetime.now(dt.UTC)

            await asyncio.gather(stream(), fault())
            accepted = {
                s: {r.ref for r in requests if r.side == s and 200 <= r.status < 300} for s in sites
            }

            async def copies(of: str) -> dict[str, Any]:
                """The copies the other member keeps of ``of``'s consents, by reference."""
                own_db, other_db = (
                    (region_db, vaxjo_db) if of == "region" else (vaxjo_db, region_db)
                )
                ids = {
                    r.id: r.signed_form_reference
                    for r in await query(own_db, select(Consent.id, Consent.signed_form_reference))
                }
                rows = await query(
                    other_db, select(ConsentCopy.consent_id, ConsentCopy.received_at)
                )
                return {ids[r.consent_id]: r.received_at for r in rows if r.consent_id in ids}

            async def drained() -> bool:
                for side in sites:
                    if not accepted[side] <= set(await copies(side)):
                        return False
                return True

            ok, drain_s = await settle(drained, within=45)
            stored = {
                side: {
                    r.signed_form_reference
                    for r in await query(db, select(Consent.signed_form_reference))
                }
                for side, db in (("region", region_db), ("vaxjo", vaxjo_db))
            }
            copied = {s: await copies(s) for s in sites}
            received = await query(
                vaxjo_db,
                select(ChangeLogEntry.subject_id, func.count())
                .where(ChangeLogEntry.action == "copy_received")
                .group_by(ChangeLogEntry.subject_id),
            )
            received_region = await query(
                region_db,
                select(ChangeLogEntry.subject_id, func.count())
                .where(ChangeLogEntry.action == "copy_received")
                .group_by(ChangeLogEntry.subject_id),
            )

        def in_outage(r: Request) -> bool:
            return window["from"] <= r.at <= window["to"]

        vaxjo = [r for r in requests if r.side == "vaxjo"]
        refused = [r for r in vaxjo if not 200 <= r.status < 300]
        after = window["to"]
        first_ok = min(
            (r.answered for r in vaxjo if r.at >= after and 200 <= r.status < 300 and r.answered),
            default=None,
        )
        copies_after = [t for t in copied["region"].values() if t >= after]
        figures = {
            "backend": backend,
            "outage_s": outage_s,
            "vaxjo_requests": len(vaxjo),
            "vaxjo_during_outage": dict(
                Counter(r.error or r.status for r in vaxjo if in_outage(r))
            ),
            "vaxjo_all": dict(Counter(r.error or r.status for r in vaxjo)),
            "unclear_answers": sum(1 for r in vaxjo if not _clear(r)),
            "unclear_examples": sorted(
                {f"{r.error or r.status} {r.content_type}" for r in vaxjo if not _clear(r)}
            ),
            "half_stored": sum(1 for r in refused if r.ref in stored["vaxjo"]),
            "accepted_missing": sum(len(accepted[s] - stored[s]) for s in sites),
            "copies_lost": {s: len(accepted[s] - set(copied[s])) for s in sites},
            "copies_duplicated": sum(n - 1 for _, n in [*received, *received_region] if n > 1),
            "max_answer_s_during_outage": max(
                ((r.answered - r.at).total_seconds() for r in vaxjo if in_outage(r) and r.answered),
                default=None,
            ),
            "recover_s": {
                "first_accepted_request": round((first_ok - after).total_seconds(), 2)
                if first_ok
                else None,
                "first_copy_received": round((min(copies_after) - after).total_seconds(), 2)
                if copies_after
                else None,
            },
            "drained": ok,
            "drain_s": drain_s,
        }
        report("s4-database-outage", figures, variant=backend)
        assert any(in_outage(r) for r in vaxjo), "requests were made during the outage"
        assert figures["half_stored"] == 0
        assert figures["accepted_missing"] == 0
        assert figures["copies_lost"] == {"region": 0, "vaxjo": 0}
        assert figures["copies_duplicated"] == 0
        assert ok
        assert figures["unclear_answers"] == 0, figures["unclear_examples"]
