"""The FHIR facade's Consent interactions over a member's real consent service: a consent
recorded through the consent API is read and searched as a FHIR ``Consent``, withdrawn it
reads ``inactive``, and ``$decide`` answers permit and deny as ``Parameters``. Bad input and
unknown ids answer ``OperationOutcome``s naming the parameter. Every answer parses as FHIR R4
with the model library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.parameters import Parameters

from services.fhir.app import create_fhir_app
from services.fhir.consent import CATEGORY, DECISION, PURPOSE, REGULATORY_BASIS
from services.fhir.upstream import Service
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.integration.consent.helpers import new_person

from .conftest import CONSENT_RW, REGION_BEROENDE, VAXJO_SOC, Member, Pair, auth
from .test_fhir_task_facade import issues, resource
from .test_referral_meetings import consent_for

PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
ORGNR = "urn:oid:2.5.4.97"
READER = auth(ORG_VAXJO, VAXJO_SOC, CONSENT_RW)
PERSON = auth(ORG_VAXJO, VAXJO_SOC, [*CONSENT_RW, "consent:person"])
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@asynccontextmanager
async def fhir_facade(member: Member, service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """``member``'s FHIR facade, reaching its real ``service`` in process."""
    app = create_fhir_app(
        member=member.orgnr,
        transports={service: httpx.ASGITransport(app=getattr(member, f"{service}_app"))},
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fhir") as c:
            yield c


def facade(member: Member) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """``member``'s FHIR facade over its consent service."""
    return fhir_facade(member, "consent")


async def search(
    c: httpx.AsyncClient, form: str, headers: dict[str, str] = PERSON
) -> httpx.Response:
    """``POST Consent/_search`` with ``form`` as its form-encoded body."""
    return await c.post("/fhir/R4/Consent/_search", content=form, headers={**headers, **FORM})


def question(person: str, purpose: str, *categories: str) -> dict[str, Any]:
    """``$decide``: may Växjö share these with the region's beroendemottagning?"""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueIdentifier": {"system": PNR_SYSTEM, "value": person}},
            {"name": "purpose", "valueCoding": {"system": PURPOSE, "code": purpose}},
            {
                "name": "recipient",
                "valueReference": {
                    "reference": f"Organization/{REGION_BEROENDE}",
                    "identifier": {"system": ORGNR, "value": ORG_REGION},
                },
            },
            *({"name": "category", "valueCode": c} for c in categories),
        ],
    }


def values(parameters: dict[str, Any], name: str) -> list[Any]:
    return [
        next(v for k, v in p.items() if k.startswith("value"))
        for p in parameters["parameter"]
        if p["name"] == name
    ]


class TestAConsentReadAndSearched:
    async def test_recorded_read_searched_and_withdrawn(self, members: Pair) -> None:
        vaxjo = members.vaxjo
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        async with facade(vaxjo) as c:
            read = await c.get(f"/fhir/R4/Consent/{consent_id}", headers=READER)
            consent = resource(read, Consent)
            assert read.headers["etag"] == f'W/"{consent["meta"]["versionId"]}"'
            assert consent["status"] == "active"
            assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
            assert consent["patient"]["identifier"] == {"system": PNR_SYSTEM, "value": person}
            assert consent["organization"][0]["reference"] == f"Organization/{VAXJO_SOC}"
            assert consent["organization"][0]["identifier"]["value"] == ORG_VAXJO
            provision = consent["provision"]
            assert provision["type"] == "permit"
            assert provision["purpose"] == [{"system": PURPOSE, "code": "sip"}]
            assert {a["reference"]["identifier"]["value"] for a in provision["actor"]} == {
                ORG_REGION,
                ORG_VAXJO,
            }
            assert {cc["coding"][0]["code"] for cc in provision["code"]} == {
                "contact_details",
                "needs_summary",
                "plan",
            }
            assert provision["period"]["end"] > provision["period"]["start"]
            assert {e["url"]: e.get("valueCode") for e in consent["extension"]} == {
                REGULATORY_BASIS: None,
                DECISION: "permit",
            }
            assert consent["policyRule"]["coding"][0]["code"] == "osl_12_2"

            found = resource(
                await search(c, f"patient={PNR_SYSTEM}|{person}"),
                Bundle,
            )
            assert [e["resource"]["id"] for e in found["entry"]] == [consent_id]
            # The OID of personnummer is accepted too; another person has none.
            other = resource(
                await search(c, f"patient:identifier=urn:oid:1.2.752.129.2.1.3.1|{new_person()}"),
                Bundle,
            )
            assert other.get("entry", []) == []

        async with vaxjo.consent() as cs:
            r = await cs.post(
                f"/v1/consents/{consent_id}/withdraw",
                json={"reason": "Personen vill inte längre."},
                headers=READER,
            )
            assert r.status_code == 200, r.text
        async with facade(vaxjo) as c:
            withdrawn = resource(
                await c.get(f"/fhir/R4/Consent/{consent_id}", headers=READER), Consent
            )
            assert withdrawn["status"] == "inactive"
            assert withdrawn["meta"]["tag"][0]["code"] == "withdrawn"
            assert int(withdrawn["meta"]["versionId"]) > int(consent["meta"]["versionId"])

    async def test_a_refusal_is_a_consent_that_denies(self, members: Pair) -> None:
        vaxjo = members.vaxjo
        person = new_person()
        async with vaxjo.consent() as cs:
            r = await cs.post(
                "/v1/refusals",
                json={
                    "person": {"personnummer": person},
                    "refused_on": "2026-12-01",
                    "parties": [{"orgnr": ORG_REGION}],
                    "purposes": ["sip"],
                },
                headers=READER,
            )
            assert r.status_code == 201, r.text
            refusal_id = r.json()["id"]
        async with facade(vaxjo) as c:
            refusal = resource(
                await c.get(f"/fhir/R4/Consent/{refusal_id}", headers=READER), Consent
            )
            assert refusal["status"] == "active"
            assert refusal["provision"]["type"] == "deny"
            assert refusal["provision"]["purpose"] == [{"system": PURPOSE, "code": "sip"}]
            assert {e["url"]: e.get("valueCode") for e in refusal["extension"]}[DECISION] == "deny"
            [actor] = refusal["provision"]["actor"]
            assert actor["reference"]["identifier"]["value"] == ORG_REGION
            found = resource(await search(c, f"patient={PNR_SYSTEM}|{person}"), Bundle)
            assert [e["resource"]["id"] for e in found["entry"]] == [refusal_id]
            deny = resource(
                await c.post(
                    "/fhir/R4/Consent/$decide", json=question(person, "sip", "plan"), headers=PERSON
                ),
                Parameters,
            )
            assert values(deny, "decision") == ["deny"]
            assert values(deny, "verdict")[0]["code"] == "refused"

    async def test_unknown_and_bad_searches_are_outcomes(self, members: Pair) -> None:
        async with facade(members.vaxjo) as c:
            [missing] = issues(await c.get("/fhir/R4/Consent/no-such-consent", headers=READER), 404)
            assert missing["code"] == "not-found"
            [bad] = issues(
                await search(c, "patient=http://example.org|19121212-1212"),
                400,
            )
            assert bad["expression"] == ["patient"]
            assert "1212" not in bad["diagnostics"]
            [none] = issues(
                await search(c, ""),
                400,
            )
            assert none["expression"] == ["patient"]
            [json_body] = issues(
                await c.post("/fhir/R4/Consent/_search", json={"patient": "x"}, headers=PERSON), 415
            )
            assert json_body["code"] == "not-supported"
            # Without consent:person the consent service refuses a person search.
            issues(
                await search(c, f"patient={PNR_SYSTEM}|{new_person()}", READER),
                403,
            )


class TestDecide:
    async def test_permit_on_the_consent_and_deny_without_one(self, members: Pair) -> None:
        vaxjo = members.vaxjo
        person = new_person()
        consent_id = await consent_for(vaxjo, person, ["sip"])
        async with facade(vaxjo) as c:
            permit = resource(
                await c.post(
                    "/fhir/R4/Consent/$decide",
                    json=question(person, "sip", "plan", "needs_summary"),
                    headers=READER,
                ),
                Parameters,
            )
            assert values(permit, "decision") == ["permit"]
            assert values(permit, "basis")[0]["code"] == "consent"
            assert values(permit, "consent") == [{"reference": f"Consent/{consent_id}"}]
            assert {v["code"] for v in values(permit, "category")} == {"plan", "needs_summary"}
            assert values(permit, "category")[0]["system"] == CATEGORY

            # A purpose the consent does not name: denied (and, with consent:person, why).
            deny = resource(
                await c.post(
                    "/fhir/R4/Consent/$decide",
                    json=question(person, "vardkedjeremiss", "plan"),
                    headers=PERSON,
                ),
                Parameters,
            )
            assert values(deny, "decision") == ["deny"]
            assert values(deny, "consent") == []
            assert values(deny, "reason")

            # Nobody's consent: the same deny, told nothing more without consent:person.
            nothing = resource(
                await c.post(
                    "/fhir/R4/Consent/$decide",
                    json=question(new_person(), "sip", "plan"),
                    headers=READER,
                ),
                Parameters,
            )
            assert values(nothing, "decision") == ["deny"]
            assert [r["coding"][0]["code"] for r in values(nothing, "reason")] == ["not_allowed"]

    async def test_bad_parameters_are_named(self, members: Pair) -> None:
        person = new_person()
        async with facade(members.vaxjo) as c:

            async def refused(body: dict[str, Any], status: int = 400) -> dict[str, Any]:
                r = await c.post("/fhir/R4/Consent/$decide", json=body, headers=READER)
                [found] = issues(r, status)
                return found

            no_patient = question(person, "sip", "plan")
            no_patient["parameter"] = no_patient["parameter"][1:]
            assert (await refused(no_patient))["expression"] == ["Parameters.parameter('patient')"]
            no_category = question(person, "sip")
            assert (await refused(no_category))["expression"] == [
                "Parameters.parameter('category')"
            ]
            bad_recipient = question(person, "sip", "plan")
            bad_recipient["parameter"][2] = {"name": "recipient", "valueString": "the region"}
            assert (await refused(bad_recipient))["expression"] == [
                "Parameters.parameter('recipient')"
            ]
            assert (await refused({"resourceType": "Patient"}))["code"] == "invalid"
            # Caught by the consent service: an unknown purpose and a bad personnummer.
            unknown = await refused(question(person, "no_such_purpose", "plan"), 422)
            assert unknown["expression"] == ["Parameters.parameter('purpose')"]
            wrong = await refused(question("19121212-1213", "sip", "plan"), 422)
            assert wrong["expression"][0].startswith("Parameters.parameter('patient')")
            assert "1213" not in str(wrong)
