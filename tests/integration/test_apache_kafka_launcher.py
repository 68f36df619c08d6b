"""The Apache Kafka launcher (``shared.messaging.apache_kafka``) when something goes wrong: a clear
error that names what failed and how to fix it, and nothing left running.

- a port that is taken: refused before anything starts;
- a broker that exits while starting (a setting it refuses): the error carries the end of
  its log, and no process is left;
- Maven that cannot resolve the jars (a version Maven Central does not have; no ``mvn`` at
  all): the error names the command or the missing tool, and no half-filled cache is left
  to be taken for a good one;
- ``vardkedja run --broker kafka`` on a taken port: it says so, exits 1 and leaves no
  process of the federation behind.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.messaging import kafka_jars
from shared.messaging.apache_kafka import ApacheKafka
from shared.messaging.kafka_jars import KafkaSetupError
from shared.messaging.processes import free_port_block
from tests.conftest import require_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _kafka() -> None:
    require_engine("kafka")


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else listens on."""
    port = free_port_block(2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield port


def _java_processes_under(folder: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if "java" in line and str(folder) in line]


class TestAPortThatIsTaken:
    def test_start_is_refused_naming_the_port(self, tmp_path: Path, listening: int) -> None:
        node = ApacheKafka(tmp_path / "node", port=listening)
        with pytest.raises(KafkaSetupError, match=rf"port {listening} on 127\.0\.0\.1 is taken"):
            node.start()
        assert node.process is None
        assert not (tmp_path / "node" / "data").exists(), "nothing was formatted"

    def test_the_demo_says_so_and_leaves_nothing_running(
        self, tmp_path: Path, listening: int
    ) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "vardkedja.cli",
                "run",
                "--broker",
                "kafka",
                "--broker-port",
                str(listening),
                "--data-dir",
                str(tmp_path / "var"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"port {listening} is taken" in done.stderr
        assert "Traceback" not in done.stderr
        assert not _java_processes_under(tmp_path)


class TestABrokerThatDoesNotStart:
    def test_the_error_carries_its_log_and_no_process_is_left(self, tmp_path: Path) -> None:
        # A setting the broker refuses at start: it exits before it listens.
        node = ApacheKafka(tmp_path / "node", extra_config={"num.network.threads": "0"})
        with pytest.raises(KafkaSetupError) as err:
            node.start(timeout=120)
        message = str(err.value)
        assert "num.network.threads" in message  # what it printed says why
        assert node.process is None
        assert not _java_processes_under(tmp_path)


class TestMavenThatCannotResolve:
    def test_a_version_maven_central_does_not_have(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("VK_KAFKA_HOME", str(tmp_path / "home"))
        with pytest.raises(KafkaSetupError) as err:
            kafka_jars.kafka_libs("0.0.0-no-such-version")
        message = str(err.value)
        assert "Maven could not resolve Apache Kafka 0.0.0-no-such-version" in message
        assert "dependency:copy-dependencies" in message  # the command, to run by hand
        home = tmp_path / "home"
        assert not (home / ".complete").exists()
        assert not (home / "libs").exists()

    def test_no_maven_at_all(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("VK_KAFKA_HOME", str(tmp_path / "home"))
        bin_dir = tmp_path / "bin"  # java, and nothing else
        bin_dir.mkdir()
        (bin_dir / "java").symlink_to(Path(kafka_jars.java_binary()).resolve())
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", str(bin_dir))
        assert kafka_jars.available() is not None
        with pytest.raises(KafkaSetupError, match="needs Maven"):
            kafka_jars.kafka_libs()
