"""The broker a benchmark runs on: Apache Kafka (a KRaft node, ``shared.messaging.apache_kafka``) by
default, the embedded Tansu broker with ``--broker tansu``.

Every benchmark and the soak start their broker with :func:`start`, give their processes
:func:`client_env` and their in-process clients :func:`client_settings`, and record
:func:`info` in their results, so that a figure always says which broker it was measured on.

Fetch waits differ by engine: Tansu answers a fetch only when ``fetch_max_wait_ms`` expires,
so its consumers keep it low; Apache Kafka answers as soon as data arrives, so its clients
use the broker's ordinary value (:meth:`shared.messaging.broker.Broker.client_settings`).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from shared.messaging import broker as brokers
from shared.messaging.broker import Broker, Engine

ENGINES: tuple[Engine, ...] = brokers.ENGINES
DEFAULT: Engine = "kafka"


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--broker kafka|tansu`` (Apache Kafka by default)."""
    parser.add_argument(
        "--broker",
        choices=ENGINES,
        default=DEFAULT,
        help="Apache Kafka, one KRaft node (default), or the embedded Tansu broker",
    )


async def start(engine: Engine, work_dir: Path, name: str = "broker") -> Broker:
    """A started broker of ``engine`` with its files (and log, ``<name>.log``) under
    ``work_dir``."""
    broker = brokers.new_broker(engine, work_dir / name, log_path=work_dir / f"{name}.log")
    await asyncio.to_thread(broker.start)
    return broker


async def stop(broker: Broker) -> None:
    """Stop ``broker`` (Apache Kafka's controlled shutdown takes a few seconds)."""
    await asyncio.to_thread(broker.stop)


def is_tansu(broker: Broker) -> bool:
    return broker.engine == brokers.TANSU


def info(broker: Broker) -> dict[str, str]:
    """What a results file records of the broker: ``{"engine": ..., "version": ...}``."""
    return {"engine": broker.engine, "version": broker.version}


# Results written before the broker was recorded were all measured on Tansu.
UNRECORDED = {"engine": brokers.TANSU}


def recorded(result: dict[str, Any]) -> dict[str, str]:
    """The broker a results dict was measured on (:func:`info`; Tansu when unrecorded)."""
    found: dict[str, str] | None = result.get("broker")
    return found or UNRECORDED


def label(broker: dict[str, str] | None) -> str:
    """A recorded broker for a reader: "Apache Kafka 3.9.1 (KRaft)", "Tansu 0.6.0
    (embedded)"."""
    broker = broker or UNRECORDED
    kind = "embedded" if option(broker) == "tansu" else "KRaft"
    version = f" {broker['version']}" if broker.get("version") else ""
    return f"{broker.get('engine')}{version} ({kind})"


def option(broker: dict[str, str] | None) -> Engine:
    """The ``--broker`` value that chooses a recorded broker (:func:`info`)."""
    return "tansu" if (broker or UNRECORDED).get("engine") == brokers.TANSU else "kafka"


def fetch_wait_ms(broker: Broker, explicit: int | None, tansu: int) -> int:
    """The consumers' fetch wait: ``explicit`` when given; otherwise ``tansu`` on Tansu (a
    low wait: it answers a fetch only when the wait expires) and the broker's own value on
    Apache Kafka (it answers as soon as data arrives)."""
    if explicit is not None:
        return explicit
    if is_tansu(broker):
        return tansu
    from shared.config import KafkaSettings

    default = KafkaSettings.model_fields["fetch_max_wait_ms"].default
    return int(broker.client_settings().get("fetch_max_wait_ms", default))


def client_settings(broker: Broker, fetch_max_wait_ms: int | None = None) -> dict[str, Any]:
    """``KafkaSettings`` fields an in-process client of ``broker`` needs (without its
    bootstrap, which each caller sets), with ``fetch_max_wait_ms`` when given."""
    out: dict[str, Any] = dict(broker.client_settings())
    if fetch_max_wait_ms is not None:
        out["fetch_max_wait_ms"] = fetch_max_wait_ms
    return out


def client_env(broker: Broker, fetch_max_wait_ms: int | None = None) -> dict[str, str]:
    """The ``VK_KAFKA__*`` environment a process needs for ``broker`` (without its
    bootstrap, which each caller sets), with ``fetch_max_wait_ms`` when given."""
    env = brokers.client_env(broker)
    if fetch_max_wait_ms is not None:
        env["VK_KAFKA__FETCH_MAX_WAIT_MS"] = str(fetch_max_wait_ms)
    return env
