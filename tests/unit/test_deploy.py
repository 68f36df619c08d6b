"""The container deployment: docker-compose.yml, deploy/Dockerfile and the deploy scripts.

Structural checks only (no Docker engine needed). When the ``docker-compose`` binary is on
PATH, ``docker-compose config -q`` validates the compose file as well.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from services.fhir.settings import FhirSettings
from shared.config import SERVICES, Settings
from shared.messaging.events.topics import KIND_CONFIGS, topic_configs, topic_kind
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CREATE_TOPICS = ROOT / "deploy" / "kafka" / "create-topics.sh"
ACLS = ROOT / "deploy" / "kafka" / "acls.sh"
PG_INIT = ROOT / "deploy" / "postgres" / "init.sh"
PRODUCTION_ENV = ROOT / "deploy" / "env" / "production.env.example"
README = ROOT / "deploy" / "README.md"

# orgnr -> (name, kind, first published API port: directory, consent, referral, notify)
MEMBERS: dict[str, tuple[str, str, int]] = {
    "232100-0065": ("Region Kronoberg", "region", 8010),
    "212000-0647": ("Växjö kommun", "kommun", 8020),
    "212000-0613": ("Alvesta kommun", "kommun", 8030),
}
MEMBER_SERVICES = [(orgnr, service) for orgnr in MEMBERS for service in SERVICES]


def digits(orgnr: str) -> str:
    return orgnr.replace("-", "")


def member_topics(orgnr: str) -> set[str]:
    d = digits(orgnr)
    return {f"vardkedja.member.{d}.{kind}" for kind in ("inbound", "internal", "deadletter")}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def host_ports(service: dict[str, Any]) -> list[int]:
    ports: list[int] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(int(entry["published"]))
        else:
            parts = str(entry).split("/")[0].split(":")
            assert len(parts) >= 2, f"{entry!r}: publish an explicit host port"
            ports.append(int(parts[-2]))
    return ports


def run_script(script: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", str(script), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def role_services(services: dict[str, dict[str, Any]], role: str) -> dict[str, dict[str, Any]]:
    """vardkedja processes by role: ``serve`` (API), ``worker`` or ``migrate``."""
    return {
        name: svc
        for name, svc in services.items()
        if isinstance(svc.get("command"), list) and svc["command"][:1] == [role]
    }


def find(
    services: dict[str, dict[str, Any]], role: str, orgnr: str, service: str
) -> tuple[str, dict[str, Any]]:
    found = [
        (name, svc)
        for name, svc in role_services(services, role).items()
        if env_of(svc).get("VK_MEMBER__ORGNR") == orgnr and env_of(svc).get("VK_SERVICE") == service
    ]
    assert len(found) == 1, f"one {role} for {orgnr} {service}: {[n for n, _ in found]}"
    return found[0]


# --- infrastructure ---------------------------------------------------------------------


def test_kafka_is_apache_kafka_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(env["KAFKA_NODE_ID"] + "@")
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["CLUSTER_ID"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_topic_init_job_runs_the_script_after_kafka(services: dict[str, dict[str, Any]]) -> None:
    job = services["kafka-topics"]
    assert job["image"] == services["kafka"]["image"]
    assert any("create-topics.sh" in part for part in job["entrypoint"])
    assert any(str(v).startswith("./deploy/kafka/create-topics.sh:") for v in job["volumes"])
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(job.get("restart", "no")) == "no"


def test_postgres_16_runs_the_init_script(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert any(
        str(v).startswith("./deploy/postgres/init.sh:/docker-entrypoint-initdb.d/")
        for v in pg["volumes"]
    )
    assert "pg_isready" in pg["healthcheck"]["test"]


# --- the three members ------------------------------------------------------------------


def facades(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each member's FHIR facade (``serve fhir``), by compose service name."""
    return {
        n: s for n, s in role_services(services, "serve").items() if s["command"][1:] == ["fhir"]
    }


def test_counts(services: dict[str, dict[str, Any]]) -> None:
    n = len(MEMBERS) * len(SERVICES)
    assert len(role_services(services, "serve")) == n + len(MEMBERS)  # and a facade each
    assert len(facades(services)) == len(MEMBERS)
    assert len(role_services(services, "worker")) == n
    assert len(role_services(services, "migrate")) == n


@pytest.mark.parametrize(("orgnr", "service"), MEMBER_SERVICES)
def test_member_service(services: dict[str, dict[str, Any]], orgnr: str, service: str) -> None:
    name, kind, _ = MEMBERS[orgnr]
    database = f"vk_{digits(orgnr)}_{service}"
    migrate_name, migrate = find(services, "migrate", orgnr, service)
    for role in ("serve", "worker"):
        _, svc = find(services, role, orgnr, service)
        assert svc["command"] == [role, service]
        env = env_of(svc)
        assert env["VK_MEMBER__NAME"] == name
        assert env["VK_MEMBER__KIND"] == kind
        assert env["VK_ENV"] == "development"
        assert env["VK_AUTO_MIGRATE"] == "false"
        assert env["VK_KAFKA__CREATE_TOPICS"] == "false"
        assert env["VK_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
        url = env["VK_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://")
        assert url.rsplit("/", 1)[1] == database
        assert env_of(migrate)["VK_DATABASE_URL"] == url
        assert sorted(json.loads(env["VK_FEDERATION_MEMBERS"])) == sorted(MEMBERS)
        depends = svc["depends_on"]
        assert depends[migrate_name]["condition"] == "service_completed_successfully"
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("orgnr", list(MEMBERS))
def test_each_member_has_its_fhir_facade_over_its_own_apis(
    services: dict[str, dict[str, Any]], orgnr: str
) -> None:
    [(name, facade)] = [
        (n, s) for n, s in facades(services).items() if env_of(s)["VK_MEMBER__ORGNR"] == orgnr
    ]
    env = env_of(facade)
    assert "VK_SERVICE" not in env  # no service of its own, no database
    assert "VK_DATABASE_URL" not in env
    assert host_ports(facade) == [MEMBERS[orgnr][2] + len(SERVICES)]
    for service in SERVICES:
        api_name, _ = find(services, "serve", orgnr, service)
        assert env[f"VK_FHIR__{service.upper()}_URL"] == f"http://{api_name}:8000", name
        assert facade["depends_on"][api_name]["condition"] == "service_healthy"


def test_one_image_for_every_role(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for role in ("serve", "worker", "migrate"):
        for svc in role_services(services, role).values():
            images.add(svc["image"])
            assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
            assert svc["build"]["context"] == "."
    assert len(images) == 1


def test_every_api_has_a_readyz_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in role_services(services, "serve").items():
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD", name
        assert "urllib" in " ".join(test), name
        assert "/readyz" in " ".join(test), name


def test_workers_publish_no_ports(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in role_services(services, "worker").items():
        assert not svc.get("ports"), name


@pytest.mark.parametrize(("orgnr", "service"), MEMBER_SERVICES)
def test_api_port(services: dict[str, dict[str, Any]], orgnr: str, service: str) -> None:
    _, svc = find(services, "serve", orgnr, service)
    expected = MEMBERS[orgnr][2] + SERVICES.index(service)
    assert host_ports(svc) == [expected]
    assert str(svc["ports"][0]).endswith(":" + env_of(svc)["VK_HTTP__PORT"])


def test_published_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    ports = [port for svc in services.values() for port in host_ports(svc)]
    assert len(ports) == len(set(ports))


def test_every_vk_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    for svc in role_services(services, "serve").values():
        for key in env_of(svc):
            assert_known_setting(key)


def test_compose_says_it_is_for_development() -> None:
    head = COMPOSE_FILE.read_text(encoding="utf-8").split("\nservices:")[0]
    assert "VK_ENV=production refuses" in head
    assert "deploy/README.md" in head


# --- scripts ----------------------------------------------------------------------------


def test_topic_script_creates_every_topic(services: dict[str, dict[str, Any]]) -> None:
    out = run_script(CREATE_TOPICS, env={**env_of(services["kafka-topics"]), "DRY_RUN": "1"})
    commands = [line for line in out.splitlines() if "kafka-topics.sh" in line]
    topics: dict[str, str] = {}
    for line in commands:
        assert "--create --if-not-exists" in line
        match = re.search(r"--topic (\S+)", line)
        assert match
        topics[match.group(1)] = line
    expected = {"vardkedja.directory"}.union(*(member_topics(orgnr) for orgnr in MEMBERS))
    assert set(topics) == expected
    assert "cleanup.policy=compact" in topics["vardkedja.directory"]
    assert "--partitions 3 --replication-factor 1" in topics["vardkedja.directory"]


@pytest.mark.parametrize("replication", [1, 3])
def test_topic_script_configs_are_the_layouts(
    services: dict[str, dict[str, Any]], replication: int
) -> None:
    """create-topics.sh gives each topic exactly the configuration ``ensure_topics`` gives
    it (``shared.messaging.events.topics.topic_configs``): compaction, the retention constants and
    ``min.insync.replicas`` from replication 3 on."""
    env = {
        **env_of(services["kafka-topics"]),
        "DRY_RUN": "1",
        "REPLICATION_FACTOR": str(replication),
    }
    out = run_script(CREATE_TOPICS, env=env)
    kinds = set()
    for line in out.splitlines():
        if "kafka-topics.sh" not in line:
            continue
        match = re.search(r"--topic (\S+)", line)
        assert match
        topic = match.group(1)
        configs = dict(c.split("=", 1) for c in re.findall(r"--config (\S+)", line))
        assert configs == topic_configs(topic, replication_factor=replication), topic
        kinds.add(topic_kind(topic))
    assert kinds == set(KIND_CONFIGS)


def test_topic_script_rejects_a_bad_orgnr() -> None:
    result = subprocess.run(
        ["bash", str(CREATE_TOPICS), "12345"],
        env={"PATH": os.environ.get("PATH", ""), "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "12345" in result.stderr


def test_acl_script_grants_exactly_the_member_model() -> None:
    member, *others = MEMBERS
    d = digits(member)
    out = run_script(ACLS, member, *others, env={"COMMAND_CONFIG": ""})
    grants = set()
    for quoted in out.splitlines():
        if quoted.startswith("#"):
            continue
        line = " ".join(shlex.split(quoted))  # as sh (POSIX quoting) will split it
        assert f"--add --allow-principal User:member-{d}" in line
        operations = tuple(sorted(re.findall(r"--operation (\w+)", line)))
        resource = re.search(r"--(topic|group) (\S+)", line)
        assert resource
        grants.add((resource.group(1), resource.group(2), operations))
    expected = {
        ("topic", f"vardkedja.member.{d}.inbound", ("Read",)),
        ("topic", f"vardkedja.member.{d}.internal", ("Read", "Write")),
        ("topic", f"vardkedja.member.{d}.deadletter", ("Read", "Write")),
        ("topic", "vardkedja.directory", ("Read", "Write")),
        ("group", f"vardkedja.{d}.", ("Read",)),
    } | {("topic", f"vardkedja.member.{digits(o)}.inbound", ("Write",)) for o in MEMBERS}
    assert grants == expected
    assert "'--resource-pattern-type' 'prefixed' '--group'" in out


def test_acl_script_quotes_for_any_sh_and_prints_nothing_for_a_bad_orgnr(
    tmp_path: Path,
) -> None:
    """Its lines are piped to ``sh`` (dash on Debian): POSIX quoting, whatever the locale
    and the characters; and a bad organisationsnummer among the federation stops it before
    it prints a line, so no member is left with half its ACLs."""
    echo_args = tmp_path / "echo-args"
    echo_args.write_text('#!/bin/sh\nfor a; do printf "[%s]\\n" "$a"; done\n')
    echo_args.chmod(0o755)
    config = "/etc/kafka/växjö's admin.properties"
    member, other = list(MEMBERS)[:2]
    out = run_script(ACLS, member, env={"COMMAND_CONFIG": config, "KAFKA_ACLS": str(echo_args)})
    first = next(line for line in out.splitlines() if not line.startswith("#"))
    sh = shutil.which("dash") or "sh"
    done = subprocess.run(
        [sh, "-c", first], capture_output=True, text=True, check=True, env={"LC_ALL": "C"}
    )
    assert f"[{config}]" in done.stdout.splitlines()
    bad = subprocess.run(
        ["bash", str(ACLS), member, other, "12345"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "not an organisationsnummer: 12345" in bad.stderr


def test_postgres_init_creates_the_role_and_every_database(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    fake_psql = tmp_path / "psql"
    fake_psql.write_text('#!/bin/sh\ncat > "$VK_TEST_SQL"\n', encoding="utf-8")
    fake_psql.chmod(0o755)
    sql_file = tmp_path / "init.sql"
    env = {k: v for k, v in env_of(services["postgres"]).items() if k.startswith("VK_DB_")}
    env["VK_DB_PASSWORD"] = "test-password"
    result = subprocess.run(
        ["bash", str(PG_INIT)],
        env={
            "PATH": f"{tmp_path}:{os.environ.get('PATH', '')}",
            "VK_TEST_SQL": str(sql_file),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sql = sql_file.read_text(encoding="utf-8")
    assert "CREATE ROLE" in sql
    created = set(re.findall(r"'(vk_\d{10}_[a-z]+)'", sql))
    expected = {f"vk_{digits(o)}_{s}" for o, s in MEMBER_SERVICES}
    assert created == expected
    urls = {
        env_of(svc)["VK_DATABASE_URL"].rsplit("/", 1)[1]
        for svc in role_services(services, "migrate").values()
    }
    assert urls == expected


def test_shell_scripts_parse() -> None:
    for script in (CREATE_TOPICS, ACLS, PG_INIT):
        result = subprocess.run(
            ["bash", "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{script}: {result.stderr}"


# --- image ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "pip install -c constraints.txt ." in text
    assert "[dev]" not in text
    assert re.search(r'^ENTRYPOINT \["vardkedja"\]$', text, flags=re.MULTILINE)


def test_dockerignore_keeps_local_state_out() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].strip("/") for line in lines if line.startswith("!")}
    assert allowed.isdisjoint({".venv", "var", ".git", "tests", "bench"})
    assert {"pyproject.toml", "constraints.txt", "shared", "services", "vardkedja"} <= allowed


# --- production example -----------------------------------------------------------------


def assert_known_setting(key: str) -> None:
    assert key.startswith("VK_"), key
    if key.startswith("VK_FHIR__"):  # the FHIR facade's own settings
        assert key.removeprefix("VK_FHIR__").lower() in FhirSettings.model_fields, key
        return
    model: type[BaseModel] = Settings
    parts = key[3:].lower().split("__")
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        assert field is not None, key
        annotation = field.annotation
        assert isinstance(annotation, type), key
        assert issubclass(annotation, BaseModel), key
        model = annotation
    assert parts[-1] in model.model_fields, key


def test_production_example_satisfies_production_mode() -> None:
    env = {}
    for line in PRODUCTION_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert_known_setting(key)
            env[key] = value
    # the same rules as Settings.production_problems
    assert env["VK_ENV"] == "production"
    assert env["VK_AUTH__ALLOW_DEV_KEY"] == "false"
    assert env["VK_AUTH__JWKS_URL"].startswith("https://")
    assert env["VK_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["VK_KAFKA__SECURITY_PROTOCOL"] == "SSL"
    assert sorted(json.loads(env["VK_FEDERATION_MEMBERS"])) == sorted(MEMBERS)
    assert env["VK_KAFKA__CREATE_TOPICS"] == "false"
    assert env["VK_AUTO_MIGRATE"] == "false"
    assert env["VK_DATABASE_URL"].rsplit("/", 1)[1].split("?")[0] == "vk_2321000065_directory"


def test_readme_covers_production() -> None:
    text = README.read_text(encoding="utf-8")
    for heading in (
        "Topology",
        "Topics",
        "ACLs",
        "mTLS",
        "Production mode",
        "Migrations",
        "Databases and backups",
        "Secrets",
    ):
        assert f"\n## {heading}\n" in text


# --- docker-compose itself --------------------------------------------------------------


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:  # no Docker tooling here: the structural tests above still ran
        # CI installs it (deploy/dev/compose.sh): there, a missing binary is a failure.
        assert not IN_CI, "docker-compose is missing (deploy/dev/compose.sh installs it)"
        return
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
