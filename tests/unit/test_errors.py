"""RFC 9457 problem details: every error of a service is application/problem+json.

Validation problems name each field (dotted, without the ``body.`` prefix) and the rule it
broke, and never echo what was submitted; unexpected errors never show their text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from shared.data.db import database_unavailable, is_infrastructure_error
from shared.identity.identifiers import Personnummer
from shared.web.errors import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    AppError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    Unauthorized,
    install_problem_handlers,
    problem_responses,
)

# An invalid Luhn digit: the valid test number is 19121212-1212.
BAD_PERSONNUMMER = "19121212-1213"
SECRET_TEXT = "failed for patient 19121212-1212 at Storgatan 1"


class Address(BaseModel):
    street: str = Field(min_length=1)
    postal_code: int


class Person(BaseModel):
    personnummer: Personnummer
    age: int
    address: Address


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/people")
    async def create_person(person: Person) -> dict[str, str]:
        return {"personnummer": person.personnummer}

    @app.get("/not-found")
    async def not_found() -> None:
        raise NotFound("no such thing")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("cannot close an open case", allowed=["accept", "reject"])

    @app.get("/precondition")
    async def precondition() -> None:
        raise PreconditionFailed()

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise Forbidden("the data belongs to another unit")

    @app.get("/unauthorized")
    async def unauthorized() -> None:
        raise Unauthorized("token expired")

    @app.get("/invalid")
    async def invalid() -> None:
        raise InvalidInput.field("period.end", "after_start", "end must follow start")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_TEXT)

    @app.get("/stale")
    async def stale() -> None:
        # What SQLAlchemy raises when a versioned row changed between read and write.
        raise StaleDataError(
            "UPDATE statement on table 'referral_task' expected to update 1 row(s); 0 were matched."
        )

    @app.get("/db-away")
    async def db_away() -> None:
        raise DBAPIError("INSERT ...", {}, _Refused(SECRET_TEXT))

    @app.post("/only-post")
    async def only_post() -> dict[str, bool]:
        return {"ok": True}

    # One path served by two routes declared apart (as a router and a sub-router do).
    @app.get("/split/{item}")
    async def split_get(item: str) -> dict[str, str]:
        return {"item": item}

    @app.put("/split/{item}")
    async def split_put(item: str) -> dict[str, str]:
        return {"item": item}

    @app.delete("/split/{item}")
    async def split_delete(item: str) -> None:
        return None

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Starlette re-raises an unhandled exception after its handler answered; the transport
    # must hand back that answer instead of raising.
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem(
    response: httpx.Response, status: int, slug: str, instance: str
) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["instance"] == instance
    return body


def fields(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["rule"] for e in body["errors"]}


VALID_PERSON = {
    "personnummer": "19121212-1212",
    "age": 40,
    "address": {"street": "Storgatan 1", "postal_code": 35230},
}


class TestValidationProblem:
    async def test_valid_body_passes(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/people", json=VALID_PERSON)
        assert response.status_code == 200
        assert response.json() == {"personnummer": "191212121212"}

    async def test_each_field_and_rule_named(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/people",
            json={
                "personnummer": BAD_PERSONNUMMER,
                "age": "forty",
                "address": {"street": ""},
            },
        )
        body = assert_problem(response, 422, "validation", "/people")
        assert body["title"] == "The request is invalid"
        assert fields(body) == {
            "personnummer": "luhn",
            "age": "int_parsing",
            "address.street": "string_too_short",
            "address.postal_code": "missing",
        }
        assert body["detail"] == "4 fields invalid"
        for error in body["errors"]:
            assert set(error) == {"field", "rule", "message"}
            assert error["message"]

    async def test_submitted_values_never_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/people",
            json={
                "personnummer": BAD_PERSONNUMMER,
                "age": "fyrtiotvå-år",
                "address": {"street": 12345, "postal_code": "3523O"},
            },
        )
        assert response.status_code == 422
        text = response.text
        for submitted in (BAD_PERSONNUMMER, "191212121213", "fyrtiotvå", "12345", "3523O"):
            assert submitted not in text

    async def test_missing_body_field_names_it(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/people", json={"age": 1, "address": VALID_PERSON["address"]})
        body = assert_problem(response, 422, "validation", "/people")
        assert fields(body) == {"personnummer": "missing"}
        assert body["detail"] == "1 field invalid"

    async def test_body_not_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/people",
            content=b'{"personnummer": "19121212-1213",',
            headers={"content-type": "application/json"},
        )
        body = assert_problem(response, 422, "validation", "/people")
        assert [e["rule"] for e in body["errors"]] == ["json_invalid"]
        assert BAD_PERSONNUMMER not in response.text

    @pytest.mark.parametrize(
        "content",
        [
            b'{"street": "G\xf6tgatan 1"}',  # Latin-1, not UTF-8
            b"\xff\xfe{\x00}",
            b"[" * 100_000 + b"]" * 100_000,  # nested beyond the parser's recursion
        ],
    )
    async def test_a_body_that_cannot_be_read_is_the_documented_422(
        self, client: httpx.AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            "/people", content=content, headers={"content-type": "application/json"}
        )
        body = assert_problem(response, 422, "validation", "/people")
        assert fields(body) == {"body": "json_invalid"}
        assert "Götgatan" not in response.text

    async def test_no_body_at_all(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/people")
        body = assert_problem(response, 422, "validation", "/people")
        assert fields(body) == {"body": "missing"}

    async def test_app_raised_invalid_input(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/invalid"), 422, "validation", "/invalid")
        assert body["errors"] == [
            {"field": "period.end", "rule": "after_start", "message": "end must follow start"}
        ]


class TestAppErrors:
    async def test_not_found(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/not-found"), 404, "not-found", "/not-found")
        assert body["title"] == NotFound.title
        assert body["detail"] == "no such thing"
        assert "errors" not in body
        assert "allowed" not in body

    async def test_conflict_lists_allowed(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/conflict"), 409, "conflict", "/conflict")
        assert body["allowed"] == ["accept", "reject"]
        assert body["detail"] == "cannot close an open case"

    async def test_precondition_failed(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(
            await client.get("/precondition"), 412, "precondition-failed", "/precondition"
        )
        assert body["title"] == PreconditionFailed.title
        assert "detail" not in body

    async def test_a_row_changed_between_read_and_write_is_412_not_500(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)
        body = assert_problem(await client.get("/stale"), 412, "precondition-failed", "/stale")
        assert "read it again" in body["detail"]
        assert "referral_task" not in body["detail"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_forbidden(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/forbidden"), 403, "forbidden", "/forbidden")
        assert body["detail"] == "the data belongs to another unit"

    async def test_unauthorized_carries_www_authenticate(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/unauthorized")
        body = assert_problem(response, 401, "unauthorized", "/unauthorized")
        assert body["detail"] == "token expired"
        assert response.headers["www-authenticate"].startswith("Bearer")


class _Refused(Exception):
    """What asyncpg raises while a database refuses connections (SQLSTATE 57P03)."""

    sqlstate = "57P03"


class TestDatabaseUnavailable:
    async def test_a_database_that_refuses_connections_answers_503(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/db-away")
        assert_problem(response, 503, "unavailable", "/db-away")
        assert response.headers["retry-after"] == "2"
        assert "19121212" not in response.text

    def test_the_sqlstate_tells_unavailable_from_wrong(self) -> None:
        assert database_unavailable(DBAPIError("x", {}, _Refused()))
        wrong = type("Wrong", (Exception,), {"sqlstate": "22001"})  # value too long
        assert not database_unavailable(DBAPIError("x", {}, wrong()))
        assert is_infrastructure_error(DBAPIError("x", {}, _Refused()))
        assert not is_infrastructure_error(DBAPIError("x", {}, wrong()))
        assert not is_infrastructure_error(RuntimeError("x"))


class TestUnexpectedError:
    async def test_500_hides_exception_text(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="vardkedja.errors"):
            response = await client.get("/boom")
        body = assert_problem(response, 500, "internal", "/boom")
        assert body["title"] == "Internal error"
        assert "19121212" not in response.text
        assert "Storgatan" not in response.text
        assert "RuntimeError" not in response.text
        logged = [r for r in caplog.records if r.name == "vardkedja.errors"]
        assert len(logged) == 1
        assert logged[0].error_type == "RuntimeError"  # type: ignore[attr-defined]
        assert logged[0].path_template == "/boom"  # type: ignore[attr-defined]
        assert "19121212" not in logged[0].getMessage()


class TestHttpErrors:
    async def test_unknown_route(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/nowhere"), 404, "not-found", "/nowhere")
        assert body["title"] == "Not Found"

    async def test_wrong_method(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/only-post")
        body = assert_problem(response, 405, "method-not-allowed", "/only-post")
        assert body["title"] == "Method Not Allowed"
        assert response.headers["allow"] == "POST"

    @pytest.mark.parametrize("method", ["OPTIONS", "POST", "PATCH"])
    async def test_allow_lists_every_method_of_the_path(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        response = await client.request(method, "/split/x")
        assert_problem(response, 405, "method-not-allowed", "/split/x")
        assert response.headers["allow"] == "DELETE, GET, PUT"


class TestProblemResponses:
    def test_listed_error_plus_401_and_422(self) -> None:
        responses = problem_responses(NotFound)
        assert sorted(responses) == [401, 404, 422]
        for status, entry in responses.items():
            content = entry["content"][PROBLEM_JSON]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert content["example"]["status"] == status
            assert content["example"]["type"].startswith(PROBLEM_BASE)
            assert entry["description"]
        assert responses[404]["content"][PROBLEM_JSON]["example"]["type"] == (
            PROBLEM_BASE + "not-found"
        )
        assert responses[401]["description"] == Unauthorized.title

    def test_errors_sharing_a_status_are_joined(self) -> None:
        class GoneAway(NotFound):
            slug = "gone-away"
            title = "Gone away"

        responses = problem_responses(NotFound, GoneAway, Conflict, ServiceUnavailable)
        assert sorted(responses) == [401, 404, 409, 422, 503]
        assert responses[404]["description"] == f"{NotFound.title} / Gone away"

    def test_every_error_class_renders_its_status(self) -> None:
        for cls in (NotFound, Conflict, PreconditionFailed, Forbidden, ServiceUnavailable):
            problem = cls("why").problem("/x", "t-1")
            assert isinstance(cls("why"), AppError)
            assert problem.status == cls.status
            assert problem.type == PROBLEM_BASE + cls.slug
            assert problem.instance == "/x"
            assert problem.trace_id == "t-1"


class TestProblemKinds:
    def test_a_kind_declared_in_one_line_is_a_subclass_with_its_slug_and_title(self) -> None:
        from shared.web.errors import AppError, NotFound

        gone = NotFound.kind("thing-not-found", "No such thing")
        assert issubclass(gone, NotFound)
        assert issubclass(gone, AppError)
        assert gone.__name__ == "ThingNotFound"
        problem = gone("detail here").problem(instance="/v1/things/1")
        assert (problem.status, problem.title, problem.detail) == (
            404,
            "No such thing",
            "detail here",
        )
        assert problem.type.endswith("/thing-not-found")
        # The base is untouched.
        assert NotFound.slug != "thing-not-found"
