"""Events: the CloudEvents envelope on Kafka, the catalogue of payloads and the topic layout."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from shared.messaging.events import (
    CATALOGUE,
    Catalogue,
    CloudEvent,
    EventPayload,
    MalformedEvent,
    decode,
    encode,
    topics,
)
from shared.messaging.events.envelope import SOURCE_RE, TYPE_RE
from shared.messaging.events.payloads import UNIT_CHANGED_V1, UnitChangedV1

SOURCE = "urn:vardkedja:2120000647:directory"
TYPE = "se.vardkedja.unit.changed.v1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def valid_headers(**overrides: bytes | None) -> list[tuple[str, bytes]]:
    """Headers of a valid binary-mode record; an override of None drops that header."""
    values: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": b"3f1c1c9e-8f0a-4c1e-9c55-0d3c8d7c9a10",
        "ce_source": SOURCE.encode(),
        "ce_type": TYPE.encode(),
        "ce_time": b"2026-11-23T10:00:00+00:00",
        "content-type": b"application/json",
    }
    values.update(overrides)
    return [(k, v) for k, v in values.items() if v is not None]


BODY = b'{"unit_id":"u-1","name":"Mottagning"}'


# --- the envelope ---------------------------------------------------------------------------


class TestEncodeDecode:
    def test_round_trip_keeps_every_attribute(self) -> None:
        event = CloudEvent(
            source=SOURCE,
            type=TYPE,
            subject="u-1",
            time=dt.datetime(2026, 11, 23, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            dataschema="https://vardkedja.se/schemas/unit.changed.v1",
            aggversion=7,
            traceparent=TRACEPARENT,
            partitionkey="u-1",
            data={"unit_id": "u-1", "name": "Beroendemottagning Växjö", "kommunkoder": ["0780"]},
        )
        key, body, headers = encode(event)

        assert key == b"u-1"
        assert json.loads(body) == event.data
        hdr = dict(headers)
        assert hdr["ce_specversion"] == b"1.0"
        assert hdr["ce_id"] == event.id.encode()
        assert hdr["ce_source"] == SOURCE.encode()
        assert hdr["ce_type"] == TYPE.encode()
        assert hdr["ce_subject"] == b"u-1"
        assert hdr["ce_aggversion"] == b"7"
        assert hdr["ce_traceparent"] == TRACEPARENT.encode()
        assert hdr["ce_partitionkey"] == b"u-1"
        assert hdr["content-type"] == b"application/json"
        # The time travels in UTC.
        assert hdr["ce_time"] == b"2026-11-23T10:30:00+00:00"

        decoded = decode(key, body, headers)
        assert decoded == event
        assert decoded.time.utcoffset() == dt.timedelta(0)
        assert decoded.sender_orgnr == "2120000647"
        assert decoded.sender_service == "directory"

    def test_optional_attributes_absent_when_unset(self) -> None:
        event = CloudEvent(source=SOURCE, type=TYPE, data={})
        key, body, headers = encode(event)
        assert key is None
        assert body == b"{}"
        names = {k for k, _ in headers}
        assert not names & {"ce_subject", "ce_aggversion", "ce_traceparent", "ce_partitionkey"}
        decoded = decode(key, body, headers)
        assert decoded.aggversion is None
        assert decoded.partitionkey is None
        assert decoded.traceparent is None
        assert decoded == event

    def test_non_ascii_body_round_trips_as_utf8(self) -> None:
        event = CloudEvent(source=SOURCE, type=TYPE, data={"name": "Socialtjänsten Älmhult"})
        _, body, headers = encode(event)
        assert "Socialtjänsten Älmhult".encode() in body
        assert decode(None, body, headers).data == {"name": "Socialtjänsten Älmhult"}

    def test_headers_as_aiokafka_tuple_are_accepted(self) -> None:
        event = decode(b"k", BODY, tuple(valid_headers()))
        assert event.partitionkey == "k"
        assert event.data == {"unit_id": "u-1", "name": "Mottagning"}

    def test_time_defaults_to_now_when_absent(self) -> None:
        before = dt.datetime.now(dt.UTC)
        event = decode(None, BODY, valid_headers(ce_time=None))
        assert event.time >= before
        assert event.time.tzinfo is not None


MALFORMED: list[tuple[str, bytes | None, list[tuple[str, bytes]], str]] = [
    ("no headers", BODY, [], "missing_attribute"),
    ("missing ce_id", BODY, valid_headers(ce_id=None), "missing_attribute"),
    ("empty ce_id", BODY, valid_headers(ce_id=b""), "missing_attribute"),
    ("missing ce_source", BODY, valid_headers(ce_source=None), "missing_attribute"),
    ("missing ce_type", BODY, valid_headers(ce_type=None), "missing_attribute"),
    ("missing specversion", BODY, valid_headers(ce_specversion=None), "missing_attribute"),
    ("wrong specversion", BODY, valid_headers(ce_specversion=b"0.3"), "specversion"),
    (
        "type without version",
        BODY,
        valid_headers(ce_type=b"se.vardkedja.unit.changed"),
        "type_format",
    ),
    (
        "type foreign prefix",
        BODY,
        valid_headers(ce_type=b"com.example.unit.changed.v1"),
        "type_format",
    ),
    (
        "type version zero",
        BODY,
        valid_headers(ce_type=b"se.vardkedja.unit.changed.v0"),
        "type_format",
    ),
    ("source not urn", BODY, valid_headers(ce_source=b"https://example.org"), "source_format"),
    (
        "source short orgnr",
        BODY,
        valid_headers(ce_source=b"urn:vardkedja:212000:directory"),
        "source_format",
    ),
    (
        "source hyphenated orgnr",
        BODY,
        valid_headers(ce_source=b"urn:vardkedja:212000-0647:directory"),
        "source_format",
    ),
    ("no body", None, valid_headers(), "empty_body"),
    ("empty body", b"", valid_headers(), "body_json"),
    ("non-JSON body", b"not json", valid_headers(), "body_json"),
    ("non-UTF-8 body", b"\xff\xfe\x00{", valid_headers(), "body_json"),
    ("JSON array body", b"[1, 2, 3]", valid_headers(), "body_object"),
    ("JSON string body", b'"text"', valid_headers(), "body_object"),
    ("JSON null body", b"null", valid_headers(), "body_object"),
    ("body too large", b'{"a":"' + b"x" * 1_000_001 + b'"}', valid_headers(), "body_too_large"),
    ("deeply nested body", b"[" * 100_000, valid_headers(), "body_json"),
    ("integer beyond digit limit", b'{"a":' + b"1" * 5000 + b"}", valid_headers(), "body_json"),
    ("non-UTF-8 header", BODY, valid_headers(ce_subject=b"\xc3\x28"), "header_encoding"),
    ("bad aggversion", BODY, valid_headers(ce_aggversion=b"seven"), "attribute_format"),
    ("empty aggversion", BODY, valid_headers(ce_aggversion=b""), "attribute_format"),
    ("bad time", BODY, valid_headers(ce_time=b"yesterday"), "attribute_format"),
    ("naive time", BODY, valid_headers(ce_time=b"2026-11-23T10:00:00"), "attribute_format"),
    ("overlong id", BODY, valid_headers(ce_id=b"x" * 256), "attribute_format"),
]


class TestDecodeRefuses:
    @pytest.mark.parametrize(
        ("value", "headers", "rule"),
        [pytest.param(v, h, r, id=name) for name, v, h, r in MALFORMED],
    )
    def test_malformed_record_names_rule(
        self, value: bytes | None, headers: list[tuple[str, bytes]], rule: str
    ) -> None:
        with pytest.raises(MalformedEvent) as info:
            decode(b"key", value, headers)
        assert info.value.rule == rule
        assert isinstance(info.value, ValueError)

    def test_non_ce_headers_are_ignored_even_if_not_utf8(self) -> None:
        headers = [*valid_headers(), ("x-other", b"\xff\xfe"), ("traceparent", b"\x80")]
        event = decode(None, BODY, headers)
        assert event.traceparent is None

    def test_message_does_not_echo_the_body(self) -> None:
        secret = b"191212121212"
        with pytest.raises(MalformedEvent) as info:
            decode(None, b"[" + secret + b"]", valid_headers())
        assert secret.decode() not in str(info.value)


# --- fuzz: decode answers a CloudEvent or MalformedEvent, never anything else -------------

_GOOD = {
    "ce_specversion": [b"1.0"],
    "ce_id": [b"e-1", b"3f1c1c9e-8f0a-4c1e-9c55-0d3c8d7c9a10"],
    "ce_source": [SOURCE.encode(), b"urn:vardkedja:2321000065:referral"],
    "ce_type": [TYPE.encode(), b"se.vardkedja.referral.sent.v12"],
    "ce_time": [b"2026-11-23T10:00:00+00:00", b"2026-11-23T10:00:00Z", b"2026-01-01T00:00+01:00"],
    "ce_aggversion": [b"1", b"42", b"0"],
    "ce_subject": [b"u-1", "Växjö".encode()],
    "ce_traceparent": [TRACEPARENT.encode()],
    "ce_dataschema": [b"https://vardkedja.se/s/1"],
}
_BAD_VALUES = [
    b"",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate: not valid UTF-8
    b"1.0 ",
    b"-1",
    b"1e3",
    b"9" * 5000,
    b"2026-13-45T99:99:99",
    b"2026-11-23T10:00:00",
    b"urn:vardkedja::",
    b"se.vardkedja..v1",
    b"x" * 300,
    b"\x00",
    "ö".encode(),
]
_JSON_BODIES = [
    b"{}",
    b'{"a":1}',
    b'{"a":[1,2,{"b":null}],"c":"\\u00e5"}',
    b'{"a":"\\ud800"}',
    b'{"a":NaN,"b":Infinity}',
    b'{"a":1e999}',
    b"[]",
    b'"s"',
    b"1",
    b"true",
    b"null",
    b'{"a":' * 50 + b"1" + b"}" * 50,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b"[" * 3000,
    b'{"n":' + b"7" * 4400 + b"}",
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    "{}".encode("utf-16"),
    b'{"a":1}garbage',
]


def _random_bytes(rnd: random.Random, n: int) -> bytes:
    return bytes(rnd.getrandbits(8) for _ in range(n))


def _fuzz_case(rnd: random.Random) -> tuple[bytes | None, bytes | None, list[tuple[Any, Any]]]:
    headers: list[tuple[Any, Any]] = []
    for name, goods in _GOOD.items():
        roll = rnd.random()
        if roll < 0.70:
            headers.append((name, rnd.choice(goods)))
        elif roll < 0.85:
            headers.append((name, rnd.choice(_BAD_VALUES)))
        elif roll < 0.92:
            headers.append((name, _random_bytes(rnd, rnd.randint(0, 20))))
        # else: omitted
    for _ in range(rnd.randint(0, 3)):
        choice = rnd.random()
        if choice < 0.4:
            headers.append(("x-" + str(rnd.randint(0, 9)), _random_bytes(rnd, rnd.randint(0, 8))))
        elif choice < 0.7:
            headers.append((rnd.choice(list(_GOOD)), rnd.choice(_BAD_VALUES)))  # duplicates
        elif choice < 0.85:
            headers.append((b"ce_id", b"bytes-named header"))
        else:
            headers.append(("ce_" + chr(rnd.randint(0x61, 0x7A)), "a str value"))
    rnd.shuffle(headers)

    roll = rnd.random()
    value: bytes | None
    if roll < 0.35:
        value = rnd.choice(_JSON_BODIES)
    elif roll < 0.65:
        value = _random_bytes(rnd, rnd.randint(0, 64))
    elif roll < 0.75:
        value = None
    else:
        raw = json.dumps({"k": rnd.random(), "s": _random_bytes(rnd, 4).hex()}).encode()
        cut = rnd.randint(0, len(raw))
        value = raw[:cut] + _random_bytes(rnd, rnd.randint(0, 3))

    roll = rnd.random()
    key = None if roll < 0.3 else _random_bytes(rnd, rnd.randint(0, 12))
    return key, value, headers


_RND = random.Random(1234)
_FUZZ_CASES = [_fuzz_case(_RND) for _ in range(2000)]
_CHUNK = 100


class TestDecodeFuzz:
    @pytest.mark.parametrize("chunk", range(len(_FUZZ_CASES) // _CHUNK))
    def test_decode_returns_event_or_raises_malformed(self, chunk: int) -> None:
        rules: set[str] = set()
        for key, value, headers in _FUZZ_CASES[chunk * _CHUNK : (chunk + 1) * _CHUNK]:
            try:
                event = decode(key, value, headers)
            except MalformedEvent as exc:
                rules.add(exc.rule)
                continue
            assert isinstance(event, CloudEvent)
            assert TYPE_RE.match(event.type)
            assert SOURCE_RE.match(event.source)
            assert isinstance(event.data, dict)
            assert event.time.tzinfo is not None
        assert rules <= {
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

    def test_fuzz_cases_cover_both_outcomes(self) -> None:
        outcomes = {"event": 0, "malformed": 0}
        for key, value, headers in _FUZZ_CASES:
            try:
                decode(key, value, headers)
                outcomes["event"] += 1
            except MalformedEvent:
                outcomes["malformed"] += 1
        assert outcomes["event"] > 25
        assert outcomes["malformed"] > 500


# --- the catalogue --------------------------------------------------------------------------


class TestCatalogueRegister:
    def test_registers_documented_model(self) -> None:
        cat = Catalogue()

        @cat.register("se.vardkedja.test.thing.v1", topics=("t",), personal_data=True)
        class ThingV1(EventPayload):
            """A thing happened."""

            n: int

        assert cat.is_known("se.vardkedja.test.thing.v1")
        kind = cat.kinds["se.vardkedja.test.thing.v1"]
        assert kind.model is ThingV1
        assert kind.personal_data is True
        assert kind.topics == ("t",)

    def test_requires_docstring(self) -> None:
        cat = Catalogue()

        class Undocumented(EventPayload):
            n: int

        with pytest.raises(ValueError, match="docstring"):
            cat.register("se.vardkedja.test.thing.v1", topics=("t",), personal_data=False)(
                Undocumented
            )
        assert not cat.is_known("se.vardkedja.test.thing.v1")

    @pytest.mark.parametrize(
        "name",
        [
            "se.vardkedja.thing.v1",
            "se.vardkedja.test.thing",
            "se.vardkedja.Test.thing.v1",
            "se.vardkedja.test.thing.v01",
            "com.example.test.thing.v1",
            "",
        ],
    )
    def test_requires_valid_type_name(self, name: str) -> None:
        with pytest.raises(ValueError, match="does not follow"):
            Catalogue().register(name, topics=("t",), personal_data=False)

    def test_duplicate_registration_refused(self) -> None:
        cat = Catalogue()
        register = cat.register("se.vardkedja.test.thing.v1", topics=("t",), personal_data=False)

        class First(EventPayload):
            """First."""

        class Second(EventPayload):
            """Second."""

        register(First)
        register(First)  # the same class again (a re-import) is harmless
        with pytest.raises(ValueError, match="registered twice"):
            register(Second)
        assert cat.kinds["se.vardkedja.test.thing.v1"].model is First


class _CountV1(EventPayload):
    """Counted, first version."""

    count: int


class _CountV2(EventPayload):
    """Counted, second version: the count is called total and has a unit."""

    total: int
    unit: str


def _count_catalogue() -> Catalogue:
    cat = Catalogue()
    cat.register("se.vardkedja.test.counted.v2", topics=("t",), personal_data=False)(_CountV2)

    @cat.upcaster("se.vardkedja.test.counted.v1", "se.vardkedja.test.counted.v2")
    def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {"total": data["count"], "unit": "pcs"}

    return cat


def _event(type_: str, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent(source=SOURCE, type=type_, data=data)


class TestCatalogueResolve:
    def test_resolves_current_type(self) -> None:
        cat = _count_catalogue()
        type_, payload = cat.resolve(
            _event("se.vardkedja.test.counted.v2", {"total": 3, "unit": "u"})
        )
        assert type_ == "se.vardkedja.test.counted.v2"
        assert payload == _CountV2(total=3, unit="u")

    def test_upcasts_old_version(self) -> None:
        cat = _count_catalogue()
        assert cat.is_known("se.vardkedja.test.counted.v1")
        type_, payload = cat.resolve(_event("se.vardkedja.test.counted.v1", {"count": 5}))
        assert type_ == "se.vardkedja.test.counted.v2"
        assert isinstance(payload, _CountV2)
        assert payload.total == 5
        assert payload.unit == "pcs"

    def test_validates_payload(self) -> None:
        cat = _count_catalogue()
        with pytest.raises(ValidationError):
            cat.resolve(_event("se.vardkedja.test.counted.v2", {"total": "many", "unit": "u"}))
        with pytest.raises(ValidationError):
            cat.resolve(_event("se.vardkedja.test.counted.v2", {"unit": "u"}))

    def test_unknown_type_raises_key_error(self) -> None:
        cat = _count_catalogue()
        assert not cat.is_known("se.vardkedja.test.other.v1")
        with pytest.raises(KeyError):
            cat.resolve(_event("se.vardkedja.test.other.v1", {}))

    def test_global_catalogue_validates_unit_changed(self) -> None:
        data = {
            "unit_id": "u-1",
            "owner_orgnr": "212000-0647",
            "name": "Beroendemottagning",
            "kind": "beroendemottagning",
            "kommunkoder": ["0780"],
            "status": "active",
            "version": 1,
            "changed_at": "2026-11-23T10:00:00+00:00",
            "unknown_extra": "ignored",
        }
        type_, payload = CATALOGUE.resolve(_event(UNIT_CHANGED_V1, data))
        assert type_ == UNIT_CHANGED_V1
        assert isinstance(payload, UnitChangedV1)
        assert payload.kommunkoder == ["0780"]
        with pytest.raises(ValidationError):
            CATALOGUE.resolve(_event(UNIT_CHANGED_V1, {**data, "version": 0}))


class TestAsyncApi:
    def test_unit_changed_is_published_on_the_directory_channel(self) -> None:
        doc = CATALOGUE.asyncapi()
        assert doc["asyncapi"] == "3.0.0"
        name = "se_vardkedja_unit_changed_v1"
        message = doc["components"]["messages"][name]
        assert message["name"] == UNIT_CHANGED_V1
        assert message["x-personal-data"] is False
        assert message["x-topics"] == ["vardkedja.directory"]
        assert message["summary"]
        channels = [c for c in doc["channels"].values() if c["address"] == "vardkedja.directory"]
        assert len(channels) == 1
        assert channels[0]["messages"][name] == {"$ref": f"#/components/messages/{name}"}
        schema = doc["components"]["schemas"][name]
        assert "owner_orgnr" in schema["properties"]
        assert "CloudEventHeaders" in doc["components"]["schemas"]
        # The document is plain JSON.
        assert json.loads(json.dumps(doc)) == doc

    def test_document_of_a_fresh_catalogue(self) -> None:
        doc = _count_catalogue().asyncapi(title="t", version="9")
        assert doc["info"] == {"title": "t", "version": "9"}
        assert list(doc["components"]["messages"]) == ["se_vardkedja_test_counted_v2"]
        assert doc["components"]["messages"]["se_vardkedja_test_counted_v2"]["summary"] == (
            "Counted, second version: the count is called total and has a unit."
        )


# --- topics ---------------------------------------------------------------------------------


class TestTopics:
    def test_member_topic_names(self) -> None:
        assert topics.inbound("212000-0647") == "vardkedja.member.2120000647.inbound"
        assert topics.internal("2120000647") == "vardkedja.member.2120000647.internal"
        assert topics.deadletter("212000-0647") == "vardkedja.member.2120000647.deadletter"
        assert topics.member_topics("232100-0065") == [
            "vardkedja.member.2321000065.inbound",
            "vardkedja.member.2321000065.internal",
            "vardkedja.member.2321000065.deadletter",
        ]

    def test_directory_is_compacted(self) -> None:
        assert topics.DIRECTORY == "vardkedja.directory"
        assert topics.DIRECTORY in topics.COMPACTED

    def test_consumer_group(self) -> None:
        assert topics.consumer_group("212000-0647", "directory") == "vardkedja.2120000647.directory"
        assert (
            topics.consumer_group("212000-0647", "directory", "replica")
            == "vardkedja.2120000647.directory.replica"
        )

    @pytest.mark.parametrize(
        ("topic", "member"),
        [
            ("vardkedja.member.2120000647.inbound", "2120000647"),
            ("vardkedja.member.2321000065.deadletter", "2321000065"),
            ("vardkedja.directory", None),
            ("other.member.2120000647.inbound", None),
            ("vardkedja.member.2120000647", None),
        ],
    )
    def test_member_of_topic(self, topic: str, member: str | None) -> None:
        assert topics.member_of_topic(topic) == member

    def test_member_of_topic_inverts_the_names(self) -> None:
        for make in (topics.inbound, topics.internal, topics.deadletter):
            assert topics.member_of_topic(make("212000-0613")) == "2120000613"

    @pytest.mark.parametrize("orgnr", ["212000-064", "21200006477", "2120a0-0647", "", "abc"])
    @pytest.mark.parametrize(
        "make",
        [topics.inbound, topics.internal, topics.deadletter, topics.member_topics],
    )
    def test_invalid_orgnr_refused(self, make: Any, orgnr: str) -> None:
        with pytest.raises(ValueError, match="10 digits"):
            make(orgnr)

    def test_consumer_group_refuses_invalid_orgnr(self) -> None:
        with pytest.raises(ValueError, match="10 digits"):
            topics.consumer_group("12-34", "directory")
