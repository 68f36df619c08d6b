"""Calls between sibling services over real loopback servers (shared.web.clients on
shared.web.http1): a FastAPI app under uvicorn answers JSON on kept-alive connections with the
caller's token, request id and trace; chunked and closing answers are read; a 5xx, a refused
connection, a broken answer, an oversized answer and a sibling that does not answer in time
are ServiceCallFailed; 4xx answers are returned."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.messaging.processes import free_port
from shared.web import clients as clients_module
from shared.web.clients import ServiceCallFailed, ServiceClient
from shared.web.observability import adopt_traceparent, request_id_var
from tests.conftest import ORG_VAXJO
from tests.integration.notify.servers import Served
from tests.integration.rawhttp import RawServer


def client_to(base_url: str, timeout: float = 2.0) -> ServiceClient:
    return ServiceClient(
        base_url=base_url,
        service="referral",
        org=ORG_VAXJO,
        scopes=["consent:read"],
        timeout=timeout,
    )


@pytest.fixture
async def sibling() -> AsyncIterator[tuple[Served, list[dict[str, object]]]]:
    seen: list[dict[str, object]] = []
    app = FastAPI()

    @app.post("/v1/decisions")
    async def decide(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"headers": dict(request.headers), "body": body})
        if body.get("status"):
            return JSONResponse({"detail": "no"}, status_code=body["status"])
        return JSONResponse({"allowed": True, "echo": body, "å": "ä"})

    served = await Served(app).start()
    yield served, seen
    await served.stop()


class TestAgainstUvicorn:
    async def test_json_goes_and_comes_back_on_one_kept_alive_connection(
        self, sibling: tuple[Served, list[dict[str, object]]]
    ) -> None:
        served, seen = sibling
        client = client_to(served.url)
        token = request_id_var.set("req-1234abcd")
        trace = adopt_traceparent(None)
        try:
            answers = [
                await client.post("/v1/decisions", {"n": n, "who": "Åsa"}, what="decision")
                for n in range(5)
            ]
            assert client._pool is not None
            sequential_connections = client._pool.connections_opened
            together = await asyncio.gather(
                *(client.post("/v1/decisions", {"n": n}, what="decision") for n in range(20))
            )
        finally:
            request_id_var.reset(token)
            await client.aclose()
        assert [a.status_code for a in answers] == [200] * 5
        assert answers[3].json() == {"allowed": True, "echo": {"n": 3, "who": "Åsa"}, "å": "ä"}
        assert sorted(a.json()["echo"]["n"] for a in together) == list(range(20))
        assert sequential_connections == 1  # the five in turn, on one kept-alive connection
        headers = seen[0]["headers"]
        assert isinstance(headers, dict)
        assert headers["x-request-id"] == "req-1234abcd"
        assert re.fullmatch(rf"00-{trace}-[0-9a-f]{{16}}-01", headers["traceparent"])
        assert headers["authorization"].startswith("Bearer ")
        assert headers["content-type"] == "application/json"

    async def test_a_4xx_is_returned_and_a_5xx_raised(
        self, sibling: tuple[Served, list[dict[str, object]]]
    ) -> None:
        served, _ = sibling
        client = client_to(served.url)
        try:
            refused = await client.post("/v1/decisions", {"status": 422}, what="decision")
            with pytest.raises(ServiceCallFailed, match="decision: status 503"):
                await client.post("/v1/decisions", {"status": 503}, what="decision")
        finally:
            await client.aclose()
        assert (refused.status_code, refused.json()) == (422, {"detail": "no"})


class TestFraming:
    async def test_chunked_and_closing_answers_are_read(self) -> None:
        answers = {
            1: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b'5\r\n{"a":\r\n2;x=1\r\n1}\r\n0\r\nx-trailer: t\r\n\r\n',
            2: b'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 7\r\n\r\n{"b":2}',
            3: b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n{"c":3}',
        }
        seen: list[int] = []

        def answer(n: int) -> bytes | None:
            seen.append(n)
            return answers[len(seen)]  # by request, whichever connection it came on

        async with RawServer(answer) as server:
            client = client_to(f"http://127.0.0.1:{server.port}")
            try:
                got = [(await client.post("/hook", {}, what="framing")).json() for _ in range(3)]
            finally:
                await client.aclose()
        assert got == [{"a": 1}, {"b": 2}, {"c": 3}]
        assert server.connections == 2  # reused after the chunked answer, not after close

    async def test_an_answer_framed_by_the_connection_end_is_read_to_the_end(self) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
            for part in (b'{"c":', b"3}"):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.close()

        port = free_port()
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        client = client_to(f"http://127.0.0.1:{port}")
        try:
            answer = await client.post("/x", {}, what="until close")
        finally:
            await client.aclose()
            server.close()
        assert answer.json() == {"c": 3}


class TestFailures:
    async def test_refused_broken_oversized_and_silent_siblings_fail_the_call(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        closed = client_to(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(ServiceCallFailed, match=r"^routing: "):
            await closed.post("/v1/routing/resolve", {}, what="routing")
        await closed.aclose()

        async with RawServer(lambda n: b"SMTP ready\r\n\r\n") as broken:
            client = client_to(f"http://127.0.0.1:{broken.port}")
            with pytest.raises(ServiceCallFailed):
                await client.post("/x", {}, what="broken")
            await client.aclose()

        monkeypatch.setattr(clients_module, "MAX_ANSWER", 10)
        big = b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n"123456789"'
        async with RawServer(lambda n: big) as server:
            client = client_to(f"http://127.0.0.1:{server.port}")
            with pytest.raises(ServiceCallFailed):
                await client.post("/x", {}, what="oversized")
            await client.aclose()

        async with RawServer(lambda n: b"") as silent:
            client = client_to(f"http://127.0.0.1:{silent.port}", timeout=0.2)
            with pytest.raises(ServiceCallFailed, match="silent: TimeoutError"):
                await client.post("/x", {}, what="silent")
            await client.aclose()

    async def test_what_the_sibling_said_is_not_in_the_error(self) -> None:
        secret = json.dumps({"person": "19121212-1212"}).encode()
        answer = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(secret), secret)
        async with RawServer(lambda n: answer) as server:
            client = client_to(f"http://127.0.0.1:{server.port}")
            with pytest.raises(ServiceCallFailed) as raised:
                await client.post("/x", {}, what="decision")
            await client.aclose()
        assert "1212" not in str(raised.value)
