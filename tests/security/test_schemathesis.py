"""Scenario 10 (reliability.md): property-based testing of every service's OpenAPI.

Schemathesis 4 runs its whole engine — examples, coverage, fuzzing and the stateful phase
(links it infers from the schema: a created id used by the operations that take it) — over
each service's own OpenAPI document, against the app in this process, with positive and
negative data and every check it has (``max_response_time`` aside: a timing assertion).
The caller is a user of the instance's own member with every scope and role, so every
operation is reachable; ``ignored_auth`` replays each successful request without a token
and with a wrong one.

Generation is tuned only where the documented contract says more than JSON Schema can:
personnummer, organisationsnummer and kommunkod fields draw from valid values (their
descriptions promise the date and Luhn checks and the SCB list). No operation is excluded;
a server-sent event stream is read for half a second (it never ends by itself).

Every failure of every check is counted and recorded with its request and answer. One kind
is reported but not held against the API: a schema-valid request refused with a *documented*
status whose problem names only the API's own domain rules (``in_the_past``,
``owner_not_party``, an opaque ``cursor``, a required ``If-Match``): JSON Schema cannot say
"a date in the future". A schema-valid request refused by a JSON-Schema-level rule (a
length, a pattern, a type) means the document misdescribes the API; the extra check
``schema_valid_request_refused_by_schema_rule`` reports each one separately and fails.

Figures per service and backend (cases and seconds per phase among them) go to
``var/security/schemathesis.json``. The examples and stateful steps scale with
``VK_SCHEMATHESIS_SCALE`` (default 1, about two minutes for all of it on two cores; e.g.
``VK_SCHEMATHESIS_SCALE=3 .venv/bin/pytest tests/security/test_schemathesis.py`` for a
deeper run); the coverage phase always runs whole.
"""

from __future__ import annotations

import json
import math
import os
import time
import typing
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from pydantic_core import core_schema
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.python import asgi

from services.referral import siblings as referral_siblings
from shared.data import migrations
from shared.identity.auth import mint_token
from shared.messaging.broker import Broker
from shared.service import load_spec
from shared.web.app import create_app
from shared.web.clients import ServiceClient
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO, DatabaseFactory, make_settings
from tests.security._support import personnummer, samordningsnummer, write_figures
from vardkedja.federation import ALL_SCOPES

SERVICES = ("directory", "consent", "referral", "notify")
UNIT = "vx-soc-vuxna"
# Hypothesis examples per operation and phase, and steps per stateful scenario, times
# VK_SCHEMATHESIS_SCALE (default 1: the four services on both databases in about two minutes
# on two cores, for make test; e.g. 3 for a deeper run). The coverage phase (every boundary
# and every kind of invalid value of every operation) does not scale: it always runs whole.
# The fixed seed makes a run repeatable and a finding reproducible.
SCALE = float(os.environ.get("VK_SCHEMATHESIS_SCALE", "1"))
MAX_EXAMPLES = max(1, math.ceil(8 * SCALE))
STATEFUL_STEPS = max(2, math.ceil(4 * SCALE))
SEED = 20261123
# A timing assertion (speed is measured in bench/, CONTRIBUTING.md); off without a limit.
TIMING_CHECKS = frozenset({"max_response_time"})
STREAMS = ["/v1/units/{unit_id}/notifications/stream"]

SERVER_ERROR_CHECKS = frozenset({"not_a_server_error"})
SCHEMA_CHECKS = frozenset(
    {
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
    }
)
AUTH_CHECKS = frozenset({"ignored_auth"})
# Pydantic's own error types: the rules the OpenAPI document is generated from. The API's
# domain rules are its own slugs (PydanticCustomError or InvalidInput).
SCHEMA_RULES = frozenset(typing.get_args(core_schema.ErrorType))


def problem_rules(content: bytes) -> list[tuple[str, str]] | None:
    """(field, rule) of each error a problem+json body names; None if it is not one."""
    try:
        problem = json.loads(content)
    except ValueError:
        return None
    if not isinstance(problem, dict) or "type" not in problem:
        return None
    errors = problem.get("errors") or []
    return [(str(e.get("field")), str(e.get("rule"))) for e in errors if isinstance(e, dict)]


@schemathesis.check
def schema_valid_request_refused_by_schema_rule(
    ctx: schemathesis.CheckContext,
    response: schemathesis.Response,
    case: schemathesis.Case[Any],
) -> bool | None:
    """A request valid by the OpenAPI document, refused by a JSON-Schema-level rule of the
    validator (a length, a pattern, a type): the document misdescribes the API."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    named = problem_rules(response.content) or []
    schema_level = sorted({f"{where}: {rule}" for where, rule in named if rule in SCHEMA_RULES})
    if schema_level:
        raise AssertionError("refused by schema rule " + "; ".join(schema_level))
    return True


def all_check_names() -> list[str]:
    load_all_checks()
    return sorted(set(CHECKS.get_all_names()) - TIMING_CHECKS)


def valid_identifiers() -> dict[str, dict[str, list[str]]]:
    """Dictionaries of valid identifiers in every written form the schemas document."""
    people = [
        personnummer("19121212", "121"),
        personnummer("19800101", "238"),
        personnummer("19550317", "412"),
        personnummer("20010923", "770"),
        personnummer("19470605", "005"),
    ]
    forms = set(people)
    for p in people:
        forms |= {p.replace("-", ""), p[2:], p[2:].replace("-", "")}
    forms.add(samordningsnummer("19900704", "333"))
    orgnrs = {ORG_VAXJO, ORG_REGION, ORG_ALVESTA}
    orgnrs |= {o.replace("-", "") for o in orgnrs} | {"16" + ORG_VAXJO}
    return {
        "personnummer": {"values": sorted(forms)},
        "orgnr": {"values": sorted(orgnrs)},
        "kommunkod": {"values": ["0780", "0764", "0765", "0180", "1480", "2584"]},
    }


PERSONNUMMER_AT = ["body.personnummer", "body.person.personnummer"]
ORGNR_AT = [
    "body.sender.orgnr",
    "body.recipient.orgnr",
    "body.blocked.orgnr",
    "body.parties.[*].orgnr",
    "body.coordinator.orgnr",
    "body.forward_to.orgnr",
    "body.participants.[*].orgnr",
    "body.recipients.[*].orgnr",
    "body.actions.[*].owner.orgnr",
    "body.vardkedjeremiss.participants.[*].orgnr",
    "path.orgnr",
    "query.member",
]
KOMMUNKOD_AT = [
    "body.kommunkod",
    "body.kommunkoder.[*]",
    "body.kontaktbegaran.kommunkod",
    "body.resolve.kommunkod",
    "query.kommunkod",
]


def config(token: str) -> SchemathesisConfig:
    """Every check, every phase, positive and negative data, the own member's token."""
    parameters: dict[str, Any] = {}
    for name, where in (
        ("personnummer", PERSONNUMMER_AT),
        ("orgnr", ORGNR_AT),
        ("kommunkod", KOMMUNKOD_AT),
    ):
        parameters |= {at: {"dictionary": name, "probability": 1.0} for at in where}
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # No state carried over from earlier runs: each run is the same run.
            "cache": {"enabled": False},
            "dictionaries": valid_identifiers(),
            "parameters": parameters,
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "checks": {name: {"enabled": True} for name in all_check_names()},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {
                "examples": {"enabled": True, "fill-missing": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
            },
            "request-timeout": 30,
            "workers": 1,
            # A server-sent event stream never ends: read what it sends for a moment.
            "operations": [{"include-path": STREAMS, "request-timeout": 0.5}],
        }
    )


@dataclass
class Finding:
    """One failed check, with the request and the answer that failed it."""

    check: str
    operation: str
    phase: str
    title: str
    message: str
    request: str
    status: int | None
    response: str
    # Only for positive_data_acceptance: the answer named only the API's own domain rules.
    domain_rule_refusal: bool = False

    def key(self) -> tuple[str, str, str, bool]:
        return (self.check, self.operation, self.message, self.domain_rule_refusal)


@dataclass
class Figures:
    """What one service's run did and found."""

    operations: int = 0
    cases: int = 0
    cases_by_phase: Counter[str] = field(default_factory=Counter)
    checks_passed: Counter[str] = field(default_factory=Counter)
    failures_by_check: Counter[str] = field(default_factory=Counter)
    domain_rule_refusals: int = 0
    findings: dict[tuple[str, str, str, bool], Finding] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)
    seconds_by_phase: dict[str, float] = field(default_factory=dict)
    stateful_transitions: int = 0
    stop_reason: str = ""

    def count(self, checks: frozenset[str]) -> int:
        return sum(n for name, n in self.failures_by_check.items() if name in checks)

    def held_against(self) -> list[Finding]:
        """Every finding except documented domain-rule refusals of schema-valid data."""
        return [f for f in self.findings.values() if not f.domain_rule_refusal]

    def summary(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "cases": self.cases,
            "cases_by_phase": dict(self.cases_by_phase),
            "stateful_transitions": self.stateful_transitions,
            "phases": self.phases,
            "seconds_by_phase": self.seconds_by_phase,
            "scale": SCALE,
            "max_examples": MAX_EXAMPLES,
            "stateful_steps": STATEFUL_STEPS,
            "checks": all_check_names(),
            "checks_passed": dict(self.checks_passed),
            "failures_by_check": dict(self.failures_by_check),
            "server_errors": self.count(SERVER_ERROR_CHECKS),
            "schema_violations": self.count(SCHEMA_CHECKS),
            "missing_auth_accepted": self.count(AUTH_CHECKS),
            "positive_refused_by_domain_rule": self.domain_rule_refusals,
            "findings_held_against_the_api": len(self.held_against()),
            "findings": [asdict(f) for f in self.findings.values()],
            "engine_errors": self.errors,
            "stop_reason": self.stop_reason,
        }


def _is_domain_rule_refusal(check: str, status: int | None, content: bytes) -> bool:
    """A schema-valid request refused with a 4xx problem naming only the API's own rules."""
    if check != "positive_data_acceptance" or status is None or not 400 <= status < 500:
        return False
    rules = problem_rules(content)
    return rules is not None and not any(rule in SCHEMA_RULES for _, rule in rules)


def _record(figures: Figures, phase: str, recorder: ScenarioRecorder) -> None:
    figures.cases += len(recorder.interactions)
    figures.cases_by_phase[phase] += len(recorder.interactions)
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status == Status.SUCCESS:
                figures.checks_passed[check.name] += 1
                continue
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            figures.failures_by_check[check.name] += 1
            interaction = recorder.interactions.get(case_id)
            request, status, content = "", None, b""
            if interaction is not None:
                req = interaction.request
                headers = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
                body = (req.body or b"")[:400].decode("utf-8", "replace")
                request = f"{req.method} {req.uri} headers={headers} body={body}"
                if interaction.response is not None:
                    status = interaction.response.status_code
                    content = interaction.response.content or b""
            domain = _is_domain_rule_refusal(check.name, status, content)
            figures.domain_rule_refusals += domain
            finding = Finding(
                check=check.name,
                operation=failure.operation or "",
                phase=phase,
                title=failure.title,
                message=failure.message[:1500],
                request=request,
                status=status,
                response=content[:600].decode("utf-8", "replace"),
                domain_rule_refusal=domain,
            )
            figures.findings.setdefault(finding.key(), finding)


def run_schemathesis(app: FastAPI, token: str) -> Figures:
    """The whole schemathesis engine over ``app``'s OpenAPI; the figures of the run."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config(token))
    figures = Figures(operations=schema.statistic.operations.total)
    started: dict[str, float] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(figures, event.phase.value, event.recorder)
        elif isinstance(event, events.PhaseStarted):
            started[event.phase.name.value] = time.monotonic()
            if event.payload is not None:
                figures.stateful_transitions = event.payload.transitions_selected
        elif isinstance(event, events.PhaseFinished):
            name = event.phase.name.value
            figures.phases[name] = event.status.value
            elapsed = time.monotonic() - started.get(name, time.monotonic())
            figures.seconds_by_phase[name] = round(elapsed, 1)
        elif isinstance(event, events.NonFatalError):
            figures.errors.append(f"{event.label}: {type(event.value).__name__}: {event.value}")
        elif isinstance(event, events.FatalError):
            figures.errors.append(f"fatal: {type(event.exception).__name__}: {event.exception}")
        elif isinstance(event, events.EngineFinished):
            figures.stop_reason = event.stop_reason.value
    return figures


def own_token() -> str:
    """A user of the instance's own member with every scope and every role."""
    return mint_token(
        sub="schemathesis",
        org=ORG_VAXJO,
        unit=UNIT,
        scopes=ALL_SCOPES.split(),
        roles=["member_admin", "protected_identity"],
    )


async def build_app(name: str, databases: DatabaseFactory, bootstrap: str) -> FastAPI:
    spec = load_spec(name)
    url = await databases.new(name)
    await migrations.upgrade(spec.migrations_dir, url)
    settings = make_settings(service=name, orgnr=ORG_VAXJO, db_url=url, bootstrap=bootstrap)
    return create_app(spec, settings)


@pytest.fixture
async def service_app(
    request: pytest.FixtureRequest, databases: DatabaseFactory, broker: Broker
) -> AsyncIterator[FastAPI]:
    """Växjö kommun's app of the service, its broker reachable (``/readyz``); the referral
    service asks its own member's consent and directory apps, as in production."""
    name: str = request.param
    app = await build_app(name, databases, broker.bootstrap)
    siblings: list[FastAPI] = []
    if name == "referral":
        consent = await build_app("consent", databases, broker.bootstrap)
        directory = await build_app("directory", databases, broker.bootstrap)
        siblings = [consent, directory]
        app.state.ctx.extras["clients"] = referral_siblings.Clients(
            consent=ServiceClient(
                base_url="http://consent",
                service="referral",
                org=ORG_VAXJO,
                scopes=["consent:read"],
                transport=httpx.ASGITransport(app=consent),
            ),
            directory=ServiceClient(
                base_url="http://directory",
                service="referral",
                org=ORG_VAXJO,
                scopes=["directory:read"],
                transport=httpx.ASGITransport(app=directory),
            ),
        )
    # Schemathesis serves apps on an event-loop thread of its own; their lifespans (and so
    # their database pools) start and stop there, the siblings' too.
    for sibling in siblings:
        with asgi.get_client(sibling):  # type: ignore[arg-type]
            pass
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


class TestEveryOperationOfEveryService:
    @pytest.mark.parametrize("service_app", SERVICES, indirect=True)
    def test_schemathesis_with_every_check_finds_nothing(
        self, service_app: FastAPI, backend: str, request: pytest.FixtureRequest
    ) -> None:
        service = request.node.callspec.params["service_app"]
        started = time.monotonic()
        figures = run_schemathesis(service_app, own_token())
        summary = {"backend": backend, **figures.summary()}
        summary["seconds"] = round(time.monotonic() - started, 1)
        write_figures("schemathesis", f"{service}[{backend}]", summary)

        # The run was whole and not vacuous: every phase ran, every operation got cases,
        # and the checks behind the three figures judged answers.
        assert figures.stop_reason == "completed", figures.errors
        assert figures.errors == []
        assert set(figures.phases) >= {"examples", "coverage", "fuzzing", "stateful"}
        assert figures.stateful_transitions > 0
        assert figures.cases >= 10 * figures.operations > 0
        for check in (*SERVER_ERROR_CHECKS, *SCHEMA_CHECKS, *AUTH_CHECKS):
            assert figures.checks_passed[check] + figures.failures_by_check[check] > 0, check

        held = figures.held_against()
        report = "\n".join(json.dumps(asdict(f), ensure_ascii=False) for f in held)
        assert summary["server_errors"] == 0, report
        assert summary["schema_violations"] == 0, report
        assert summary["missing_auth_accepted"] == 0, report
        assert held == [], report


def test_problem_rules_tell_schema_rules_from_domain_rules() -> None:
    """The classification the test relies on, on answers as the API writes them."""
    schema_level = json.dumps(
        {"type": "x", "errors": [{"field": "Idempotency-Key", "rule": "string_too_short"}]}
    ).encode()
    domain = json.dumps(
        {"type": "x", "errors": [{"field": "valid_to", "rule": "in_the_past"}]}
    ).encode()
    precondition = json.dumps({"type": "x", "status": 428}).encode()
    assert _is_domain_rule_refusal("positive_data_acceptance", 422, domain)
    assert _is_domain_rule_refusal("positive_data_acceptance", 428, precondition)
    assert not _is_domain_rule_refusal("positive_data_acceptance", 422, schema_level)
    assert not _is_domain_rule_refusal("positive_data_acceptance", 500, domain)
    assert not _is_domain_rule_refusal("positive_data_acceptance", 422, b"not json")
    assert not _is_domain_rule_refusal("status_code_conformance", 422, domain)
