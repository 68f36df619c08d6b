"""Events: the CloudEvents envelope, the catalogue of payloads and the topic layout."""

from shared.events import topics
from shared.events.catalogue import CATALOGUE, Catalogue, EventKind, EventPayload, event_type
from shared.events.envelope import CloudEvent, MalformedEvent, attributes, decode, encode

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
from shared.events import payloads

__all__ += ["payloads"]
