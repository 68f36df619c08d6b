"""Apache Kafka's runtime for the node the project starts itself
(:mod:`shared.messaging.apache_kafka`): Java, and the jars from Maven Central.

The jars are resolved once with Maven from ``shared/messaging/kafka_dist/pom.xml`` into a
cache outside the work tree (``VK_KAFKA_HOME``, default
``~/.cache/vardkedja/apache-kafka-<version>``). Nothing is downloaded from anywhere else.
Beside them, Kafka's command-line tools as the distribution's ``bin/`` names them
(:func:`tools_dir`), for the deploy scripts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "3.9.1"


class KafkaSetupError(RuntimeError):
    """Apache Kafka could not be set up or started; the message says what failed and how to
    fix it."""


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
    log4j.write_text("log4j.rootLogger=WARN, stderr\n" + LOG4J_APPENDER.format(name="stderr"))
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


LOG4J_APPENDER = (
    "log4j.appender.{name}=org.apache.log4j.ConsoleAppender\n"
    "log4j.appender.{name}.Target=System.err\n"
    "log4j.appender.{name}.layout=org.apache.log4j.PatternLayout\n"
    "log4j.appender.{name}.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
)
