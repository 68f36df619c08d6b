"""Versioned payloads of every event, registered in the catalogue.

Each docstring says when the event is sent and what it means. Payloads on broadcast topics
carry organisational data only; ``personal_data=True`` marks those that may carry personal
data (they travel only on per-member topics, after a sharing decision).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from shared.events.catalogue import EventPayload, event_type
from shared.events.topics import DIRECTORY

UNIT_CHANGED_V1 = "se.vardkedja.unit.changed.v1"


@event_type(UNIT_CHANGED_V1, topics=(DIRECTORY,), personal_data=False)
class UnitChangedV1(EventPayload):
    """A unit (function) in a member's directory was created or changed.

    Sent by the owning member's directory service on ``vardkedja.directory`` (compacted, key =
    unit id) with the unit's whole public state, so the latest event per key *is* the unit.
    Every member's directory keeps a read replica from it. ``version`` grows with every
    change; a replica ignores a version it has already passed. Organisational data only:
    functions and their functional contact paths, never named persons. The nested objects
    (target groups, contact paths, opening hours, capacity) follow the directory API's
    schemas and are validated again by every receiving directory.
    """

    unit_id: str = Field(max_length=64)
    owner_orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(max_length=64)
    mission: str = Field("", max_length=2000)
    target_groups: list[dict[str, Any]] = Field(default_factory=list, max_length=10)
    interventions: list[str] = Field(default_factory=list, max_length=100)
    kommunkoder: list[str] = Field(default_factory=list, max_length=290)
    contact_paths: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    opening_hours: dict[str, Any] | None = None
    referral_kinds: list[str] = Field(default_factory=list, max_length=10)
    status: str = Field(max_length=32)
    status_message: str | None = Field(None, max_length=500)
    parent_unit_id: str | None = Field(None, max_length=64)
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    reviewed_at: dt.datetime | None = None
    reviewed_by: str | None = Field(None, max_length=100)
    capacity: dict[str, Any] | None = None
    version: int = Field(ge=1)
    changed_at: dt.datetime


MEMBER_CHANGED_V1 = "se.vardkedja.member.changed.v1"


@event_type(MEMBER_CHANGED_V1, topics=(DIRECTORY,), personal_data=False)
class MemberChangedV1(EventPayload):
    """A member (huvudman) described itself: its name, kind, county and the kommuner it
    serves.

    Sent by the member's own directory service on ``vardkedja.directory`` (compacted, key =
    ``member:<orgnr>``) when its administrator sets the record, with the whole record. Every
    member's directory keeps the latest version: overviews show the member's name, and
    routing falls back to the intake of the member serving a kommun when no unit names
    it. Organisational data only.
    """

    orgnr: str = Field(pattern=r"^[0-9]{6}-[0-9]{4}$")
    name: str = Field(min_length=2, max_length=200)
    kind: str = Field(max_length=32)
    county_code: str = Field(pattern=r"^[0-9]{2}$")
    kommunkoder: list[str] = Field(min_length=1, max_length=290)
    version: int = Field(ge=1)
    changed_at: dt.datetime


RELAY_MARKER_V1 = "se.vardkedja.relay.marker.v1"


@event_type(RELAY_MARKER_V1, topics=("vardkedja.member.<orgnr>.internal",), personal_data=False)
class RelayMarkerV1(EventPayload):
    """A relay's marker, written to its own member's internal topic when the relay connects
    and every hour after.

    The relay later reads the record at the marker's offset back: if it is gone or another
    record stands there, the broker lost its log and the relay re-publishes its replay
    window. Consumers skip it. Carries no personal data.
    """

    relay: str = Field(max_length=100, description="<orgnr digits>-<service>")


UNIT_REVIEW_DUE_V1 = "se.vardkedja.unit.review_due.v1"


@event_type(UNIT_REVIEW_DUE_V1, topics=("vardkedja.member.<orgnr>.internal",), personal_data=False)
class UnitReviewDueV1(EventPayload):
    """A unit of this member has not been reviewed within the review period.

    Sent once per unit and due date by the directory worker on the member's own internal
    topic; the notify service turns it into a reminder to the unit (and its coordinator).
    """

    unit_id: str = Field(max_length=64)
    unit_name: str = Field(max_length=200)
    last_reviewed_at: dt.datetime | None = None
    due_since: dt.date
