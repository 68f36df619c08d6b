"""Scenario 8: audit completeness — every access to personal data leaves exactly its audit
records, and fails when they cannot be written.

``AUDIT`` classifies every ``/v1`` operation of the four services (from OpenAPI: a new
operation fails the coverage test until someone decides) as *personal* — with the cases
that perform it and the audit records each case must leave — or *not personal*, with the
reason. The classification is checked against the contract too: an operation whose
request or answer carries a personnummer, or whose description says it is audited, must be
personal.

On the seeded federation of ``tests/security/federation.py`` (real databases, broker and
workers):

1. every personal case, performed by unit A's caller, leaves exactly the expected records
   (matched by the request's ``X-Request-ID``) with every required field: service, who
   (``actor_sub``), member, unit, when (within the request), what (action, resource),
   the person, purpose and outcome; audited accesses outside the consent service also go
   to the member's internal topic, one event per record (ADR 0011); non-personal
   operations write no record;
2. the person's audit extract at the consent service shows every one of those accesses;
3. with audit writing broken by a real fault (a database trigger that refuses every insert
   into ``audit_record``), every personal case fails with a 5xx problem+json and none of
   the member's four databases changes, while every non-personal operation still works.

Figures (accesses, records, coverage) go to ``var/security/audit-completeness.json``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select, text

from shared.data.db import Database
from shared.messaging.events.payloads import AUDIT_RECORDED_V1
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from tests.conftest import BACKENDS
from tests.helpers.harness import eventually
from tests.security.federation import (
    OWNER,
    PROTECTED_ROLE,
    SERVICES,
    SPECS,
    WAIT_S,
    Federation,
    Req,
    Resp,
    audit_rows,
    digest,
    seed,
    settings_for,
    token,
    write_report,
)
from tests.security.matrix import SCOPE_IN_DESCRIPTION, TABLE, Kind, expected, openapi_operations
from tests.security.matrix import Caller as MatrixCaller
from tests.security.operations import (
    QUESTION,
    QUESTION_UNDER_BAD_BASIS,
    QUESTION_UNDER_LEGAL_BASIS,
    Builder,
    Env,
    b_attach,
    b_convene,
    b_delete_draft,
    b_discharge,
    b_information,
    b_on_record,
    b_plan,
    b_record,
    b_remissmote,
    b_revise_plan,
    b_send_across,
    b_send_within,
    b_step_action,
    b_transition,
    b_upload,
    b_withdraw,
    get,
    lift,
    send,
    withdrawal,
)

REPORT = "audit-completeness.json"
AUDIT_FIELDS = (
    "occurred_at",
    "service",
    "actor_sub",
    "actor_org",
    "actor_unit",
    "action",
    "person_id",
    "purpose",
    "outcome",
    "resource_type",
    "resource_id",
    "request_id",
)
"""ADR 0010: who, member, unit, action, which person, purpose, outcome, time (and what)."""


# --- what each access must leave -------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """An expected audit record (the request's own fields are checked for every row)."""

    action: str
    person: str | None
    resource_type: str | None
    resource_id: str | None
    purpose: str | None = None
    outcome: str = "allowed"


Rows = Callable[[Env, Req, Resp], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Case:
    """One way to perform a personal operation, and the records it must leave."""

    label: str
    build: Builder
    rows: Rows
    roles: tuple[str, ...] = ()
    status: int = 200
    decided_by_consent: bool = False
    """The referral service asked the consent service, which audits the decision too."""


@dataclass(frozen=True)
class Personal:
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class NotPersonal:
    why: str


def one(
    action: str,
    rtype: str | None,
    *,
    rid: str | None = None,
    person: str | None = None,
    purpose: str | None = None,
    from_body: bool = False,
) -> Rows:
    """One record: the person and resource given as templates, or (``from_body``) read
    from the answer (``person.personnummer`` and ``id``: a record made by this request)."""

    async def rows(env: Env, req: Req, resp: Resp) -> list[Row]:
        if from_body:
            body = resp.json()
            return [Row(action, body["person"]["personnummer"], rtype, body["id"], purpose)]
        return [Row(action, env.fill(person), rtype, env.fill(rid), env.fill(purpose))]

    return rows


def sent_person(action: str, rtype: str) -> Rows:
    """One record about the person named in the request's body, for the answer's ``id``."""

    async def rows(env: Env, req: Req, resp: Resp) -> list[Row]:
        return [Row(action, req.json["person"]["personnummer"], rtype, resp.json()["id"])]

    return rows


def per_item(action: str, *, key: str) -> Rows:
    """One record per referral on the page (``key``: its id field)."""

    async def rows(env: Env, req: Req, resp: Resp) -> list[Row]:
        items = resp.json()["items"]
        return [
            Row(action, i["person"]["personnummer"], "referral", i[key], i["kind"]) for i in items
        ]

    return rows


def plan_rows(action: str, *, key: str | None = None, id_field: str = "plan_id") -> Rows:
    """One record per plan in the answer (a list, or the list at ``key``)."""

    async def rows(env: Env, req: Req, resp: Resp) -> list[Row]:
        items = resp.json() if key is None else resp.json()[key]
        plans = {i[id_field]: i["person"]["personnummer"] for i in items}
        return [Row(action, person, "plan", plan_id) for plan_id, person in plans.items()]

    return rows


async def person_search_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    out = []
    for item in resp.json():
        sent = "recipients" in item
        action = "referral.person_search" if sent else "incoming.person_search"
        rid = item["id"] if sent else item["task_id"]
        out.append(Row(action, item["person"]["personnummer"], "referral", rid, item["kind"]))
    return out


async def decision_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    body = resp.json()
    basis = body["basis"]
    use = basis.get("legal_basis_use_id")
    return [
        Row(
            "consent.decision",
            req.json["person"]["personnummer"],
            "legal_basis_use" if use else "consent",
            use or basis.get("consent_id"),
            req.json["purpose"],
            "allowed" if body["allowed"] else "denied",
        )
    ]


async def refused_basis_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    q = req.json
    basis = q["legal_basis"]["basis"]
    pnr = q["person"]["personnummer"]
    return [Row("consent.decision", pnr, "legal_basis", basis, q["purpose"], "denied")]


async def withdraw_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """The withdrawn recipient's task; the person from the sender's list of referrals."""
    task = resp.json()["task_id"]
    r = await env.s.ok(OWNER, env.w.ua, Req("referral", "GET", "/v1/outgoing?limit=200"))
    ref = next(i for i in r.json()["items"] if task in {x["task_id"] for x in i["recipients"]})
    return [Row("referral.withdraw", ref["person"]["personnummer"], "referral", task, ref["kind"])]


async def information_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """The answered task; the person from the sender's view of its referral."""
    referral = req.path.split("/")[3]
    r = await env.s.ok(OWNER, env.w.ua, Req("referral", "GET", f"/v1/referrals/{referral}"))
    ref = r.json()
    task = resp.json()["task_id"]
    pnr = ref["person"]["personnummer"]
    return [Row("referral.information", pnr, "referral", task, ref["kind"])]


async def transition_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    body = resp.json()
    action = f"incoming.{req.json['to']}"
    return [Row(action, body["person"]["personnummer"], "referral", body["task_id"], body["kind"])]


async def send_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    body = resp.json()
    pnr = body["person"]["personnummer"]
    return [Row("referral.send", pnr, "referral", body["id"], body["kind"])]


async def upload_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """An upload is about no one yet: its record names the document only."""
    return [Row("attachment.upload", None, "attachment", resp.json()["id"])]


async def draft_list_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """One record per upload listed, naming the document only (an upload names no one)."""
    return [Row("attachment.list", None, "attachment", i["id"]) for i in resp.json()["items"]]


async def draft_delete_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """The deleted upload (its id in the path), naming no one."""
    return [Row("attachment.delete", None, "attachment", req.path.rsplit("/", 1)[1])]


async def attach_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """The referral the documents were added to; the person from the sender's view of it."""
    referral = resp.json()["referral_id"]
    r = await env.s.ok(OWNER, env.w.ua, Req("referral", "GET", f"/v1/referrals/{referral}"))
    body = r.json()
    pnr = body["person"]["personnummer"]
    return [Row("referral.attachments_add", pnr, "referral", referral, body["kind"])]


async def discharge_rows(env: Env, req: Req, resp: Resp) -> list[Row]:
    """The discharge planning (its id in the path); the person from the sender's view."""
    referral = req.path.split("/")[3]
    r = await env.s.ok(OWNER, env.w.ua, Req("referral", "GET", f"/v1/referrals/{referral}"))
    pnr = r.json()["person"]["personnummer"]
    return [Row("referral.discharge", pnr, "referral", referral, "utskrivningsplanering")]


class Replay:
    """POST a consent with an Idempotency-Key, then the same again: the replay is audited.
    The first call is made once (before any phase breaks the audit log)."""

    label = "the same request again (Idempotency-Key)"

    def __init__(self) -> None:
        self.first: dict[str, Req] = {}
        """Per world (by its unit A): the request made once."""

    async def build(self, env: Env, fresh: bool) -> Req:
        if env.w.ua not in self.first:
            make = b_record("consents", recorded_by_unit=False, key=f"replay-{time.time_ns()}")
            first = await make(env, True)
            key = ("consent", "POST", "/v1/consents")
            case = next(c for k, c in personal_cases() if k == key and c.label == self.label)
            r = await env.fed.call(OWNER, first, case_token(env, key, case))
            assert r.status == 201, r.text
            self.first[env.w.ua] = first
        return self.first[env.w.ua]

    @staticmethod
    async def rows(env: Env, req: Req, resp: Resp) -> list[Row]:
        pnr = req.json["person"]["personnummer"]
        return [Row("consent.record.replay", pnr, None, None)]


REPLAY = Replay()

C, RF = "consent", "referral"
PROT = (PROTECTED_ROLE,)

AUDIT: dict[tuple[str, str, str], Personal | NotPersonal] = {
    # directory and notify: organisational data and notifications of ids, kinds and
    # deadlines only; a personnummer never reaches them (ADR 0009, 0012)
    **{
        key: NotPersonal("organisational data only: units are functions, never persons")
        for key in TABLE
        if key[0] == "directory"
    },
    **{
        key: NotPersonal("notifications, hooks and deliveries carry ids, kinds and deadlines")
        for key in TABLE
        if key[0] == "notify"
    },
    # consent
    (C, "POST", "/v1/decisions"): Personal(
        (
            Case("a consent allows", send(C, "POST", "/v1/decisions", QUESTION), decision_rows),
            Case(
                "a legal basis is used",
                send(C, "POST", "/v1/decisions", QUESTION_UNDER_LEGAL_BASIS),
                decision_rows,
            ),
            Case(
                "a legal basis that cannot apply is refused (and audited as denied)",
                send(C, "POST", "/v1/decisions", QUESTION_UNDER_BAD_BASIS),
                refused_basis_rows,
                status=422,
            ),
        )
    ),
    (C, "GET", "/v1/legal-bases"): NotPersonal("the configured table of legal bases"),
    (C, "POST", "/v1/consents"): Personal(
        (
            Case(
                "record",
                b_record("consents", recorded_by_unit=True),
                sent_person("consent.record", "consent"),
                status=201,
            ),
            Case(Replay.label, REPLAY.build, Replay.rows, status=201),
        )
    ),
    (C, "GET", "/v1/consents/{consent_id}"): Personal(
        (
            Case(
                "read",
                get(C, "/v1/consents/{consent_a}"),
                one("consent.read", "consent", rid="{consent_a}", person="{p1}"),
            ),
        )
    ),
    (C, "POST", "/v1/consents/{consent_id}/withdraw"): Personal(
        (
            Case(
                "withdraw",
                b_on_record("consents", "withdraw", withdrawal),
                one("consent.withdraw", "consent", from_body=True),
            ),
        )
    ),
    (C, "GET", "/v1/consent-copies/{consent_id}"): Personal(
        (
            # The copy holds no personnummer: the record names the copy, and the extract
            # finds it through the copies held for the person (ADR 0011).
            Case(
                "read a copy",
                get(C, "/v1/consent-copies/{copy_r}"),
                one("consent_copy.read", "consent_copy", rid="{copy_r}"),
            ),
        )
    ),
    (C, "POST", "/v1/refusals"): Personal(
        (
            Case(
                "record",
                b_record("refusals", recorded_by_unit=False),
                sent_person("refusal.record", "refusal"),
                status=201,
            ),
        )
    ),
    (C, "GET", "/v1/refusals/{refusal_id}"): Personal(
        (
            Case(
                "read",
                get(C, "/v1/refusals/{refusal_a}"),
                one("refusal.read", "refusal", rid="{refusal_a}", person="{p1}"),
            ),
        )
    ),
    (C, "POST", "/v1/refusals/{refusal_id}/revoke"): Personal(
        (
            Case(
                "revoke",
                b_on_record("refusals", "revoke", lambda: {"reason": "Ändrat sig."}),
                one("refusal.revoke", "refusal", from_body=True),
            ),
        )
    ),
    (C, "POST", "/v1/blocks"): Personal(
        (
            Case(
                "record",
                b_record("blocks", recorded_by_unit=False),
                sent_person("block.record", "block"),
                status=201,
            ),
        )
    ),
    (C, "GET", "/v1/blocks/{block_id}"): Personal(
        (
            Case(
                "read",
                get(C, "/v1/blocks/{block_a}"),
                one("block.read", "block", rid="{block_a}", person="{p1}"),
            ),
        )
    ),
    (C, "POST", "/v1/blocks/{block_id}/lifts"): Personal(
        (
            Case(
                "lift",
                b_on_record("blocks", "lifts", lift),
                one("block.lift", "block", from_body=True),
                status=201,
            ),
        )
    ),
    (C, "POST", "/v1/blocks/{block_id}/remove"): Personal(
        (
            Case(
                "remove",
                b_on_record("blocks", "remove"),
                one("block.remove", "block", from_body=True),
            ),
        )
    ),
    (C, "POST", "/v1/persons/search"): Personal(
        (
            Case(
                "search",
                send(C, "POST", "/v1/persons/search", {"personnummer": "{p1}"}),
                one("person.search", None, person="{p1}"),
            ),
        )
    ),
    (C, "POST", "/v1/persons/audit-extract"): Personal(
        (
            Case(
                "extract",
                send(C, "POST", "/v1/persons/audit-extract", {"personnummer": "{p1}"}),
                one("person.audit_extract", None, person="{p1}"),
            ),
        )
    ),
    # referral
    (RF, "POST", "/v1/referrals"): Personal(
        (
            Case("send within the member", b_send_within, send_rows, status=201),
            Case(
                "send to the region (consent decides)",
                b_send_across,
                send_rows,
                status=201,
                decided_by_consent=True,
            ),
        )
    ),
    (RF, "GET", "/v1/referrals/{referral_id}"): Personal(
        (
            Case(
                "read",
                get(RF, "/v1/referrals/{ref_a}"),
                one(
                    "referral.read",
                    "referral",
                    rid="{ref_a}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
        )
    ),
    (RF, "POST", "/v1/attachments"): Personal((Case("upload", b_upload, upload_rows, status=201),)),
    (RF, "GET", "/v1/attachments"): Personal(
        (Case("list", get(RF, "/v1/attachments?limit=200"), draft_list_rows),)
    ),
    (RF, "DELETE", "/v1/attachments/{attachment_id}"): Personal(
        (Case("delete", b_delete_draft, draft_delete_rows, status=204),)
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/attachments"): Personal(
        (Case("add to unit A's referral", b_attach, attach_rows),)
    ),
    (RF, "GET", "/v1/referrals/{referral_id}/attachments/{attachment_id}"): Personal(
        (
            Case(
                "download",
                get(RF, "/v1/referrals/{ref_a}/attachments/{att_out}"),
                one(
                    "referral.attachment_download",
                    "attachment",
                    rid="{att_out}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
        )
    ),
    (RF, "GET", "/v1/incoming/{task_id}/attachments/{attachment_id}"): Personal(
        (
            Case(
                "download",
                get(RF, "/v1/incoming/{inc_a}/attachments/{att_in}"),
                one(
                    "incoming.attachment_download",
                    "attachment",
                    rid="{att_in}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
            Case(
                "download, protected identity",
                get(RF, "/v1/incoming/{inc_p}/attachments/{att_p}"),
                one(
                    "incoming.attachment_download",
                    "attachment",
                    rid="{att_p}",
                    person="{p2}",
                    purpose="kontaktbegaran",
                ),
                roles=PROT,
            ),
        )
    ),
    (RF, "GET", "/v1/outgoing"): Personal(
        (
            Case(
                "list",
                get(RF, "/v1/outgoing?limit=200"),
                per_item("referral.list", key="id"),
            ),
        )
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/discharge"): Personal(
        (Case("record the discharge", b_discharge, discharge_rows, status=201),)
    ),
    (RF, "POST", "/v1/referrals/{task_id}/withdraw"): Personal(
        (Case("withdraw", b_withdraw, withdraw_rows),)
    ),
    (RF, "POST", "/v1/referrals/{referral_id}/recipients/{task_id}/information"): Personal(
        (Case("answer a question", b_information, information_rows),)
    ),
    (RF, "GET", "/v1/incoming"): Personal(
        (
            Case(
                "list, protected identity included",
                get(RF, "/v1/incoming?limit=200"),
                per_item("incoming.list", key="task_id"),
                roles=PROT,
            ),
        )
    ),
    (RF, "GET", "/v1/incoming/{task_id}"): Personal(
        (
            Case(
                "read",
                get(RF, "/v1/incoming/{inc_a}"),
                one(
                    "incoming.read",
                    "referral",
                    rid="{inc_a}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
            Case(
                "read, protected identity",
                get(RF, "/v1/incoming/{inc_p}"),
                one(
                    "incoming.read",
                    "referral",
                    rid="{inc_p}",
                    person="{p2}",
                    purpose="kontaktbegaran",
                ),
                roles=PROT,
            ),
        )
    ),
    (RF, "POST", "/v1/incoming/{task_id}/transitions"): Personal(
        (Case("acknowledge", b_transition, transition_rows),)
    ),
    (RF, "GET", "/v1/tasks/{task_id}/history"): Personal(
        (
            Case(
                "received",
                get(RF, "/v1/tasks/{inc_a}/history"),
                one(
                    "referral.history",
                    "referral",
                    rid="{inc_a}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
            Case(
                "sent",
                get(RF, "/v1/tasks/{ref_a_task}/history"),
                one(
                    "referral.history",
                    "referral",
                    rid="{ref_a_task}",
                    person="{p1}",
                    purpose="kontaktbegaran",
                ),
            ),
        )
    ),
    (RF, "POST", "/v1/person-search"): Personal(
        (
            Case(
                "search",
                send(RF, "POST", "/v1/person-search", {"personnummer": "{p1}"}),
                person_search_rows,
            ),
            Case(
                "search, protected identity",
                send(RF, "POST", "/v1/person-search", {"personnummer": "{p2}"}),
                person_search_rows,
                roles=PROT,
            ),
        )
    ),
    (RF, "GET", "/v1/indicators"): NotPersonal("counts and durations per kind, no person"),
    (RF, "GET", "/v1/deadlines/count"): NotPersonal("a date counted: days, holidays, no person"),
    (RF, "POST", "/v1/meetings"): Personal(
        (
            Case("a SIP", b_convene, sent_person("meeting.convene", "meeting"), status=201),
            Case(
                "a remissmöte (the person from the referral)",
                b_remissmote,
                one("meeting.convene", "meeting", from_body=True),
                status=201,
            ),
        )
    ),
    (RF, "GET", "/v1/meetings/{meeting_id}"): Personal(
        (
            Case(
                "read",
                get(RF, "/v1/meetings/{meeting_a}"),
                one("meeting.read", "meeting", rid="{meeting_a}", person="{p1}"),
            ),
        )
    ),
    (RF, "PUT", "/v1/meetings/{meeting_id}/plan"): Personal(
        (Case("record", b_plan, one("plan.record", "plan", rid="{meeting_a}", person="{p1}")),)
    ),
    (RF, "GET", "/v1/plans/{plan_id}"): Personal(
        (
            Case(
                "read",
                get(RF, "/v1/plans/{meeting_a}"),
                one("plan.read", "plan", rid="{meeting_a}", person="{p1}"),
            ),
        )
    ),
    (RF, "GET", "/v1/plans/{plan_id}/min-plan"): Personal(
        (
            Case(
                "print",
                get(RF, "/v1/plans/{meeting_a}/min-plan"),
                one("plan.min_plan", "plan", rid="{meeting_a}", person="{p1}"),
            ),
        )
    ),
    (RF, "PUT", "/v1/plans/{plan_id}"): Personal(
        (Case("revise", b_revise_plan, one("plan.revise", "plan", from_body=True)),)
    ),
    (RF, "POST", "/v1/plans/{plan_id}/actions/{action_id}/transitions"): Personal(
        (
            Case(
                "start an action", b_step_action, one("plan.action_started", "plan", from_body=True)
            ),
        )
    ),
    (RF, "GET", "/v1/plan-actions"): Personal(
        (Case("the unit's actions", get(RF, "/v1/plan-actions"), plan_rows("plan.worklist")),)
    ),
    (RF, "GET", "/v1/coordination"): Personal(
        (
            Case(
                "the coordinator's worklist",
                get(RF, "/v1/coordination"),
                plan_rows("plan.coordination", key="plans", id_field="id"),
            ),
        )
    ),
}


def personal_cases() -> list[tuple[tuple[str, str, str], Case]]:
    return [(k, c) for k, v in AUDIT.items() if isinstance(v, Personal) for c in v.cases]


SUBS = {(k, c.label): f"auditor-{i}" for i, (k, c) in enumerate(personal_cases())}
"""One ``sub`` per case: its records (and extract entries) are told apart by it."""
NON_PERSONAL_SUB = "auditor-np"


def case_token(env: Env, key: tuple[str, str, str], case: Case) -> str:
    sub = SUBS[(key, case.label)]
    return token(OWNER, env.w.ua, [TABLE[key].scope], case.roles, sub=sub)


# --- the contract says which operations are personal -----------------------------------


def carries_personnummer(
    spec: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether a schema (following its references) has a ``personnummer`` or ``person``
    property."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen:
                return False
            target = spec["components"]["schemas"].get(name, {})
            return carries_personnummer(spec, target, seen | {name})
        if {"personnummer", "person"} & set(node.get("properties", {})):
            return True
        return any(carries_personnummer(spec, v, seen) for v in node.values())
    if isinstance(node, list):
        return any(carries_personnummer(spec, v, seen) for v in node)
    return False


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict[str, Any]]:
    return openapi_operations(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each service's whole OpenAPI document (for its schemas)."""
    tmp = tmp_path_factory.mktemp("openapi-docs")
    out = {}
    for name in SERVICES:
        url = f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"  # never connected
        out[name] = create_app(SPECS[name], settings_for(name, OWNER, url, "127.0.0.1:9")).openapi()
    return out


class TestEveryOperationIsClassified:
    """A new operation fails here until someone decides whether it touches personal data."""

    def test_every_v1_operation_is_personal_or_not(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        v1 = {k for k in ops if k[2].startswith("/v1/")}
        assert not sorted(v1 - AUDIT.keys()), f"unclassified: {sorted(v1 - AUDIT.keys())}"
        assert not sorted(AUDIT.keys() - v1), f"no such operation: {sorted(AUDIT.keys() - v1)}"
        for key, entry in AUDIT.items():
            if isinstance(entry, Personal):
                assert entry.cases, key
            else:
                assert entry.why, key

    def test_what_carries_a_person_or_says_audited_is_personal(
        self,
        ops: dict[tuple[str, str, str], dict[str, Any]],
        components: dict[str, dict[str, Any]],
    ) -> None:
        for key, entry in AUDIT.items():
            op = ops[key]
            body = op.get("requestBody", {})
            answers = {k: v for k, v in op.get("responses", {}).items() if k.startswith("2")}
            carries = carries_personnummer(components[key[0]], [body, answers])
            says = "audited" in op.get("description", "").lower()
            if carries or says:
                assert isinstance(entry, Personal), (key, "personnummer" if carries else "audited")

    def test_each_operation_names_its_scope(
        self, ops: dict[tuple[str, str, str], dict[str, Any]]
    ) -> None:
        for key in AUDIT:
            found = set(SCOPE_IN_DESCRIPTION.findall(ops[key].get("description", "")))
            assert found == {TABLE[key].scope}, key


# --- phase 1: every access leaves exactly its records ----------------------------------


@dataclass
class Checked:
    """What one case's request left in the audit log."""

    key: tuple[str, str, str]
    label: str
    status: int
    sub: str
    expected: list[Row]
    actual: list[dict[str, Any]]
    missing: list[Row] = field(default_factory=list)
    unexpected: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        """Expected records found exactly."""
        return len(self.expected) - len(self.missing)

    @property
    def present(self) -> int:
        """Expected records found with their action, person and resource id (a record
        whose other fields are wrong is still there: coverage, not exactness)."""
        left = [(r.action, r.person, r.resource_id) for r in self.unexpected]
        found = 0
        for r in self.missing:
            if (r.action, r.person, r.resource_id) in left:
                left.remove((r.action, r.person, r.resource_id))
                found += 1
        return self.matched + found


async def audit_events(db: Database, service: str) -> int:
    outbox = SPECS[service].infra.outbox
    async with db.sessionmaker() as session:
        stmt = (
            select(func.count()).select_from(outbox).where(outbox.c.event_type == AUDIT_RECORDED_V1)
        )
        return int((await session.execute(stmt)).scalar_one())


def as_row(r: dict[str, Any]) -> Row:
    return Row(
        r["action"],
        r["person_id"],
        r["resource_type"],
        r["resource_id"],
        r["purpose"],
        r["outcome"],
    )


async def check_case(env: Env, key: tuple[str, str, str], case: Case) -> Checked:
    stack = env.fed.stacks[OWNER]
    req = await case.build(env, True)
    db, spec = stack.db(req.service), SPECS[req.service]
    events_before = await audit_events(db, req.service)
    started = dt.datetime.now(dt.UTC)
    resp = await env.fed.call(OWNER, req, case_token(env, key, case))
    ended = dt.datetime.now(dt.UTC)
    sub = SUBS[(key, case.label)]
    actual = await audit_rows(db, spec, resp.request_id)
    events = await audit_events(db, req.service) - events_before
    out = Checked(key, case.label, resp.status, sub, [], actual)
    if resp.status != case.status:
        out.problems.append(f"answered {resp.status}, expected {case.status}: {resp.text[:300]}")
        return out
    out.expected = await case.rows(env, req, resp)
    if not out.expected:
        out.problems.append("the case expects no record: it shows no personal data")
    left = [as_row(r) for r in actual]
    for row in out.expected:
        if row in left:
            left.remove(row)
        else:
            out.missing.append(row)
    out.unexpected = left
    slack = dt.timedelta(seconds=1)
    for r in actual:
        wrong = {
            "service": r["service"] == req.service,
            "actor_sub": r["actor_sub"] == sub,
            "actor_org": r["actor_org"] == OWNER,
            "actor_unit": r["actor_unit"] == env.w.ua,
            "request_id": r["request_id"] == resp.request_id,
            "occurred_at": r["occurred_at"].tzinfo is not None
            and started - slack <= r["occurred_at"] <= ended + slack,
        }
        out.problems += [f"{name} wrong: {r[name]!r}" for name, ok in wrong.items() if not ok]
        out.problems += [f"{name} missing" for name in AUDIT_FIELDS if name not in r]
    if req.service != "consent":  # ADR 0011: each record about a person also as an event
        with_person = sum(r["person_id"] is not None for r in actual)
        if events != with_person:
            out.problems.append(f"{events} audit events for {with_person} records about a person")
    if case.decided_by_consent:
        pnr = resp.json()["person"]["personnummer"]
        consent = stack.db("consent")
        audit = SPECS["consent"].infra.audit
        async with consent.sessionmaker() as session:
            rows = (await session.execute(select(audit).where(audit.c.person_id == pnr))).all()
        decisions = [dict(r._mapping) for r in rows if r.action == "consent.decision"]
        out.expected.append(Row("consent.decision", pnr, "consent", None, "kontaktbegaran"))
        ok = (
            len(decisions) == 1
            and decisions[0]["actor_sub"] == "service:referral"
            and decisions[0]["actor_org"] == OWNER
            and decisions[0]["outcome"] == "allowed"
            and decisions[0]["purpose"] == "kontaktbegaran"
            and decisions[0]["resource_type"] == "consent"
        )
        if not ok:
            out.missing.append(out.expected[-1])
            out.problems.append(f"the consent service's decision records: {decisions}")
    return out


@dataclass
class Phase1:
    personal: list[Checked]
    non_personal: dict[str, int]
    """Per non-personal operation: its answer's status, or -records written."""


@pytest.fixture(scope="module", params=BACKENDS)
async def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    """The seeded federation of one backend (workers running until phase 3 stops them)."""
    fed = Federation(request.param, tmp_path_factory.mktemp(f"audit-{request.param}"))
    try:
        await fed.start()
        world = await seed(fed)
        yield Env(fed, world)
    finally:
        await fed.close()


def non_personal_keys() -> list[tuple[str, str, str]]:
    return [k for k, v in AUDIT.items() if isinstance(v, NotPersonal)]


async def non_personal_request(env: Env, key: tuple[str, str, str]) -> tuple[Req, str]:
    """The operation's first matrix target (one the owner may call), with its token."""
    t = TABLE[key].targets[0]
    assert expected(t, MatrixCaller.OWNER).kind is Kind.ALLOW, key
    roles = (t.role,) if t.role else ()
    req = await t.build(env, t.fresh)
    # A fresh unit is its own owner: its token changes it (the directory's unit rule).
    unit = req.as_unit or env.w.ua
    bearer = token(OWNER, unit, [TABLE[key].scope], roles, sub=NON_PERSONAL_SUB)
    return req, bearer


@pytest.fixture(scope="module")
async def phase1(env: Env) -> Phase1:
    personal = [await check_case(env, k, c) for k, c in personal_cases()]
    non_personal: dict[str, int] = {}
    for key in non_personal_keys():
        resp = await env.fed.call(OWNER, *await non_personal_request(env, key))
        db, spec = env.fed.stacks[OWNER].db(key[0]), SPECS[key[0]]
        written = len(await audit_rows(db, spec, resp.request_id))
        non_personal[" ".join(key)] = -written if written else resp.status
    return Phase1(personal, non_personal)


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _row(r: Row) -> dict[str, Any]:
    return {k: v for k, v in r.__dict__.items() if v is not None}


class TestEveryAccessIsAudited:
    async def test_each_personal_access_leaves_exactly_its_records(
        self, env: Env, phase1: Phase1
    ) -> None:
        checked = phase1.personal
        expected_rows = sum(len(c.expected) for c in checked)
        matched = sum(c.matched for c in checked)
        failures = [
            {
                "operation": " ".join(c.key),
                "case": c.label,
                "status": c.status,
                "missing": [_row(r) for r in c.missing],
                "unexpected": [_row(r) for r in c.unexpected],
                "problems": c.problems,
            }
            for c in checked
            if c.missing or c.unexpected or c.problems
        ]
        bad_non_personal = {k: v for k, v in phase1.non_personal.items() if not 200 <= v < 300}
        personal_ops = [k for k, v in AUDIT.items() if isinstance(v, Personal)]
        figures = {
            "operations": len(AUDIT),
            "personal_data_operations": len(personal_ops),
            "personal_by_service": dict(Counter(k[0] for k in personal_ops)),
            "not_personal_operations": len(AUDIT) - len(personal_ops),
            "accesses": len(checked),
            "expected_records": expected_rows,
            "audit_records": sum(len(c.actual) for c in checked),
            "records_present": sum(c.present for c in checked),
            "records_exact": matched,
            "records_with_every_field": sum(
                len(c.actual)
                for c in checked
                if not any("wrong" in p or "missing" in p for p in c.problems)
            ),
            "coverage_percent": percent(sum(c.present for c in checked), expected_rows),
            "exact_percent": percent(matched, expected_rows),
            "accesses_fully_audited": sum(
                not (c.missing or c.unexpected or c.problems) for c in checked
            ),
            "non_personal_calls": len(phase1.non_personal),
            "non_personal_with_records": sum(v < 0 for v in phase1.non_personal.values()),
            "failures": failures,
            "non_personal_failures": bad_non_personal,
        }
        path = write_report(REPORT, env.fed.backend, {"audited": figures})
        assert not failures, (
            f"{len(failures)} accesses not audited exactly (see {path}): {failures[:3]}"
        )
        assert not bad_non_personal, (
            f"non-personal operations failed or audited: {bad_non_personal}"
        )
        assert expected_rows >= len(checked)
        assert matched == expected_rows

    async def test_the_persons_extract_shows_every_access(self, env: Env, phase1: Phase1) -> None:
        """ADR 0011: the consent service's extract gathers every service's records."""
        wanted: dict[str, list[tuple[str, str, str, str | None]]] = {}
        for c in phase1.personal:
            for r in c.actual:
                person = r["person_id"]
                if person is None and r["action"] == "consent_copy.read":
                    person = env.w.p4  # found through the copy held for the person
                if person is not None:
                    entry = (r["service"], r["action"], r["actor_sub"], r["resource_id"])
                    wanted.setdefault(person, []).append(entry)
        reader = token(OWNER, env.w.ua, ["consent:person"], sub="extract-reader")
        missing: dict[str, list[Any]] = {}

        async def complete() -> bool:
            missing.clear()
            for person, entries in wanted.items():
                req = Req(C, "POST", "/v1/persons/audit-extract", json={"personnummer": person})
                r = await env.fed.call(OWNER, req, reader)
                assert r.status == 200, r.text
                shown = Counter(
                    (e["service"], e["action"], e["actor_sub"], e["resource_id"])
                    for e in r.json()["entries"]
                )
                lacking = Counter(entries) - shown
                if lacking:
                    missing[person] = sorted(lacking.elements(), key=str)
            return not missing

        with_person = sum(len(v) for v in wanted.values())
        try:
            await eventually(complete, within=WAIT_S, what="every access in the extracts")
        finally:
            write_report(
                REPORT,
                env.fed.backend,
                {
                    "extract": {
                        "persons": len(wanted),
                        "records_about_a_person": with_person,
                        "shown_in_extract": with_person - sum(len(v) for v in missing.values()),
                        "missing": {k[:8] + "-****": v for k, v in missing.items()},
                    }
                },
            )


# --- phase 3: when the audit log cannot be written, the access fails -------------------

BREAK_SQLITE = (
    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_record "
    "BEGIN SELECT RAISE(ABORT, 'audit storage broken'); END"
)
BREAK_PG = (
    "CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit storage broken'; END $$",
    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_record "
    "FOR EACH ROW EXECUTE FUNCTION audit_broken()",
)
REPAIR_SQLITE = ("DROP TRIGGER audit_broken",)
REPAIR_PG = ("DROP TRIGGER audit_broken ON audit_record", "DROP FUNCTION audit_broken()")


async def run_ddl(fed: Federation, statements: tuple[str, ...]) -> None:
    for service in SERVICES:
        async with fed.stacks[OWNER].db(service).transaction() as session:
            for statement in statements:
                await session.execute(text(statement))


async def digests(fed: Federation) -> dict[str, str]:
    stack = fed.stacks[OWNER]
    return {s: await digest(stack.db(s), SPECS[s]) for s in SERVICES}


class TestAuditFailureFailsTheAccess:
    async def test_with_audit_writing_broken_personal_accesses_fail_and_store_nothing(
        self, env: Env
    ) -> None:
        fed = env.fed
        await fed.stop_workers()  # a still world: only these requests change it
        # Every request is made (and what it needs seeded) while the audit log works.
        personal = [(k, c, await c.build(env, True)) for k, c in personal_cases()]
        others = [(k, await non_personal_request(env, k)) for k in non_personal_keys()]
        postgres = fed.backend == "postgres"
        await run_ddl(fed, BREAK_PG if postgres else (BREAK_SQLITE,))
        refused: list[dict[str, Any]] = []
        non_personal: dict[str, int] = {}
        try:
            for key, case, req in personal:
                before = await digests(fed)
                resp = await fed.call(OWNER, req, case_token(env, key, case))
                changed = sorted(s for s, d in (await digests(fed)).items() if d != before[s])
                problem = resp.headers.get("content-type") == PROBLEM_JSON
                refused.append(
                    {
                        "operation": " ".join(key),
                        "case": case.label,
                        "status": resp.status,
                        "problem_json": problem,
                        "changed": changed,
                        "failed_closed": resp.status >= 500 and problem and not changed,
                    }
                )
            for key, (req, bearer) in others:
                non_personal[" ".join(key)] = (await fed.call(OWNER, req, bearer)).status
        finally:
            await run_ddl(fed, REPAIR_PG if postgres else REPAIR_SQLITE)
        # Repaired, an access works (and is audited) again.
        again = await check_case(env, (C, "GET", "/v1/consents/{consent_id}"), AUDIT_READ)
        leaky = [r for r in refused if not r["failed_closed"]]
        broken_non_personal = {k: v for k, v in non_personal.items() if not 200 <= v < 300}
        figures = {
            "personal_accesses_tried": len(refused),
            "failed_closed": len(refused) - len(leaky),
            "answered_without_audit": [r for r in leaky if r["status"] < 500],
            "stored_something": [r for r in leaky if r["changed"]],
            "statuses": dict(Counter(str(r["status"]) for r in refused)),
            "non_personal_tried": len(non_personal),
            "non_personal_still_working": len(non_personal) - len(broken_non_personal),
            "works_again_when_repaired": again.matched == len(again.expected) > 0,
        }
        path = write_report(REPORT, fed.backend, {"audit_broken": figures})
        assert not leaky, f"{len(leaky)} accesses did not fail closed (see {path}): {leaky[:5]}"
        assert not broken_non_personal, broken_non_personal
        assert figures["works_again_when_repaired"], again.problems


AUDIT_READ = Case(
    "read after repair",
    get(C, "/v1/consents/{consent_a}"),
    one("consent.read", "consent", rid="{consent_a}", person="{p1}"),
)
SUBS[((C, "GET", "/v1/consents/{consent_id}"), AUDIT_READ.label)] = "auditor-repaired"
