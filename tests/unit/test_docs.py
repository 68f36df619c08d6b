"""The written documentation agrees with the code: every setting is documented in
docs/configuration.md, the ADR index and the ADR files match, the README names the two
commands and CI runs ``make test``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from services.fhir.settings import FhirSettings
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
ADR_DIR = ROOT / "docs" / "adr"
ADR_INDEX = ADR_DIR / "README.md"
ADR_FILE = re.compile(r"^(\d{4})-[a-z0-9-]+\.md$")
ADR_SECTIONS = ("Status", "Context", "Decision", "Consequences", "Alternatives considered")
# VK_ variables the configuration page mentions that are not settings.
NOT_SETTINGS = {
    "VK_TEST_PG_DSN",
    "VK_TEST_BROKER",
    "VK_KAFKA_HOME",
    "VK_TEST_NO_POSTGRES",
    "VK_SQLITE_DRIVER",
    "VK_IMAGE_TAG",
    "VK_DB_PASSWORD",
    "VK_DB_MEMBERS",
    "VK_DB_USER",
    "VK_TOPIC_MEMBERS",
    "VK_PG_SUPERUSER_PASSWORD",
}


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def env_names(model: type[BaseModel], prefix: str = "VK_") -> Iterator[str]:
    """The environment variable of every leaf field of ``model``, nested with ``__``."""
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        nested = _model_of(field.annotation)
        if nested is None:
            yield env
        else:
            yield from env_names(nested, f"{env}__")


# The FHIR facade's own settings (services.fhir.settings, ``VK_FHIR__*``) besides the
# common ones.
SETTINGS_ENV = sorted([*env_names(Settings), *env_names(FhirSettings, "VK_FHIR__")])


def adr_files() -> dict[str, Path]:
    return {p.name: p for p in ADR_DIR.iterdir() if ADR_FILE.match(p.name)}


ADR_NAMES = sorted(adr_files())


def indexed_adrs() -> dict[str, tuple[str, str, str]]:
    """ADR file name -> (number, title, status), from the index table's rows."""
    rows: dict[str, tuple[str, str, str]] = {}
    row = re.compile(r"^\|\s*\[(\d{4})\]\(([^)]+)\)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*$")
    for line in ADR_INDEX.read_text(encoding="utf-8").splitlines():
        m = row.match(line)
        if m:
            number, target, title, status = m.groups()
            rows[target] = (number, title, status)
    return rows


class TestConfiguration:
    def test_the_walk_finds_nested_settings(self) -> None:
        assert "VK_ENV" in SETTINGS_ENV
        assert "VK_KAFKA__BOOTSTRAP_SERVERS" in SETTINGS_ENV
        assert "VK_MEMBER__ORGNR" in SETTINGS_ENV
        assert "VK_KAFKA" not in SETTINGS_ENV

    @pytest.mark.parametrize("env", SETTINGS_ENV)
    def test_every_setting_is_documented(self, env: str) -> None:
        text = CONFIGURATION.read_text(encoding="utf-8")
        assert f"`{env}`" in text, f"{env} is missing from docs/configuration.md"

    def test_every_documented_variable_is_a_setting(self) -> None:
        text = CONFIGURATION.read_text(encoding="utf-8")
        mentioned = set(re.findall(r"\bVK_[A-Z0-9_]*[A-Z0-9]\b", text))
        unknown = mentioned - set(SETTINGS_ENV) - NOT_SETTINGS
        assert not unknown, (
            f"docs/configuration.md names variables that are not settings: {unknown}"
        )


class TestAdrs:
    def test_index_and_files_agree(self) -> None:
        files = adr_files()
        assert files, "no ADR files in docs/adr/"
        assert set(indexed_adrs()) == set(files)

    def test_numbers_are_unique_and_match_the_file_names(self) -> None:
        index = indexed_adrs()
        numbers = [number for number, _title, _status in index.values()]
        assert len(numbers) == len(set(numbers))
        for target, (number, _title, _status) in index.items():
            assert target.startswith(f"{number}-"), target

    @pytest.mark.parametrize("name", ADR_NAMES)
    def test_each_adr_has_its_title_and_sections(self, name: str) -> None:
        text = (ADR_DIR / name).read_text(encoding="utf-8")
        number = name[:4]
        title = re.match(r"# (\d{4})\. (.+)", text)
        assert title is not None, f"{name}: must start with '# {number}. Title'"
        assert title.group(1) == number, name
        headings = re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
        for section in ADR_SECTIONS:
            assert section in headings, f"{name}: missing '## {section}'"
        assert [h for h in headings if h in ADR_SECTIONS] == list(ADR_SECTIONS), name

    @pytest.mark.parametrize("name", ADR_NAMES)
    def test_index_gives_each_adrs_title_and_status(self, name: str) -> None:
        text = (ADR_DIR / name).read_text(encoding="utf-8")
        _number, index_title, index_status = indexed_adrs()[name]
        assert text.startswith(f"# {name[:4]}. {index_title}\n"), name
        status = text.split("\n## Status\n", 1)[1].split("\n## ", 1)[0].strip()
        assert status == index_status, f"{name}: status differs from the index"


class TestCommands:
    def test_readme_gives_the_two_commands(self) -> None:
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        assert "make run" in text
        assert "make test" in text

    def test_ci_runs_make_test(self) -> None:
        lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        commands = [line.strip() for line in lines if not line.lstrip().startswith("#")]
        assert any(re.match(r"^make test(\s|$)", command) for command in commands)
