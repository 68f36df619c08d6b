"""Territory rules (ADR 0013): which kommuner a member serves by its record, and the demo
directory keeps to them."""

from __future__ import annotations

import pytest

from services.directory.demo import load_demo_members, load_demo_units
from services.directory.schemas import MemberIn
from services.directory.territory import outside, record_problem, served_kommuner
from vardkedja.federation import DEMO_MEMBERS

KRONOBERG = frozenset({"0760", "0761", "0763", "0764", "0765", "0767", "0780", "0781"})


class TestServedKommuner:
    def test_a_kommun_serves_its_own_kommunkod(self) -> None:
        assert served_kommuner(kind="kommun", county_code="07", kommunkoder=["0780"]) == {"0780"}

    def test_a_region_serves_what_it_names_in_its_county_or_all_of_it(self) -> None:
        assert served_kommuner(kind="region", county_code="07", kommunkoder=[]) == KRONOBERG
        named = served_kommuner(kind="region", county_code="07", kommunkoder=["0764", "0780"])
        assert named == {"0764", "0780"}

    @pytest.mark.parametrize(
        ("kind", "county", "kommunkoder"),
        [
            ("kommun", "07", ["0780", "0764"]),  # a kommun claiming a neighbour
            ("kommun", "07", []),
            ("kommun", "07", ["0180"]),  # outside its county
            ("region", "07", ["0780", "0180"]),
            ("region", "99", []),  # no such county
            ("landsting", "07", ["0780"]),
        ],
    )
    def test_a_record_breaking_the_rules_serves_nothing(
        self, kind: str, county: str, kommunkoder: list[str]
    ) -> None:
        assert record_problem(kind=kind, county_code=county, kommunkoder=kommunkoder)
        assert served_kommuner(kind=kind, county_code=county, kommunkoder=kommunkoder) == set()

    def test_outside_lists_what_the_territory_lacks(self) -> None:
        assert outside(["0780", "0764", "0780"], frozenset({"0780"})) == ["0764"]
        assert outside(["0780"], frozenset({"0780"})) == []


class TestTheDemoKeepsToItsTerritories:
    def test_every_demo_unit_lies_in_its_members_territory(self) -> None:
        kinds = {m.orgnr: m.kind for m in DEMO_MEMBERS}
        records = load_demo_members()
        for orgnr, units in load_demo_units().items():
            record = MemberIn.model_validate({**records[orgnr], "kind": kinds[orgnr]})
            served = served_kommuner(
                kind=record.kind, county_code=record.county_code, kommunkoder=record.kommunkoder
            )
            assert served, orgnr
            for unit in units:
                assert outside(unit["kommunkoder"], served) == [], (orgnr, unit["name"])
