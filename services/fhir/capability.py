"""What the facade supports, as FHIR says it: ``/metadata`` and SMART discovery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from services.fhir.careplan import careplan_capabilities
from services.fhir.consent import consent_capabilities
from services.fhir.directory import directory_capabilities
from services.fhir.mapping import validated
from services.fhir.outcome import FHIR_JSON
from services.fhir.subscriptions import subscription_capabilities

router = APIRouter()

TASK_SEARCH = [
    ("owner", "reference", "your unit: Organization/<unit id>"),
    ("requester", "reference", "your unit, for the tasks it sent"),
    ("status", "token", "Task status"),
    ("business-status", "token", "the product's exact status"),
    ("code", "token", "the referral kind"),
    ("_lastUpdated", "date", "gt/ge an instant: changed since (polling)"),
    ("_count", "number", "page size, 1-100"),
]


def _search(params: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "type": t, "documentation": d} for n, t, d in params]


def capability_statement(base: str, *, version: str, member: str) -> dict[str, Any]:
    """The facade's ``CapabilityStatement`` (FHIR 4.0.1, JSON)."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "software": {"name": "vardkedja FHIR facade", "version": version},
        "implementation": {"description": f"vardkedja, member {member}", "url": base},
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "Bearer tokens of the member (ADR 0006): scopes "
                    "referral:read / referral:write and the unit claim, as the member's APIs.",
                },
                "resource": [
                    {
                        "type": "Task",
                        "interaction": [
                            {"code": "read"},
                            {"code": "search-type"},
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "patch"},
                        ],
                        "conditionalCreate": True,
                        "versioning": "versioned-update",
                        "updateCreate": False,
                        "conditionalUpdate": False,
                        "searchInclude": ["Task:focus"],
                        "searchParam": _search(TASK_SEARCH),
                    },
                    {"type": "ServiceRequest", "interaction": [{"code": "read"}]},
                    *directory_capabilities(),
                    *consent_capabilities(),
                    *careplan_capabilities(),
                    subscription_capabilities(),
                ],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
    return validated(CapabilityStatement, statement)


@router.get(
    "/metadata",
    summary="What this facade supports (CapabilityStatement)",
    description="FHIR 4.0.1; no token needed.",
)
async def metadata(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/") + "/fhir/R4"
    state = request.app.state
    body = capability_statement(base, version=state.version, member=state.member)
    return JSONResponse(body, media_type=FHIR_JSON)


@router.get(
    "/.well-known/smart-configuration",
    summary="SMART backend-services discovery",
    description="Where tokens come from and what they may carry; no token needed.",
)
async def smart_configuration(request: Request) -> JSONResponse:
    state = request.app.state
    return JSONResponse(
        {
            "token_endpoint": state.token_endpoint,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": [
                "referral:read",
                "referral:write",
                "referral:person",
                "directory:read",
                "consent:read",
                "consent:person",
                "notify:read",
                "notify:write",
            ],
            "capabilities": ["client-confidential-asymmetric"],
        }
    )
