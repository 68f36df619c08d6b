"""Replication between two members over a real broker (issue 3, point 3): every change of
Växjö's units reaches Region Kronoberg's replica, and a replica rebuilt from offset 0 of
``vardkedja.directory`` into an empty database is identical to the source.

The broker is private to the test: the rebuild reads the whole topic, which must hold only
this test's units."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import select

from services.directory.models import ReplicaUnit, Unit
from services.directory.service import PUBLIC_FIELDS
from shared.data import migrations
from shared.data.db import Database
from shared.messaging.broker import Broker
from shared.messaging.worker import Worker
from shared.web.app import create_app
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory, make_settings
from tests.helpers.directory import SPEC, auth
from tests.helpers.harness import eventually
from vardkedja.federation import DEMO_UNITS


@contextlib.asynccontextmanager
async def running_worker(url: str, orgnr: str, bootstrap: str) -> AsyncIterator[Worker]:
    """A member's directory worker (relay and replica consumer) in this process."""
    settings = make_settings(orgnr=orgnr, db_url=url, bootstrap=bootstrap)
    worker = Worker(SPEC, settings)
    tasks = [asyncio.create_task(worker.relay.run())] + [
        asyncio.create_task(c.run()) for c in worker.consumers
    ]
    try:
        yield worker
    finally:
        worker.relay.stop()
        for c in worker.consumers:
            c.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.ctx.db.dispose()


def public_state(row: Unit | ReplicaUnit) -> dict[str, Any]:
    state = {name: getattr(row, name) for name in PUBLIC_FIELDS}
    state["version"] = row.version
    return state


async def source_units(url: str) -> dict[str, dict[str, Any]]:
    db = Database(url)
    try:
        async with db.sessionmaker() as s:
            return {u.id: public_state(u) for u in (await s.scalars(select(Unit))).all()}
    finally:
        await db.dispose()


async def replica_units(url: str) -> dict[str, dict[str, Any]]:
    db = Database(url)
    try:
        async with db.sessionmaker() as s:
            rows = (await s.scalars(select(ReplicaUnit))).all()
            return {r.unit_id: public_state(r) for r in rows}
    finally:
        await db.dispose()


async def make_changes(url: str, bootstrap: str) -> None:
    """Växjö creates its demo units, then edits, closes, reviews and deactivates some."""
    app = create_app(SPEC, make_settings(orgnr=ORG_VAXJO, db_url=url, bootstrap=bootstrap))
    headers = auth(ORG_VAXJO)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ids = []
            for unit in DEMO_UNITS[ORG_VAXJO]:
                r = await client.post("/v1/units", json=unit, headers=headers)
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            for n, unit_id in enumerate(ids[:4]):
                current = await client.get(f"/v1/units/{unit_id}", headers=headers)
                body = {
                    k: v
                    for k, v in current.json().items()
                    if k
                    in set(PUBLIC_FIELDS)
                    - {"owner_orgnr", "reviewed_at", "reviewed_by", "status", "status_message"}
                }
                body["mission"] = f"Uppdrag, version {n}"
                r = await client.put(
                    f"/v1/units/{unit_id}",
                    json=body,
                    headers={**headers, "If-Match": current.headers["ETag"]},
                )
                assert r.status_code == 200, r.text
            r = await client.post(
                f"/v1/units/{ids[1]}/close",
                json={"message": "Stängt i juli"},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            r = await client.post(
                f"/v1/units/{ids[2]}/review", json={"reviewed_by": "Enhetschef"}, headers=headers
            )
            assert r.status_code == 200, r.text
    finally:
        await app.state.ctx.db.dispose()


async def test_a_replica_rebuilt_from_offset_zero_equals_the_source(
    private_broker: Broker, databases: DatabaseFactory
) -> None:
    bootstrap = private_broker.bootstrap
    urls = {name: await databases.new(name) for name in ("vaxjo", "region", "rebuilt")}
    for url in urls.values():
        await migrations.upgrade(SPEC.migrations_dir, url)

    async with (
        running_worker(urls["vaxjo"], ORG_VAXJO, bootstrap),
        running_worker(urls["region"], ORG_REGION, bootstrap),
    ):
        await make_changes(urls["vaxjo"], bootstrap)
        source = await source_units(urls["vaxjo"])
        assert len(source) == len(DEMO_UNITS[ORG_VAXJO]) >= 8
        assert {s["version"] for s in source.values()} > {1}, "some units changed"

        async def region_caught_up() -> bool:
            return await replica_units(urls["region"]) == source

        await eventually(region_caught_up, within=60, what="Region's replica equal to Växjö")

    # A new member (or a lost database): an empty replica and a consumer group that has
    # never read the topic start from offset 0 and end identical to the source.
    group = f"rebuild-{uuid.uuid4().hex[:6]}"
    settings = make_settings(orgnr=ORG_REGION, db_url=urls["rebuilt"], bootstrap=bootstrap)
    worker = Worker(SPEC, settings)
    consumer = worker.consumers[0]
    consumer.group_id = group
    task = asyncio.create_task(consumer.run())
    try:

        async def rebuilt() -> bool:
            return await replica_units(urls["rebuilt"]) == source

        await eventually(rebuilt, within=60, what="the rebuilt replica equal to the source")
    finally:
        consumer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.ctx.db.dispose()
    assert await replica_units(urls["rebuilt"]) == await replica_units(urls["region"])
