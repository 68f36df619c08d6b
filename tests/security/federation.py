"""An in-process federation for the security tests, and the world they aim at.

Two members run every service: **Växjö kommun** (``OWNER``), whose data the tests try to
reach, and **Region Kronoberg** (``OTHER``), the other huvudman. Each member has its own
four databases, apps and workers (relay, consumers and periodic jobs) over a private
embedded broker; a referral service reaches its own member's consent and directory apps
in-process (ASGI), as ``shared.web.clients.ServiceClient`` would over loopback. Nothing of ours
is mocked.

:func:`seed` builds the world through the APIs themselves: the members' records and units,
consents (and their copies at the other member), a refusal and a block, referrals sent and
received (one about a person with protected identity, one across members after the consent
service allowed it), documents sent with them and an upload waiting, a SIP meeting with its
plan, a webhook subscription whose deliveries end dead, and the notifications the referrals
caused. Every private string of the owner's data is kept as a *marker*, so a response can
be searched for anything it must not show.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.referral import siblings as referral_siblings
from services.referral.repository import KnownUnitRepository
from shared.config import NotifyRule, NotifySettings, Settings
from shared.data import migrations
from shared.data.db import Database
from shared.identity.auth import Signer, mint_token
from shared.messaging.broker import Broker
from shared.messaging.events.payloads import AUDIT_RECORDED_V1
from shared.messaging.inbox import EventConsumer
from shared.messaging.outbox import OutboxRelay
from shared.messaging.periodic import run_periodic
from shared.messaging.processes import free_port
from shared.service import ServiceSpec, build_context, load_spec
from shared.web.app import create_app
from shared.web.clients import ServiceClient
from tests.conftest import (
    DEFAULT_ENGINE,
    ORG_ALVESTA,
    ORG_REGION,
    ORG_VAXJO,
    create_pg_database,
    drop_pg_database,
    make_settings,
    start_broker,
)
from tests.helpers.harness import eventually
from tests.integration.consent.helpers import personnummer

SERVICES: tuple[str, ...] = ("directory", "consent", "referral", "notify")
SPECS: dict[str, ServiceSpec] = {name: load_spec(name) for name in SERVICES}

OWNER = ORG_VAXJO
"""The member owning every resource the tests aim at."""
OTHER = ORG_REGION
"""The other member, running its own instance."""
THIRD = ORG_ALVESTA
"""A member named in consents only (no instance runs)."""
FEDERATION_MEMBERS = [ORG_REGION, ORG_VAXJO, ORG_ALVESTA]

ADMIN_ROLE = "member_admin"
PROTECTED_ROLE = "protected_identity"
LEAD_ROLE = "intake_lead"
"""A role with an inbox of its own: the owner's notify also tells it of every referral."""

ALL_SCOPES: tuple[str, ...] = (
    "directory:read",
    "directory:write",
    "consent:read",
    "consent:write",
    "consent:person",
    "referral:read",
    "referral:write",
    "referral:person",
    "notify:read",
    "notify:write",
    "audit:read",
)
ALL_ROLES: tuple[str, ...] = (ADMIN_ROLE, PROTECTED_ROLE, LEAD_ROLE)

WAIT_S = 60.0
"""Deadline for events to travel (progress, not speed)."""

_request_ids = itertools.count(1)


def request_id() -> str:
    """A unique X-Request-ID (the audit record of a request carries it)."""
    return f"sec-{next(_request_ids)}-{uuid.uuid4().hex[:8]}"


# --- settings --------------------------------------------------------------------------


def notify_settings() -> NotifySettings:
    """Dead webhooks fail at once (one attempt) and every referral also reaches a role inbox."""
    rules = [
        *NotifySettings().rules,
        NotifyRule(
            id="received-to-lead",
            event="se.vardkedja.referral.received.v1",
            recipients=[f"role:{LEAD_ROLE}"],
            channels=["inbox"],
        ),
    ]
    return NotifySettings.model_validate(
        {
            "rules": [r.model_dump() for r in rules],
            "webhook_allow_private": True,
            "webhook_max_attempts": 1,
            "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.1,
            "webhook_timeout_s": 1.0,
            "email_max_attempts": 1,
            "dispatch_poll_interval_s": 0.05,
            "sse_poll_interval_s": 0.05,
            "link_base_url": "https://notify.test.example",
        }
    )


def settings_for(service: str, orgnr: str, url: str, bootstrap: str) -> Settings:
    settings = make_settings(service=service, orgnr=orgnr, db_url=url, bootstrap=bootstrap)
    return settings.model_copy(
        update={"federation_members": list(FEDERATION_MEMBERS), "notify": notify_settings()}
    )


# --- tokens ----------------------------------------------------------------------------


def token(
    org: str,
    unit: str | None,
    scopes: Iterable[str],
    roles: Iterable[str] = (),
    *,
    sub: str = "handlaggare-1",
    expired: bool = False,
    private_key_pem: str | None = None,
) -> str:
    """A development token; ``expired`` one issued two hours ago for an hour. Tokens are
    kept for the test run (signing costs tens of milliseconds; they live an hour)."""
    return _token(org, unit, tuple(scopes), tuple(roles), sub, expired, private_key_pem)


@functools.cache
def _token(
    org: str,
    unit: str | None,
    scopes: tuple[str, ...],
    roles: tuple[str, ...],
    sub: str,
    expired: bool,
    private_key_pem: str | None,
) -> str:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2) if expired else None
    return mint_token(
        sub=sub,
        org=org,
        unit=unit,
        scopes=list(scopes),
        roles=list(roles),
        now=now,
        signer=Signer(private_key_pem=private_key_pem),
    )


# --- requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One HTTP request to one service of one member."""

    service: str
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    """A server-sent event stream: read its head and first events, then hang up."""
    as_unit: str | None = None
    """A fresh resource that is a unit of its own: its owner acts as that unit."""

    def text(self) -> str:
        """Everything the caller itself sent (a marker found here is no leak)."""
        body = self.content.decode() if self.content is not None else json.dumps(self.json)
        return f"{self.path} {body} {json.dumps(self.headers)}"


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes
    request_id: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


async def stream_head(app: FastAPI, req: Req, headers: dict[str, str]) -> Resp:
    """Calls a streaming endpoint over raw ASGI: reads the status and the body until an
    event arrives (or the answer ends), then disconnects like a closed browser tab."""
    raw_path, _, query = req.path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    hang_up = asyncio.Event()
    sent_request = False
    status = 0
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update({k.decode(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if b"event: notification" in b"".join(chunks) or not message.get("more_body"):
                hang_up.set()

    call = asyncio.create_task(app(scope, receive, send))
    try:
        # Wait for the first event (a refused call ends at once); a stream that shows
        # none is left after a deadline of progress, and its answer then lacks the event.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hang_up.wait(), timeout=10.0)
        hang_up.set()
        await asyncio.wait_for(call, timeout=10.0)
    finally:
        if not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
    return Resp(status, out_headers, b"".join(chunks), headers.get("X-Request-ID", ""))


# --- the federation --------------------------------------------------------------------


class SiblingTransport(httpx.ASGITransport):
    """A sibling service in-process, isolated as its own process would be: its context
    variables (the request id it sets) do not leak back into the calling request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(super().handle_async_request(request))


@dataclass
class Stack:
    """One member's four services: apps (for requests) and workers (for events)."""

    orgnr: str
    apps: dict[str, FastAPI] = field(default_factory=dict)
    settings: dict[str, Settings] = field(default_factory=dict)
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    relays: list[OutboxRelay] = field(default_factory=list)
    consumers: list[EventConsumer] = field(default_factory=list)
    worker_dbs: list[Database] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def db(self, service: str) -> Database:
        db: Database = self.apps[service].state.ctx.db
        return db


class Federation:
    """The two members on one broker; :meth:`call` sends a request to one of them."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.broker: Broker | None = None
        self.stacks: dict[str, Stack] = {}
        self.urls: list[str] = []
        self.workers_running = False

    async def _new_db(self, name: str) -> str:
        if self.backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        else:
            url = await create_pg_database()
        self.urls.append(url)
        return url

    async def start(self) -> None:
        self.broker = broker = start_broker(DEFAULT_ENGINE, self.tmp / "broker")
        for orgnr in (OWNER, OTHER):
            stack = Stack(orgnr)
            for name in SERVICES:
                url = await self._new_db(f"{name}-{orgnr}")
                await migrations.upgrade(SPECS[name].migrations_dir, url)
                settings = settings_for(name, orgnr, url, broker.bootstrap)
                stack.settings[name] = settings
                app = create_app(SPECS[name], settings)
                stack.apps[name] = app
                stack.clients[name] = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30
                )
            stack.apps["referral"].state.ctx.extras["clients"] = self._sibling_clients(stack)
            self.stacks[orgnr] = stack
        for stack in self.stacks.values():
            self._start_workers(stack)
        self.workers_running = True

    def _sibling_clients(self, stack: Stack) -> referral_siblings.Clients:
        """The referral service's clients of its own member's consent and directory."""

        def client(name: str, scope: str) -> ServiceClient:
            return ServiceClient(
                base_url=f"http://{name}",
                service="referral",
                org=stack.orgnr,
                scopes=[scope],
                transport=SiblingTransport(app=stack.apps[name]),
            )

        return referral_siblings.Clients(
            consent=client("consent", "consent:read"),
            directory=client("directory", "directory:read"),
        )

    def _start_workers(self, stack: Stack) -> None:
        for name in SERVICES:
            spec, settings = SPECS[name], stack.settings[name]
            ctx = build_context(spec, settings)
            if name == "referral":
                ctx.extras["clients"] = self._sibling_clients(stack)
            relay = OutboxRelay(settings, ctx.db, spec.infra)
            ctx.relay = relay
            consumers = [
                EventConsumer(settings, ctx.db, spec.infra, c) for c in spec.consumers(ctx)
            ]
            stack.relays.append(relay)
            stack.consumers += consumers
            stack.worker_dbs.append(ctx.db)
            stack.tasks.append(asyncio.create_task(relay.run()))
            stack.tasks += [asyncio.create_task(c.run()) for c in consumers]
            stack.tasks += [
                asyncio.create_task(run_periodic(job, stack.stop)) for job in spec.periodic(ctx)
            ]

    async def stop_workers(self) -> None:
        """Stops every relay, consumer and job: from now on only requests change data."""
        for stack in self.stacks.values():
            stack.stop.set()
            for relay in stack.relays:
                relay.stop()
            for consumer in stack.consumers:
                consumer.stop()
        for stack in self.stacks.values():
            if stack.tasks:
                _done, pending = await asyncio.wait(stack.tasks, timeout=15)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*stack.tasks, return_exceptions=True)
            for db in stack.worker_dbs:
                await db.dispose()
            stack.tasks.clear()
        self.workers_running = False

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.workers_running:
                await self.stop_workers()
        for stack in self.stacks.values():
            for client in stack.clients.values():
                await client.aclose()
            for app in stack.apps.values():
                await app.state.ctx.db.dispose()
        if self.broker is not None:
            self.broker.stop()
        if self.backend == "postgres":
            for url in self.urls:
                with contextlib.suppress(Exception):
                    await drop_pg_database(url)

    async def call(self, orgnr: str, req: Req, bearer_token: str | None) -> Resp:
        """Sends ``req`` to member ``orgnr``'s service, with a fresh X-Request-ID."""
        rid = request_id()
        headers = {"X-Request-ID": rid, **req.headers}
        if bearer_token is not None:
            headers["Authorization"] = f"Bearer {bearer_token}"
        stack = self.stacks[orgnr]
        if req.stream:
            return await stream_head(stack.apps[req.service], req, headers)
        if req.content is not None:
            r = await stack.clients[req.service].request(
                req.method, req.path, content=req.content, headers=headers
            )
        elif req.json is not None:
            r = await stack.clients[req.service].request(
                req.method, req.path, json=req.json, headers=headers
            )
        else:
            r = await stack.clients[req.service].request(req.method, req.path, headers=headers)
        return Resp(r.status_code, dict(r.headers), r.content, rid)


# --- database observations -------------------------------------------------------------

AUDIT_TABLE = "audit_record"


async def digest(db: Database, spec: ServiceSpec) -> str:
    """A fingerprint of everything a service stores except its audit log (and the audit
    copies in its outbox): equal before and after a request means it stored nothing."""
    h = hashlib.sha256()
    outbox = spec.infra.outbox
    async with db.sessionmaker() as session:
        for table in spec.metadata.sorted_tables:
            if table.name == AUDIT_TABLE:
                continue
            stmt = select(table)
            if table is outbox:
                stmt = stmt.where(outbox.c.event_type != AUDIT_RECORDED_V1)
            rows = (await session.execute(stmt)).all()
            h.update(table.name.encode())
            for row in sorted(repr(tuple(r)) for r in rows):
                h.update(row.encode())
    return h.hexdigest()


async def audit_rows(db: Database, spec: ServiceSpec, request_id: str) -> list[dict[str, Any]]:
    """The audit records written for one request."""
    audit = spec.infra.audit
    async with db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(audit).where(audit.c.request_id == request_id).order_by(audit.c.id)
            )
        ).all()
    return [dict(r._mapping) for r in rows]


# --- the world -------------------------------------------------------------------------


def person(serial: int) -> str:
    return personnummer(dt.date(1979, 3, 14), 400 + serial)


def pnr_forms(pnr: str) -> set[str]:
    """Every way a personnummer may be written (12 and 10 digits, with a hyphen or not)."""
    return {pnr, pnr[2:], f"{pnr[:8]}-{pnr[8:]}", f"{pnr[2:8]}-{pnr[8:]}"}


def mark(label: str) -> str:
    """A unique text marking one private record (found in a response, it is that record)."""
    return f"MARK{label}{uuid.uuid4().hex[:10]}"


def unit_body(
    name: str, kinds: list[str], kind: str = "socialtjanstens_mottagning"
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "mission": f"Uppdrag för {name}.",
        "kommunkoder": ["0780"],
        "interventions": ["boendestod", "utredning_sol"],
        "referral_kinds": kinds,
        "contact_paths": [{"reason": "Ansökan", "channel": "inbox"}],
    }


@dataclass
class World:
    """The seeded ids, people and markers (``OWNER``'s unless named otherwise)."""

    ua: str = ""  # the owning unit
    ub: str = ""  # the owner's counterpart unit (sends to and receives from ua)
    uc: str = ""  # a bystander unit of the owner
    r_port: str = ""  # the other member's referral port
    r_x: str = ""  # a bystander unit of the other member
    p1: str = person(1)  # the owner's person (kept within Växjö)
    p2: str = person(2)  # a person with protected identity
    p3: str = person(3)  # shared with the region under consent
    p4: str = person(4)  # the region's consent, copied to Växjö
    consent_a: str = ""
    consent_x: str = ""
    copy_r: str = ""  # the region's consent id; Växjö holds a copy
    refusal_a: str = ""
    block_a: str = ""
    ref_a: str = ""  # sent by ua to ub
    ref_a_task: str = ""
    ref_x: str = ""  # sent by ua to the region's port
    ref_x_task: str = ""
    dis_a: str = ""  # a discharge planning sent by ua to ub (its discharge not recorded)
    inc_a: str = ""  # received by ua from ub
    inc_p: str = ""  # received by ua, about p2 (protected identity)
    inc_v: str = ""  # a vårdkedjeremiss received and acknowledged by ua
    inc_pool: list[str] = field(default_factory=list)  # more received by ua, for steps
    info_ref: str = ""  # sent by ua to ub, which asked ua a question (komplettering)
    info_task: str = ""
    info_pool: list[tuple[str, str]] = field(default_factory=list)  # more such (ref, task)
    att_out: str = ""  # a document ua sent with ref_a
    att_in: str = ""  # a document ub sent ua with inc_a
    att_p: str = ""  # a document ub sent ua with inc_p (protected identity)
    att_draft: str = ""  # an upload of ua's, not yet attached (a referral takes it)
    att_spare: str = ""  # another (the owner's seeded delete deletes it)
    att_listed: str = ""  # another, left alone: ua's list of uploads shows it
    meeting_a: str = ""  # a SIP convened by ua (its plan recorded: held)
    action_a: str = ""  # the plan's action owned by ua
    sub_a: str = ""  # ua's webhook subscription
    notif_a: str = ""  # a notification in ua's inbox
    notif_lead: str = ""  # a notification in the lead role's inbox
    deliveries: list[str] = field(default_factory=list)  # dead webhook deliveries
    marks: dict[str, str] = field(default_factory=dict)
    unit_private: set[str] = field(default_factory=set)
    """Markers of ua's unit-scoped data (referrals, meetings, plans, notifications, hooks)."""
    protected: set[str] = field(default_factory=set)
    """Markers of the referral about the person with protected identity."""
    member_private: set[str] = field(default_factory=set)
    """Markers of everything of the owner's that is not public directory data."""
    shared: set[str] = field(default_factory=set)
    """Markers of what the owner shared with the other member (the referral across)."""
    dead_url: str = ""

    def m(self, label: str) -> str:
        if label not in self.marks:
            self.marks[label] = mark(label)
        return self.marks[label]


class Seeder:
    """Creates resources through the APIs with a token that may do anything in its unit."""

    def __init__(self, fed: Federation, world: World) -> None:
        self.fed = fed
        self.w = world

    def tok(self, org: str, unit: str | None) -> str:
        return token(org, unit, ALL_SCOPES, ALL_ROLES, sub="seeder")

    async def ok(
        self, org: str, unit: str | None, req: Req, status: int | tuple[int, ...] = (200, 201)
    ) -> Resp:
        r = await self.fed.call(org, req, self.tok(org, unit))
        wanted = (status,) if isinstance(status, int) else status
        assert r.status in wanted, (
            req.method,
            req.path,
            r.status,
            r.text[:500],
        )
        return r

    async def unit(self, org: str, body: dict[str, Any]) -> str:
        r = await self.ok(org, None, Req("directory", "POST", "/v1/units", json=body), 201)
        unit_id: str = r.json()["id"]
        return unit_id

    async def consent(
        self,
        org: str,
        unit: str | None,
        pnr: str,
        parties: list[str],
        purposes: list[str],
        **more: Any,
    ) -> str:
        today = dt.date.today()
        body: dict[str, Any] = {
            "person": {"personnummer": pnr},
            "given_by": {"kind": "person"},
            "form": "written",
            "signed_form_reference": more.pop("reference", "Dok 1"),
            "purposes": purposes,
            "parties": [{"orgnr": p} for p in parties],
            "categories": ["contact_details", "needs_summary", "plan"],
            "valid_from": today.isoformat(),
            "valid_to": (today + dt.timedelta(days=120)).isoformat(),
            "person_informed": True,
            **more,
        }
        r = await self.ok(org, unit, Req("consent", "POST", "/v1/consents", json=body), 201)
        consent_id: str = r.json()["id"]
        return consent_id

    async def refusal(self, pnr: str, *, unit: str | None = None, note: str = "Nej.") -> str:
        body = {
            "person": {"personnummer": pnr},
            "refused_on": dt.date.today().isoformat(),
            "parties": [{"orgnr": THIRD}],
            "purposes": ["hvb_underrattelse"],
            "note": note,
        }
        r = await self.ok(
            OWNER, unit or self.w.ua, Req("consent", "POST", "/v1/refusals", json=body), 201
        )
        refusal_id: str = r.json()["id"]
        return refusal_id

    async def block(self, pnr: str, *, unit: str | None = None, reason: str = "Begäran.") -> str:
        body = {
            "person": {"personnummer": pnr},
            "blocked": {"orgnr": OTHER, "unit_id": self.w.r_x},
            "reason": reason,
        }
        r = await self.ok(
            OWNER, unit or self.w.ua, Req("consent", "POST", "/v1/blocks", json=body), 201
        )
        block_id: str = r.json()["id"]
        return block_id

    async def send(
        self,
        sender: str,
        recipient: tuple[str, str],
        pnr: str,
        summary: str,
        *,
        org: str = OWNER,
        kind: str = "kontaktbegaran",
        protected: bool = False,
        attachment_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Sends a referral from unit ``sender`` (with the documents it uploaded,
        ``attachment_ids``); its JSON (id, recipients with task ids)."""
        body: dict[str, Any] = {
            "kind": kind,
            "person": {"personnummer": pnr, "protected_identity": protected},
            "children_in_household": "no",
            "needs": ["boendestod"],
            "summary": summary,
            "recipients": [{"orgnr": recipient[0], "unit_id": recipient[1]}],
            "attachment_ids": attachment_ids or [],
        }
        if kind == "kontaktbegaran":
            body["kontaktbegaran"] = {"kommunkod": "0780"}
        elif kind == "vardkedjeremiss":
            body["drug_free"] = "yes"
        elif kind == "utskrivningsplanering":
            day = dt.date.today() + dt.timedelta(days=10)
            body["discharge"] = {"expected_discharge_date": day.isoformat()}
        r = await self.ok(org, sender, Req("referral", "POST", "/v1/referrals", json=body), 201)
        out: dict[str, Any] = r.json()
        return out

    async def document(self, unit: str, text: str, *, org: str = OWNER) -> str:
        """A text document unit ``unit`` uploaded, waiting to be attached; its id."""
        body = {
            "title": "Bilaga",
            "content_type": "text/plain",
            "content": base64.b64encode(text.encode()).decode(),
        }
        r = await self.ok(org, unit, Req("referral", "POST", "/v1/attachments", json=body), 201)
        attachment_id: str = r.json()["id"]
        return attachment_id

    async def meeting(self, summary: str) -> tuple[str, str]:
        """A SIP convened by ua with ub, its plan recorded; (meeting id, ua's action id)."""
        w = self.w
        body = {
            "kind": "sip",
            "children_in_household": "no",
            "person": {"personnummer": w.p1},
            "at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).isoformat(),
            "place": "Mottagningen, rum 3",
            "participants": [{"orgnr": OWNER, "unit_id": w.ub}],
            "summary": summary,
        }
        r = await self.ok(OWNER, w.ua, Req("referral", "POST", "/v1/meetings", json=body), 201)
        meeting_id: str = r.json()["id"]
        r = await self.ok(
            OWNER,
            w.ua,
            Req("referral", "PUT", f"/v1/meetings/{meeting_id}/plan", json=plan_body(w)),
        )
        action = next(a for a in r.json()["actions"] if a["unit_id"] == w.ua)
        return meeting_id, str(action["id"])

    async def subscription(self, unit: str) -> str:
        body = {"unit_id": unit, "url": self.w.dead_url, "event_types": ["referral.received"]}
        r = await self.ok(
            OWNER, unit, Req("notify", "POST", "/v1/webhook-subscriptions", json=body), 201
        )
        sub_id: str = r.json()["id"]
        return sub_id


def plan_body(w: World) -> dict[str, Any]:
    return {
        "goals": ["Eget boende"],
        "actions": [
            {"intervention": "boendestod", "owner": {"orgnr": OWNER, "unit_id": w.ua}},
            {"intervention": "utredning_sol", "owner": {"orgnr": OWNER, "unit_id": w.ub}},
        ],
        "coordinators": [{"orgnr": OWNER, "unit_id": w.ua}],
        "follow_up_date": (dt.date.today() + dt.timedelta(days=60)).isoformat(),
    }


def dead_url() -> str:
    """A loopback URL where nothing listens: every webhook delivery to it fails."""
    return f"http://127.0.0.1:{free_port()}/hook"


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    await eventually(check, within=WAIT_S, what=what)


INFO_POOL = 2
"""Referrals of ua's asked about (komplettering) beyond the seeded one: one per answer that
consumes one (the matrix's owner, the audit's two phases)."""


async def _asked_of_ua(fed: Federation, s: Seeder, w: World) -> None:
    """Referrals ua sent ub, which acknowledged each and asked ua a question; waits until
    ua's mirrors show the questions (``info_ref``/``info_task`` and ``info_pool``)."""
    sent = [
        await s.send(w.ua, (OWNER, w.ub), w.p1, f"Komplettering {w.m(f'info{i}')}")
        for i in range(INFO_POOL + 1)
    ]
    asked = [(r["id"], r["recipients"][0]["task_id"]) for r in sent]
    receiver = s.tok(OWNER, w.ub)

    async def filed_at_ub() -> bool:
        for _ref, task in asked:
            r = await fed.call(OWNER, Req("referral", "GET", f"/v1/incoming/{task}"), receiver)
            if r.status != 200:
                return False
        return True

    await _until(filed_at_ub, "ua's referrals in ub's inbox")
    question = f"Var bor personen? {w.m('question')}"
    for _ref, task in asked:
        for body in (
            {"to": "acknowledged"},
            {"to": "information_requested", "question": question},
        ):
            r = await s.ok(OWNER, w.ub, Req("referral", "GET", f"/v1/incoming/{task}"))
            step = Req(
                "referral",
                "POST",
                f"/v1/incoming/{task}/transitions",
                json=body,
                headers={"If-Match": r.headers["etag"]},
            )
            await s.ok(OWNER, w.ub, step)

    async def asked_at_ua() -> bool:
        sender = s.tok(OWNER, w.ua)
        for ref, _task in asked:
            r = await fed.call(OWNER, Req("referral", "GET", f"/v1/referrals/{ref}"), sender)
            if r.status != 200 or r.json()["recipients"][0]["status"] != "information_requested":
                return False
        return True

    await _until(asked_at_ua, "ub's questions at ua")
    (w.info_ref, w.info_task), *w.info_pool = asked


async def seed(fed: Federation) -> World:
    """Builds the world through the APIs and waits until its events have travelled; the
    workers are left running (the caller stops them when it wants a still world)."""
    w = World(dead_url=dead_url())
    s = Seeder(fed, w)
    region_body = {"name": "Region Kronoberg", "kind": "region", "county_code": "07"}
    vaxjo_body = {
        "name": "Växjö kommun",
        "kind": "kommun",
        "county_code": "07",
        "kommunkoder": ["0780"],
    }
    await s.ok(OWNER, None, Req("directory", "PUT", "/v1/member", json=vaxjo_body))
    await s.ok(OTHER, None, Req("directory", "PUT", "/v1/member", json=region_body))
    all_kinds = ["kontaktbegaran", "sip_kallelse", "vardkedjeremiss", "utskrivningsplanering"]
    w.ua = await s.unit(OWNER, unit_body(f"Mottagning A {w.m('unitA')}", all_kinds))
    w.ub = await s.unit(OWNER, unit_body("Mottagning B", all_kinds))
    w.uc = await s.unit(OWNER, unit_body("Mottagning C", all_kinds))
    w.r_port = await s.unit(
        OTHER, unit_body("Remissport", ["kontaktbegaran", "vardkedjeremiss"], "remissport")
    )
    w.r_x = await s.unit(OTHER, unit_body("Psykiatri", ["kontaktbegaran"], "vuxenpsykiatri"))
    everyone = [w.ua, w.ub, w.uc, w.r_port, w.r_x]

    async def units_known() -> bool:
        for stack in fed.stacks.values():
            async with stack.db("referral").sessionmaker() as session:
                known = await KnownUnitRepository(session).names(everyone)
            if len(known) != len(everyone):
                return False
            for orgnr, unit in ((OWNER, w.r_port), (OTHER, w.ua)):
                r = await fed.call(
                    orgnr,
                    Req("directory", "GET", f"/v1/replica/units/{unit}"),
                    s.tok(orgnr, None),
                )
                if r.status != 200:
                    return False
        return True

    await _until(units_known, "every unit known to both members")

    # Consents: the owner's own (within Växjö and Alvesta), one naming the region (for the
    # referral across members) and the region's naming Växjö (a copy at Växjö).
    w.consent_a = await s.consent(
        OWNER,
        w.ua,
        w.p1,
        [OWNER, THIRD],
        ["sip", "kontaktbegaran"],
        reference=f"Dok {w.m('consentA')}",
    )
    w.consent_x = await s.consent(OWNER, w.ua, w.p3, [OWNER, OTHER], ["kontaktbegaran"])
    w.copy_r = await s.consent(OTHER, w.r_port, w.p4, [OTHER, OWNER], ["sip"])
    w.refusal_a = await s.refusal(w.p1, note=f"Nej {w.m('refusalA')}")
    w.block_a = await s.block(w.p1, reason=f"Begäran {w.m('blockA')}")

    async def copies_arrived() -> bool:
        for orgnr, consent_id in ((OWNER, w.copy_r), (OTHER, w.consent_x)):
            r = await fed.call(
                orgnr,
                Req("consent", "GET", f"/v1/consent-copies/{consent_id}"),
                s.tok(orgnr, None),
            )
            if r.status != 200:
                return False
        return True

    await _until(copies_arrived, "the consent copies at the parties")

    # ua's webhook subscription comes first: every referral ua receives is delivered to it.
    w.sub_a = await s.subscription(w.ua)

    # Documents: one ua sends, one ub sends ua (and one about the protected person), and an
    # upload of ua's that waits.
    w.att_out = await s.document(w.ua, f"Bilaga {w.m('attOut')}")
    w.att_in = await s.document(w.ub, f"Bilaga {w.m('attIn')}")
    w.att_p = await s.document(w.ub, f"Skyddad bilaga {w.m('attP')}")
    w.att_draft = await s.document(w.ua, f"Utkast {w.m('attDraft')}")
    w.att_spare = await s.document(w.ua, f"Utkast {w.m('attSpare')}")
    w.att_listed = await s.document(w.ua, f"Utkast {w.m('attListed')}")
    sent = await s.send(
        w.ua, (OWNER, w.ub), w.p1, f"Utgående {w.m('outA')}", attachment_ids=[w.att_out]
    )
    w.ref_a, w.ref_a_task = sent["id"], sent["recipients"][0]["task_id"]
    sent = await s.send(w.ua, (OTHER, w.r_port), w.p3, f"Till regionen {w.m('outX')}")
    assert sent["recipients"][0]["basis"]["kind"] == "consent", sent
    w.ref_x, w.ref_x_task = sent["id"], sent["recipients"][0]["task_id"]
    sent = await s.send(
        w.ua, (OWNER, w.ub), w.p1, f"Utskrivning {w.m('disA')}", kind="utskrivningsplanering"
    )
    w.dis_a = sent["id"]
    received = [
        await s.send(
            w.ub, (OWNER, w.ua), w.p1, f"Inkommande {w.m('inA')}", attachment_ids=[w.att_in]
        ),
        await s.send(
            w.ub,
            (OWNER, w.ua),
            w.p2,
            f"Skyddad {w.m('inP')}",
            protected=True,
            attachment_ids=[w.att_p],
        ),
        await s.send(w.ub, (OWNER, w.ua), w.p1, f"Remiss {w.m('inV')}", kind="vardkedjeremiss"),
        *[await s.send(w.ub, (OWNER, w.ua), w.p1, f"Pool {w.m(f'pool{i}')}") for i in range(2)],
    ]
    tasks = [r["recipients"][0]["task_id"] for r in received]
    w.inc_a, w.inc_p, w.inc_v, *w.inc_pool = tasks
    owner_all = s.tok(OWNER, w.ua)

    async def received_by_ua() -> bool:
        r = await fed.call(OWNER, Req("referral", "GET", "/v1/incoming?limit=200"), owner_all)
        return r.status == 200 and {i["task_id"] for i in r.json()["items"]} >= set(tasks)

    async def received_by_port() -> bool:
        r = await fed.call(OTHER, Req("referral", "GET", "/v1/incoming"), s.tok(OTHER, w.r_port))
        return r.status == 200 and any(i["task_id"] == w.ref_x_task for i in r.json()["items"])

    await _until(received_by_ua, "the referrals in ua's inbox")

    async def documents_at_ua() -> bool:
        for task in (w.inc_a, w.inc_p):
            r = await fed.call(OWNER, Req("referral", "GET", f"/v1/incoming/{task}"), owner_all)
            if r.status != 200 or not r.json()["documents"]:
                return False
        return True

    await _until(documents_at_ua, "the documents in ua's inbox")
    await _until(received_by_port, "the referral at the region's port")
    r = await s.ok(OWNER, w.ua, Req("referral", "GET", f"/v1/incoming/{w.inc_v}"))
    await s.ok(
        OWNER,
        w.ua,
        Req(
            "referral",
            "POST",
            f"/v1/incoming/{w.inc_v}/transitions",
            json={"to": "acknowledged", "case_reference": "SOC-1"},
            headers={"If-Match": r.headers["etag"]},
        ),
    )
    w.meeting_a, w.action_a = await s.meeting(f"SIP {w.m('sipA')}")
    await _asked_of_ua(fed, s, w)

    # Notifications of ua's received referrals, in its inbox and the lead role's; their
    # webhook deliveries fail at once and end dead.
    async def notified() -> bool:
        inbox = await fed.call(
            OWNER, Req("notify", "GET", f"/v1/units/{w.ua}/notifications?limit=200"), owner_all
        )
        lead = await fed.call(
            OWNER, Req("notify", "GET", f"/v1/roles/{LEAD_ROLE}/notifications"), owner_all
        )
        dead = await fed.call(
            OWNER, Req("notify", "GET", "/v1/deliveries?status=dead&channel=webhook"), owner_all
        )
        if inbox.status != 200 or lead.status != 200 or dead.status != 200:
            return False
        got = [
            i
            for i in inbox.json()["items"]
            if i["kind"] == "referral.received" and i["subject_id"] is not None
        ]
        if len(got) < len(tasks) or not lead.json()["items"] or len(dead.json()["items"]) < 4:
            return False
        w.notif_a = got[0]["id"]
        w.notif_lead = lead.json()["items"][0]["id"]
        w.deliveries = [d["id"] for d in dead.json()["items"]]
        return True

    await _until(notified, "ua's notifications and their dead webhook deliveries")

    # Markers: what must never reach anyone outside ua (and, for the protected referral,
    # anyone without the role), and what must never leave the owner.
    protected_ids = {w.inc_p, w.m("inP"), w.att_p, w.m("attP")}
    w.protected = protected_ids | pnr_forms(w.p2)
    asked = [w.info_ref, w.info_task, *(i for pair in w.info_pool for i in pair)]
    w.unit_private = (
        {w.ref_a, w.ref_a_task, w.ref_x, w.ref_x_task, w.dis_a, w.inc_a, w.inc_v, *w.inc_pool}
        | {*asked, w.m("question"), *(w.m(f"info{i}") for i in range(INFO_POOL + 1))}
        | {w.meeting_a, w.action_a, w.sub_a, w.notif_a, w.dead_url}
        | {w.att_out, w.att_in, w.att_draft, w.att_spare, w.att_listed}
        | {w.m(k) for k in ("outA", "outX", "disA", "inA", "inV", "sipA", "pool0", "pool1")}
        | {w.m(k) for k in ("attOut", "attIn", "attDraft", "attSpare", "attListed")}
        | pnr_forms(w.p1)
        | pnr_forms(w.p3)
        | w.protected
    )
    w.shared = {w.ref_x, w.ref_x_task, w.m("outX")} | pnr_forms(w.p3)
    w.member_private = (
        w.unit_private
        | {w.consent_a, w.refusal_a, w.block_a, *w.deliveries}
        | {w.m(k) for k in ("consentA", "refusalA", "blockA")}
    )
    return w


# --- figures ---------------------------------------------------------------------------

VAR_SECURITY = Path(__file__).resolve().parents[2] / "var" / "security"


def write_report(name: str, backend: str, figures: dict[str, Any]) -> Path:
    """Merges ``figures`` into one backend's section of ``var/security/<name>`` (what other
    tests or backends wrote there stays); returns the path."""
    VAR_SECURITY.mkdir(parents=True, exist_ok=True)
    path = VAR_SECURITY / name
    current: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            current = json.loads(path.read_text(encoding="utf-8"))
    backends = current.get("backends")
    if not isinstance(backends, dict):
        backends = {}
    backends[backend] = {**backends.get(backend, {}), **figures}
    report = {"generated_at": dt.datetime.now(dt.UTC).isoformat(), "backends": backends}
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
