"""Apache Kafka, started by the project itself: one KRaft node (broker and controller in one
process) on loopback, for the test suites, the benchmarks and ``make run BROKER=kafka``.

The jars come from Maven Central (:mod:`shared.messaging.kafka_jars`). Nothing is
downloaded from anywhere else.

:class:`ApacheKafka` formats a storage directory (``kafka.tools.StorageTool format``), writes
``server.properties`` (free loopback ports, a small heap, no topic auto-creation, a low
minimum session timeout for the tests), starts ``kafka.Kafka`` and waits until the broker
answers a real Metadata request. Its log is durable: :meth:`ApacheKafka.kill` (SIGKILL) and
:meth:`ApacheKafka.start` again keep every topic, record and committed offset;
:meth:`ApacheKafka.lose_log` wipes the log directory, as a broker that lost its disk.

With ``tls=`` (:class:`shared.messaging.kafka_tls.KafkaTls`) the node runs as production
does (``deploy/README.md``): mutual TLS on every listener, the principal taken from the
certificate's CN, the ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``
and the super users ``broker`` and ``federation-admin``; the ACLs are then the deploy
scripts' to grant.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

from shared.messaging.kafka_jars import (
    KAFKA_VERSION,
    LOG4J_APPENDER,
    KafkaSetupError,
    java_binary,
    kafka_libs,
)
from shared.messaging.kafka_tls import KafkaTls
from shared.messaging.processes import (
    die_with_parent,
    end_process,
    free_port_block,
    kill_process,
    port_open,
)

ENGINE = "Apache Kafka"


def _bindable(port: int, host: str) -> bool:
    """Whether the node could listen on ``port`` now. Java listens with SO_REUSEADDR, so a
    port whose old connections wait in TIME_WAIT after a kill is free for it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding, never
    starting with ``-`` (the format tool would read it as an option; Kafka's own generator
    draws again too)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class ApacheKafka:
    """Starts, stops, kills and restarts one Apache Kafka KRaft node on loopback.

    The same interface as :class:`shared.messaging.broker.EmbeddedBroker` (``bootstrap``, ``start``,
    ``stop``, ``kill``, ``restart``, ``process``), plus :meth:`lose_log`."""

    engine = ENGINE
    durable = True

    def __init__(
        self,
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        tls: KafkaTls | None = None,
        heap_mb: int = 512,
        version: str = KAFKA_VERSION,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.host = host
        if port is None:
            port = free_port_block(2, host=host)
        self.port = port
        self.controller_port = port + 1
        self.log_path = log_path or self.work_dir / "kafka.log"
        self.tls = tls
        self.heap_mb = heap_mb
        self._version = version
        self.extra_config = dict(extra_config or {})
        self.cluster_id = _new_cluster_id()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def version(self) -> str:
        return self._version

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def description(self) -> str:
        """What the node is, for banners and report headers."""
        return f"{ENGINE} {self.version} (KRaft, {self.bootstrap})"

    def client_settings(self) -> dict[str, str]:
        """``KafkaSettings`` fields a client of this node needs: the idempotent producer, an
        ordinary fetch wait (Kafka answers a fetch as soon as data arrives), and on a TLS
        node the super user ``federation-admin``'s certificate."""
        settings = {"idempotent_producer": "true", "fetch_max_wait_ms": "500"}
        if self.tls:
            settings.update(self.tls.client_settings("federation-admin"))
        return settings

    # -- configuration ------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        """``server.properties`` of the node."""
        h, p, c = self.host, self.port, self.controller_port
        listener = "SSL" if self.tls else "PLAINTEXT"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{c}",
            "listeners": f"{listener}://{h}:{p},CONTROLLER://{h}:{c}",
            "advertised.listeners": f"{listener}://{h}:{p}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": listener,
            "listener.security.protocol.map": f"{listener}:{listener},CONTROLLER:{listener}",
            "log.dirs": str(self.data_dir),
            # Production's rules (deploy/README.md): topics are created on purpose only.
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            # 50 by default: its creation on the first group join would take seconds here.
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted node waits out its old registration's session
            # before it unfences itself (9 s by default: a restart took 15 s, now 4 s).
            "broker.heartbeat.interval.ms": "250",
            "broker.session.timeout.ms": "1500",
            # The tests' consumers use 2 s sessions; Kafka's default minimum is 6 s.
            "group.min.session.timeout.ms": "500",
            # A compacted topic is cleaned soon after a segment rolls (the tests roll them
            # with a small segment.ms per topic); production keeps Kafka's defaults.
            "log.cleaner.backoff.ms": "1000",
            "log.retention.check.interval.ms": "30000",
        }
        if self.tls:
            folder = self.tls.folder
            props.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(folder / "broker.pem"),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(folder / "ca.pem"),
                    "ssl.client.auth": "required",
                    "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
                    "authorizer.class.name": (
                        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                    ),
                    "allow.everyone.if.no.acl.found": "false",
                    "super.users": ";".join(f"User:{u}" for u in KafkaTls.SUPER_USERS),
                }
            )
        props.update(self.extra_config)
        return props

    def _write_config(self) -> tuple[Path, Path]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        log4j = self.work_dir / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=WARN, out\n"
            + LOG4J_APPENDER.format(name="out").replace(".Target=System.err", ".Target=System.out")
            # One line when the node is up: the log says when it started.
            + "log4j.logger.kafka.server.BrokerServer=INFO\n"
            + "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            + "log4j.logger.kafka.log.LogCleaner=INFO\n"
        )
        return config, log4j

    def _java(self, libs: Path, log4j: Path, main: str, *args: str, heap: str) -> list[str]:
        return [
            java_binary(),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format(self, libs: Path, config: Path, log4j: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = self._java(
            libs,
            log4j,
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            self.cluster_id,
            "-c",
            str(config),
            heap="128m",
        )
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise KafkaSetupError(
                f"formatting the KRaft storage in {self.data_dir} failed "
                f"(exit {done.returncode}):\n{(done.stdout + done.stderr).strip()[-2000:]}"
            )

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Format the storage if new, start the node and wait until it answers a Metadata
        request. A taken port, a failed start or a node that never answers raise
        :class:`KafkaSetupError` and leave nothing running."""
        if self.process is not None and self.process.poll() is None:
            return
        libs = kafka_libs(self._version)
        for port in (self.port, self.controller_port):
            if not _bindable(port, self.host):
                raise KafkaSetupError(
                    f"port {port} on {self.host} is taken: stop what listens there "
                    "or choose another port (--broker-port)"
                )
        config, log4j = self._write_config()
        self._format(libs, config, log4j)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.process = subprocess.Popen(
                self._java(libs, log4j, "kafka.Kafka", str(config), heap=f"{self.heap_mb}m"),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                start_new_session=True,  # Ctrl-C reaches our launcher, which stops us in order
                preexec_fn=die_with_parent,
            )
        finally:
            out.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise KafkaSetupError(
                    f"Apache Kafka exited with {self.process.returncode} while starting; "
                    f"its log ({self.log_path}) ends:\n{_tail(self.log_path)}"
                )
            if port_open(self.host, self.port) and self._metadata_answers():
                return
            if time.monotonic() > deadline:
                raise KafkaSetupError(
                    f"Apache Kafka did not answer a Metadata request on {self.bootstrap} "
                    f"within {timeout:.0f} s; its log ({self.log_path}) ends:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.25)

    def _metadata_answers(self) -> bool:
        """Whether the node answers a Metadata request naming itself as a live broker (run
        in a thread of its own: the caller may be inside an event loop)."""
        from shared.config import KafkaSettings
        from shared.messaging.kafka import broker_node_ids

        settings = KafkaSettings.model_validate(
            {
                "bootstrap_servers": self.bootstrap,
                **(self.tls.client_settings("federation-admin") if self.tls else {}),
            }
        )
        result: list[bool] = []

        def probe() -> None:
            try:
                result.append(1 in asyncio.run(broker_node_ids(settings, timeout=3.0)))
            except Exception:
                result.append(False)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(10)
        return bool(result and result[0])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL after ``timeout`` seconds."""
        if self.process is None:
            return
        end_process(self.process, signal.SIGTERM, timeout)
        self.process = None
        self._wait_ports_free()

    def kill(self) -> None:
        """SIGKILL, as in a crash. The log on disk stays (what the OS had is kept)."""
        if self.process is None:
            return
        kill_process(self.process)
        self.process = None
        self._wait_ports_free()

    def lose_log(self) -> None:
        """Kill the node and wipe its log directory: the next :meth:`start` formats a new,
        empty one (a broker that lost its disk)."""
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.cluster_id = _new_cluster_id()

    def restart(self) -> None:
        """SIGKILL and start again on the same log."""
        self.kill()
        self.start()

    def _wait_ports_free(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            _bindable(self.port, self.host) and _bindable(self.controller_port, self.host)
        ):
            time.sleep(0.05)

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
