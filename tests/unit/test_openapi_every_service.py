"""Every service's docs page is its admins' console: every operation under /v1 has a
summary, a description naming its scope, its problem+json errors, and request bodies
with examples."""

from __future__ import annotations

from typing import Any

import pytest

from shared.app import create_app
from shared.errors import PROBLEM_JSON
from shared.service import load_spec
from tests.conftest import make_settings

SERVICES = ["directory", "consent", "referral", "notify"]


def _schema(service: str) -> dict[str, Any]:
    app = create_app(load_spec(service), make_settings(service=service))
    schema: dict[str, Any] = app.openapi()
    return schema


def _has_example(body: dict[str, Any], schema: dict[str, Any]) -> bool:
    for media in body.get("content", {}).values():
        if media.get("example") is not None or media.get("examples"):
            return True
        ref = media.get("schema", {}).get("$ref")
        if ref:
            component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
            if component.get("examples") or component.get("example"):
                return True
    return False


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_is_documented(service: str) -> None:
    schema = _schema(service)
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/v1")
        for method, op in item.items()
    ]
    assert operations
    for path, method, op in operations:
        where = f"{service}: {method.upper()} {path}"
        assert op.get("summary"), where
        assert op.get("description"), where
        assert "scope" in op["description"].lower(), f"{where}: the scope is named"
        for status in ("401", "403", "422"):
            assert PROBLEM_JSON in op["responses"][status]["content"], f"{where} {status}"
        if "requestBody" in op:
            assert _has_example(op["requestBody"], schema), f"{where}: body example"
