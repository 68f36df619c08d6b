"""The backbone between members, with every process separate (foundation issue, point 7):
a unit created through Växjö kommun's directory API appears in Region Kronoberg's directory
replica through Kafka. Runs on SQLite and, when reachable, on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.messaging.processes import free_port
from tests.conftest import ORG_REGION, ORG_VAXJO, DatabaseFactory, broker_client_env
from tests.helpers.harness import eventually
from vardkedja.federation import Federation, Member

pytestmark = pytest.mark.e2e

VAXJO = Member(ORG_VAXJO, "Växjö kommun", "kommun", 0)
REGION = Member(ORG_REGION, "Region Kronoberg", "region", 0)


def _with_port(member: Member) -> Member:
    # Only the directory (offset 0) runs here, so one free port per member is enough.
    return Member(member.orgnr, member.name, member.kind, free_port())


@pytest.fixture(params=["kafka_broker", "tansu_broker"], ids=["kafka", "tansu"])
def either_broker(request: pytest.FixtureRequest) -> Broker:
    """Apache Kafka (the suites' and production's broker) and Tansu (what `make run` uses)."""
    b: Broker = request.getfixturevalue(request.param)
    return b


@pytest.fixture
async def federation(
    either_broker: Broker, databases: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[Federation]:
    broker = either_broker
    members = [_with_port(VAXJO), _with_port(REGION)]
    urls = {}
    if databases.backend == "postgres":
        for m in members:
            urls[(m.orgnr, "directory")] = await databases.new()
    fed = Federation(
        members=members,
        services=["directory"],
        data_dir=tmp_path / "var",
        bootstrap=broker.bootstrap,
        fetch_max_wait_ms=20,
        broker_env=broker_client_env(broker.bootstrap),
        database_url_for=urls,
        extra_env={
            "VK_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000",
            "VK_LOG_JSON": "true",
        },
    )
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=120)
        yield fed
    finally:
        await asyncio.to_thread(fed.stop)


def _auth(org: str, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(sub='e2e', org=org, scopes=scopes)}"}


async def test_a_unit_created_at_vaxjo_appears_in_region_kronobergs_replica(
    federation: Federation,
) -> None:
    vaxjo, region = federation.members
    # Every service role of every member is a process of its own.
    pids = {p.process.pid for p in federation.procs}
    assert len(pids) == len(federation.procs) == 4
    assert all(p.process.poll() is None for p in federation.procs)

    unit = {
        "name": "Socialtjänstens mottagning vuxna",
        "kind": "socialtjanstens_mottagning",
        "mission": "Ansökningar om stöd för vuxna med skadligt bruk.",
        "kommunkoder": ["0780"],
        "interventions": ["boendestod", "utredning_sol"],
        "referral_kinds": ["kontaktbegaran"],
        "contact_paths": [
            {"reason": "Ansökan om boendestöd", "channel": "inbox"},
            {"reason": "Rådgivning", "channel": "phone", "phone": "0470-41 00 00"},
        ],
        "opening_hours": {"weekly": [{"day": "mon", "opens": "08:00", "closes": "16:30"}]},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(
            f"http://127.0.0.1:{vaxjo.port('directory')}/v1/units",
            json=unit,
            headers=_auth(vaxjo.orgnr, "directory:write"),
        )
        assert created.status_code == 201, created.text
        unit_id = created.json()["id"]

        replica_url = f"http://127.0.0.1:{region.port('directory')}/v1/replica/units/{unit_id}"
        reader = _auth(region.orgnr, "directory:read")
        seen: dict[str, object] = {}

        async def arrived() -> bool:
            r = await client.get(replica_url, headers=reader)
            if r.status_code == 200:
                seen.update(r.json())
                return True
            assert r.status_code == 404, r.text
            return False

        await eventually(arrived, within=60, what="the unit in Region Kronoberg's replica")

        assert seen["owner_orgnr"] == ORG_VAXJO
        assert seen["name"] == unit["name"]
        assert seen["kind"] == unit["kind"]
        assert seen["kommunkoder"] == ["0780"]
        assert seen["version"] == 1
        # The whole public description crossed, exactly as the owner stores it.
        owned = (
            await client.get(
                f"http://127.0.0.1:{vaxjo.port('directory')}/v1/units/{unit_id}",
                headers=_auth(vaxjo.orgnr, "directory:read"),
            )
        ).json()
        for field in (
            "mission",
            "interventions",
            "referral_kinds",
            "contact_paths",
            "opening_hours",
            "status",
        ):
            assert seen[field] == owned[field], field
        assert seen["contact_paths"][1]["phone"] == "+46470410000"

        # The region cannot create units for Växjö: its token is refused at Växjö's instance.
        foreign = await client.post(
            f"http://127.0.0.1:{vaxjo.port('directory')}/v1/units",
            json=unit,
            headers=_auth(region.orgnr, "directory:write"),
        )
        assert foreign.status_code == 403
        assert foreign.headers["content-type"] == "application/problem+json"

        # Växjö's own replica holds its unit too (every member consumes the whole topic),
        # once Växjö's worker has read it: the region's worker may have been the quicker.
        own_url = f"http://127.0.0.1:{vaxjo.port('directory')}/v1/replica/units/{unit_id}"
        own_reader = _auth(vaxjo.orgnr, "directory:read")

        async def in_own_replica() -> bool:
            r = await client.get(own_url, headers=own_reader)
            assert r.status_code in (200, 404), r.text
            return r.status_code == 200

        await eventually(in_own_replica, within=60, what="the unit in Växjö's own replica")
        own = await client.get(own_url, headers=own_reader)
        assert own.status_code == 200
