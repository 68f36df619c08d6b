"""Requests aimed at the owner's seeded world, shared by the authorization matrix and the
audit completeness test.

A *builder* makes one request of an operation. Given ``fresh`` it aims at a new resource
of the owner's, made through the API first (for calls that change or consume what they
touch, or create something about a person), else at the seeded one. Paths, bodies and
markers are templates filled from :meth:`Env.fields` (``{ua}``, ``{inc_a}``, ``{m_outA}``).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.domain.calendar import to_local
from tests.security.federation import (
    LEAD_ROLE,
    OTHER,
    OWNER,
    THIRD,
    Federation,
    Req,
    Seeder,
    World,
    person,
    plan_body,
    unit_body,
)


class Env:
    """What a builder needs: the federation, the world and a seeder for fresh resources."""

    def __init__(self, fed: Federation, world: World) -> None:
        self.fed = fed
        self.w = world
        self.s = Seeder(fed, world)
        self._people = itertools.count(100)
        self._deliveries = iter(world.deliveries[1:])
        self._incoming = iter(world.inc_pool)
        self._asked = iter(world.info_pool)
        self.home_sent = ""
        """Everything the other member's callers sent to their own instance so far."""

    def fields(self) -> dict[str, str]:
        """The world's ids, people and markers, for templates."""
        w = self.w
        values = {k: v for k, v in vars(w).items() if isinstance(v, str)}
        values |= {f"m_{k}": v for k, v in w.marks.items()}
        values |= {"OWNER": OWNER, "OTHER": OTHER, "THIRD": THIRD, "LEAD": LEAD_ROLE}
        values["delivery0"] = w.deliveries[0]
        return values

    def fill(self, template: Any) -> Any:
        """``template`` with every ``{name}`` in its strings replaced from :meth:`fields`."""
        if isinstance(template, str):
            return template.format(**self.fields()) if "{" in template else template
        if isinstance(template, dict):
            return {k: self.fill(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self.fill(v) for v in template]
        return template

    def new_person(self) -> str:
        """A person no marker names (an allowed create must not plant private markers)."""
        return person(next(self._people))

    def next_delivery(self) -> str:
        return next(self._deliveries)

    def next_incoming(self) -> str:
        return next(self._incoming)

    def next_asked(self) -> tuple[str, str]:
        """A referral of ua's (and its task) whose receiver asked ua a question."""
        return next(self._asked)

    async def etag(self, service: str, path: str, unit: str | None) -> str:
        r = await self.s.ok(OWNER, unit, Req(service, "GET", path))
        value: str = r.headers["etag"]
        return value


Builder = Callable[[Env, bool], Awaitable[Req]]
"""Builds one request of an operation; the flag is ``fresh``."""


def get(service: str, path: str) -> Builder:
    """A GET of a seeded resource (``path`` is a template)."""

    async def build(env: Env, fresh: bool) -> Req:
        return Req(service, "GET", env.fill(path))

    return build


def send(service: str, method: str, path: str, body: Any = None) -> Builder:
    """A request naming seeded resources only (repeatable; templates filled)."""

    async def build(env: Env, fresh: bool) -> Req:
        return Req(service, method, env.fill(path), json=env.fill(body))

    return build


def idem() -> dict[str, str]:
    return {"Idempotency-Key": f"key-{time.time_ns()}"}


def today(days: int = 0) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


def soon(days: int = 7) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()


# --- directory ---------------------------------------------------------------------------

IMPORT_CSV = (
    "name,kind,kommunkoder,interventions,referral_kinds,contact_paths,opening_hours,external_id\n"
    "Importerad enhet,boendestod,0780,boendestod,kontaktbegaran,,,SEC-{n}\n"
)
MEMBER_BODY = {
    "name": "Växjö kommun",
    "kind": "kommun",
    "county_code": "07",
    "kommunkoder": ["0780"],
}
CLOSE = {"message": "Stängt v. 28–31."}
REVIEW = {"reviewed_by": "Vårdkedjekoordinator"}
ROUTING = {"referral_kind": "kontaktbegaran", "kommunkod": "0780", "needs": ["boendestod"]}


async def b_import(env: Env, fresh: bool) -> Req:
    body = IMPORT_CSV.format(n=time.time_ns()).encode()
    headers = {"Content-Type": "text/csv"}
    return Req("directory", "POST", "/v1/units/import", content=body, headers=headers)


async def b_create_unit(env: Env, fresh: bool) -> Req:
    body = unit_body("Ny enhet", ["kontaktbegaran"])
    return Req("directory", "POST", "/v1/units", json=body, headers=idem())


async def _unit_for(env: Env, fresh: bool, *, closed: bool = False) -> str:
    if not fresh:
        return env.w.ua
    unit_id = await env.s.unit(OWNER, unit_body("Ny enhet", ["kontaktbegaran"]))
    if closed:
        close = Req("directory", "POST", f"/v1/units/{unit_id}/close", json=CLOSE)
        await env.s.ok(OWNER, None, close)
    return unit_id


async def b_update_unit(env: Env, fresh: bool) -> Req:
    unit_id = await _unit_for(env, fresh)
    tag = await env.etag("directory", f"/v1/units/{unit_id}", None)
    body = unit_body("Ändrad enhet", ["kontaktbegaran"])
    return Req(
        "directory",
        "PUT",
        f"/v1/units/{unit_id}",
        json=body,
        headers={"If-Match": tag},
        as_unit=unit_id if fresh else None,
    )


def b_unit_action(action: str, body: dict[str, Any] | None = None) -> Builder:
    """close, reopen, deactivate or review unit A (a fresh unit, closed for reopen)."""

    async def build(env: Env, fresh: bool) -> Req:
        unit_id = await _unit_for(env, fresh, closed=action == "reopen")
        path = f"/v1/units/{unit_id}/{action}"
        return Req("directory", "POST", path, json=body, as_unit=unit_id if fresh else None)

    return build


def b_region_unit(method: str, suffix: str = "", body: Any = None) -> Builder:
    """The other member's unit (in this member's replica) through the owner's API."""

    async def build(env: Env, fresh: bool) -> Req:
        headers = {"If-Match": '"1"'} if method == "PUT" else {}
        path = f"/v1/units/{env.w.r_port}{suffix}"
        return Req("directory", method, path, json=body, headers=headers)

    return build


# --- consent -----------------------------------------------------------------------------

QUESTION = {
    "person": {"personnummer": "{p1}"},
    "sender": {"orgnr": "{OWNER}", "unit_id": "{ua}"},
    "recipient": {"orgnr": "{THIRD}"},
    "purpose": "sip",
    "categories": ["needs_summary"],
}
QUESTION_OF_OTHERS = {**QUESTION, "sender": {"orgnr": "{OTHER}", "unit_id": "{r_port}"}}
QUESTION_UNDER_LEGAL_BASIS = {
    **QUESTION,
    "recipient": {"orgnr": "{OTHER}"},
    "legal_basis": {
        "basis": "osl_26_9",
        "ground": "persistent_misuse",
        "justification": "Fortgående missbruk, behov av vård.",
    },
}
QUESTION_UNDER_BAD_BASIS = {
    **QUESTION,
    "recipient": {"orgnr": "{OTHER}"},
    # The schema takes it; the policy does not: an emergency may not cover a SIP.
    "legal_basis": {"basis": "nodsituation", "justification": "Akut läge, ingen grund för SIP."},
}


def consent_body(pnr: str, parties: list[str], **more: Any) -> dict[str, Any]:
    return {
        "person": {"personnummer": pnr},
        "given_by": {"kind": "person"},
        "form": "written",
        "signed_form_reference": "Dok 77",
        "purposes": ["sip"],
        "parties": [{"orgnr": p} for p in parties],
        "categories": ["needs_summary", "plan"],
        "valid_from": today(),
        "valid_to": today(90),
        "person_informed": True,
        **more,
    }


def b_record(kind: str, *, recorded_by_unit: bool, key: str | None = None) -> Builder:
    """POST a consent, refusal or block about a person; with ``recorded_by_unit`` the body
    names unit A as the recording unit (an id hidden in the body). ``key``: this
    Idempotency-Key instead of a new one (to replay)."""

    async def build(env: Env, fresh: bool) -> Req:
        w = env.w
        pnr = env.new_person() if fresh else w.p1
        more: dict[str, Any] = {}
        if recorded_by_unit:
            more["recorded_by"] = {"unit_id": w.ua}
        if kind == "consents":
            body = consent_body(pnr, [OWNER, THIRD], **more)
        elif kind == "refusals":
            body = {
                "person": {"personnummer": pnr},
                "refused_on": today(),
                "parties": [{"orgnr": THIRD}],
                "purposes": ["hvb_underrattelse"],
                **more,
            }
        else:
            body = {
                "person": {"personnummer": pnr},
                "blocked": {"orgnr": OTHER, "unit_id": w.r_x},
                "reason": "Personens begäran.",
                **more,
            }
        headers = {"Idempotency-Key": key} if key else idem()
        return Req("consent", "POST", f"/v1/{kind}", json=body, headers=headers)

    return build


async def b_consent_of_others(env: Env, fresh: bool) -> Req:
    body = consent_body(env.w.p1, [OTHER, THIRD])
    return Req("consent", "POST", "/v1/consents", json=body, headers=idem())


def b_on_record(kind: str, action: str, body: Callable[[], Any] | None = None) -> Builder:
    """An action on the owner's consent, refusal or block (a fresh one when ``fresh``)."""

    async def build(env: Env, fresh: bool) -> Req:
        w, s = env.w, env.s
        if kind == "consents":
            record = w.consent_a
            if fresh:
                record = await s.consent(OWNER, w.ua, env.new_person(), [OWNER, THIRD], ["sip"])
        elif kind == "refusals":
            record = await s.refusal(env.new_person()) if fresh else w.refusal_a
        else:
            record = await s.block(env.new_person()) if fresh else w.block_a
        path = f"/v1/{kind}/{record}/{action}"
        return Req("consent", "POST", path, json=body() if body else None)

    return build


def lift() -> dict[str, str]:
    return {"ends_at": soon(2), "reason": "Tillfälligt hävd."}


def withdrawal() -> dict[str, Any]:
    return {"reason": "Personen återkallar.", "withdrawn_by": {"kind": "person"}}


# --- referral ----------------------------------------------------------------------------


def referral_body(pnr: str, recipient: tuple[str, str], summary: str = "Behov.") -> dict[str, Any]:
    return {
        "kind": "kontaktbegaran",
        "children_in_household": "no",
        "person": {"personnummer": pnr},
        "needs": ["boendestod"],
        "summary": summary,
        "kontaktbegaran": {"kommunkod": "0780"},
        "recipients": [{"orgnr": recipient[0], "unit_id": recipient[1]}],
    }


async def b_send_within(env: Env, fresh: bool) -> Req:
    pnr = env.new_person() if fresh else env.w.p1
    body = referral_body(pnr, (OWNER, env.w.ub))
    return Req("referral", "POST", "/v1/referrals", json=body, headers=idem())


async def b_send_across(env: Env, fresh: bool) -> Req:
    """To the region's port: the consent service must allow it (a fresh consent for a
    fresh person; the seeded person's consent otherwise)."""
    w = env.w
    pnr = w.p3
    if fresh:
        pnr = env.new_person()
        await env.s.consent(OWNER, w.ua, pnr, [OWNER, OTHER], ["kontaktbegaran"])
    body = referral_body(pnr, (OTHER, w.r_port))
    return Req("referral", "POST", "/v1/referrals", json=body, headers=idem())


async def b_withdraw(env: Env, fresh: bool) -> Req:
    w = env.w
    if fresh:
        sent = await env.s.send(w.ua, (OWNER, w.ub), env.new_person(), "Dras tillbaka.")
        task, version = sent["recipients"][0]["task_id"], sent["recipients"][0]["version"]
    else:
        r = await env.s.ok(OWNER, w.ua, Req("referral", "GET", f"/v1/referrals/{w.ref_a}"))
        task, version = w.ref_a_task, r.json()["recipients"][0]["version"]
    return Req(
        "referral",
        "POST",
        f"/v1/referrals/{task}/withdraw",
        json={"reason": "Personen har tackat nej."},
        headers={"If-Match": f'"{version}"'},
    )


async def b_information(env: Env, fresh: bool) -> Req:
    """ua answers ub's question on one of its referrals (fresh: one of the pool; else the
    seeded one), with the recipient's version."""
    w = env.w
    referral, task = env.next_asked() if fresh else (w.info_ref, w.info_task)
    r = await env.s.ok(OWNER, w.ua, Req("referral", "GET", f"/v1/referrals/{referral}"))
    version = r.json()["recipients"][0]["version"]
    return Req(
        "referral",
        "POST",
        f"/v1/referrals/{referral}/recipients/{task}/information",
        json={"text": "Personen bor hos sin mamma."},
        headers={"If-Match": f'"{version}"'},
    )


async def b_discharge(env: Env, fresh: bool) -> Req:
    """Unit A records the discharge from its discharge planning (fresh: a new planning to
    unit B about a new person; else the seeded one, ``dis_a``)."""
    w = env.w
    referral = w.dis_a
    if fresh:
        sent = await env.s.send(
            w.ua, (OWNER, w.ub), env.new_person(), "Utskrivning.", kind="utskrivningsplanering"
        )
        referral = sent["id"]
    # The day in Sweden, as the service counts it (the machine's date lags an hour or two).
    today = to_local(dt.datetime.now(dt.UTC)).date()
    body = {"discharged_on": today.isoformat(), "unplanned": False}
    return Req("referral", "POST", f"/v1/referrals/{referral}/discharge", json=body)


def document_body(text: str) -> dict[str, str]:
    return {
        "title": "Bilaga",
        "content_type": "text/plain",
        "content": base64.b64encode(text.encode()).decode(),
    }


async def b_upload(env: Env, fresh: bool) -> Req:
    """A document of the caller's own unit (no marker: an upload names no one)."""
    body = document_body("Kompletterande uppgifter.")
    return Req("referral", "POST", "/v1/attachments", json=body, headers=idem())


async def b_delete_draft(env: Env, fresh: bool) -> Req:
    """Deletes an upload of unit A's (fresh: a new one; else the seeded spare, which the
    owner deletes last)."""
    draft = await env.s.document(env.w.ua, "Fel bilaga.") if fresh else env.w.att_spare
    return Req("referral", "DELETE", f"/v1/attachments/{draft}")


async def b_attach(env: Env, fresh: bool) -> Req:
    """Unit A's upload added to unit A's referral (fresh: a new upload and a new referral
    whose task is open; else the seeded upload and ``ref_a``)."""
    w = env.w
    referral, draft = w.ref_a, w.att_draft
    if fresh:
        draft = await env.s.document(w.ua, "Ny bilaga.")
        referral = (await env.s.send(w.ua, (OWNER, w.ub), env.new_person(), "Med bilaga."))["id"]
    path = f"/v1/referrals/{referral}/attachments"
    return Req("referral", "POST", path, json={"attachment_ids": [draft]}, headers=idem())


async def b_transition(env: Env, fresh: bool) -> Req:
    task = env.next_incoming() if fresh else env.w.inc_a
    tag = await env.etag("referral", f"/v1/incoming/{task}", env.w.ua)
    return Req(
        "referral",
        "POST",
        f"/v1/incoming/{task}/transitions",
        json={"to": "acknowledged", "case_reference": "SOC-9"},
        headers={"If-Match": tag},
    )


async def b_convene(env: Env, fresh: bool) -> Req:
    w = env.w
    body = {
        "kind": "sip",
        "children_in_household": "no",
        "person": {"personnummer": env.new_person() if fresh else w.p1},
        "at": soon(),
        "place": "Mottagningen",
        "participants": [{"orgnr": OWNER, "unit_id": w.ub}],
    }
    return Req("referral", "POST", "/v1/meetings", json=body)


async def b_remissmote(env: Env, fresh: bool) -> Req:
    """A remissmöte from unit A's acknowledged vårdkedjeremiss (its task id in the body)."""
    w = env.w
    body = {
        "kind": "remissmote",
        "origin_task_id": w.inc_v,
        "at": soon(),
        "video_link": "https://mote.example/remissmote",
        "participants": [{"orgnr": OWNER, "unit_id": w.ub}],
    }
    return Req("referral", "POST", "/v1/meetings", json=body)


async def b_follow_up(env: Env, fresh: bool) -> Req:
    """A follow-up of a held SIP of unit A's (its meeting id in the body; fresh: a SIP
    held just now, about the same person: a follow-up is about the plan's person)."""
    w = env.w
    meeting = (await env.s.meeting("SIP att följa upp."))[0] if fresh else w.meeting_a
    body = {
        "kind": "sip",
        "children_in_household": "no",
        "follow_up_of": meeting,
        "person": {"personnummer": w.p1},
        "at": soon(30),
        "place": "Mottagningen",
        "participants": [{"orgnr": OWNER, "unit_id": w.ub}],
    }
    return Req("referral", "POST", "/v1/meetings", json=body)


async def b_plan(env: Env, fresh: bool) -> Req:
    path = f"/v1/meetings/{env.w.meeting_a}/plan"
    return Req("referral", "PUT", path, json=plan_body(env.w))


async def _plan_etag(env: Env, plan_id: str) -> str:
    """The plan's current ``ETag``, as unit A reads it."""
    r = await env.s.ok(OWNER, env.w.ua, Req("referral", "GET", f"/v1/plans/{plan_id}"))
    return r.headers.get("etag") or r.headers["ETag"]


async def b_step_action(env: Env, fresh: bool) -> Req:
    w = env.w
    meeting, action = await env.s.meeting("Ny SIP.") if fresh else (w.meeting_a, w.action_a)
    path = f"/v1/plans/{meeting}/actions/{action}/transitions"
    headers = {"If-Match": await _plan_etag(env, meeting)}
    return Req("referral", "POST", path, json={"to": "started"}, headers=headers)


async def b_revise_plan(env: Env, fresh: bool) -> Req:
    w = env.w
    meeting = (await env.s.meeting("Ny SIP.."))[0] if fresh else w.meeting_a
    body = plan_body(w) | {"goals": ["Reviderat mål"]}
    headers = {"If-Match": await _plan_etag(env, meeting)}
    return Req("referral", "PUT", f"/v1/plans/{meeting}", json=body, headers=headers)


# --- notify ------------------------------------------------------------------------------


async def b_stream(env: Env, fresh: bool) -> Req:
    path = f"/v1/units/{env.w.ua}/notifications/stream"
    return Req("notify", "GET", path, headers={"Last-Event-ID": "0"}, stream=True)


def b_subscribe(*, unit: bool) -> Builder:
    async def build(env: Env, fresh: bool) -> Req:
        body: dict[str, Any] = {"url": env.w.dead_url, "event_types": ["referral.received"]}
        if unit:
            body["unit_id"] = env.w.ua
        return Req("notify", "POST", "/v1/webhook-subscriptions", json=body, headers=idem())

    return build


async def b_delete_subscription(env: Env, fresh: bool) -> Req:
    sub = await env.s.subscription(env.w.ua) if fresh else env.w.sub_a
    return Req("notify", "DELETE", f"/v1/webhook-subscriptions/{sub}")


async def b_redeliver(env: Env, fresh: bool) -> Req:
    delivery = env.next_delivery() if fresh else env.w.deliveries[0]
    return Req("notify", "POST", f"/v1/deliveries/{delivery}/redeliver")
