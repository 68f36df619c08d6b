"""CloudEvents 1.0 envelope, carried on Kafka in binary mode (``ce_*`` headers, JSON body).

Extension attributes used here (lower-case alphanumerics, as the spec requires):

- ``aggversion``: the version of the aggregate after the change, so a consumer never lets
  a stale or reordered event roll its state back;
- ``traceparent``: W3C trace context of the request that caused the event;
- ``partitionkey``: the Kafka message key (the Kafka binding's partitioning extension).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPECVERSION = "1.0"
TYPE_RE = re.compile(r"^se\.vardkedja\.[a-z_]+\.[a-z_]+\.v[1-9][0-9]*$")
SOURCE_RE = re.compile(r"^urn:vardkedja:(?P<orgnr>[0-9]{10}):(?P<service>[a-z]+)$")
_REQUIRED = ("id", "source", "type", "specversion")
_MAX_BODY = 1_000_000


class MalformedEvent(ValueError):
    """A Kafka record that is not a valid CloudEvent of ours. ``rule`` says why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class CloudEvent(BaseModel):
    """One event: CloudEvents context attributes plus the JSON ``data``."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=255)
    source: str
    type: str
    subject: str | None = None
    time: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    specversion: str = SPECVERSION
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    aggversion: int | None = None
    traceparent: str | None = None
    partitionkey: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def sender_orgnr(self) -> str | None:
        """The orgnr digits of the member that emitted this event (from ``source``)."""
        m = SOURCE_RE.match(self.source)
        return m.group("orgnr") if m else None

    @property
    def sender_service(self) -> str | None:
        m = SOURCE_RE.match(self.source)
        return m.group("service") if m else None


def encode(event: CloudEvent) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """Binary-mode Kafka record for ``event``: (key, value, headers)."""
    headers: list[tuple[str, bytes]] = [
        ("ce_specversion", event.specversion.encode()),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", event.time.astimezone(dt.UTC).isoformat().encode()),
        ("content-type", event.datacontenttype.encode()),
    ]
    for name in ("subject", "dataschema", "aggversion", "traceparent", "partitionkey"):
        value = getattr(event, name)
        if value is not None:
            headers.append((f"ce_{name}", str(value).encode()))
    body = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False).encode()
    key = event.partitionkey.encode() if event.partitionkey is not None else None
    return key, body, headers


def attributes(headers: list[tuple[str, bytes]] | tuple[Any, ...]) -> dict[str, str]:
    """The CloudEvents attributes of a binary-mode record's headers, checked (required
    attributes, spec version, type and source formats); raises :class:`MalformedEvent`.
    Needs no body, so a record is checked before its data is verified and opened."""
    attrs: dict[str, str] = {}
    for hk, hv in headers or ():
        if not isinstance(hk, str) or not hk.startswith("ce_"):
            continue
        try:
            attrs[hk[3:]] = hv.decode("utf-8") if isinstance(hv, bytes | bytearray) else str(hv)
        except UnicodeDecodeError as exc:
            raise MalformedEvent("header_encoding", f"header {hk} is not UTF-8") from exc
    for name in _REQUIRED:
        if not attrs.get(name):
            raise MalformedEvent("missing_attribute", f"missing CloudEvents attribute {name}")
    if attrs["specversion"] != SPECVERSION:
        raise MalformedEvent("specversion", "unsupported CloudEvents specversion")
    if not TYPE_RE.match(attrs["type"]):
        raise MalformedEvent("type_format", "event type does not follow se.vardkedja.<a>.<b>.vN")
    if not SOURCE_RE.match(attrs["source"]):
        raise MalformedEvent("source_format", "event source is not urn:vardkedja:<orgnr>:<svc>")
    return attrs


def decode(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | tuple[Any, ...]
) -> CloudEvent:
    """Parse a binary-mode record; raise :class:`MalformedEvent` naming the broken rule.
    ``value`` is the plain data (opened first when it was sealed, :mod:`shared.messaging.trust`)."""
    attrs = attributes(headers)
    if value is None:
        raise MalformedEvent("empty_body", "record has no body")
    if len(value) > _MAX_BODY:
        raise MalformedEvent("body_too_large", "record body exceeds 1 MB")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers beyond
        # Python's digit limit; RecursionError a body nested too deeply to parse.
        raise MalformedEvent("body_json", "record body is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedEvent("body_object", "record body is not a JSON object")
    try:
        aggversion = int(attrs["aggversion"]) if "aggversion" in attrs else None
        time = dt.datetime.fromisoformat(attrs["time"]) if "time" in attrs else None
    except ValueError as exc:
        raise MalformedEvent("attribute_format", "aggversion or time is malformed") from exc
    if time is not None and time.tzinfo is None:
        raise MalformedEvent("attribute_format", "time has no offset")
    try:
        return CloudEvent(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs.get("subject"),
            time=time or dt.datetime.now(dt.UTC),
            dataschema=attrs.get("dataschema"),
            aggversion=aggversion,
            traceparent=attrs.get("traceparent"),
            partitionkey=key.decode("utf-8", "replace") if key is not None else None,
            data=data,
        )
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise MalformedEvent("attribute_format", "CloudEvents attributes are invalid") from exc
