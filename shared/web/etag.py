"""Versions as ETags: every versioned resource answers ``ETag: "<version>"`` and takes the
version it was read at back in ``If-Match`` (optimistic concurrency, RFC 9110 §13.1.1)."""

from __future__ import annotations

import re

from shared.web.errors import InvalidInput, PreconditionRequired

_ETAG = re.compile(r'^(?:W/)?"([0-9]+)"$')


def etag(version: int) -> str:
    """The ETag of ``version``."""
    return f'"{version}"'


def if_match_version(value: str | None) -> int | None:
    """The version an ``If-Match`` header names; None without the header. A value that is
    not an ETag of this API is bad input (422, field ``If-Match``, rule ``etag``)."""
    if value is None:
        return None
    m = _ETAG.match(value.strip())
    if not m:
        raise InvalidInput.field("If-Match", "etag", 'not an ETag of this API (e.g. "3")')
    return int(m.group(1))


def required_if_match_version(value: str | None) -> int:
    """As :func:`if_match_version`, but the header is required (428 without it)."""
    version = if_match_version(value)
    if version is None:
        raise PreconditionRequired("send If-Match with the ETag of the version you read")
    return version
