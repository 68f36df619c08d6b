"""Issue 19's hostile member, on Apache Kafka and on Tansu (ADR 0020, 0013, 0021).

The three-member demo federation runs as separate processes (24, as ``vardkedja run``
starts them) and the walkthrough is taken, so real referrals, a consent and plans are on
the bus. Then **Alvesta kommun**, with nothing but its own keys, the trust list and its own
broker client, reads the bus as its operator could and publishes, one record per attack:

- ``forged_sender``: a referral "from" Region Kronoberg, signed with Alvesta's key;
- ``forged_signature``: the same with a signature header naming Region's signing key;
- ``missing_signature``: the same without a signature;
- ``replayed_to_third``: a real Region → Växjö referral, replayed on Alvesta's own topic;
- ``tampered_payload``: a real Region unit from the directory topic with its name changed;
- ``same_member``: Alvesta's own referral to Växjö claiming the ``same_member`` basis;
- ``same_member_as_vaxjo``: the same "from" Växjö itself, signed by Alvesta;
- ``unit_takeover``: a Region unit's id, owner Alvesta, properly signed;
- ``plan_takeover``: a Region plan Växjö holds a copy of, owner Alvesta, version 99;
- ``version_jump``: a Region unit naming Region, version 10⁹, signed by Alvesta.

Measured in the members' own databases (``inbox_event``, ``dead_letter``): every consumer
that must refuse a record dead-letters it with its exact reason, no member it was aimed at
applies any of them, and Region's later change of the unit reaches Växjö's and Alvesta's
replicas. The figures go to ``var/security/hostile-member.json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import SERVICES
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker, Engine, client_env
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    PLAN_SHARED_V1,
    REFERRAL_SENT_V1,
    UNIT_CHANGED_V1,
    PlanSharedV1,
    ReferralBasisV1,
    ReferralPersonV1,
    ReferralSentV1,
    UnitChangedV1,
)
from shared.messaging.kafka import ReceivedRecord, SentRecord
from shared.messaging.processes import free_port_block
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, kafka_settings, require_engine
from tests.helpers.harness import eventually
from tests.security._support import write_figures
from tests.security.bus_scan import read_topic
from tests.security.hostile import (
    Consumer,
    HostileMember,
    Seen,
    again,
    digits,
    event,
    header,
    naming_kid,
    seen,
    source,
    unsigned,
)
from vardkedja.federation import (
    DEMO_MEMBERS,
    DEMO_UNITS,
    Federation,
    Member,
    seed_demo_units,
    unit_tokens,
)
from vardkedja.walkthrough import steps, taking

pytestmark = pytest.mark.e2e

REGION, VAXJO, ALVESTA = digits(ORG_REGION), digits(ORG_VAXJO), digits(ORG_ALVESTA)
MEMBERS = (REGION, VAXJO, ALVESTA)
TARGET_UNIT = "Spelberoendemottagningen Kronoberg"  # Region's; no walkthrough step uses it
ALVESTA_UNIT = "Socialtjänstens mottagning vuxna Alvesta"
OWNER_SAYS = "Stängt för ombyggnad. Vänd er till Beroendemottagningen Växjö."


def inbound_readers(member: str) -> set[Consumer]:
    return {
        (member, "referral", "inbound"),
        (member, "consent", "inbound"),
        (member, "notify", "events"),
    }


def directory_readers(member: str) -> set[Consumer]:
    return {
        (member, "directory", "replica"),
        (member, "referral", "directory"),
        (member, "notify", "events"),
    }


def unit_copies(member: str) -> set[Consumer]:
    """The copies of the directory that bind a unit id to its first owner (ADR 0013)."""
    return {(member, "directory", "replica"), (member, "referral", "directory")}


@dataclass
class Attack:
    """One record of the hostile member and what must become of it."""

    name: str
    reason: str  # the exact dead-letter reason
    sent: SentRecord
    refused_at: set[Consumer]  # every consumer that must dead-letter it with ``reason``
    # Consumers that let it pass as not theirs, with no effect (notify keeps only its own
    # member's units: another member's unit.changed is a no-op, recorded as handled).
    passed_by: set[Consumer] = field(default_factory=set)
    # The members it is aimed at: none of their consumers may apply it. The hostile member's
    # own processes are its own (ADR 0020: a member trusts its own keys), except where the
    # record is another member's (the replay).
    victims: set[str] = field(default_factory=lambda: {REGION, VAXJO})
    outcomes: list[Seen] = field(default_factory=list)

    def settled(self) -> bool:
        got = {s.where for s in self.outcomes}
        return self.refused_at | self.passed_by <= got

    def accepted(self) -> list[Seen]:
        return [
            s
            for s in self.outcomes
            if s.outcome == "applied" and s.member in self.victims and s.where not in self.passed_by
        ]


@pytest.mark.parametrize("engine", ["kafka", "tansu"])
async def test_a_hostile_member_gets_nothing_accepted(
    engine: Engine, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    require_engine(engine)
    broker: Broker = request.getfixturevalue(f"{engine}_broker")
    started = time.monotonic()
    seconds: dict[str, float] = {}
    taken: set[int] = set()
    members = [
        Member(m.orgnr, m.name, m.kind, free_port_block(len(SERVICES), taken=taken))
        for m in DEMO_MEMBERS
    ]
    data_dir = tmp_path / "var"
    fed = Federation(
        members=members,
        data_dir=data_dir,
        bootstrap=broker.bootstrap,
        broker_env=client_env(broker),
        engine=engine,
        fetch_max_wait_ms=20,  # Tansu's; Apache Kafka's clients get the broker's own
        extra_env={"VK_KAFKA__SESSION_TIMEOUT_MS": "2000", "VK_KAFKA__REQUEST_TIMEOUT_MS": "5000"},
    )
    kafka = kafka_settings(broker.bootstrap, **broker.client_settings())
    try:
        await asyncio.to_thread(fed.start)  # alembic runs its own event loop
        await fed.wait_ready(timeout=240)
        seconds["start"] = time.monotonic() - started
        async with httpx.AsyncClient(timeout=15) as client:
            unit_ids = await _walkthrough(fed, client)
            seconds["walkthrough"] = time.monotonic() - started - seconds["start"]
            hostile = HostileMember(fed.keys_dir, ORG_ALVESTA, kafka)
            await hostile.start()
            try:
                attacks, plan_id = await _attack(hostile, kafka, unit_ids)
            finally:
                await hostile.stop()
            await _settle(attacks, data_dir)
            seconds["attacks_refused"] = time.monotonic() - started - sum(seconds.values())
            owner_update = await _owner_updates(fed, client, unit_ids[(ORG_REGION, TARGET_UNIT)])
        seconds["total"] = time.monotonic() - started
        plan_copy = _plan_copy(data_dir, plan_id)
    finally:
        await asyncio.to_thread(fed.stop)

    by_reason = Counter(s.reason for a in attacks for s in a.outcomes if s.reason)
    accepted = [(a.name, s.where) for a in attacks for s in a.accepted()]
    figures: dict[str, Any] = {
        "broker": engine,
        "attacks": len(attacks),
        "accepted": len(accepted),
        "dead_lettered_by_reason": dict(by_reason),
        "per_attack": {
            a.name: {
                "expected_reason": a.reason,
                "refused_by": sorted("/".join(s.where) for s in a.outcomes if s.reason),
                "reasons": dict(Counter(s.reason for s in a.outcomes if s.reason)),
                "passed_by_as_not_theirs": sorted("/".join(w) for w in a.passed_by),
                "applied_at_the_hostile_member_itself": sorted(
                    "/".join(s.where)
                    for s in a.outcomes
                    if s.outcome == "applied"
                    and s.member not in a.victims
                    and s.where not in a.passed_by
                ),
            }
            for a in attacks
        },
        "owner_update_applied": owner_update,
        "plan_copy_at_vaxjo": plan_copy,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    write_figures("hostile-member", engine, figures)

    # Every consumer that must refuse a record dead-lettered it, with exactly its reason,
    # and nobody anywhere dead-lettered it for another reason.
    for a in attacks:
        at = {s.where: s for s in a.outcomes}
        for where in sorted(a.refused_at):
            assert at[where].outcome == "dead_lettered", (a.name, where, at[where])
            assert at[where].reason == a.reason, (a.name, where, at[where])
        others = {s.where: s.reason for s in a.outcomes if s.reason and s.reason != a.reason}
        assert others == {}, (a.name, others)
    assert accepted == [], f"accepted by a member it was aimed at: {accepted}"
    assert all(owner_update.values()), owner_update
    assert plan_copy["owner_orgnr"] == ORG_REGION
    assert plan_copy["plan_version"] < 99


async def _walkthrough(fed: Federation, client: httpx.AsyncClient) -> dict[tuple[str, str], str]:
    """Seed the demo units, wait until every member knows them, take the walkthrough."""
    seeded = await seed_demo_units(fed)
    want = sum(len(units) for units in DEMO_UNITS.values())
    for m in fed.members:
        admin = _admin(m.orgnr)

        async def replicated(m: Member = m, admin: dict[str, str] = admin) -> bool:
            base = f"http://127.0.0.1:{m.port('directory')}/v1"
            units = await client.get(f"{base}/replica/units?limit=100", headers=admin)
            known = await client.get(f"{base}/members", headers=admin)
            return (
                units.status_code == 200
                and len(units.json()["items"]) >= want
                and known.status_code == 200
                and len(known.json()) == 3
            )

        await eventually(replicated, within=120, what=f"the demo directory at {m.name}")
    tokens = unit_tokens(fed, seeded.unit_ids)
    sections = steps.build(seeded.unit_ids, dt.date.today())
    ports = {m.orgnr: {s: m.port(s) for s in fed.services} for m in fed.members}
    noted = await taking.perform(sections, tokens, ports, client)
    assert {"vkr_plan_id", "consent_id"} <= noted.keys()
    return seeded.unit_ids


def _admin(orgnr: str) -> dict[str, str]:
    token = mint_token(
        sub="hostile-test-admin",
        org=orgnr,
        scopes=["directory:read", "directory:write"],
        roles=["member_admin"],
    )
    return {"Authorization": f"Bearer {token}"}


def _latest(records: list[ReceivedRecord], hostile: HostileMember, **want: str) -> ReceivedRecord:
    """The last genuine record (signed by the member it names) with these headers."""
    found = [
        r
        for r in records
        if all(header(r, f"ce_{k}") == v for k, v in want.items()) and hostile.genuine(r)
    ]
    assert found, f"no genuine record with {want} on the bus"
    return max(found, key=lambda r: (r.partition, r.offset))


async def _attack(
    hostile: HostileMember, kafka: Any, units: dict[tuple[str, str], str]
) -> tuple[list[Attack], str]:
    """Alvesta's records, one per attack, each with a fresh event id (the replayed and the
    tampered record keep the originals' headers); and the plan id it tried to take."""
    to_vaxjo, to_alvesta = topics.inbound(ORG_VAXJO), topics.inbound(ORG_ALVESTA)
    soc = units[(ORG_VAXJO, steps.SOC)]
    mine = units[(ORG_ALVESTA, ALVESTA_UNIT)]
    target = units[(ORG_REGION, TARGET_UNIT)]
    now = dt.datetime.now(dt.UTC)

    def referral(sender: str, sender_unit: str, basis: str) -> ReferralSentV1:
        task = str(uuid.uuid4())
        return ReferralSentV1(
            task_id=task,
            referral_id=str(uuid.uuid4()),
            kind="kontaktbegaran",
            sender_orgnr=sender,
            sender_unit_id=sender_unit,
            recipient_orgnr=ORG_VAXJO,
            recipient_unit_id=soc,
            person=ReferralPersonV1(personnummer=steps.PERSON.replace("-", "")),
            needs=["boendestod"],
            summary="Behöver stöd i boendet efter utskrivning.",
            basis=ReferralBasisV1(kind=basis)
            if basis == "same_member"
            else ReferralBasisV1(kind="consent", consent_id=str(uuid.uuid4())),
            acknowledge_by=now.date() + dt.timedelta(days=5),
            sent_at=now,
        )

    def referral_event(payload: ReferralSentV1, named: str) -> Any:
        return event(
            REFERRAL_SENT_V1, payload, orgnr=named, service="referral", key=payload.task_id
        )

    # What Alvesta's operator can read: Växjö's inbound (routing metadata; sealed bodies)
    # and the directory (plain, signed).
    vaxjo_inbound = await read_topic(kafka, to_vaxjo)
    directory = await read_topic(kafka, topics.DIRECTORY)
    region_referral = _latest(
        vaxjo_inbound, hostile, type=REFERRAL_SENT_V1, source=source(ORG_REGION, "referral")
    )
    region_plan = _latest(
        vaxjo_inbound, hostile, type=PLAN_SHARED_V1, source=source(ORG_REGION, "referral")
    )
    region_unit = _latest(directory, hostile, type=UNIT_CHANGED_V1, subject=target)
    assert header(region_unit, "ce_source") == source(ORG_REGION, "directory")
    assert region_plan.key is not None
    unit = UnitChangedV1.model_validate_json(region_unit.value or b"")

    attacks: list[Attack] = []

    async def send(
        name: str, reason: str, record: Any, refused_at: set[Consumer], **kw: Any
    ) -> None:
        attacks.append(Attack(name, reason, await hostile.publish(record), refused_at, **kw))

    forged = hostile.signed(
        referral_event(referral(ORG_REGION, target, "consent"), ORG_REGION), to_vaxjo
    )
    await send("forged_sender", "unknown_key", forged, inbound_readers(VAXJO))
    forged = hostile.signed(
        referral_event(referral(ORG_REGION, target, "consent"), ORG_REGION), to_vaxjo
    )
    await send(
        "forged_signature",
        "bad_signature",
        naming_kid(forged, hostile.signing_kid(ORG_REGION)),
        inbound_readers(VAXJO),
    )
    forged = hostile.signed(
        referral_event(referral(ORG_REGION, target, "consent"), ORG_REGION), to_vaxjo
    )
    await send("missing_signature", "bad_signature", unsigned(forged), inbound_readers(VAXJO))
    await send(
        "replayed_to_third",
        "wrong_destination",
        again(region_referral, topic=to_alvesta),
        inbound_readers(ALVESTA),
        victims=set(MEMBERS),
    )
    body = json.loads(region_unit.value or b"")
    body["name"] = "Alvesta kommuns spelberoendemottagning"
    tampered = again(region_unit, value=json.dumps(body, ensure_ascii=False).encode())
    await send(
        "tampered_payload",
        "bad_signature",
        tampered,
        set().union(*(directory_readers(m) for m in MEMBERS)),
        victims=set(MEMBERS),
    )
    own = hostile.signed(
        referral_event(referral(ORG_ALVESTA, mine, "same_member"), ORG_ALVESTA), to_vaxjo
    )
    await send("same_member", "no_basis", own, {(VAXJO, "referral", "inbound")})
    as_vaxjo = referral(ORG_VAXJO, units[(ORG_VAXJO, steps.BOENDE)], "same_member")
    await send(
        "same_member_as_vaxjo",
        "unknown_key",
        hostile.signed(referral_event(as_vaxjo, ORG_VAXJO), to_vaxjo),
        inbound_readers(VAXJO),
    )
    takeover = unit.model_copy(
        update={
            "owner_orgnr": ORG_ALVESTA,
            "kommunkoder": ["0764"],  # Alvesta's own kommun: only the owner rule refuses it
            "version": unit.version + 1,
            "changed_at": dt.datetime.now(dt.UTC),
        }
    )
    ev = event(
        UNIT_CHANGED_V1,
        takeover,
        orgnr=ORG_ALVESTA,
        service="directory",
        key=target,
        version=takeover.version,
    )
    await send(
        "unit_takeover",
        "not_owner",
        hostile.signed(ev, topics.DIRECTORY),
        set().union(*(unit_copies(m) for m in MEMBERS)),
        passed_by={(REGION, "notify", "events"), (VAXJO, "notify", "events")},
    )
    plan = PlanSharedV1(
        plan_id=region_plan.key.decode(),
        owner_orgnr=ORG_ALVESTA,
        owner_unit_id=mine,
        kind="remissmote",
        personnummer=steps.PERSON.replace("-", ""),
        goals=["Alvesta äger nu planen"],
        actions=[],
        coordinators=[{"orgnr": ORG_ALVESTA, "unit_id": mine}],
        follow_up_date=now.date() + dt.timedelta(days=30),
        viewers=[{"orgnr": ORG_VAXJO, "unit_id": soc}],
        plan_version=99,
        at=now,
    )
    ev = event(
        PLAN_SHARED_V1, plan, orgnr=ORG_ALVESTA, service="referral", key=plan.plan_id, version=99
    )
    await send(
        "plan_takeover", "not_owner", hostile.signed(ev, to_vaxjo), {(VAXJO, "referral", "inbound")}
    )
    jump = unit.model_copy(update={"version": 10**9, "changed_at": dt.datetime.now(dt.UTC)})
    ev = event(
        UNIT_CHANGED_V1, jump, orgnr=ORG_ALVESTA, service="directory", key=target, version=10**9
    )
    await send(
        "version_jump",
        "sender_not_owner",
        hostile.signed(ev, topics.DIRECTORY),
        set().union(*(unit_copies(m) for m in MEMBERS)) | {(REGION, "notify", "events")},
        passed_by={(VAXJO, "notify", "events"), (ALVESTA, "notify", "events")},
    )
    return attacks, plan.plan_id


async def _settle(attacks: list[Attack], data_dir: Path) -> None:
    """Wait until every consumer that must refuse (or pass by) each record has done so."""

    async def done() -> bool:
        for a in attacks:
            if not a.settled():
                a.outcomes = await asyncio.to_thread(seen, data_dir, MEMBERS, SERVICES, a.sent)
        if all(a.settled() for a in attacks):
            return True
        await asyncio.sleep(0.5)
        return False

    try:
        await eventually(done, within=120, what="every attack's dead letters")
    except AssertionError:
        missing = {
            a.name: sorted((a.refused_at | a.passed_by) - {s.where for s in a.outcomes})
            for a in attacks
            if not a.settled()
        }
        raise AssertionError(f"not recorded where it must be: {missing}") from None


async def _owner_updates(
    fed: Federation, client: httpx.AsyncClient, unit_id: str
) -> dict[str, bool]:
    """Region closes the unit through its own directory API (a member administrator); the
    change must reach Växjö's and Alvesta's replicas, the forged version notwithstanding."""
    region = next(m for m in fed.members if m.orgnr == ORG_REGION)
    r = await client.post(
        f"http://127.0.0.1:{region.port('directory')}/v1/units/{unit_id}/close",
        json={"message": OWNER_SAYS},
        headers=_admin(ORG_REGION),
    )
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    out: dict[str, bool] = {}
    for m in fed.members:
        if m.orgnr == ORG_REGION:
            continue

        async def applied(m: Member = m) -> bool:
            r = await client.get(
                f"http://127.0.0.1:{m.port('directory')}/v1/replica/units/{unit_id}",
                headers=_admin(m.orgnr),
            )
            if r.status_code != 200:
                return False
            unit = r.json()
            return bool(
                unit["status"] == "temporarily_closed"
                and unit["status_message"] == OWNER_SAYS
                and unit["owner_orgnr"] == ORG_REGION
                and unit["name"] == TARGET_UNIT
                and unit["version"] == version
            )

        await eventually(applied, within=60, what=f"Region's change in {m.name}'s replica")
        out[m.name] = True
    return out


def _plan_copy(data_dir: Path, plan_id: str) -> dict[str, Any]:
    """Växjö's copy of the plan Alvesta tried to take over, from its own database."""
    db = sqlite3.connect(f"file:{data_dir / VAXJO / 'referral.db'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT owner_orgnr, plan_version FROM plan WHERE id = ?", (plan_id,)
        ).fetchone()
    finally:
        db.close()
    assert row is not None, "Växjö holds no copy of the plan"
    return {"owner_orgnr": row[0], "plan_version": row[1]}
