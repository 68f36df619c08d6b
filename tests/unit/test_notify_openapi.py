"""The notify service's docs page is its admins' console: every operation has a summary, a
description naming its scope, examples for its request body and its errors as
problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from shared.service import load_spec
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from tests.conftest import ORG_VAXJO, make_settings

SPEC = load_spec("notify")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('openapi') / 'notify.db'}"
    return create_app(SPEC, make_settings(service="notify", orgnr=ORG_VAXJO, db_url=url))


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    schema = app.openapi()
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method, op in item.items()
    ]


def test_every_operation_is_documented_for_the_console(app: FastAPI) -> None:
    ops = operations(app)
    assert len(ops) == 18
    components = app.openapi()["components"]["schemas"]
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert "Scope `notify:" in op.get("description", ""), where
        for status in ("401", "403", "422"):
            assert PROBLEM_JSON in op["responses"][status]["content"], f"{where} {status}"
        body = op.get("requestBody")
        if body is not None:
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            examples = components[ref].get("examples")
            assert examples, f"{where}: no example for {ref}"
            assert all(set(e) <= set(components[ref]["properties"]) for e in examples), where


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/v1/notifications/{notification_id}", {"404"}),
        ("post", "/v1/notifications/{notification_id}/acknowledge", {"404"}),
        ("patch", "/v1/webhook-subscriptions/{subscription_id}", {"404", "412"}),
        ("post", "/v1/deliveries/{delivery_id}/redeliver", {"404", "409"}),
    ],
)
def test_operations_list_their_own_errors(
    app: FastAPI, method: str, path: str, statuses: set[str]
) -> None:
    responses = app.openapi()["paths"][path][method]["responses"]
    assert statuses <= set(responses)


def test_the_live_stream_is_documented_as_server_sent_events(app: FastAPI) -> None:
    op = app.openapi()["paths"]["/v1/units/{unit_id}/notifications/stream"]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
