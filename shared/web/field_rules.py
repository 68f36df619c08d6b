"""What a field's name promises, said in the OpenAPI document where its model says nothing.

Fields that carry a rule — an identifier, a deadline, a version, a day — are named the
same way in every service. A field whose model gives no description gets the rule its name
stands for (:data:`RULES`, the first that matches its name and type), so an integrator
reading any operation sees how the value is checked or counted. A model's own description
always wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

Matches = Callable[[str, dict[str, Any]], bool]


def _named(pattern: str, *, fmt: str | None = None) -> Matches:
    name = re.compile(pattern)

    def matches(field: str, prop: dict[str, Any]) -> bool:
        return bool(name.search(field)) and (fmt is None or _format(prop) == fmt)

    return matches


def _format(prop: dict[str, Any]) -> str | None:
    """The string format of a property, looking through ``anyOf`` with null."""
    if "format" in prop:
        return str(prop["format"])
    for alternative in prop.get("anyOf") or []:
        if "format" in alternative:
            return str(alternative["format"])
    return None


RULES: Final[tuple[tuple[Matches, str], ...]] = (
    (
        _named(r"^personnummer$"),
        "personnummer or samordningsnummer (a samordningsnummer's day is 61-91): 12 digits, "
        "or YYYYMMDD-NNNN, the check digit verified (Luhn). Personal data: sent in a body, "
        "never in a URL.",
    ),
    (
        _named(r"(^|_)orgnr$"),
        "a member's organisationsnummer, NNNNNN-NNNN, the check digit verified (Luhn).",
    ),
    (
        _named(r"^hsa_id$"),
        "the unit's HSA-id: SE, the issuing organisation's organisationsnummer, a hyphen and "
        "1-18 letters or digits (at most 31 characters; ADR 0028).",
    ),
    (_named(r"unit_id$"), "a unit's id in its owner's directory."),
    (_named(r"^kommunkod(er)?$"), "SCB's four-digit kommunkod (e.g. 0780 for Växjö)."),
    (
        _named(r"^version$"),
        'the version as last changed: send it back as If-Match ("<version>", as the ETag '
        "header has it) with a change; 412 if it has moved on, 428 without If-Match.",
    ),
    (
        _named(r"_by$", fmt="date"),
        "a deadline: its last day, in Sweden (YYYY-MM-DD). Working days skip Saturdays, "
        "Sundays, public holidays and midsommar-, jul- and nyårsafton; the referral "
        "service's GET /v1/deadlines/count shows how any such day is counted.",
    ),
    (
        _named(r"(_on|^valid_from|^valid_to)$", fmt="date"),
        "a day (YYYY-MM-DD), counted as the day in Sweden.",
    ),
    (
        _named(r"_at$", fmt="date-time"),
        "an instant (RFC 3339 with its offset; answered in UTC).",
    ),
    (
        _named(r"(^|_)status$"),
        "where it stands: one of the values its schema lists (the steps allowed from it "
        "are described with the operations that take them).",
    ),
)


def describe_rules(components: dict[str, Any]) -> int:
    """Gives every property of ``components`` (OpenAPI schemas) that has no description the
    rule its name stands for; returns how many it described."""
    described = 0
    for schema in components.values():
        for field, prop in (schema.get("properties") or {}).items():
            if prop.get("description"):
                continue
            for matches, words in RULES:
                if matches(field, prop):
                    prop["description"] = words
                    described += 1
                    break
    return described
