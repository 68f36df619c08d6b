"""Apache Kafka, started by the project itself: one KRaft node (broker and controller in one
process) on loopback, for the test suites, the benchmarks and ``make run BROKER=kafka``.

The jars come from Maven Central, resolved once with Maven from
``shared/messaging/kafka_dist/pom.xml`` into a cache outside the work tree
(``VK_KAFKA_HOME``, default
``~/.cache/vardkedja/apache-kafka-<version>``). Nothing is downloaded from anywhere else.

:class:`ApacheKafka` formats a storage directory (``kafka.tools.StorageTool format``), writes
``server.properties`` (free loopback ports, a small heap, no topic auto-creation, a low
minimum session timeout for the tests), starts ``kafka.Kafka`` and waits until the broker
answers a real Metadata request. Its log is durable: :meth:`ApacheKafka.kill` (SIGKILL) and
:meth:`ApacheKafka.start` again keep every topic, record and committed offset;
:meth:`ApacheKafka.lose_log` wipes the log directory, as a broker that lost its disk.

With ``tls=`` (:class:`KafkaTls`) the node runs as production does (``deploy/README.md``):
mutual TLS on every listener, the principal taken from the certificate's CN, the
``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false`` and the super users
``broker`` and ``federation-admin``; the ACLs are then the deploy scripts' to grant.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from shared.messaging.processes import (
    die_with_parent,
    end_process,
    free_port_block,
    kill_process,
    port_open,
)

KAFKA_VERSION = "3.9.1"
ENGINE = "Apache Kafka"


class KafkaSetupError(RuntimeError):
    """Apache Kafka could not be set up or started; the message says what failed and how to
    fix it."""


# ---------------------------------------------------------------------------------------
# The runtime: Java, and the jars from Maven Central
# ---------------------------------------------------------------------------------------


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    """Where the resolved jars and the tool wrappers live (outside the work tree)."""
    explicit = os.environ.get("VK_KAFKA_HOME")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vardkedja" / f"apache-kafka-{version}"


def java_binary() -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaSetupError(
            "Apache Kafka needs Java 17 or later, and no `java` was found (JAVA_HOME unset, "
            "none on PATH). Install one (Debian: apt-get install openjdk-17-jre-headless) "
            "or use the embedded broker (--broker tansu)."
        )
    return found


def available() -> str | None:
    """None when Apache Kafka can be had here (Java, and the jars or Maven to fetch them);
    otherwise why not, in one sentence."""
    try:
        java_binary()
    except KafkaSetupError as exc:
        return str(exc)
    if not (kafka_home() / ".complete").exists() and not shutil.which("mvn"):
        return (
            "Apache Kafka's jars are not resolved yet and Maven (`mvn`) is not installed "
            "(Debian: apt-get install maven)"
        )
    return None


def _pom() -> Path:
    return Path(str(resources.files("shared.messaging") / "kafka_dist" / "pom.xml"))


def kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """The folder of Kafka's jars, resolved from Maven Central on first use.

    Several processes may ask at once (test workers, a benchmark): one resolves under a file
    lock, the others wait and find the result."""
    home = kafka_home(version)
    libs, stamp = home / "libs", home / ".complete"
    if stamp.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaSetupError(
                "resolving Apache Kafka needs Maven (`mvn`), which is not installed "
                "(Debian: apt-get install maven), or use the embedded broker (--broker tansu)"
            )
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(_pom()),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise KafkaSetupError(
                f"Maven could not resolve Apache Kafka {version} from Maven Central "
                f"(exit {done.returncode}). Check that Maven Central is reachable (a proxy "
                f"in ~/.m2/settings.xml?) and retry; the command was:\n  {' '.join(cmd)}\n"
                f"{tail}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        _write_tools(home, libs)
        stamp.write_text(version + "\n")
    return libs


_TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-acls.sh": "kafka.admin.AclCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
    "kafka-storage.sh": "kafka.tools.StorageTool",
}


def _write_tools(home: Path, libs: Path) -> None:
    """Kafka's command-line tools as the distribution's ``bin/`` names them, so that the
    deploy scripts run here as in production (``KAFKA_BIN``, ``KAFKA_ACLS``)."""
    bin_dir = home / "bin"
    bin_dir.mkdir(exist_ok=True)
    log4j = home / "tools-log4j.properties"
    log4j.write_text("log4j.rootLogger=WARN, stderr\n" + _LOG4J_APPENDER.format(name="stderr"))
    for name, main in _TOOLS.items():
        script = bin_dir / name
        script.write_text(
            "#!/bin/sh\n"
            f'exec "${{JAVA:-java}}" -Xmx256m -XX:TieredStopAtLevel=1 -cp "{libs}/*" '
            f'-Dlog4j.configuration="file:{log4j}" {main} "$@"\n'
        )
        script.chmod(0o755)


def tools_dir(version: str = KAFKA_VERSION) -> Path:
    """The folder with ``kafka-topics.sh``, ``kafka-acls.sh``, ``kafka-configs.sh``."""
    kafka_libs(version)
    return kafka_home(version) / "bin"


_LOG4J_APPENDER = (
    "log4j.appender.{name}=org.apache.log4j.ConsoleAppender\n"
    "log4j.appender.{name}.Target=System.err\n"
    "log4j.appender.{name}.layout=org.apache.log4j.PatternLayout\n"
    "log4j.appender.{name}.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
)


# ---------------------------------------------------------------------------------------
# Mutual TLS material, as the federation's CA would issue it
# ---------------------------------------------------------------------------------------


@dataclass
class KafkaTls:
    """A CA, the broker's certificate and client certificates by CN, as PEM files under
    ``folder``. A client's principal is ``User:<CN>`` (``deploy/README.md``)."""

    folder: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    SUPER_USERS = ("broker", "federation-admin")

    @classmethod
    def create(cls, folder: Path, client_cns: Iterable[str] = ()) -> KafkaTls:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name("vardkedja test federation CA"))
            .issuer_name(name("vardkedja test federation CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))

        def issue(cn: str, *, server: bool) -> tuple[bytes, bytes]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(cn))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(
                    x509.ExtendedKeyUsage(
                        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
                        if server
                        else [ExtendedKeyUsageOID.CLIENT_AUTH]
                    ),
                    critical=False,
                )
            )
            if server:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        ]
                    ),
                    critical=False,
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            key_pem = key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return key_pem, cert.public_bytes(pem)

        # The broker's key store: its key, then its certificate (Kafka's PEM key store).
        key_pem, cert_pem = issue("broker", server=True)
        (folder / "broker.pem").write_bytes(key_pem + cert_pem)
        (folder / "broker.pem").chmod(0o600)
        tls = cls(folder)
        for cn in {"federation-admin", *client_cns}:
            key_pem, cert_pem = issue(cn, server=False)
            (folder / f"{cn}.key").write_bytes(key_pem)
            (folder / f"{cn}.key").chmod(0o600)
            (folder / f"{cn}.crt").write_bytes(cert_pem)
            (folder / f"{cn}.pem").write_bytes(key_pem + cert_pem)
            tls.clients[cn] = (folder / f"{cn}.crt", folder / f"{cn}.key")
        (folder / "admin.properties").write_text(
            "security.protocol=SSL\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={folder / 'federation-admin.pem'}\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={folder / 'ca.pem'}\n"
        )
        return tls

    @property
    def cafile(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def admin_properties(self) -> Path:
        """A client properties file for Kafka's tools as the super user ``federation-admin``
        (the deploy scripts' ``COMMAND_CONFIG``)."""
        return self.folder / "admin.properties"

    def client_settings(self, cn: str) -> dict[str, str]:
        """``KafkaSettings`` fields for a client with the certificate of ``cn``."""
        cert, key = self.clients[cn]
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(self.cafile),
            "ssl_certfile": str(cert),
            "ssl_keyfile": str(key),
        }

    def client_env(self, cn: str) -> dict[str, str]:
        """The same as ``VK_KAFKA__*`` environment variables."""
        return {f"VK_KAFKA__{k.upper()}": v for k, v in self.client_settings(cn).items()}


# ---------------------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------------------


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
            + _LOG4J_APPENDER.format(name="out").replace(".Target=System.err", ".Target=System.out")
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
