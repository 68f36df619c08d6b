"""Calls to a sibling service carry the caller's request id and trace (so the sibling's
records, its audit record of the call among them, name the request that caused them)."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI, Request

from shared.web.clients import ServiceClient
from shared.web.observability import adopt_traceparent, request_id_var
from tests.conftest import ORG_VAXJO


def _echo_app() -> tuple[FastAPI, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    app = FastAPI()

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, str]:
        seen.append(dict(request.headers))
        return {}

    return app, seen


def _client(app: FastAPI) -> ServiceClient:
    return ServiceClient(
        base_url="http://sibling",
        service="referral",
        org=ORG_VAXJO,
        scopes=["consent:read"],
        transport=httpx.ASGITransport(app=app),
    )


async def test_the_request_id_and_trace_go_along() -> None:
    app, seen = _echo_app()
    client = _client(app)
    token = request_id_var.set("req-1234abcd")
    trace = adopt_traceparent(None)
    try:
        response = await client.post("/v1/echo", {}, what="echo")
    finally:
        request_id_var.reset(token)
        await client.aclose()
    assert response.status_code == 200
    assert seen[0]["x-request-id"] == "req-1234abcd"
    assert re.fullmatch(rf"00-{trace}-[0-9a-f]{{16}}-01", seen[0]["traceparent"])
    assert seen[0]["authorization"].startswith("Bearer ")


async def test_outside_a_request_no_request_id_is_made_up() -> None:
    app, seen = _echo_app()
    client = _client(app)
    token = request_id_var.set(None)
    try:
        await client.post("/v1/echo", {}, what="echo")
    finally:
        request_id_var.reset(token)
        await client.aclose()
    assert "x-request-id" not in seen[0]
