"""Issue 19: request bodies are bounded (413 before they are read, one default and a larger
limit for the directory's import) and a slow request head is disconnected (slow-loris), on a
real server on loopback with short settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from shared.config import HttpSettings
from shared.data import migrations
from shared.messaging.processes import free_port
from shared.web.app import create_app
from shared.web.errors import PROBLEM_JSON
from shared.web.limits import uvicorn_options
from tests.conftest import make_settings
from tests.helpers.directory import SPEC, UNIT, auth
from tests.helpers.harness import eventually

MIB = 1024 * 1024


def directory_app(db_url: str, **http: Any) -> FastAPI:
    settings = make_settings(service="directory", db_url=db_url)
    settings.http = HttpSettings(**http)
    return create_app(SPEC, settings)


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'directory.db'}"
    await migrations.upgrade(SPEC.migrations_dir, url)
    return url


@pytest.fixture
async def client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = directory_app(sqlite_url)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        await app.state.ctx.db.dispose()


async def call_raw(
    app: FastAPI,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    *,
    complete: bool = True,
) -> tuple[int, dict[str, Any], int]:
    """Calls ``app`` as a server would; (status, body, chunks the app asked for).
    ``complete=False``: the client stops sending after ``chunks``."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked > len(chunks):
            await asyncio.Event().wait()  # no more: like a client that stops sending
        return {
            "type": "http.request",
            "body": chunks[asked - 1],
            "more_body": asked < len(chunks) or not complete,
        }

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), asked


class TestBodyLimits:
    async def test_a_10_mb_body_is_413_naming_the_limit_not_422(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.post(
            "/v1/units", content=b"x" * (10 * MIB), headers={**auth(), "content-type": "x/y"}
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["type"].endswith("/payload-too-large")
        assert "1 MiB" in r.json()["detail"]
        assert r.headers["connection"] == "close"

    async def test_a_declared_length_over_the_limit_is_refused_before_reading_or_auth(
        self, sqlite_url: str
    ) -> None:
        app = directory_app(sqlite_url)
        try:
            status, problem, asked = await call_raw(
                app, "/v1/units", [b"{}"], [(b"content-length", str(50 * MIB).encode())]
            )
        finally:
            await app.state.ctx.db.dispose()
        assert (status, asked) == (413, 0)  # no token either: not looked at
        assert problem["status"] == 413

    async def test_a_chunked_body_is_counted_and_cut_at_the_limit(self, sqlite_url: str) -> None:
        app = directory_app(sqlite_url, max_body_bytes=64 * 1024)
        chunk = b"x" * 16 * 1024
        try:
            status, problem, asked = await call_raw(
                app, "/v1/units", [chunk] * 1000, [(b"transfer-encoding", b"chunked")]
            )
        finally:
            await app.state.ctx.db.dispose()
        assert status == 413
        assert "64 KiB" in problem["detail"]
        assert asked == 5  # the first chunk past 64 KiB, and not one more

    async def test_a_stalled_body_is_408(self, sqlite_url: str) -> None:
        app = directory_app(sqlite_url, body_idle_timeout_s=0.2)
        try:
            status, problem, _ = await call_raw(
                app,
                "/v1/units",
                [b'{"name": '],
                [(b"transfer-encoding", b"chunked")],
                complete=False,
            )
        finally:
            await app.state.ctx.db.dispose()
        assert status == 408
        assert problem["type"].endswith("/request-timeout")

    async def test_a_body_within_the_limit_is_served(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/units", json=UNIT, headers=auth())
        assert r.status_code == 201, r.text

    async def test_the_import_has_its_larger_limit(self, client: httpx.AsyncClient) -> None:
        header = b"name,kind,kommunkoder\n"
        rows = b"Enhet,socialtjanstens_mottagning,0780\n" * (2 * MIB // 38)
        r = await client.post(
            "/v1/units/import?dry_run=true",
            content=header + rows,
            headers={**auth(), "content-type": "text/csv"},
        )
        assert r.status_code != 413, r.text[:300]
        r = await client.post(
            "/v1/units/import",
            content=header + rows * 3,
            headers={**auth(), "content-type": "text/csv"},
        )
        assert r.status_code == 413
        assert "5 MiB" in r.json()["detail"]

    async def test_413_is_documented_on_operations_with_a_body(
        self, client: httpx.AsyncClient
    ) -> None:
        spec = (await client.get("/openapi.json")).json()
        assert "413" in spec["paths"]["/v1/units"]["post"]["responses"]


class Served:
    """The directory app under uvicorn on a loopback port, served as ``vardkedja serve``."""

    def __init__(self, app: FastAPI, http: HttpSettings) -> None:
        options = uvicorn_options(http)
        self.port = options["port"]
        self.server = uvicorn.Server(
            uvicorn.Config(app, **options, log_level="warning", lifespan="off")
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        await eventually(self._started, within=10, what="the server to start")
        return self

    async def _started(self) -> bool:
        await asyncio.sleep(0.01)
        return bool(self.server.started)

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def served(sqlite_url: str) -> AsyncIterator[Served]:
    http = HttpSettings(port=free_port(), header_timeout_s=0.5, max_header_bytes=8 * 1024)
    app = directory_app(sqlite_url)
    try:
        async with Served(app, http) as server:
            yield server
    finally:
        await app.state.ctx.db.dispose()


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.05) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


class TestSlowHeads:
    async def test_a_head_sent_a_byte_at_a_time_is_disconnected(self, served: Served) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 10_000
        sent = 0

        async def dropped() -> bool:
            nonlocal sent
            if await closed(reader):
                return True
            try:
                writer.write(head[sent : sent + 1])
                await writer.drain()
            except ConnectionError:
                return True
            sent += 1
            return False

        # The setting is 0.5 s; without the deadline the connection lived as long as bytes came.
        await eventually(dropped, within=10, what="the slow client to be disconnected")
        assert sent < len(head)
        writer.close()

    async def test_an_idle_connection_is_closed(self, served: Served) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        await eventually(lambda: closed(reader), within=10, what="the idle connection to close")
        writer.close()

    async def test_a_head_too_large_is_431(self, served: Served) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 431 ")
        writer.close()

    async def test_kept_alive_requests_are_served(self, served: Served) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as c:
            for _ in range(3):
                assert (await c.get("/healthz")).status_code == 200

    async def test_a_declared_50_mb_body_is_answered_before_it_is_sent(
        self, served: Served
    ) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(
            b"POST /v1/units HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (50 * MIB)
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after it
        assert answer.startswith(b"HTTP/1.1 413 ")
        writer.close()
