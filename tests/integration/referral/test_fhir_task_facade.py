"""The FHIR facade's Task interactions over two members' real referral services: a
referral sent at the region is found, read and moved on through Växjö's facade alone, and
the region sees the steps. Every answer parses as FHIR with the model library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from services.fhir.app import create_fhir_app
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.consent.helpers import new_person

from .conftest import REGION_BEROENDE, VAXJO_BOENDE, VAXJO_SOC, Member, Pair, auth
from .test_referral_flow import RECEIVER, SENDER, recipient_status
from .test_referral_order import send, with_copy

FHIR = "application/fhir+json"
PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"


@asynccontextmanager
async def facade(member: Member) -> AsyncIterator[httpx.AsyncClient]:
    """``member``'s FHIR facade, reaching its real referral service in process."""
    app = create_fhir_app(
        member=member.orgnr,
        transports={"referral": httpx.ASGITransport(app=member.referral_app)},
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fhir") as c:
            yield c


def resource(r: httpx.Response, model: Any, status: int = 200) -> dict[str, Any]:
    """The answer's body, after checking its status, media type and FHIR validity."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR)
    body: dict[str, Any] = r.json()
    model.model_validate(body)
    return body


def issues(r: httpx.Response, status: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = resource(r, OperationOutcome, status)["issue"]
    return found


def step(task: dict[str, Any], status: str, **extra: Any) -> list[dict[str, Any]]:
    """A JSON Patch to the product status ``status`` (exact, by businessStatus)."""
    ops: list[dict[str, Any]] = [
        {
            "op": "replace",
            "path": "/businessStatus",
            "value": {"coding": [{"system": BUSINESS, "code": status}]},
        }
    ]
    ops += [{"op": "add", "path": f"/{k}", "value": v} for k, v in extra.items()]
    return ops


BUSINESS = "https://vardkedja.se/fhir/CodeSystem/task-business-status"


async def patched(
    c: httpx.AsyncClient, task: httpx.Response, ops: list[dict[str, Any]], **headers: str
) -> httpx.Response:
    return await c.patch(
        f"/fhir/R4/Task/{task.json()['id']}",
        json=ops,
        headers={
            **RECEIVER,
            "If-Match": task.headers["etag"],
            "Content-Type": "application/json-patch+json",
            **headers,
        },
    )


async def arrived(member: Member, task_id: str) -> None:
    async def there() -> bool:
        async with member.referral() as c:
            return (await c.get(f"/v1/incoming/{task_id}", headers=RECEIVER)).status_code == 200

    await eventually(there, within=30, what="the task in Växjö's inbox")


class TestTheClosedLoopThroughTheFacade:
    async def test_found_read_and_moved_on_by_the_receiver_and_seen_by_the_sender(
        self, members: Pair
    ) -> None:
        person, _ = await with_copy(members)
        referral_id, task_id = await send(members.region, person)
        await arrived(members.vaxjo, task_id)
        async with facade(members.vaxjo) as c:
            found = resource(
                await c.get(
                    "/fhir/R4/Task",
                    params={"owner": f"Organization/{VAXJO_SOC}", "status": "received"},
                    headers=RECEIVER,
                ),
                Bundle,
            )
            assert found["type"] == "searchset"
            [entry] = [e for e in found["entry"] if e["resource"]["id"] == task_id]
            task = entry["resource"]
            assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
                "received",
                "delivered",
            )
            assert task["focus"]["reference"] == f"ServiceRequest/{referral_id}"
            assert task["owner"]["reference"] == f"Organization/{VAXJO_SOC}"
            assert task["requester"]["identifier"]["value"] == ORG_REGION
            assert task["for"]["identifier"] == {
                "system": "http://electronichealth.se/identifier/personnummer",
                "value": person,
            }
            # Another unit's owner finds nothing in this unit's inbox.
            other = resource(
                await c.get(
                    "/fhir/R4/Task",
                    params={"owner": f"Organization/{VAXJO_BOENDE}"},
                    headers=RECEIVER,
                ),
                Bundle,
            )
            assert other.get("entry", []) == []

            read = await c.get(f"/fhir/R4/Task/{task_id}", headers=RECEIVER)
            assert resource(read, Task)["meta"]["versionId"] == read.headers["etag"][3:-1]
            request = resource(
                await c.get(
                    f"/fhir/R4/ServiceRequest/{referral_id}",
                    params={"_task": task_id},
                    headers=RECEIVER,
                ),
                ServiceRequest,
            )
            assert request["code"]["coding"][0]["code"] == "kontaktbegaran"
            assert request["subject"]["identifier"]["value"] == person

            # Acknowledge by Task.status alone, with the kommun's case reference.
            acked = await patched(
                c,
                read,
                [
                    {"op": "replace", "path": "/status", "value": "received"},
                    {
                        "op": "add",
                        "path": "/identifier/-",
                        "value": {
                            "system": "https://vardkedja.se/fhir/sid/case-reference",
                            "value": "SOC-2026-77",
                        },
                    },
                ],
            )
            assert resource(acked, Task)["businessStatus"]["coding"][0]["code"] == "acknowledged"
            accepted = await patched(c, acked, step(task, "accepted"))
            assert resource(accepted, Task)["status"] == "accepted"
            done = await patched(
                c,
                accepted,
                step(
                    task,
                    "completed",
                    output=[
                        {"type": {"text": "outcome"}, "valueString": "Boendestöd beviljat."},
                        {"type": {"text": "decision"}, "valueCode": "granted"},
                        {"type": {"text": "intervention"}, "valueCode": "boendestod"},
                        {"type": {"text": "started_on"}, "valueDate": "2026-12-01"},
                    ],
                ),
            )
            completed = resource(done, Task)
            assert completed["status"] == "completed"
            outputs = {o["type"]["text"]: o for o in completed["output"]}
            assert outputs["outcome"]["valueString"] == "Boendestöd beviljat."
            assert outputs["decision"]["valueCode"] == "granted"
            assert outputs["started_on"]["valueDate"] == "2026-12-01"

        async def completed_at_region() -> bool:
            seen = await recipient_status(members.region, referral_id)
            return bool(seen["status"] == "completed" and seen["case_reference"] == "SOC-2026-77")

        await eventually(completed_at_region, within=30, what="the region sees completed")

    async def test_steps_refused_as_operation_outcomes(self, members: Pair) -> None:
        person, _ = await with_copy(members)
        _, task_id = await send(members.region, person)
        await arrived(members.vaxjo, task_id)
        async with facade(members.vaxjo) as c:
            read = await c.get(f"/fhir/R4/Task/{task_id}", headers=RECEIVER)
            task = resource(read, Task)
            # Not allowed yet: completing a delivered task. 409 names what is allowed.
            [refused] = issues(await patched(c, read, step(task, "completed")), 409)
            assert refused["code"] == "conflict"
            assert "acknowledged" in refused["diagnostics"]
            # Without If-Match: 428, nothing changes.
            no_match = await c.patch(
                f"/fhir/R4/Task/{task_id}",
                json=step(task, "acknowledged"),
                headers={**RECEIVER, "Content-Type": "application/json-patch+json"},
            )
            assert issues(no_match, 428)[0]["expression"] == ["If-Match"]
            # A stale version: 412.
            assert (await patched(c, read, step(task, "acknowledged"))).status_code == 200
            issues(await patched(c, read, step(task, "accepted")), 412)
            # Only status-like elements may be patched.
            [bad] = issues(
                await patched(c, read, [{"op": "replace", "path": "/for", "value": {}}]), 422
            )
            assert bad["expression"] == ["[0].path"]
            # An unknown task, another unit's token, no token.
            issues(await c.get("/fhir/R4/Task/no-such-task", headers=RECEIVER), 404)
            issues(await c.get(f"/fhir/R4/Task/{task_id}"), 401)
            [bad_status] = issues(
                await c.get("/fhir/R4/Task", params={"status": "bogus"}, headers=RECEIVER), 400
            )
            assert bad_status["expression"] == ["status"]

    async def test_the_receiver_asks_for_more_information_with_the_reason(
        self, members: Pair
    ) -> None:
        person, _ = await with_copy(members)
        referral_id, task_id = await send(members.region, person)
        await arrived(members.vaxjo, task_id)
        question = "Har personen en egen bostad i dag?"
        async with facade(members.vaxjo) as c:
            read = await c.get(f"/fhir/R4/Task/{task_id}", headers=RECEIVER)
            acked = await patched(
                c, read, [{"op": "replace", "path": "/status", "value": "received"}]
            )
            asked = await patched(
                c,
                acked,
                [
                    *step(read.json(), "information_requested"),
                    {"op": "add", "path": "/statusReason", "value": {"text": question}},
                ],
            )
            task = resource(asked, Task)
        assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
            "on-hold",
            "information_requested",
        )

        async def asked_at_region() -> bool:
            seen = await recipient_status(members.region, referral_id)
            return [k.get("question") for k in seen["komplettering"]] == [question]

        await eventually(asked_at_region, within=30, what="the question at the region")

    async def test_a_person_is_searched_in_the_body_only(self, members: Pair) -> None:
        person, _ = await with_copy(members)
        _, task_id = await send(members.region, person)
        await arrived(members.vaxjo, task_id)
        staff = auth(ORG_VAXJO, VAXJO_SOC, ["referral:person"])
        async with facade(members.vaxjo) as c:
            found = resource(
                await c.post(
                    "/fhir/R4/Task/_search",
                    data={"patient": f"urn:oid:1.2.752.129.2.1.3.1|{person}"},
                    headers=staff,
                ),
                Bundle,
            )
            assert [e["resource"]["id"] for e in found["entry"]] == [task_id]
            assert all(person not in link["url"] for link in found["link"])
            # Someone else: nothing; a number that fails its check: the parameter is named.
            other = resource(
                await c.post(
                    "/fhir/R4/Task/_search",
                    data={"patient": f"{PERSONNUMMER}|{new_person()}"},
                    headers=staff,
                ),
                Bundle,
            )
            assert other.get("entry", []) == []
            wrong = person[:-1] + str((int(person[-1]) + 1) % 10)
            [bad] = issues(
                await c.post(
                    "/fhir/R4/Task/_search",
                    data={"patient": f"{PERSONNUMMER}|{wrong}"},
                    headers=staff,
                ),
                422,
            )
            assert bad["expression"] == ["patient"]
            # Without the scope for person searches: refused.
            issues(
                await c.post(
                    "/fhir/R4/Task/_search",
                    data={"patient": f"{PERSONNUMMER}|{person}"},
                    headers=RECEIVER,
                ),
                403,
            )

    async def test_paging_loses_and_repeats_nothing(self, members: Pair) -> None:
        person, _ = await with_copy(members)
        sent = [(await send(members.region, person))[1] for _ in range(7)]
        for task_id in sent:
            await arrived(members.vaxjo, task_id)
        seen: list[str] = []
        async with facade(members.vaxjo) as c:
            url: str | None = "/fhir/R4/Task?_count=3&_include=Task:focus"
            pages = 0
            while url:
                page = resource(await c.get(url, headers=RECEIVER), Bundle)
                pages += 1
                seen += [
                    e["resource"]["id"]
                    for e in page.get("entry", [])
                    if e["search"]["mode"] == "match"
                ]
                assert all(
                    e["resource"]["resourceType"] == "ServiceRequest"
                    for e in page.get("entry", [])
                    if e["search"]["mode"] == "include"
                )
                nexts = [link["url"] for link in page["link"] if link["relation"] == "next"]
                assert all(person not in n for n in nexts)
                url = nexts[0].removeprefix("http://fhir") if nexts else None
        assert sorted(seen) == sorted(set(seen))
        assert set(sent) <= set(seen)
        assert pages >= 3

    async def test_metadata_lists_what_is_supported(self, members: Pair) -> None:
        async with facade(members.region) as c:
            cs = (await c.get("/fhir/R4/metadata")).json()
        assert cs["fhirVersion"] == "4.0.1"
        [task] = [r for r in cs["rest"][0]["resource"] if r["type"] == "Task"]
        assert {i["code"] for i in task["interaction"]} >= {"read", "search-type", "patch"}
        assert {p["name"] for p in task["searchParam"]} >= {"owner", "status", "code"}
        assert ORG_VAXJO not in str(cs)


def service_request(person: str, *units: str) -> dict[str, Any]:
    """A kontaktbegäran to ``units`` of Växjö, as a FHIR ServiceRequest."""
    ext = "https://vardkedja.se/fhir/StructureDefinition/"
    return {
        "resourceType": "ServiceRequest",
        "id": "sr",
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "code": {
            "coding": [
                {
                    "system": "https://vardkedja.se/fhir/CodeSystem/referral-kind",
                    "code": "kontaktbegaran",
                }
            ]
        },
        "subject": {"identifier": {"system": "urn:oid:1.2.752.129.2.1.3.1", "value": person}},
        "reasonCode": [
            {
                "coding": [
                    {"system": "https://vardkedja.se/fhir/CodeSystem/need", "code": "boendestod"}
                ]
            }
        ],
        "note": [{"text": "Skrivs ut inom två veckor och saknar bostad."}],
        "performer": [
            {
                "reference": f"Organization/{u}",
                "identifier": {"system": "urn:oid:2.5.4.97", "value": ORG_VAXJO},
            }
            for u in units
        ],
        "extension": [
            {"url": ext + "children-in-household", "valueCode": "no"},
            {"url": ext + "persons-wish", "valueString": "Jag vill bo kvar i Växjö."},
            {"url": ext + "details", "valueString": '{"kommunkod": "0780"}'},
        ],
    }


def new_task(person: str, unit: str = VAXJO_SOC) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "contained": [service_request(person, unit)],
        "focus": {"reference": "#sr"},
    }


class TestSendingThroughTheFacade:
    async def test_a_task_with_its_request_contained_is_sent_once_and_arrives(
        self, members: Pair
    ) -> None:
        person, _ = await with_copy(members)
        criteria = {"If-None-Exist": "identifier=https://ehr.example/remiss|R-1"}
        async with facade(members.region) as c:
            created = await c.post(
                "/fhir/R4/Task", json=new_task(person), headers={**SENDER, **criteria}
            )
            task = resource(created, Task, 201)
            again = await c.post(
                "/fhir/R4/Task", json=new_task(person), headers={**SENDER, **criteria}
            )
            assert resource(again, Task, 201)["id"] == task["id"]
            assert created.headers["location"].endswith(f"/Task/{task['id']}/_history/1")
            assert (task["status"], task["requester"]["identifier"]["value"]) == (
                "requested",
                ORG_REGION,
            )
            # The sender reads it, and what it asked for, by the same ids.
            read = resource(await c.get(f"/fhir/R4/Task/{task['id']}", headers=SENDER), Task)
            assert read["owner"]["reference"] == f"Organization/{VAXJO_SOC}"
            referral_id = task["focus"]["reference"].removeprefix("ServiceRequest/")
            asked = resource(
                await c.get(f"/fhir/R4/ServiceRequest/{referral_id}", headers=SENDER),
                ServiceRequest,
            )
            wish = [e for e in asked["extension"] if e["url"].endswith("/persons-wish")]
            assert wish[0]["valueString"] == "Jag vill bo kvar i Växjö."
            mine = resource(
                await c.get(
                    "/fhir/R4/Task",
                    params={"requester": f"Organization/{REGION_BEROENDE}"},
                    headers=SENDER,
                ),
                Bundle,
            )
            assert [e["resource"]["id"] for e in mine["entry"]] == [task["id"]]
        await arrived(members.vaxjo, task["id"])
        async with facade(members.vaxjo) as c:
            there = resource(await c.get(f"/fhir/R4/Task/{task['id']}", headers=RECEIVER), Task)
        assert there["focus"] == task["focus"]

    async def test_the_sender_polls_for_changes_since_it_last_looked(self, members: Pair) -> None:
        person, _ = await with_copy(members)
        _, task_id = await send(members.region, person)
        await arrived(members.vaxjo, task_id)
        mine = {"requester": f"Organization/{REGION_BEROENDE}"}

        async def changed_since(instant: str) -> list[dict[str, Any]]:
            async with facade(members.region) as c:
                found = resource(
                    await c.get(
                        "/fhir/R4/Task",
                        params={**mine, "_lastUpdated": f"gt{instant}"},
                        headers=SENDER,
                    ),
                    Bundle,
                )
            return [e["resource"] for e in found.get("entry", [])]

        async with facade(members.region) as c:
            before = resource(await c.get(f"/fhir/R4/Task/{task_id}", headers=SENDER), Task)
        async with facade(members.vaxjo) as c:
            read = await c.get(f"/fhir/R4/Task/{task_id}", headers=RECEIVER)
            acked = await patched(
                c, read, [{"op": "replace", "path": "/status", "value": "received"}]
            )
            assert acked.status_code == 200, acked.text
        seen: list[dict[str, Any]] = []

        async def acknowledged_seen() -> bool:
            seen[:] = await changed_since(before["meta"]["lastUpdated"])
            return [t["businessStatus"]["coding"][0]["code"] for t in seen] == ["acknowledged"]

        await eventually(acknowledged_seen, within=30, what="the change found by polling")
        assert await changed_since(seen[0]["meta"]["lastUpdated"]) == []
        async with facade(members.region) as c:
            [bad] = issues(
                await c.get(
                    "/fhir/R4/Task", params={**mine, "_lastUpdated": "lt2026"}, headers=SENDER
                ),
                400,
            )
        assert bad["expression"] == ["_lastUpdated"]

    async def test_a_transaction_sends_one_referral_to_each_tasks_owner(
        self, members: Pair
    ) -> None:
        person, _ = await with_copy(members)
        request = service_request(person)
        del request["performer"]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:0b7c",
                    "resource": request,
                    "request": {"method": "POST", "url": "ServiceRequest"},
                },
                *[
                    {
                        "resource": {
                            "resourceType": "Task",
                            "status": "requested",
                            "intent": "order",
                            "focus": {"reference": "urn:uuid:0b7c"},
                            "owner": {
                                "reference": f"Organization/{unit}",
                                "identifier": {"system": "urn:oid:2.5.4.97", "value": ORG_VAXJO},
                            },
                        },
                        "request": {"method": "POST", "url": "Task"},
                    }
                    for unit in (VAXJO_SOC, VAXJO_BOENDE)
                ],
            ],
        }
        async with facade(members.region) as c:
            answer = resource(await c.post("/fhir/R4", json=bundle, headers=SENDER), Bundle)
        assert answer["type"] == "transaction-response"
        kinds = [e["resource"]["resourceType"] for e in answer["entry"]]
        assert kinds == ["ServiceRequest", "Task", "Task"]
        owners = {e["resource"]["owner"]["reference"] for e in answer["entry"][1:]}
        assert owners == {f"Organization/{VAXJO_SOC}", f"Organization/{VAXJO_BOENDE}"}
        assert all(e["response"]["status"] == "201 Created" for e in answer["entry"])

    async def test_refusals_name_the_fhir_element(self, members: Pair) -> None:
        person, _ = await with_copy(members)
        async with facade(members.region) as c:
            # No basis for this person: the consent decision refuses, nothing is sent.
            stranger = new_task(new_person())
            refused = await c.post("/fhir/R4/Task", json=stranger, headers=SENDER)
            assert refused.status_code == 403, refused.text
            OperationOutcome.model_validate(refused.json())
            # A personnummer that fails its check digit: the subject is named.
            bad = new_task(person[:-1] + str((int(person[-1]) + 1) % 10))
            [issue] = issues(await c.post("/fhir/R4/Task", json=bad, headers=SENDER), 422)
            assert issue["expression"] == ["ServiceRequest.subject.identifier"]
            # An unknown system for the person.
            wrong = new_task(person)
            wrong["contained"][0]["subject"]["identifier"]["system"] = "urn:oid:1.2.3"
            [issue] = issues(await c.post("/fhir/R4/Task", json=wrong, headers=SENDER), 422)
            assert issue["expression"] == ["ServiceRequest.subject.identifier"]
            # Two performers in one Task.
            two = new_task(person)
            two["contained"] = [service_request(person, VAXJO_SOC, VAXJO_BOENDE)]
            [issue] = issues(await c.post("/fhir/R4/Task", json=two, headers=SENDER), 422)
            assert issue["details"]["coding"][0]["code"] == "one_performer"
        async with members.region.referral() as c:
            sent = (await c.get("/v1/outgoing", headers=SENDER)).json()["items"]
        assert sent == []
