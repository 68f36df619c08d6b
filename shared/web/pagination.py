"""Cursor pagination, one codec for every listing of every service.

A cursor is the URL-safe Base64 of what the next page starts after: a string (an id, a
sequence number) or a small JSON object (a search's score, name and id). Clients treat it
as opaque and pass back ``next_cursor`` unchanged. Anything else — not Base64 of the
alphabet, empty, not the shape the listing expects — answers 422 naming ``cursor``; an empty
cursor never silently restarts the listing from its first page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shared.web.errors import InvalidInput

T = TypeVar("T")

NOT_A_CURSOR = "not a cursor from a previous page"


def _bad() -> InvalidInput:
    return InvalidInput.field("cursor", "cursor", NOT_A_CURSOR)


def encode_cursor(after: str | dict[str, Any]) -> str:
    """The cursor of a page that starts after ``after``."""
    text = after if isinstance(after, str) else json.dumps(after, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """What a page starts after (None: the first page). 422 for anything not made by
    :func:`encode_cursor`, an empty value included."""
    if cursor is None:
        return None
    try:
        # validate=True: urlsafe_b64decode silently drops characters outside the alphabet,
        # so garbage would decode to "" and restart the listing from the first page.
        after = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise _bad() from exc
    if not after:
        raise _bad()
    return after


def decode_int_cursor(cursor: str | None) -> int | None:
    """A cursor made of a sequence number (None: the first page)."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    if not after.isdigit():
        raise _bad()
    return int(after)


def decode_json_cursor(cursor: str | None, keys: frozenset[str]) -> dict[str, Any] | None:
    """A cursor made of a JSON object with exactly ``keys`` (None: the first page)."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    try:
        data = json.loads(after)
    except ValueError as exc:
        raise _bad() from exc
    if not isinstance(data, dict) or set(data) != keys:
        raise _bad()
    return data


def next_cursor(items: Sequence[T], limit: int, after: Callable[[T], str]) -> str | None:
    """The cursor of the page after ``items`` — fetched with ``limit + 1`` rows, so a row
    beyond ``limit`` says there is one — or None on the last page."""
    if len(items) <= limit:
        return None
    return encode_cursor(after(items[limit - 1]))
