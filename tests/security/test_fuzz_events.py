"""Scenario 11 (reliability.md), events: fuzzing how a Kafka record becomes an effect.

Three layers, each for a fixed budget (hypothesis, ``max_examples``, no deadline):

1. ``shared.messaging.events.decode`` — the CloudEvents binary-mode envelope — with arbitrary bytes
   and headers, arbitrary JSON bodies, and valid envelopes with broken attributes: it
   answers a CloudEvent or raises ``MalformedEvent`` naming a documented rule, nothing else.
2. ``EventConsumer._validate`` — where a raw record becomes a ``Delivery`` (decode, the
   catalogue, the sender checks, the payload model) — for every consumer of every
   service's worker, with structurally valid envelopes carrying wrong, mutated or
   mismatched payloads from members, strangers and impostors: it answers "apply", "skip"
   or a refusal with a documented rule (which the consumer dead-letters), never raises.
3. ``EventConsumer.handle`` — the whole unit of work with the service's real handlers and
   database (SQLite and PostgreSQL) — with envelopes whose payloads are valid or mutated
   (free text, huge numbers, odd ids): it never raises, never stalls, and refuses only with
   a named rule. A handler that raises anything but ``Reject`` (dead-lettered as ``failed``
   after its attempts) is counted as a crash.

Figures (examples, outcomes, crashes) go to ``var/security/fuzz.json`` under ``events``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.referral import siblings as referral_siblings
from shared.config import Settings
from shared.data import migrations
from shared.messaging.events import CATALOGUE, CloudEvent, MalformedEvent, decode, encode, topics
from shared.messaging.events.envelope import SOURCE_RE, TYPE_RE
from shared.messaging.events.payloads import (
    AUDIT_RECORDED_V1,
    CONSENT_ENDED_V1,
    CONSENT_NARROWED_V1,
    CONSENT_RECORDED_V1,
    DEAD_LETTER_V1,
    MEMBER_CHANGED_V1,
    PLAN_ACTION_CHANGED_V1,
    PLAN_ACTION_STEP_REQUESTED_V1,
    PLAN_REVISION_REQUESTED_V1,
    PLAN_SHARED_V1,
    REFERRAL_ATTACHMENT_CHUNK_V1,
    REFERRAL_BASIS_NARROWED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGE_RECORDED_V1,
    REFERRAL_DISCHARGED_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    REFERRAL_INFORMATION_SUPPLIED_V1,
    REFERRAL_RECEIVED_V1,
    REFERRAL_SENT_V1,
    REFERRAL_STATUS_CHANGED_V1,
    REFERRAL_TRANSITIONED_V1,
    RELAY_MARKER_V1,
    UNIT_CHANGED_V1,
    UNIT_REVIEW_DUE_V1,
)
from shared.messaging.inbox import EventConsumer, _Bad, _Ready, _Skip
from shared.messaging.kafka import ReceivedRecord
from shared.messaging.trust import REASONS as TRUST_REASONS
from shared.messaging.worker import Worker
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.clients import ServiceClient
from tests.conftest import (
    ORG_ALVESTA,
    ORG_REGION,
    ORG_VAXJO,
    DatabaseFactory,
    make_settings,
)
from tests.helpers.signed import opened, signed
from tests.security._support import FuzzLog

SERVICES = ("directory", "consent", "referral", "notify")
OWN = ORG_VAXJO  # the receiving member
FEDERATION = [ORG_REGION, ORG_VAXJO, ORG_ALVESTA]
STRANGER = "556036-0793"  # a valid organisationsnummer outside the federation
MEMBER_DIGITS = {orgnr.replace("-", "") for orgnr in FEDERATION}

DECODE_RULES = frozenset(
    {
        "header_encoding",
        "missing_attribute",
        "specversion",
        "type_format",
        "source_format",
        "empty_body",
        "body_too_large",
        "body_json",
        "body_object",
        "attribute_format",
    }
)
CONSUMER_RULES = (
    DECODE_RULES
    | set(TRUST_REASONS)
    | {
        "unknown_type",
        "sender_not_owner",
        "invalid_payload",
    }
)
# Budgets: examples per property (pure layers) and per service and backend (the database).
DECODE_EXAMPLES = 600
VALIDATE_EXAMPLES = 250
HANDLE_EXAMPLES = 300
# No event may hold a consumer longer than this (a stall would block its partition).
STALL_S = 30.0


def budget(max_examples: int) -> settings:
    """A fixed, repeatable budget: no deadline, no example database, derandomized."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def log() -> Iterator[FuzzLog]:
    fuzz = FuzzLog("events")
    yield fuzz
    fuzz.write()


# --- strategies ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "\x00", "191212121212", "2026-11-23T10:00:00Z", "9" * 40]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ce_names = st.sampled_from(
    [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_aggversion",
        "ce_traceparent",
        "ce_dataschema",
        "ce_partitionkey",
        "content-type",
    ]
)
header_names = ce_names | st.text(max_size=12) | st.just("ce_")
header_values = (
    st.binary(max_size=40)
    | st.text(max_size=40).map(str.encode)
    | st.sampled_from(
        [
            b"1.0",
            b"urn:vardkedja:2120000647:referral",
            f"se.vardkedja.{'a' * 300}.b.v1".encode(),
            UNIT_CHANGED_V1.encode(),
            b"2026-11-23T10:00:00+00:00",
            b"-1",
            b"9" * 5000,
            b"\xed\xa0\x80",
        ]
    )
)
extreme_ints = st.integers() | st.sampled_from([0, -1, 2**31, 2**63, 10**30])


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def valid_payload(type_: str, uid: str) -> dict[str, Any]:
    """A payload of ``type_`` that its model accepts, as the natural sender writes it to
    Växjö kommun; ids are derived from ``uid`` so examples do not share aggregates."""
    short = uid[:8]
    at = now().isoformat()
    today = dt.date.today()
    parties = [{"orgnr": ORG_REGION}, {"orgnr": ORG_VAXJO, "unit_id": "vx-soc-vuxna"}]
    payloads: dict[str, dict[str, Any]] = {
        UNIT_CHANGED_V1: {
            "unit_id": f"rk-{short}",
            "owner_orgnr": ORG_REGION,
            "name": "Beroendemottagningen",
            "kind": "beroendemottagning",
            "status": "active",
            "kommunkoder": ["0780"],
            "referral_kinds": ["vardkedjeremiss"],
            "interventions": ["abstinensbehandling"],
            "contact_paths": [
                {"reason": "Remisser", "channel": "functional_email", "email": "rk@region.example"}
            ],
            "version": 1,
            "changed_at": at,
        },
        MEMBER_CHANGED_V1: {
            "orgnr": ORG_REGION,
            "name": "Region Kronoberg",
            "kind": "region",
            "county_code": "07",
            "kommunkoder": ["0780", "0764"],
            "version": 1,
            "changed_at": at,
        },
        RELAY_MARKER_V1: {"relay": "2120000647-referral"},
        DEAD_LETTER_V1: {"key": None, "headers": [["ce_id", "YQ=="]], "body": "e30="},
        UNIT_REVIEW_DUE_V1: {
            "unit_id": "vx-soc-vuxna",
            "unit_name": "Socialtjänstens mottagning vuxna",
            "due_since": today.isoformat(),
        },
        CONSENT_RECORDED_V1: {
            "consent_id": uid,
            "owner_orgnr": ORG_REGION,
            "personnummer": "191212121212",
            "parties": parties,
            "purposes": ["sip"],
            "categories": ["plan", "needs_summary"],
            "valid_from": today.isoformat(),
            "valid_to": (today + dt.timedelta(days=30)).isoformat(),
            "recorded_at": at,
            "version": 1,
        },
        CONSENT_ENDED_V1: {
            "consent_id": uid,
            "owner_orgnr": ORG_REGION,
            "reason": "withdrawn",
            "ended_at": at,
            "parties": parties,
            "purposes": ["sip"],
            "version": 2,
        },
        CONSENT_NARROWED_V1: {
            "consent_id": uid,
            "owner_orgnr": ORG_REGION,
            "parties": parties,
            "purposes": ["kontaktbegaran"],
            "withdrawn_purposes": ["sip"],
            "narrowed_at": at,
            "version": 2,
        },
        AUDIT_RECORDED_V1: {
            "service": "referral",
            "occurred_at": at,
            "actor_sub": "handlaggare-1",
            "actor_org": ORG_VAXJO,
            "actor_unit": "vx-soc-vuxna",
            "action": "referral.read",
            "person_id": "191212121212",
            "outcome": "allowed",
            "resource_type": "referral",
            "resource_id": uid,
        },
        REFERRAL_RECEIVED_V1: {
            "referral_id": uid,
            "kind": "kontaktbegaran",
            "unit_id": "vx-soc-vuxna",
            "sender_orgnr": ORG_REGION,
            "sender_unit_id": "rk-beroende",
            "urgency": "urgent",
            "received_at": at,
        },
        REFERRAL_STATUS_CHANGED_V1: {
            "referral_id": uid,
            "kind": "vardkedjeremiss",
            "unit_id": "vx-soc-vuxna",
            "old_status": "delivered",
            "new_status": "accepted",
            "changed_at": at,
            "version": 2,
        },
        REFERRAL_BASIS_NARROWED_V1: {
            "referral_id": uid,
            "kind": "kontaktbegaran",
            "unit_id": "vx-soc-vuxna",
            "direction": "incoming",
            "counterpart_orgnr": ORG_REGION,
            "covers": ["kontaktbegaran"],
            "cancelled": False,
            "narrowed_at": at,
        },
        REFERRAL_DEADLINE_V1: {
            "referral_id": uid,
            "kind": "utskrivningsplanering",
            "unit_id": "vx-soc-vuxna",
            "deadline": "discharge",
            "due_at": at,
            "state": "near",
        },
        REFERRAL_DISCHARGED_V1: {
            "referral_id": uid,
            "kind": "utskrivningsplanering",
            "unit_id": "vx-soc-vuxna",
            "audience": "recipient",
            "sender_orgnr": ORG_REGION,
            "unplanned": True,
            "at": at,
        },
        REFERRAL_DOCUMENT_ADDED_V1: {
            "referral_id": uid,
            "kind": "kontaktbegaran",
            "unit_id": "vx-soc-vuxna",
            "sender_orgnr": ORG_REGION,
            "content_type": "application/pdf",
            "at": at,
        },
        REFERRAL_DISCHARGE_RECORDED_V1: {
            "task_id": uid,
            "referral_id": f"r-{short}",
            "sender_orgnr": ORG_REGION,
            "sender_unit_id": "rk-avdelning",
            "recipient_orgnr": ORG_VAXJO,
            "plan_id": f"p-{short}",
            "coordinators": True,
            "discharged_on": today.isoformat(),
            "unplanned": False,
            "recorded_at": at,
        },
        PLAN_ACTION_CHANGED_V1: {
            "plan_id": uid,
            "action_id": short,
            "unit_id": "vx-soc-vuxna",
            "change": "ended",
            "owner_orgnr": ORG_REGION,
            "outcome": "completed",
            "at": at,
        },
        REFERRAL_SENT_V1: {
            "task_id": uid,
            "referral_id": f"r-{short}",
            "kind": "kontaktbegaran",
            "sender_orgnr": ORG_REGION,
            "sender_unit_id": "rk-beroende",
            "recipient_orgnr": ORG_VAXJO,
            "recipient_unit_id": "vx-soc-vuxna",
            "person": {"personnummer": "191212121212"},
            "needs": ["boendestod"],
            "summary": "Behöver stöd i boendet efter avgiftning.",
            "persons_wish": "Vill bo kvar i Växjö.",
            "basis": {"kind": "consent", "consent_id": f"c-{short}"},
            "details": {"kommunkod": "0780"},
            "acknowledge_by": (today + dt.timedelta(days=3)).isoformat(),
            "sent_at": at,
        },
        REFERRAL_ATTACHMENT_CHUNK_V1: {
            "task_id": uid,
            "referral_id": f"r-{short}",
            "attachment_id": f"a-{short}",
            "sender_orgnr": ORG_REGION,
            "recipient_orgnr": ORG_VAXJO,
            "index": 0,
            "count": 1,
            "size": 14,
            "sha256": "2a916d83fa20d97c7c3c04cf07b2d3f8d18ea47f59c841a221dd3a81f15fc347",
            "content_type": "application/pdf",
            "title": "Epikris",
            "data": "JVBERi0xLjcgaGVsbG8=",  # %PDF-1.7 hello
            "sent_at": at,
        },
        REFERRAL_INFORMATION_SUPPLIED_V1: {
            "task_id": uid,
            "referral_id": f"r-{short}",
            "kind": "kontaktbegaran",
            "by_orgnr": ORG_REGION,
            "by_unit_id": "rk-beroende",
            "round": 1,
            "answer": "Personen har eget kontrakt sedan i höstas.",
            "attachment_ids": [f"a-{short}"],
            "at": at,
        },
        REFERRAL_TRANSITIONED_V1: {
            "task_id": uid,
            "referral_id": f"r-{short}",
            "kind": "kontaktbegaran",
            "from_status": "sent",
            "to_status": "delivered",
            "actor": "holder",
            "by_orgnr": ORG_REGION,
            "by_unit_id": "rk-beroende",
            "reason": "Mottagen.",
            "receiver_version": 1,
            "at": at,
        },
        PLAN_SHARED_V1: {
            "plan_id": uid,
            "owner_orgnr": ORG_REGION,
            "owner_unit_id": "rk-beroende",
            "kind": "sip",
            "personnummer": "191212121212",
            "goals": ["Eget boende"],
            "actions": [
                {
                    "id": short,
                    "intervention": "boendestod",
                    "owner": {"orgnr": ORG_VAXJO, "unit_id": "vx-soc-vuxna"},
                    "status": "planned",
                }
            ],
            "coordinators": [{"orgnr": ORG_REGION, "unit_id": "rk-beroende"}],
            "follow_up_date": (today + dt.timedelta(days=60)).isoformat(),
            "viewers": [{"orgnr": ORG_VAXJO, "unit_id": "vx-soc-vuxna"}],
            "plan_version": 1,
            "at": at,
        },
        PLAN_ACTION_STEP_REQUESTED_V1: {
            "plan_id": uid,
            "action_id": short,
            "by_orgnr": ORG_REGION,
            "by_unit_id": "rk-beroende",
            "step": "ended",
            "outcome": "completed",
            "at": at,
        },
        PLAN_REVISION_REQUESTED_V1: {
            "plan_id": uid,
            "by_orgnr": ORG_REGION,
            "by_unit_id": "rk-beroende",
            "based_on": 1,
            "plan": {
                "goals": ["Eget boende"],
                "actions": [
                    {
                        "intervention": "boendestod",
                        "owner": {"orgnr": ORG_VAXJO, "unit_id": "vx-soc-vuxna"},
                    }
                ],
                "coordinators": [{"orgnr": ORG_REGION, "unit_id": "rk-beroende"}],
                "follow_up_date": (today + dt.timedelta(days=60)).isoformat(),
            },
            "at": at,
        },
    }
    return payloads[type_]


DIRECTORY_TYPES = frozenset({UNIT_CHANGED_V1, MEMBER_CHANGED_V1})
INTERNAL_TYPES = frozenset(
    {
        RELAY_MARKER_V1,
        DEAD_LETTER_V1,  # on the deadletter topic; nothing consumes it
        UNIT_REVIEW_DUE_V1,
        AUDIT_RECORDED_V1,
        REFERRAL_RECEIVED_V1,
        REFERRAL_STATUS_CHANGED_V1,
        REFERRAL_BASIS_NARROWED_V1,
        REFERRAL_DEADLINE_V1,
        REFERRAL_DISCHARGED_V1,
        REFERRAL_DOCUMENT_ADDED_V1,
        PLAN_ACTION_CHANGED_V1,
    }
)
SENDER_FIELD = {
    UNIT_CHANGED_V1: "owner_orgnr",
    MEMBER_CHANGED_V1: "orgnr",
    CONSENT_RECORDED_V1: "owner_orgnr",
    CONSENT_ENDED_V1: "owner_orgnr",
    CONSENT_NARROWED_V1: "owner_orgnr",
    REFERRAL_SENT_V1: "sender_orgnr",
    REFERRAL_ATTACHMENT_CHUNK_V1: "sender_orgnr",
    REFERRAL_DISCHARGE_RECORDED_V1: "sender_orgnr",
    REFERRAL_TRANSITIONED_V1: "by_orgnr",
    REFERRAL_INFORMATION_SUPPLIED_V1: "by_orgnr",
    PLAN_SHARED_V1: "owner_orgnr",
    PLAN_ACTION_STEP_REQUESTED_V1: "by_orgnr",
    PLAN_REVISION_REQUESTED_V1: "by_orgnr",
}


def test_every_registered_type_has_a_valid_payload_here() -> None:
    """The fuzzer starts from a valid payload of every type the catalogue knows."""
    assert set(CATALOGUE.kinds) == DIRECTORY_TYPES | INTERNAL_TYPES | set(SENDER_FIELD)
    for type_, kind in CATALOGUE.kinds.items():
        kind.model.model_validate(valid_payload(type_, str(uuid.uuid4())))


def natural_topic(type_: str) -> str:
    if type_ in DIRECTORY_TYPES:
        return topics.DIRECTORY
    return topics.internal(OWN) if type_ in INTERNAL_TYPES else topics.inbound(OWN)


def natural_sender(type_: str, payload: dict[str, Any]) -> str:
    if type_ in INTERNAL_TYPES:
        return OWN
    value = payload.get(SENDER_FIELD[type_], ORG_REGION)
    return value if isinstance(value, str) else ORG_REGION


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with up to three fields replaced by text, JSON or extreme numbers, or
    dropped, and sometimes an unknown field added (payloads ignore those)."""
    out = dict(base)
    keys = sorted(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        how = draw(st.sampled_from(["text", "json", "int", "drop"]))
        if how == "drop":
            del out[key]
        elif how == "text":
            out[key] = draw(st.text(max_size=80))
        elif how == "int":
            out[key] = draw(extreme_ints)
        else:
            out[key] = draw(json_values)
    if draw(st.integers(0, 4)) == 0:
        out[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return out


@dataclass(frozen=True)
class Shot:
    """One record to feed a consumer, with what it was meant to be."""

    record: ReceivedRecord
    type_: str
    how: str


_offsets = itertools.count()


def record_of(
    topic: str, event: CloudEvent, *, headers: list[tuple[str, bytes]] | None = None
) -> ReceivedRecord:
    """The record as its sender writes it: signed (and sealed for the topic's member) when
    the sender is a member, so the fuzz reaches past the trust check (ADR 0020); a
    stranger has no keys and writes it plain."""
    key, value, encoded = encode(event)
    if headers is None and event.sender_orgnr in MEMBER_DIGITS:
        out = signed(event, topic)
        value, encoded = out.value, out.headers
    return ReceivedRecord(topic, 0, next(_offsets), key, value, headers or encoded)


@st.composite
def shots(draw: st.DrawFn, consumer: EventConsumer) -> Shot:
    """A structurally valid envelope for ``consumer``: mostly of a type it handles, on its
    natural topic from its natural sender, with a valid, mutated, mismatched or arbitrary
    payload — or from a stranger or an impostor, on another member's internal topic, of a
    type it does not handle or of an unknown type."""
    uid = str(draw(st.uuids(version=4)))
    handled = sorted(consumer.spec.handlers)
    type_ = draw(st.sampled_from(handled) | st.sampled_from(sorted(CATALOGUE.kinds)))
    payload = valid_payload(type_, uid)
    how = draw(
        st.sampled_from(
            ["valid"] * 4 + ["mutated"] * 4 + ["other_type", "arbitrary", "unknown_type"]
        )
    )
    if how == "mutated":
        payload = draw(mutated(payload))
    elif how == "other_type":
        payload = valid_payload(draw(st.sampled_from(sorted(CATALOGUE.kinds))), uid)
    elif how == "arbitrary":
        payload = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
    sender = natural_sender(type_, payload)
    who = draw(st.sampled_from(["natural"] * 6 + ["member", "stranger"]))
    if who == "member":
        sender = draw(st.sampled_from(FEDERATION))
    elif who == "stranger":
        sender = STRANGER
    topic = natural_topic(type_)
    if draw(st.integers(0, 5)) == 0:
        topic = draw(st.sampled_from([*consumer.spec.topics, topics.internal(ORG_REGION)]))
    event_type = type_
    if how == "unknown_type":
        event_type = draw(st.sampled_from(["se.vardkedja.unit.changed.v9", "se.vardkedja.x.y.v1"]))
    digits = sender.replace("-", "")
    event = CloudEvent(
        source=f"urn:vardkedja:{digits}:{draw(st.sampled_from(SERVICES))}",
        type=event_type,
        subject=uid,
        aggversion=draw(st.none() | st.integers(min_value=0, max_value=2**40)),
        partitionkey=uid,
        data=payload,
    )
    return Shot(record_of(topic, event), type_, f"{how}/{who}")


# --- 1. the envelope ---------------------------------------------------------------------


def _decode_checked(log: FuzzLog, name: str, record: tuple[Any, Any, Any]) -> CloudEvent | None:
    target = log.target(name)
    target.examples += 1
    refused: MalformedEvent | None = None
    try:
        event = decode(*record)
    except MalformedEvent as exc:
        refused = exc
    except Exception as exc:
        target.crashed(exc, repr(record)[:200])
        raise
    if refused is not None:
        target.outcomes[refused.rule] += 1
        assert refused.rule in DECODE_RULES
        return None
    target.outcomes["event"] += 1
    assert TYPE_RE.match(event.type)
    assert SOURCE_RE.match(event.source)
    assert isinstance(event.data, dict)
    assert event.time.tzinfo is not None
    return event


def good_headers(**replace: bytes | None) -> list[tuple[str, bytes]]:
    event = CloudEvent(
        source="urn:vardkedja:2321000065:referral",
        type=REFERRAL_SENT_V1,
        subject="t-1",
        aggversion=3,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    headers = dict(encode(event)[2])
    for name, value in replace.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return list(headers.items())


class TestTheEnvelopeDecodesOrNamesTheRule:
    def test_arbitrary_bytes_and_headers(self, log: FuzzLog) -> None:
        @budget(DECODE_EXAMPLES)
        @given(
            key=st.none() | st.binary(max_size=40),
            value=st.none() | st.binary(max_size=300),
            headers=st.lists(st.tuples(header_names, header_values), max_size=12),
        )
        def prop(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
            _decode_checked(log, "decode.arbitrary_bytes", (key, value, headers))

        log.run("decode.arbitrary_bytes", prop)

    def test_arbitrary_json_in_a_valid_envelope(self, log: FuzzLog) -> None:
        @budget(DECODE_EXAMPLES)
        @given(body=json_values)
        def prop(body: Any) -> None:
            raw = json.dumps(body).encode()
            event = _decode_checked(log, "decode.arbitrary_json", (b"k", raw, good_headers()))
            if isinstance(body, dict):
                assert event is not None
                assert event.data == body
            else:
                assert event is None

        log.run("decode.arbitrary_json", prop)

    def test_valid_envelopes_with_broken_attributes(self, log: FuzzLog) -> None:
        @budget(DECODE_EXAMPLES)
        @given(
            broken=st.dictionaries(ce_names, st.none() | header_values, min_size=1, max_size=4),
            extra=st.lists(st.tuples(ce_names, header_values), max_size=3),
        )
        def prop(broken: dict[str, bytes | None], extra: list[tuple[str, bytes]]) -> None:
            headers = good_headers(**broken) + extra
            _decode_checked(log, "decode.broken_attributes", (b"k", b"{}", headers))

        log.run("decode.broken_attributes", prop)


# --- 2. where a record becomes a Delivery ------------------------------------------------


def worker_settings(service: str, db_url: str, **kafka: Any) -> Settings:
    base = make_settings(service=service, orgnr=OWN, db_url=db_url, **kafka)
    return base.model_copy(update={"federation_members": list(FEDERATION)})


class TestEveryConsumerAppliesSkipsOrRefusesWithARule:
    @pytest.mark.parametrize("service", SERVICES)
    def test_validate_never_raises(self, service: str, log: FuzzLog, tmp_path: Any) -> None:
        worker = Worker(
            load_spec(service),
            worker_settings(service, f"sqlite+aiosqlite:///{tmp_path}/unused.db"),
        )
        consumers = worker.consumers
        assert consumers
        name = f"validate.{service}"

        @budget(VALIDATE_EXAMPLES)
        @given(data=st.data())
        def prop(data: st.DataObject) -> None:
            consumer: EventConsumer = data.draw(st.sampled_from(consumers))
            shot = data.draw(shots(consumer))
            target = log.target(name)
            target.examples += 1
            try:
                checked = consumer._validate(shot.record)
            except Exception as exc:
                target.crashed(exc, shot.how)
                raise
            if isinstance(checked, _Bad):
                target.outcomes[f"refused:{checked.rule}"] += 1
                assert checked.rule in CONSUMER_RULES
            elif isinstance(checked, _Skip):
                target.outcomes["skipped"] += 1
                assert CATALOGUE.is_known(checked.event.type)
                assert checked.event.type not in consumer.spec.handlers
            else:
                assert isinstance(checked, _Ready)
                target.outcomes["ready"] += 1
                kind = CATALOGUE.kinds[checked.type_]
                assert isinstance(checked.delivery.payload, kind.model)
                assert checked.handler is consumer.spec.handlers[checked.type_]
                assert checked.delivery.event.sender_orgnr in {
                    o.replace("-", "") for o in FEDERATION
                }

        log.run(name, prop)
        assert log.target(name).outcomes["ready"] > 0


# --- 3. the whole unit of work, with the real handlers and database ----------------------


@pytest.fixture
async def urls(databases: DatabaseFactory) -> dict[str, str]:
    """An empty database per service (and one for the referral service's consent sibling)."""
    return {name: await databases.new(name) for name in (*SERVICES, "sibling-consent")}


async def _dead_letter_of(consumer: EventConsumer, record: ReceivedRecord) -> tuple[str, str]:
    """(reason, error) of the dead letter ``record`` became."""
    dl = consumer.infra.dead_letter
    async with consumer.db.sessionmaker() as session:
        row = (
            await session.execute(
                select(dl.c.reason, dl.c.error)
                .where(dl.c.topic == record.topic, dl.c.offset == record.offset)
                .order_by(dl.c.id.desc())
            )
        ).first()
    assert row is not None
    return str(row.reason), str(row.error)


class TestEveryHandlerAppliesOrRefusesAndNeverCrashes:
    @pytest.mark.parametrize("service", SERVICES)
    def test_handle_never_raises_stalls_or_crashes(
        self, service: str, backend: str, urls: dict[str, str], log: FuzzLog
    ) -> None:
        name = f"handle.{service}[{backend}]"
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            worker, close = runner.run(_start_worker(service, urls))
            try:
                consumers = worker.consumers
                for consumer in consumers:
                    consumer.retry_base = 0.001  # a failing handler: no waiting between tries

                @budget(HANDLE_EXAMPLES)
                @given(data=st.data())
                def prop(data: st.DataObject) -> None:
                    consumer: EventConsumer = data.draw(st.sampled_from(consumers))
                    shot = data.draw(shots(consumer))
                    runner.run(_handle_one(log, name, consumer, shot))

                log.run(name, prop)
            finally:
                runner.run(close())
        target = log.target(name)
        assert target.outcomes["applied"] > 0, target.outcomes
        assert target.crashes == 0, "\n\n".join(target.crash_samples)

    @pytest.mark.parametrize("service", SERVICES)
    def test_undecodable_records_are_dead_lettered_on_every_topic(
        self, service: str, backend: str, urls: dict[str, str], log: FuzzLog
    ) -> None:
        """The documented rejection, with fixed inputs: a body that is not JSON, a source
        that is not ours, and a valid envelope of an unknown type with a long (legal, up to
        255 characters) id are dead-lettered — kept, and forwarded to the member's
        dead-letter topic through the outbox — on every topic every consumer reads."""
        name = f"dead_letter.{service}[{backend}]"
        target = log.target(name)
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            worker, close = runner.run(_start_worker(service, urls))
            try:
                for consumer in worker.consumers:
                    for topic in consumer.spec.topics:
                        for record in _undecodable(topic):
                            target.examples += 1
                            try:
                                outcome = runner.run(consumer.handle(record))
                            except Exception as exc:
                                target.crashed(exc, f"{consumer.spec.name} on {topic}: {record}")
                                continue
                            target.outcomes[outcome] += 1
                            assert outcome == "dead_lettered"
                            assert runner.run(_forwarded(consumer, record))
            finally:
                runner.run(close())
        assert target.crashes == 0, "\n\n".join(target.crash_samples)


def _undecodable(topic: str) -> list[ReceivedRecord]:
    good = dict(good_headers())
    unknown = CloudEvent(
        id=f"{uuid.uuid4()}-{'e' * 160}",
        source="urn:vardkedja:2321000065:referral",
        type="se.vardkedja.x.y.v1",
    )
    return [
        ReceivedRecord(topic, 0, next(_offsets), b"k", b"not json", list(good.items())),
        ReceivedRecord(
            topic, 0, next(_offsets), b"k", b"{}", [*good_headers(ce_source=b"https://x")]
        ),
        record_of(topic, unknown),
    ]


async def _forwarded(consumer: EventConsumer, record: ReceivedRecord) -> bool:
    """Whether ``record`` is kept as a dead letter and waits in the outbox for the DLT."""
    ob, dl = consumer.infra.outbox, consumer.infra.dead_letter
    async with consumer.db.sessionmaker() as session:
        kept = await session.scalar(
            select(dl.c.id).where(dl.c.topic == record.topic, dl.c.offset == record.offset)
        )
        rows = (
            await session.execute(
                select(ob.c.key, ob.c.headers, ob.c.body).where(
                    ob.c.topic == topics.deadletter(OWN)
                )
            )
        ).all()
    # The copy on the dead-letter topic is sealed for the member (ADR 0020): open it and
    # find the record as it arrived inside.
    for key, headers, body in rows:
        named = dict(headers)
        if named.get("vk_dlt_topic") != record.topic:
            continue
        if named.get("vk_dlt_offset") != str(record.offset):
            continue
        encoded = [(k, v.encode()) for k, v in headers]
        copy = opened(topics.deadletter(OWN), key.encode() if key else None, bytes(body), encoded)
        if base64.b64decode(copy.data["body"]) == (record.value or b""):
            return kept is not None
    return False


def _about(shot: Shot) -> str:
    r = shot.record
    return f"{shot.type_} ({shot.how}) on {r.topic} headers={r.headers} body={r.value!r}"


async def _handle_one(log: FuzzLog, name: str, consumer: EventConsumer, shot: Shot) -> None:
    """Feeds one record as the consumer loop does; a crash or a stall is recorded (and the
    run goes on, so one run shows every kind of crash), anything else is checked."""
    target = log.target(name)
    target.examples += 1
    try:
        outcome = await asyncio.wait_for(consumer.handle(shot.record), timeout=STALL_S)
    except TimeoutError as exc:
        target.outcomes["stalled"] += 1
        target.crashed(exc, "stalled: " + _about(shot))
        return
    except Exception as exc:
        # In the worker this ends the consumer's poll loop; it reconnects, reads the same
        # record again and fails again: the partition is stuck behind it.
        target.outcomes["raised"] += 1
        target.crashed(exc, _about(shot))
        return
    if outcome != "dead_lettered":
        target.outcomes[outcome] += 1
        assert outcome in {"applied", "skipped", "duplicate"}
        return
    reason, error = await _dead_letter_of(consumer, shot.record)
    target.outcomes[f"refused:{reason}"] += 1
    if reason == "failed":  # a handler raised something other than Reject
        target.crashed(RuntimeError(error), _about(shot))


async def _start_worker(service: str, urls: dict[str, str]) -> tuple[Worker, Callable[[], Any]]:
    """Växjö's worker of ``service`` on a migrated database; the referral worker asks an
    in-process consent service of its own member, as in production."""
    spec = load_spec(service)
    await migrations.upgrade(spec.migrations_dir, urls[service])
    settings = worker_settings(service, urls[service], dead_letter_after=1)
    worker = Worker(spec, settings)
    apps = []
    if service == "referral":
        consent_spec = load_spec("consent")
        await migrations.upgrade(consent_spec.migrations_dir, urls["sibling-consent"])
        consent = create_app(consent_spec, worker_settings("consent", urls["sibling-consent"]))
        apps.append(consent)
        worker.ctx.extras["clients"] = referral_siblings.Clients(
            consent=ServiceClient(
                base_url="http://consent",
                service="referral",
                org=OWN,
                scopes=["consent:read"],
                transport=httpx.ASGITransport(app=consent),
            ),
            # Routing is asked only when sending; receiving never needs the directory.
            directory=ServiceClient(
                base_url="http://127.0.0.1:9", service="referral", org=OWN, scopes=[]
            ),
        )

    async def close() -> None:
        if spec.on_worker_stop is not None:
            await spec.on_worker_stop(worker.ctx)
        await worker.ctx.db.dispose()
        for app in apps:
            await app.state.ctx.db.dispose()

    return worker, close
