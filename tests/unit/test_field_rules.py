"""Every field whose name carries a rule — an identifier, a deadline, a version, a day, an
instant, a status — says the rule in each service's OpenAPI document (its model's own
words, or the rule its name stands for: shared.web.field_rules)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.config import SERVICES
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.field_rules import RULES, describe_rules
from tests.conftest import make_settings


def components(service: str) -> dict[str, Any]:
    app = create_app(load_spec(service), make_settings(service=service))
    with TestClient(app) as c:
        schemas: dict[str, Any] = c.get("/openapi.json").json()["components"]["schemas"]
    return schemas


@pytest.mark.parametrize("service", SERVICES)
def test_every_field_that_carries_a_rule_says_it(service: str) -> None:
    silent = [
        f"{name}.{field}"
        for name, schema in components(service).items()
        for field, prop in (schema.get("properties") or {}).items()
        if any(matches(field, prop) for matches, _ in RULES) and not prop.get("description")
    ]
    assert silent == []


class TestTheRuleANameStandsFor:
    def test_a_models_own_words_win(self) -> None:
        schemas = {"A": {"properties": {"orgnr": {"type": "string", "description": "own"}}}}
        assert describe_rules(schemas) == 0
        assert schemas["A"]["properties"]["orgnr"]["description"] == "own"

    def test_a_deadline_is_a_date_named_by(self) -> None:
        schemas = {
            "A": {
                "properties": {
                    "answer_by": {
                        "anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]
                    },
                    "recorded_by": {"type": "string"},  # who, not when
                    "owner_orgnr": {"type": "string"},
                    "valid_from": {"type": "string", "format": "date"},
                    "changed_at": {"type": "string", "format": "date-time"},
                }
            }
        }
        assert describe_rules(schemas) == 4
        props = schemas["A"]["properties"]
        assert "midsommar" in props["answer_by"]["description"]
        assert "description" not in props["recorded_by"]
        assert "Luhn" in props["owner_orgnr"]["description"]
        assert "day in Sweden" in props["valid_from"]["description"]
        assert "UTC" in props["changed_at"]["description"]

    def test_the_consent_services_validity_days_are_described(self) -> None:
        out = components("consent")["ConsentOut"]["properties"]
        assert "day in Sweden" in out["valid_from"]["description"]
