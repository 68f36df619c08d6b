"""docs/kinds.md and the docs of ``POST /v1/referrals`` are the kinds registry's: the
information categories each kind shares, generated (``make kinds`` after changing a kind)."""

from __future__ import annotations

from pathlib import Path

from shared.domain.kinds import KINDS, categories_table, kinds_markdown
from shared.service import load_spec
from shared.web.app import create_app
from tests.conftest import make_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "kinds.md"


class TestTheKindsDocument:
    def test_the_committed_file_is_current(self) -> None:
        assert DOC.read_text(encoding="utf-8") == kinds_markdown(), "run `make kinds`"

    def test_every_kind_names_its_categories(self) -> None:
        table = categories_table()
        for s in KINDS.values():
            [row] = [r for r in table.splitlines() if r.startswith(f"| `{s.kind.value}` |")]
            assert all(f"`{c}`" in row for c in s.categories), s.kind


class TestTheSendingOperation:
    def test_its_description_holds_the_generated_table(self) -> None:
        app = create_app(load_spec("referral"), make_settings(service="referral"))
        description = app.openapi()["paths"]["/v1/referrals"]["post"]["description"]
        assert categories_table() in description
