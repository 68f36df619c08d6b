"""Assertions on RFC 9457 problem answers, shared by every service's API tests."""

from __future__ import annotations

from typing import Any

import httpx

from shared.web.errors import PROBLEM_BASE, PROBLEM_JSON


def problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """The problem body of ``response``, after checking its status, media type and slug."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug
    return body


def field_rules(body: dict[str, Any]) -> dict[str, str]:
    """The problem's invalid fields, each with the rule it broke."""
    return {e["field"]: e["rule"] for e in body["errors"]}
