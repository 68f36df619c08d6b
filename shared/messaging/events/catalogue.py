"""The event catalogue: every event type, its versioned Pydantic payload, and upcasters.

A payload class is registered with :func:`event_type`; its docstring says when it is sent
and what it means. A breaking change is a new class with a new ``vN``; an upcaster turns the
old payload into the new one so consumers accept both during a transition
(the eventsourcing library's ``upcast_v1_v2`` idea). :func:`asyncapi` publishes the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from shared.messaging.events.envelope import TYPE_RE, CloudEvent


class EventPayload(BaseModel):
    """Base of every event payload: strict about unknown fields is left to consumers."""

    model_config = ConfigDict(extra="ignore", frozen=True)


P = TypeVar("P", bound=type[EventPayload])


@dataclass(frozen=True)
class EventKind:
    type_: str
    model: type[EventPayload]
    topics: tuple[str, ...]  # topic *patterns* it travels on, for the published catalogue
    personal_data: bool


@dataclass
class Catalogue:
    """A registry of event types. The process-wide one is :data:`CATALOGUE`."""

    kinds: dict[str, EventKind] = field(default_factory=dict)
    upcasters: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = field(
        default_factory=dict
    )

    def register(
        self, type_: str, *, topics: tuple[str, ...], personal_data: bool
    ) -> Callable[[P], P]:
        """Class decorator registering a payload model under ``type_``."""
        if not TYPE_RE.match(type_):
            raise ValueError(f"event type {type_!r} does not follow se.vardkedja.<a>.<b>.vN")

        def deco(model: P) -> P:
            if type_ in self.kinds and self.kinds[type_].model is not model:
                raise ValueError(f"event type {type_} registered twice")
            if not (model.__doc__ or "").strip():
                raise ValueError(f"{model.__name__} needs a docstring saying when it is sent")
            self.kinds[type_] = EventKind(type_, model, topics, personal_data)
            return model

        return deco

    def upcaster(
        self, old_type: str, new_type: str
    ) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable[..., dict[str, Any]]]:
        """Register a function turning an ``old_type`` payload into a ``new_type`` payload."""

        def deco(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
            self.upcasters[old_type] = (new_type, fn)
            return fn

        return deco

    def is_known(self, type_: str) -> bool:
        return type_ in self.kinds or type_ in self.upcasters

    def current_type(self, type_: str) -> str:
        """The type ``type_`` is upcast to (itself if it is current), without any payload."""
        seen = set()
        while type_ in self.upcasters and type_ not in seen:
            seen.add(type_)
            type_ = self.upcasters[type_][0]
        return type_

    def resolve(self, event: CloudEvent) -> tuple[str, EventPayload]:
        """The current type and validated payload of ``event``, upcasting old versions.

        Raises KeyError for an unknown type and pydantic's ValidationError for a bad payload.
        """
        type_, data = event.type, dict(event.data)
        seen = set()
        while type_ in self.upcasters and type_ not in seen:
            seen.add(type_)
            type_, fn = self.upcasters[type_][0], self.upcasters[type_][1]
            data = fn(data)
        kind = self.kinds[type_]
        return type_, kind.model.model_validate(data)

    def asyncapi(self, *, title: str = "vardkedja events", version: str = "1") -> dict[str, Any]:
        """An AsyncAPI 3.0 document describing every registered event."""
        messages: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        channels: dict[str, Any] = {}
        for type_, kind in sorted(self.kinds.items()):
            name = type_.replace(".", "_")
            schema = kind.model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, def_schema in schema.pop("$defs", {}).items():
                schemas[def_name] = def_schema
            schemas[name] = schema
            messages[name] = {
                "name": type_,
                "title": kind.model.__name__,
                "summary": (kind.model.__doc__ or "").strip().splitlines()[0],
                "description": (kind.model.__doc__ or "").strip(),
                "contentType": "application/json",
                "bindings": {"kafka": {"bindingVersion": "0.5.0"}},
                "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "x-personal-data": kind.personal_data,
                "x-topics": list(kind.topics),
            }
            for topic in kind.topics:
                ch = channels.setdefault(
                    topic.replace(".", "_").replace("<", "").replace(">", ""),
                    {"address": topic, "messages": {}},
                )
                ch["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        schemas["CloudEventHeaders"] = {
            "type": "object",
            "description": "CloudEvents 1.0 binary mode: context attributes as ce_* headers",
            "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_signature"],
            "properties": {
                "ce_specversion": {"type": "string", "const": "1.0"},
                "ce_id": {"type": "string"},
                "ce_source": {"type": "string", "pattern": "^urn:vardkedja:[0-9]{10}:[a-z]+$"},
                "ce_type": {"type": "string"},
                "ce_subject": {"type": "string"},
                "ce_time": {"type": "string", "format": "date-time"},
                "ce_aggversion": {"type": "string", "pattern": "^[0-9]+$"},
                "ce_traceparent": {"type": "string"},
                "ce_signature": {
                    "type": "string",
                    "description": "the sender's detached compact JWS (Ed25519) over the "
                    "record: every ce_* attribute, content-type, key, destination topic and "
                    "a SHA-256 digest of the body (ADR 0020)",
                },
                "content-type": {
                    "type": "string",
                    "enum": ["application/json", "application/jose"],
                    "description": "application/jose: the data is a compact JWE (ECDH-ES, "
                    "A256GCM) sealed for the topic's member",
                },
            },
        }
        return {
            "asyncapi": "3.0.0",
            "info": {"title": title, "version": version},
            "channels": channels,
            "components": {"messages": messages, "schemas": schemas},
        }


CATALOGUE = Catalogue()
event_type = CATALOGUE.register
