"""Field types of the API contracts that every service shares.

FastAPI validates a decoded JSON body in pydantic's lax mode, which takes more than the
published JSON Schema says: a number where a date or date-time is documented (seconds
since 1970), ``0`` / ``"yes"`` for a boolean, ``"5"`` or ``true`` for an integer. A client
never means those, and the OpenAPI document must not lie, so request fields use these
types: they take exactly the documented JSON (or the Python value from code) and refuse
anything else with pydantic's own rule (``date_type``, ``datetime_type``, ``bool_type``,
``int_type``), so the 422 problem names the field and the rule.

* :data:`IsoDate`, :data:`IsoDatetime`, :data:`IsoAwareDatetime`: ISO 8601 text only
  (``format: date`` / ``format: date-time``), in bodies and query parameters alike.
* :data:`JsonBool`, :data:`JsonInt` (:data:`Age`, :data:`JSON_INT`): body fields (JSON
  ``true``/``false``; an integer).
* :data:`QueryBool`: a query flag, ``true`` or ``false`` as OpenAPI writes it.
* :data:`NOT_BLANK`: for a text refused when it holds only spaces, the schema's pattern.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic_core import PydanticKnownError

__all__ = [
    "JSON_INT",
    "NOT_BLANK",
    "SPACES",
    "Age",
    "IsoAwareDatetime",
    "IsoDate",
    "IsoDatetime",
    "JsonBool",
    "JsonInt",
    "QueryBool",
]

# The shape only; the parser checks the calendar, the clock and the offset.
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_DATETIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}.*", re.S)


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise PydanticKnownError("date_type")


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value):
        return value
    raise PydanticKnownError("datetime_type")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
"""A date as ISO text ``YYYY-MM-DD`` (``format: date``); never a number."""

IsoDatetime = Annotated[dt.datetime, BeforeValidator(_iso_datetime)]
"""A date-time as ISO text (``format: date-time``); never a number."""

IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_datetime)]
"""A date-time as ISO text with its UTC offset (``format: date-time``); never a number."""


def _json_int(value: Any) -> Any:
    # JSON Schema's integer includes 5.0 (pydantic then checks the fraction); a boolean is
    # an int to Python but not to JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticKnownError("int_type")
    return value


def _query_bool(value: Any) -> Any:
    if isinstance(value, bool) or value in ("true", "false"):
        return value
    raise PydanticKnownError("bool_parsing")


JsonBool = StrictBool
"""A body field's boolean: JSON ``true`` or ``false``, never ``0`` or ``"yes"``."""

JSON_INT: Final = BeforeValidator(_json_int)
"""The check of :data:`JsonInt`, for a constrained integer that may be null: write
``Annotated[int, Field(ge=0), JSON_INT] | None`` (constraints first: given after the check,
pydantic publishes them as ``ge``/``le``, which JSON Schema does not know)."""

JsonInt = Annotated[int, JSON_INT]
"""A body field's integer: a JSON number without a fraction, never text or a boolean."""

Age = Annotated[int, Field(ge=0, le=120), JSON_INT]
"""An age in years (0-120), as a body field's integer."""

QueryBool = Annotated[bool, BeforeValidator(_query_bool)]
"""A query flag: ``true`` or ``false``, never ``1``, ``yes`` or ``on``."""


SPACES: Final = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
"""Every whitespace character to Python (what ``str.strip()`` removes)."""

_SPACE_RANGES: Final = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK: Final[dict[str, Any]] = {"pattern": f"[^{_SPACE_RANGES}]"}
"""``json_schema_extra`` of a text that must hold more than :data:`SPACES`: a pattern
matching one other character, spelled out (``\\S`` means other sets in other regex
dialects, and the schema is read by JSON Schema tools in any of them)."""


def request_config(*examples: dict[str, Any]) -> ConfigDict:
    """A request body's config: no unknown fields, no input echoed in errors (it may be
    personal data), and its examples for the docs."""
    if not examples:
        return ConfigDict(extra="forbid", hide_input_in_errors=True)
    return ConfigDict(
        extra="forbid", hide_input_in_errors=True, json_schema_extra={"examples": list(examples)}
    )
