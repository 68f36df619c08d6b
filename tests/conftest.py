"""Fixtures shared by the whole suite: a real broker and real databases.

``db_url`` is parametrised over SQLite and, when a server answers at 127.0.0.1:5432,
PostgreSQL (each test gets a database of its own, dropped afterwards).

The broker is Apache Kafka (a KRaft node the project starts from Maven Central's jars,
:mod:`shared.messaging.apache_kafka`) wherever Java and Maven are at hand, and the embedded Tansu
broker where they are not (``VK_TEST_BROKER=kafka|tansu`` chooses). Tests that need one
engine ask for it (``kafka_broker``, ``tansu_broker``); one that cannot have it is skipped
on a developer's machine and **fails under CI** (``CI=true``). The run's header and summary
name every database and broker used, with their versions.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.config import KafkaSettings, Settings
from shared.messaging import kafka_jars
from shared.messaging.broker import Broker, Engine, new_broker, tansu_version

TEST_MEMBERS = (
    ("232100-0065", "Region Kronoberg"),
    ("212000-0647", "Växjö kommun"),
    ("212000-0613", "Alvesta kommun"),
)
"""The members every test federation is made of: each has its keys in TEST_TRUST_DIR."""


def _test_trust_dir() -> Path:
    """One trust list and key set per test session (ADR 0020), in every process the tests
    start (``VK_TRUST__DIR``), made fresh: nothing of it is committed."""
    import tempfile

    from shared.messaging.trust_keys import ensure_members

    inherited = os.environ.get("VK_TRUST__DIR")
    if inherited and (Path(inherited) / "trust-list.json").exists():
        # A process the tests started (it imports this module too): the session's keys.
        return Path(inherited)
    folder = Path(tempfile.mkdtemp(prefix="vk-test-trust-"))
    ensure_members(folder, TEST_MEMBERS)
    os.environ["VK_TRUST__DIR"] = str(folder)
    return folder


TEST_TRUST_DIR = _test_trust_dir()

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


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
KAFKA_MISSING = kafka_jars.available()
"""None when Apache Kafka can run here; otherwise why not."""


def _default_engine() -> Engine:
    chosen = os.environ.get("VK_TEST_BROKER", "")
    if chosen in ("kafka", "tansu"):
        return chosen  # type: ignore[return-value]
    return "tansu" if KAFKA_MISSING and not IN_CI else "kafka"


DEFAULT_ENGINE: Engine = _default_engine()
ENGINE_NAMES = {"kafka": f"Apache Kafka {kafka_jars.KAFKA_VERSION} (KRaft)", "tansu": ""}
USED_ENGINES: set[Engine] = set()
LEFT_OUT: list[str] = []


def _postgres_version() -> str:
    async def probe() -> str:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        try:
            return str(await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(probe()) if POSTGRES else ""


PG_VERSION = _postgres_version()


def _databases_line() -> str:
    if POSTGRES:
        return f"databases: SQLite and PostgreSQL {PG_VERSION} (127.0.0.1:5432)"
    return "databases: SQLite only — PostgreSQL NOT reachable at 127.0.0.1:5432, its leg left out"


def engine_name(engine: Engine) -> str:
    """The engine's name and version, e.g. ``Apache Kafka 3.9.1 (KRaft)``."""
    if engine == "tansu":
        return f"Tansu {tansu_version()} (embedded)"
    return ENGINE_NAMES[engine]


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [_databases_line()]
    line = f"brokers: {engine_name(DEFAULT_ENGINE)} by default; {engine_name('tansu')} on its leg"
    if KAFKA_MISSING:
        line += f" — Apache Kafka NOT available ({KAFKA_MISSING}), its tests left out"
    lines.append(line)
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(_databases_line())
    used = ", ".join(engine_name(e) for e in sorted(USED_ENGINES)) or "none"
    terminalreporter.write_line(f"brokers used: {used}")
    for line in LEFT_OUT:
        terminalreporter.write_line(f"LEFT OUT: {line}")


def require_engine(engine: Engine) -> None:
    """Skip (fail under CI) a test whose broker engine cannot run here."""
    if engine == "kafka" and KAFKA_MISSING:
        why = f"Apache Kafka is not available here: {KAFKA_MISSING}"
        if IN_CI:
            pytest.fail(why + " (CI=true: a test that cannot have its broker fails)")
        if why not in LEFT_OUT:
            LEFT_OUT.append(why)
        pytest.skip(why)
    USED_ENGINES.add(engine)


STARTED: dict[str, Broker] = {}
"""The brokers this run started, by bootstrap address (:func:`kafka_settings` applies what
each needs of its clients)."""


def start_broker(engine: Engine, work: Path) -> Broker:
    """A started broker of ``engine`` with its files under ``work``."""
    require_engine(engine)
    b = new_broker(engine, work, log_path=work / "broker.log")
    b.start()
    STARTED[b.bootstrap] = b
    return b


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


def running_broker(engine: Engine, work: Path) -> Iterator[Broker]:
    """For a fixture: a started broker of ``engine`` (files under ``work``), stopped after
    (``yield from running_broker(...)``)."""
    b = start_broker(engine, work)
    yield b
    b.stop()


SESSION_BROKERS: dict[Engine, Broker] = {}
"""One broker per engine for the whole run, started when a test first needs it."""


def session_broker(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """The run's broker of ``engine`` (started on first use, stopped when the run ends)."""
    require_engine(engine)
    if engine not in SESSION_BROKERS:
        SESSION_BROKERS[engine] = start_broker(engine, tmp_path_factory.mktemp(engine))
    return SESSION_BROKERS[engine]


def pytest_sessionfinish(session: pytest.Session) -> None:
    for b in SESSION_BROKERS.values():
        b.stop()
    SESSION_BROKERS.clear()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """The run's broker of the default engine (tests use unique topic names)."""
    return session_broker(DEFAULT_ENGINE, tmp_path_factory)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """The run's Apache Kafka, whatever the default engine."""
    return session_broker("kafka", tmp_path_factory)


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    """The run's embedded Tansu broker: the leg of what ``make run`` uses."""
    return session_broker("tansu", tmp_path_factory)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own (default engine), for tests that kill and restart it."""
    yield from running_broker(DEFAULT_ENGINE, tmp_path / "broker")


@pytest.fixture
def kafka_private_broker(tmp_path: Path) -> Iterator[Broker]:
    """Apache Kafka of the test's own (its log survives a SIGKILL and restart)."""
    yield from running_broker("kafka", tmp_path / "kafka")


def broker_client_settings(bootstrap: str) -> dict[str, str]:
    """What the broker this run started at ``bootstrap`` needs of its clients (Apache Kafka:
    the idempotent producer, an ordinary fetch wait; Tansu: nothing)."""
    b = STARTED.get(bootstrap)
    return b.client_settings() if b is not None else {}


def broker_client_env(bootstrap: str) -> dict[str, str]:
    """:func:`broker_client_settings` as ``VK_KAFKA__*`` variables for a process."""
    return {f"VK_KAFKA__{k.upper()}": v for k, v in broker_client_settings(bootstrap).items()}


def kafka_settings(bootstrap: str, **overrides: object) -> KafkaSettings:
    """Test Kafka settings: short sessions and timeouts, a low fetch wait (Tansu answers a
    fetch only when it expires), and what the broker at ``bootstrap`` needs of its clients
    (:func:`broker_client_settings`)."""
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "fetch_max_wait_ms": 20,
        "request_timeout_ms": 5000,
        "session_timeout_ms": 2000,
        "dead_letter_after": 3,
        **broker_client_settings(bootstrap),
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
            "trust": {"dir": str(TEST_TRUST_DIR)},
            "kafka": kafka_settings(bootstrap, **kafka).model_dump(),
        }
    )
