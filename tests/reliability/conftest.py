"""The reliability scenarios' shared pieces: the figures in the run's summary, and one
two-member federation of processes (directory, consent and referral of Region Kronoberg
and Växjö kommun, over a broker of its own) that scenarios 5, 6 and 7 share to save its
start-up. Each of them uses persons and consents of its own and leaves every process
running as it found it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.messaging.broker import Broker
from tests.conftest import DEFAULT_ENGINE, start_broker
from tests.reliability.fed import running_federation, units
from tests.reliability.report import LINES
from vardkedja.federation import Federation

FEDERATION_BACKEND = os.environ.get("VK_RELIABILITY_FEDERATION_BACKEND", "sqlite")
"""The database of the federation scenarios (1, 5-real, 6, 7): ``sqlite`` keeps
``make test`` within its time; ``postgres`` runs them on PostgreSQL."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("reliability figures (var/reliability/*.json)")
        for line in LINES:
            terminalreporter.write_line(line)


@dataclass
class SharedFederation:
    """The running federation, its broker and the demo units the scenarios use."""

    fed: Federation
    broker: Broker
    sender_unit: str
    intake: str


@pytest.fixture(scope="session")
async def shared_federation(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SharedFederation]:
    work: Path = tmp_path_factory.mktemp("reliability-federation")
    broker = start_broker(DEFAULT_ENGINE, work / "broker")
    try:
        async with running_federation(work, broker.bootstrap, backend=FEDERATION_BACKEND) as fed:
            async with httpx.AsyncClient(timeout=30) as client:
                sender_unit, intake = await units(fed, client)
            yield SharedFederation(fed, broker, sender_unit, intake)
    finally:
        broker.stop()
