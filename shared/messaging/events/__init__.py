"""Events: the CloudEvents envelope, the catalogue of payloads and the topic layout."""

from shared.messaging.events import topics
from shared.messaging.events.catalogue import (
    CATALOGUE,
    Catalogue,
    EventKind,
    EventPayload,
    event_type,
)
from shared.messaging.events.envelope import CloudEvent, MalformedEvent, attributes, decode, encode

__all__ = [
    "CATALOGUE",
    "Catalogue",
    "CloudEvent",
    "EventKind",
    "EventPayload",
    "MalformedEvent",
    "attributes",
    "decode",
    "encode",
    "event_type",
    "topics",
]

# Importing the payloads registers them in CATALOGUE.
from shared.messaging.events import payloads

__all__ += ["payloads"]
