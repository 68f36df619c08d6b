"""The FHIR facade's own docs: every operation described, its errors as OperationOutcome,
and its docs page served without the internet."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from fhir.resources.R4B.operationdefinition import OperationDefinition

from services.fhir.app import create_fhir_app
from services.fhir.outcome import FHIR_JSON

OPERATIONS = ("/healthz", "/readyz")
CONFORMANCE = (
    "/fhir/R4/metadata",
    "/fhir/R4/.well-known/smart-configuration",
    "/fhir/R4/OperationDefinition/{definition_id}",
)


def openapi() -> dict:  # type: ignore[type-arg]
    return create_fhir_app(member="232100-0065").openapi()


def test_every_operation_is_described_and_answers_its_errors_as_operation_outcomes() -> None:
    for path, ops in openapi()["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
            assert op.get("description"), (method, path)
            if path in OPERATIONS or path in CONFORMANCE:
                continue
            errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
            assert {"400", "401", "403", "404"} <= set(errors), (method, path)
            for status, answer in errors.items():
                example = answer["content"][FHIR_JSON]["example"]
                assert example["resourceType"] == "OperationOutcome", (method, path, status)


def test_the_steps_and_creates_show_an_example_body() -> None:
    paths = openapi()["paths"]
    for method, path in (("patch", "/fhir/R4/Task/{task_id}"), ("post", "/fhir/R4/Task")):
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body.get("examples"), (method, path)
    assert {"409", "412", "428"} <= set(paths["/fhir/R4/Task/{task_id}"]["patch"]["responses"])


def test_the_docs_page_loads_nothing_from_outside() -> None:
    with TestClient(create_fhir_app(member="232100-0065")) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert not re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"']+", page.text)
        for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert c.get(asset).status_code == 200, asset


def test_the_capability_statement_lists_every_resource_served() -> None:
    with TestClient(create_fhir_app(member="232100-0065")) as c:
        statement = c.get("/fhir/R4/metadata").json()
        served = {
            p.split("/")[3] for p in c.get("/openapi.json").json()["paths"] if p.count("/") >= 3
        }
    listed = {r["type"] for r in statement["rest"][0]["resource"]}
    assert statement["fhirVersion"] == "4.0.1"
    assert served - {"metadata", ".well-known", "_search", "OperationDefinition"} <= listed
    assert listed == {
        "Task", "ServiceRequest", "HealthcareService", "Organization", "Location", "Endpoint",
        "Consent", "CarePlan", "Subscription",
    }  # fmt: skip


def test_the_operations_named_in_the_statement_are_defined_there() -> None:
    with TestClient(create_fhir_app(member="232100-0065")) as c:
        statement = c.get("/fhir/R4/metadata").json()
        canonical = [
            op["definition"]
            for r in statement["rest"][0]["resource"]
            for op in r.get("operation", [])
            if op["definition"].startswith("https://vardkedja.se/")
        ]
        assert len(canonical) == 2
        for url in canonical:
            definition = c.get("/fhir/R4/OperationDefinition/" + url.rsplit("/", 1)[1])
            assert definition.status_code == 200
            body = definition.json()
            OperationDefinition.model_validate(body)
            assert body["url"] == url
        assert (
            c.get("/fhir/R4/OperationDefinition/nope").json()["resourceType"] == "OperationOutcome"
        )
