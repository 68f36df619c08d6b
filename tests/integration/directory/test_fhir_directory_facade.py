"""The directory as FHIR through Växjö's facade, over a real directory app whose replica
holds Kronoberg's units: HealthcareService, Organization, Location and Endpoint read and
searched, ``$resolve``, and errors as ``OperationOutcome``. Every answer parses as FHIR R4B
with the model library (a searchset's and a Parameters' resources as their own types)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.parameters import Parameters

from services.fhir.app import create_fhir_app
from services.fhir.directory import directory_capabilities
from services.fhir.directory_mapping import (
    KOMMUNKOD,
    UNIT_ID_SYSTEM,
    healthcare_service_of_unit,
    organization_of_unit,
)
from shared.data.db import Database
from shared.identity.identifiers.systems import HSA_ID_SYSTEM
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.helpers.directory import auth
from tests.integration.referral.test_fhir_task_facade import FHIR, resource

from .test_directory_search import KRONOBERG, MEMBERS, seed, seed_members, unit

READER = auth(scopes=["directory:read"])
MODELS: dict[str, Any] = {
    "HealthcareService": HealthcareService,
    "Organization": Organization,
    "Location": Location,
    "Endpoint": Endpoint,
}
VAXJO_DIGITS = ORG_VAXJO.replace("-", "")
REGION_DIGITS = ORG_REGION.replace("-", "")
# A unit with contact paths of every channel, for telecom, address and referral methods.
CONTACTS = unit(
    "vx-soc",
    "Socialtjänstens mottagning Växjö",
    owner=ORG_VAXJO,
    kommunkoder=("0780",),
    interventions=("boendestod", "utredning_sol"),
    referral_kinds=("kontaktbegaran",),
).model_copy(
    update={
        "contact_paths": [
            {"reason": "Ansökan", "channel": "inbox"},
            {"reason": "Rådgivning", "channel": "phone", "phone": "0470-410 00"},
            {"reason": "Handlingar", "channel": "secure_mail", "secure_mail": "soc@vaxjo.se"},
            {
                "reason": "Post",
                "channel": "postal_address",
                "postal": {"street": "Box 1222", "postcode": "351 12", "city": "Växjö"},
            },
        ]
    }
)


def facade_app(directory: FastAPI) -> FastAPI:
    """Växjö's facade reaching its real directory in process."""
    return create_fhir_app(
        member=ORG_VAXJO, transports={"directory": httpx.ASGITransport(app=directory)}
    )


@asynccontextmanager
async def facade(directory: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app = facade_app(directory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fhir") as c:
            yield c


@pytest.fixture
async def fhir(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    await seed(db, *KRONOBERG, CONTACTS)
    await seed_members(db, *MEMBERS)
    async with facade(app) as c:
        yield c


def found(r: httpx.Response) -> list[dict[str, Any]]:
    """A searchset's resources, each validated as its own type."""
    bundle = resource(r, Bundle)
    assert bundle["type"] == "searchset"
    out = [e["resource"] for e in bundle.get("entry", [])]
    for res in out:
        MODELS[res["resourceType"]].model_validate(res)
    return out


def ids(r: httpx.Response) -> list[str]:
    return [res["id"] for res in found(r)]


def outcome(r: httpx.Response, status: int) -> dict[str, Any]:
    [issue] = resource(r, OperationOutcome, status)["issue"]
    assert isinstance(issue, dict)
    return issue


async def get(c: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await c.get(f"/fhir/R4/{path}", params=params, headers=READER)


class TestRead:
    async def test_a_healthcare_service(self, fhir: httpx.AsyncClient) -> None:
        read = await get(fhir, "HealthcareService/vx-soc")
        service = resource(read, HealthcareService)
        assert read.headers["etag"] == f'W/"{service["meta"]["versionId"]}"' == 'W/"1"'
        assert service["active"] is True
        assert service["providedBy"]["reference"] == "Organization/vx-soc"
        assert service["category"][0]["coding"][0]["code"] == "socialtjanstens_mottagning"
        codes = {c["coding"][0]["code"] for c in service["type"]}
        assert codes == {"kontaktbegaran", "boendestod", "utredning_sol"}
        [area] = service["coverageArea"]
        assert area["reference"] == "Location/kommun-0780"
        assert "Växjö" in area["display"]
        assert service["endpoint"] == [{"reference": "Endpoint/vx-soc"}]
        methods = {m["coding"][0]["code"] for m in service["referralMethod"]}
        assert methods == {"elec", "phone", "semail", "mail"}
        assert {t["value"] for t in service["telecom"]} == {"+4647041000", "soc@vaxjo.se"}

    async def test_a_unit_as_organization_part_of_its_huvudman(
        self, fhir: httpx.AsyncClient
    ) -> None:
        org = resource(await get(fhir, "Organization/vx-soc"), Organization)
        assert org["identifier"] == [{"system": UNIT_ID_SYSTEM, "value": "vx-soc"}]
        assert org["partOf"]["reference"] == f"Organization/{VAXJO_DIGITS}"
        assert org["active"] is True
        assert org["address"][0]["city"] == "Växjö"
        huvudman = resource(await get(fhir, org["partOf"]["reference"]), Organization)
        assert huvudman["id"] == VAXJO_DIGITS
        assert huvudman["identifier"] == [{"system": "urn:oid:2.5.4.97", "value": ORG_VAXJO}]

    async def test_an_inactive_unit_is_not_active(self, fhir: httpx.AsyncClient) -> None:
        assert resource(await get(fhir, "Organization/alv-old"), Organization)["active"] is False
        service = resource(await get(fhir, "HealthcareService/alv-old"), HealthcareService)
        assert service["active"] is False
        assert resource(await get(fhir, "Endpoint/alv-old"), Endpoint)["status"] == "off"

    async def test_a_kommun_as_location(self, fhir: httpx.AsyncClient) -> None:
        location = resource(await get(fhir, "Location/kommun-0780"), Location)
        assert location["identifier"] == [{"system": KOMMUNKOD, "value": "0780"}]
        assert "Växjö" in location["name"]

    async def test_the_units_endpoint(self, fhir: httpx.AsyncClient) -> None:
        endpoint = resource(await get(fhir, "Endpoint/rk-port"), Endpoint)
        assert endpoint["address"] == f"vardkedja://{REGION_DIGITS}/rk-port"
        assert endpoint["connectionType"]["code"] == "vardkedja-kafka"
        assert endpoint["status"] == "active"
        assert endpoint["managingOrganization"]["reference"] == f"Organization/{REGION_DIGITS}"
        assert endpoint["payloadType"][0]["coding"][0]["code"] == "vardkedjeremiss"


class TestNotFound:
    @pytest.mark.parametrize(
        "path",
        [
            "HealthcareService/nobody",
            "Organization/nobody",
            "Endpoint/nobody",
            "Location/kommun-9999",
            "Location/somewhere",
            "Organization/5560000001",  # a well-formed orgnr the directory has no record of
        ],
    )
    async def test_is_an_operation_outcome(self, fhir: httpx.AsyncClient, path: str) -> None:
        assert outcome(await get(fhir, path), 404)["code"] == "not-found"

    async def test_without_the_scope_403(self, fhir: httpx.AsyncClient) -> None:
        r = await fhir.get("/fhir/R4/HealthcareService/vx-soc", headers=auth(scopes=[]))
        resource(r, OperationOutcome, 403)


class TestSearchHealthcareService:
    async def test_by_each_parameter(self, fhir: httpx.AsyncClient) -> None:
        async def search(**params: Any) -> set[str]:
            return set(ids(await get(fhir, "HealthcareService", **params)))

        assert await search(**{"service-category": "boendestod"}) == {"alv-bo", "vx-bo", "alv-old"}
        assert await search(**{"service-category": "boendestod", "active": "true"}) == {
            "alv-bo",
            "vx-bo",
        }
        assert await search(active="false") == {"alv-old"}
        assert await search(**{"coverage-area": "Location/kommun-0780", "active": "true"}) == {
            "vx-bo",
            "vx-soc",
            "rk-ber",
            "rk-port",
            "rk-unga",
        }
        assert await search(**{"coverage-area": "0780", "service-category": "boendestod"}) == {
            "vx-bo"
        }
        assert await search(**{"service-type": "vardkedjeremiss"}) == {"rk-port"}
        assert await search(
            **{"service-type": "https://vardkedja.se/fhir/CodeSystem/need|boendestod"}
        ) == {"alv-bo", "alv-soc", "vx-bo", "vx-soc"}
        assert await search(name="remissport") == {"rk-port"}
        assert await search(organization=f"Organization/{REGION_DIGITS}") == {
            "rk-ber",
            "rk-port",
            "rk-unga",
        }

    async def test_pages_with_next_links(self, fhir: httpx.AsyncClient) -> None:
        seen: list[str] = []
        r = await get(fhir, "HealthcareService", active="true", _count=3)
        while True:
            bundle = resource(r, Bundle)
            assert bundle["total"] == 7
            seen += ids(r)
            links = {link["relation"]: link["url"] for link in bundle["link"]}
            if "next" not in links:
                break
            assert links["next"].startswith("http://fhir/fhir/R4/HealthcareService?")
            r = await fhir.get(links["next"], headers=READER)
        assert len(seen) == len(set(seen)) == 7

    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("service-category", "nonsense"),
            ("service-category", "boendestod,remissport"),
            ("service-type", "http://other|boendestod"),
            ("coverage-area", "Location/kommun-9999"),
            ("coverage-area", "07"),
            ("active", "yes"),
            ("organization", "Organization/123"),
            ("_count", "0"),
        ],
    )
    async def test_a_bad_parameter_is_named(
        self, fhir: httpx.AsyncClient, param: str, value: str
    ) -> None:
        issue = outcome(await get(fhir, "HealthcareService", **{param: value}), 400)
        assert issue["expression"] == [param]


class TestSearchOrganization:
    async def test_by_name_identifier_and_partof(self, fhir: httpx.AsyncClient) -> None:
        assert VAXJO_DIGITS in ids(await get(fhir, "Organization"))
        assert ids(
            await get(fhir, "Organization", identifier=f"urn:oid:2.5.4.97|{ORG_REGION}")
        ) == [REGION_DIGITS]
        assert ids(await get(fhir, "Organization", identifier=f"{UNIT_ID_SYSTEM}|rk-ber")) == [
            "rk-ber"
        ]
        # Nothing with the identifier is an empty searchset, not a 404.
        assert ids(await get(fhir, "Organization", identifier=f"{UNIT_ID_SYSTEM}|nobody")) == []
        assert ids(await get(fhir, "Organization", identifier="5560000001")) == []
        assert set(
            ids(await get(fhir, "Organization", partof=f"Organization/{REGION_DIGITS}"))
        ) == {
            "rk-ber",
            "rk-port",
            "rk-unga",
        }
        by_name = ids(await get(fhir, "Organization", name="Member"))
        assert set(by_name) == {VAXJO_DIGITS, REGION_DIGITS, ORG_ALVESTA.replace("-", "")}
        assert ids(await get(fhir, "Organization", name="remissport")) == ["rk-port"]

    @pytest.mark.parametrize(
        ("param", "value"),
        [
            ("identifier", "http://other|x"),
            ("identifier", "urn:oid:2.5.4.97|123"),
            ("partof", "Organization/abc"),
            ("identifier", "|"),
        ],
    )
    async def test_a_bad_parameter_is_named(
        self, fhir: httpx.AsyncClient, param: str, value: str
    ) -> None:
        issue = outcome(await get(fhir, "Organization", **{param: value}), 400)
        assert issue["expression"] == [param]


def routes(r: httpx.Response) -> list[dict[str, Any]]:
    """The routes of a ``$resolve`` answer as {part name: value}, the service validated."""
    params = resource(r, Parameters)["parameter"]
    out = []
    for p in params:
        if p["name"] != "route":
            continue
        parts = {q["name"]: next(v for k, v in q.items() if k != "name") for q in p["part"]}
        HealthcareService.model_validate(parts["service"])
        out.append(parts)
    return out


class TestResolve:
    async def test_get_with_kind_kommun_and_needs(self, fhir: httpx.AsyncClient) -> None:
        r = await get(
            fhir,
            "HealthcareService/$resolve",
            kommunkod="0764",
            kind="kontaktbegaran",
            needs="boendestod",
        )
        found = routes(r)
        assert found[0]["service"]["id"] == "alv-soc"
        assert found[0]["rank"] == 1
        assert found[0]["reason"]
        assert found[0]["endpoint"] == f"vardkedja://{ORG_ALVESTA.replace('-', '')}/alv-soc"

    async def test_post_with_a_parameters_body_and_age(self, fhir: httpx.AsyncClient) -> None:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "kommunkod", "valueString": "0764"},
                {
                    "name": "kind",
                    "valueCoding": {
                        "system": "https://vardkedja.se/fhir/CodeSystem/referral-kind",
                        "code": "vardkedjeremiss",
                    },
                },
                {"name": "age", "valueInteger": 40},
            ],
        }
        r = await fhir.post(
            "/fhir/R4/HealthcareService/$resolve",
            content=json.dumps(body),
            headers={**READER, "Content-Type": FHIR},
        )
        assert routes(r)[0]["service"]["id"] == "rk-port"

    async def test_a_kommun_nobody_serves_is_404(self, fhir: httpx.AsyncClient) -> None:
        r = await get(fhir, "HealthcareService/$resolve", kommunkod="0180", kind="kontaktbegaran")
        assert outcome(r, 404)["code"] == "not-found"

    @pytest.mark.parametrize(
        ("params", "named"),
        [
            ({"kind": "kontaktbegaran"}, "kommunkod"),
            ({"kommunkod": "0764"}, "kind"),
            ({"kommunkod": "0764", "kind": "nonsense"}, "kind"),
            ({"kommunkod": "12", "kind": "kontaktbegaran"}, "kommunkod"),
            ({"kommunkod": "0764", "kind": "kontaktbegaran", "needs": "x"}, "needs"),
            ({"kommunkod": "0764", "kind": "kontaktbegaran", "age": "40"}, "age"),
        ],
    )
    async def test_a_bad_parameter_is_named(
        self, fhir: httpx.AsyncClient, params: dict[str, str], named: str
    ) -> None:
        issue = outcome(await get(fhir, "HealthcareService/$resolve", **params), 400)
        assert issue["expression"] == [named]

    async def test_a_bad_body_is_named(self, fhir: httpx.AsyncClient) -> None:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "kommunkod", "valueString": "0764"},
                {"name": "kind", "valueCode": "kontaktbegaran"},
                {"name": "age", "valueInteger": 400},
            ],
        }
        r = await fhir.post("/fhir/R4/HealthcareService/$resolve", json=body, headers=READER)
        assert outcome(r, 400)["expression"] == ["age"]


class TestMapping:
    def test_an_hsa_id_is_an_identifier_when_present(self) -> None:
        item = {
            "unit_id": "u1",
            "hsa_id": "SE2321000065-E000000000001",
            "name": "Enhet",
            "owner_orgnr": ORG_REGION,
            "kind": "vuxenpsykiatri",
            "status": "temporarily_closed",
            "kommunkoder": ["0780"],
            "interventions": [],
            "referral_kinds": [],
            "contact_paths": [],
        }
        for mapped in (organization_of_unit(item), healthcare_service_of_unit(item)):
            assert {"system": HSA_ID_SYSTEM, "value": item["hsa_id"]} in mapped["identifier"]
        assert healthcare_service_of_unit(item)["notAvailable"]

    def test_the_capability_entries(self) -> None:
        types = [r["type"] for r in directory_capabilities()]
        assert types == ["HealthcareService", "Organization", "Location", "Endpoint"]
