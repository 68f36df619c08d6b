"""The published event catalogue (docs/events.asyncapi.json) is the catalogue in the code.
Regenerate it with `make events` after changing a payload."""

from __future__ import annotations

import json
from pathlib import Path

from shared.messaging.events import CATALOGUE

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.asyncapi.json"


def test_the_published_catalogue_is_current() -> None:
    assert json.loads(DOC.read_text()) == CATALOGUE.asyncapi(), "run `make events`"


def test_broadcast_events_carry_no_personal_data() -> None:
    for kind in CATALOGUE.kinds.values():
        if "vardkedja.directory" in kind.topics:
            assert not kind.personal_data, kind.type_
