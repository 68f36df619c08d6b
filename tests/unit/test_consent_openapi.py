"""The consent service's docs page is its admins' console: every operation has a summary,
a description naming its scope, examples for its request body and its error responses as
problem+json; a personnummer is never a path or query parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.service import load_spec
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from tests.conftest import ORG_VAXJO, make_settings

SPEC = load_spec("consent")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('openapi') / 'consent.db'}"
    return create_app(SPEC, make_settings(service="consent", orgnr=ORG_VAXJO, db_url=url))


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
    assert len(ops) == 15
    components = app.openapi()["components"]["schemas"]
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert "Scope `consent:" in op.get("description", ""), where
        for status in ("401", "403", "422"):
            assert PROBLEM_JSON in op["responses"][status]["content"], f"{where} {status}"
        body = op.get("requestBody")
        if body is not None:
            ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            examples = components[ref].get("examples")
            assert examples, f"{where}: no example for {ref}"
            assert all(set(e) <= set(components[ref]["properties"]) for e in examples), where
        for parameter in op.get("parameters", []):
            assert "person" not in parameter["name"].lower(), where
            assert parameter["in"] != "query" or parameter["name"] not in ("personnummer", "pnr")


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/consents", {"409", "503"}),
        ("post", "/v1/consents/{consent_id}/withdraw", {"404", "409", "503"}),
        ("get", "/v1/consents/{consent_id}", {"404", "503"}),
        ("post", "/v1/blocks/{block_id}/lifts", {"404", "409"}),
        ("post", "/v1/decisions", {"503"}),
        ("post", "/v1/persons/audit-extract", {"503"}),
    ],
)
def test_operations_list_their_own_errors(
    app: FastAPI, method: str, path: str, statuses: set[str]
) -> None:
    responses = app.openapi()["paths"][path][method]["responses"]
    assert statuses <= set(responses)


def test_the_audit_extract_documents_its_printable_page(app: FastAPI) -> None:
    content = app.openapi()["paths"]["/v1/persons/audit-extract"]["post"]["responses"]["200"][
        "content"
    ]
    assert {"application/json", "text/html"} <= set(content)


async def test_the_docs_page_and_the_template_exist(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()
    templates = Path(SPEC.migrations_dir).parent / "templates"
    assert (templates / "loggutdrag.html").is_file()
