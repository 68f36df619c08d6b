"""Fixtures shared by the whole suite: a real embedded broker and real databases.

``db_url`` is parametrised over SQLite and, when a server answers at 127.0.0.1:5432,
PostgreSQL (each test gets a database of its own, dropped afterwards). The run's header
and summary say which backends ran.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.broker import EmbeddedBroker, free_port
from shared.config import KafkaSettings, Settings

PG_ADMIN_DSN = os.environ.get("VK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
    if os.environ.get("VK_TEST_NO_POSTGRES"):
        return False

    async def probe() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


POSTGRES = _postgres_reachable()
BACKENDS = ["sqlite", "postgres"] if POSTGRES else ["sqlite"]


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES:
        return "databases: SQLite and PostgreSQL (127.0.0.1:5432)"
    return "databases: SQLite only — PostgreSQL not reachable at 127.0.0.1:5432"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(pytest_report_header(terminalreporter.config))


async def create_pg_database() -> str:
    """Create a fresh PostgreSQL database; returns its asyncpg SQLAlchemy URL."""
    import asyncpg

    name = f"vk_test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class DatabaseFactory:
    """Makes empty databases of one backend for a test and removes them afterwards."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.created: list[str] = []

    async def new(self, name: str = "db") -> str:
        if self.backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp_path / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        else:
            url = await create_pg_database()
        self.created.append(url)
        return url

    async def cleanup(self) -> None:
        if self.backend == "postgres":
            for url in self.created:
                await drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def databases(backend: str, tmp_path: Path) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, tmp_path)
    yield factory
    await factory.cleanup()


@pytest.fixture
async def db_url(databases: DatabaseFactory) -> str:
    return await databases.new()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the session (tests use unique topic names)."""
    b = EmbeddedBroker(port=free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def private_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that kill and restart it."""
    b = EmbeddedBroker(port=free_port())
    b.start()
    yield b
    b.stop()


def kafka_settings(bootstrap: str, **overrides: object) -> KafkaSettings:
    """Test Kafka settings: a low fetch wait (Tansu answers fetches only when it expires)."""
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "fetch_max_wait_ms": 20,
        "request_timeout_ms": 5000,
        "session_timeout_ms": 2000,
        "dead_letter_after": 3,
        **overrides,
    }
    return KafkaSettings.model_validate(values)


ORG_REGION = "232100-0065"
ORG_VAXJO = "212000-0647"
ORG_ALVESTA = "212000-0613"


def make_settings(
    *,
    service: str = "directory",
    orgnr: str = ORG_VAXJO,
    db_url: str | None = None,
    bootstrap: str = "127.0.0.1:9",
    **kafka: object,
) -> Settings:
    names = {
        ORG_REGION: "Region Kronoberg",
        ORG_VAXJO: "Växjö kommun",
        ORG_ALVESTA: "Alvesta kommun",
    }
    return Settings.model_validate(
        {
            "env": "test",
            "service": service,
            "member": {
                "orgnr": orgnr,
                "name": names.get(orgnr, "Test"),
                "kind": "region" if orgnr == ORG_REGION else "kommun",
            },
            "database_url": db_url,
            "auto_migrate": True,
            "kafka": kafka_settings(bootstrap, **kafka).model_dump(),
        }
    )
