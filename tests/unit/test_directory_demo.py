"""The demo directory (services/directory/demo/kronoberg.yaml) and the synthetic benchmark
directory (bench/directory_synthetic.py): both must be valid UnitCreate entries, route the
issue's scenarios, and never name a person."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from stdnum import luhn

from bench import directory_synthetic as synthetic
from services.directory.codes import INTAKE_KINDS, UnitKind
from services.directory.demo import load_demo_units
from services.directory.models import ReplicaUnit
from services.directory.routing import resolve
from services.directory.schemas import UnitCreate
from services.directory.search import SearchIndex
from shared.domain.contact import SHORT_NUMBERS, normalise_phone
from shared.domain.hours import Day
from shared.domain.kinds import ReferralKind
from shared.identity.identifiers import all_kommuner, normalise_orgnr
from shared.messaging.events.payloads import UnitChangedV1
from vardkedja.federation import DEMO_MEMBERS, DEMO_UNITS

REGION, VAXJO, ALVESTA = (m.orgnr for m in DEMO_MEMBERS)
WEEKDAYS = (Day.MON, Day.TUE, Day.WED, Day.THU, Day.FRI)

# The series PTS reserves for fiction (film, TV, books): 070-174 06 05 - 070-174 06 99.
FICTION_PHONES = frozenset(f"+4670174{n:04d}" for n in range(605, 700))

# The person-name heuristic. A local part of two or more alphabetic words joined by dots
# ("anna.svensson") looks like firstname.lastname and is refused, unless its first word
# names a function: "socialtjansten.vuxen" is a mailbox, not a person. Local parts without
# a dot, or with hyphens or digits, pass. A heuristic only: it cannot tell every name from
# every function, so an address it passes still has to be a function's by policy.
FUNCTION_WORDS = frozenset(
    {
        "allmanpsykiatri",
        "anhorigstod",
        "barnochfamilj",
        "beroende",
        "beroendemottagningen",
        "boendestod",
        "ifo",
        "integrerad",
        "mottagning",
        "mottagningen",
        "myndighet",
        "psykiatri",
        "remissport",
        "remissporten",
        "socialtjanst",
        "socialtjansten",
        "vardcentralen",
        "vuxenenheten",
    }
)
_WORDS_WITH_DOTS = re.compile(r"[A-Za-z]+(?:\.[A-Za-z]+)+")


def looks_like_a_person(address: str) -> bool:
    """Whether the address's local part has the shape firstname.lastname (see above)."""
    local = address.rpartition("@")[0]
    if not _WORDS_WITH_DOTS.fullmatch(local):
        return False
    return local.split(".")[0].lower() not in FUNCTION_WORDS


def addresses(unit: dict[str, Any]) -> list[str]:
    return [
        value
        for path in unit.get("contact_paths", [])
        for value in (path.get("email"), path.get("secure_mail"))
        if value
    ]


def all_demo_units() -> list[tuple[str, dict[str, Any]]]:
    return [(orgnr, unit) for orgnr, units in load_demo_units().items() for unit in units]


class TestDemoUnitsAreValidEntries:
    def test_every_unit_validates_as_unit_create(self) -> None:
        for _owner, unit in all_demo_units():
            UnitCreate.model_validate(unit)

    def test_at_least_28_units_spread_over_the_three_members(self) -> None:
        units = load_demo_units()
        assert set(units) == {m.orgnr for m in DEMO_MEMBERS}
        assert sum(len(u) for u in units.values()) >= 28
        assert len(units[REGION]) >= 12
        assert len(units[VAXJO]) >= 6
        assert len(units[ALVESTA]) >= 6

    def test_the_federation_seeds_exactly_the_demo_file(self) -> None:
        assert load_demo_units() == DEMO_UNITS

    def test_every_load_gives_fresh_dicts(self) -> None:
        first = load_demo_units()
        first[REGION][0]["opening_hours"]["weekly"].clear()
        assert load_demo_units()[REGION][0]["opening_hours"]["weekly"]

    def test_names_are_unique_per_member(self) -> None:
        for units in load_demo_units().values():
            names = [u["name"] for u in units]
            assert len(names) == len(set(names))

    def test_region_units_cover_both_demo_kommuner_and_the_rest_of_kronoberg(self) -> None:
        covered = {k for u in load_demo_units()[REGION] for k in u["kommunkoder"]}
        assert covered == {"0760", "0761", "0763", "0764", "0765", "0767", "0780", "0781"}


class TestIntake:
    def test_every_member_has_a_unit_that_takes_in_new_cases(self) -> None:
        for orgnr, units in load_demo_units().items():
            intake = [
                u
                for u in units
                if {"kontaktbegaran", "vardkedjeremiss"} & set(u["referral_kinds"])
                and UnitKind(u["kind"]) in INTAKE_KINDS
            ]
            assert intake, orgnr

    def test_the_remissport_receives_the_vardkedjeremiss(self) -> None:
        (port,) = [u for u in load_demo_units()[REGION] if u["kind"] == "remissport"]
        assert port["referral_kinds"] == ["vardkedjeremiss"]
        assert any(p["channel"] == "inbox" for p in port["contact_paths"])

    def test_each_socialtjanstens_mottagning_receives_the_kommun_kinds(self) -> None:
        for orgnr in (VAXJO, ALVESTA):
            (mottagning,) = [
                u for u in load_demo_units()[orgnr] if u["kind"] == "socialtjanstens_mottagning"
            ]
            assert set(mottagning["referral_kinds"]) == {
                "kontaktbegaran",
                "sip_kallelse",
                "utskrivningsplanering",
            }

    def test_only_kommun_units_receive_a_kontaktbegaran(self) -> None:
        receivers = {o for o, u in all_demo_units() if "kontaktbegaran" in u["referral_kinds"]}
        assert receivers == {VAXJO, ALVESTA}

    def test_the_vardkedjekoordinator_receives_sip_invitations(self) -> None:
        (coordinator,) = [u for _, u in all_demo_units() if u["kind"] == "vardkedjekoordinator"]
        assert "sip_kallelse" in coordinator["referral_kinds"]


class TestAlvestaHousingSupport:
    """The issue's acceptance scenario: who handles a kontaktbegäran about housing support
    (boendestöd) for a person living in Alvesta?"""

    @staticmethod
    def handles_it(unit: dict[str, Any]) -> bool:
        return (
            "kontaktbegaran" in unit["referral_kinds"]
            and "boendestod" in unit["interventions"]
            and "0764" in unit["kommunkoder"]
            and any("boendestöd" in p["reason"].lower() for p in unit["contact_paths"])
        )

    def test_alvesta_has_exactly_one_such_unit_and_nobody_else_has_one(self) -> None:
        matches = [(o, u["name"]) for o, u in all_demo_units() if self.handles_it(u)]
        assert matches == [(ALVESTA, "Socialtjänstens mottagning vuxna Alvesta")]

    def test_its_contact_path_for_boendestod_is_the_inbox(self) -> None:
        unit = next(u for o, u in all_demo_units() if self.handles_it(u))
        paths = [p for p in unit["contact_paths"] if "boendestöd" in p["reason"].lower()]
        assert [p["channel"] for p in paths] == ["inbox"]


class TestDemoOpeningHoursAndCapacity:
    def test_round_the_clock_units_are_always_open(self) -> None:
        for _owner, unit in all_demo_units():
            if unit["kind"] in {"akutpsykiatri", "heldygnsvard", "behandlingshem_hvb"}:
                assert unit["opening_hours"]["always_open"] is True, unit["name"]

    def test_offices_open_on_weekdays_only_close_on_public_holidays(self) -> None:
        offices = 0
        for _owner, data in all_demo_units():
            hours = UnitCreate.model_validate(data).opening_hours
            assert hours is not None, data["name"]
            if not hours.always_open and {i.day for i in hours.weekly} <= set(WEEKDAYS):
                offices += 1
                assert hours.closed_on_public_holidays, data["name"]
                assert hours.closed_on_eves, data["name"]
        assert offices >= 20

    def test_treatment_homes_publish_free_places(self) -> None:
        homes = [u for _, u in all_demo_units() if u["kind"] == "behandlingshem_hvb"]
        assert len(homes) >= 2
        for home in homes:
            capacity = UnitCreate.model_validate(home).capacity
            assert capacity is not None
            assert capacity.total_places is not None
            assert 0 <= capacity.free_places <= capacity.total_places


class TestNoPersonInContactPaths:
    def test_the_heuristic_refuses_firstname_lastname(self) -> None:
        assert looks_like_a_person("anna.svensson@vaxjo.example")
        assert looks_like_a_person("Per.Olof.Berg@regionkronoberg.example")
        assert not looks_like_a_person("socialtjansten.vuxen@vaxjo.example")
        assert not looks_like_a_person("beroendemottagningen@regionkronoberg.example")
        assert not looks_like_a_person("barn-och-unga@alvesta.kommun.example")

    def test_no_demo_address_looks_like_a_person(self) -> None:
        for _owner, unit in all_demo_units():
            for address in addresses(unit):
                assert not looks_like_a_person(address), unit["name"]

    def test_demo_addresses_are_on_the_reserved_example_domain(self) -> None:
        for _owner, unit in all_demo_units():
            for address in addresses(unit):
                assert address.endswith(".example"), unit["name"]

    def test_demo_phone_numbers_are_fiction_numbers_or_national_short_numbers(self) -> None:
        phones = [
            normalise_phone(p["phone"])
            for _, u in all_demo_units()
            for p in u["contact_paths"]
            if p["channel"] == "phone"
        ]
        assert phones
        assert all(p in FICTION_PHONES or p in SHORT_NUMBERS for p in phones)


@pytest.fixture(scope="module")
def generated() -> list[tuple[str, dict[str, Any]]]:
    return synthetic.generate(2_000, seed=7)


class TestSyntheticDirectory:
    def test_generates_the_asked_number_of_units(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        assert len(generated) == 2_000
        assert len(synthetic.generate(10)) == 10
        assert synthetic.generate(0) == []

    def test_is_deterministic_for_a_seed(self, generated: list[tuple[str, dict[str, Any]]]) -> None:
        assert synthetic.generate(2_000, seed=7) == generated
        assert synthetic.generate(2_000, seed=8) != generated

    def test_every_unit_validates_as_unit_create(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        for _owner, unit in generated:
            UnitCreate.model_validate(unit)

    def test_members_have_unique_luhn_valid_orgnrs(self) -> None:
        members = synthetic.members()
        assert len(members) == 290 + 21
        orgnrs = [m.orgnr for m in members]
        assert len(set(orgnrs)) == len(orgnrs)
        for orgnr in orgnrs:
            assert normalise_orgnr(orgnr) == orgnr
            assert luhn.is_valid(orgnr.replace("-", ""))
        assert all(m.orgnr.startswith("2321") for m in members if m.kind == "region")
        assert all(m.orgnr.startswith("2120") for m in members if m.kind == "kommun")
        # Fictitious: the real regions and kommuner (232100-, 212000-) are never reused.
        assert not any(o.startswith(("232100", "212000")) for o in orgnrs)

    def test_every_owner_is_a_member_and_every_member_has_a_unit(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        assert {owner for owner, _ in generated} == {m.orgnr for m in synthetic.members()}

    def test_all_290_kommuner_are_covered(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        covered = {k for _, unit in generated for k in unit["kommunkoder"]}
        assert covered == {k.code for k in all_kommuner()}

    def test_units_cover_only_their_owners_county(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        county = {m.orgnr: m.county_code for m in synthetic.members()}
        for owner, unit in generated:
            assert all(k[:2] == county[owner] for k in unit["kommunkoder"])

    def test_names_carry_swedish_letters(self, generated: list[tuple[str, dict[str, Any]]]) -> None:
        text = " ".join(u["name"] + " " + u["mission"] for _, u in generated)
        assert {"å", "ä", "ö"} <= set(text)

    def test_no_synthetic_address_or_phone_points_at_a_person(
        self, generated: list[tuple[str, dict[str, Any]]]
    ) -> None:
        for _owner, unit in generated:
            for address in addresses(unit):
                assert address.endswith(".example")
                assert not looks_like_a_person(address)
            for path in unit["contact_paths"]:
                if path["channel"] == "phone":
                    phone = normalise_phone(path["phone"])
                    assert phone in FICTION_PHONES or phone in SHORT_NUMBERS


class TestSyntheticEvents:
    def test_events_are_unit_changed_payloads_with_stable_ids(self) -> None:
        units = synthetic.generate(400, seed=3)
        events = synthetic.as_events(units)
        assert len(events) == 400
        for event, (owner, _) in zip(events, units, strict=True):
            payload = UnitChangedV1.model_validate(event)
            assert payload.version == 1
            assert payload.status == "active"
            assert payload.owner_orgnr == owner
        assert len({e["unit_id"] for e in events}) == 400
        assert synthetic.as_events(synthetic.generate(400, seed=3)) == events

    def test_events_carry_the_owners_normalised_form(self) -> None:
        units = synthetic.generate(50, seed=3)
        for event, (_owner, unit) in zip(synthetic.as_events(units), units, strict=True):
            stored = UnitCreate.model_validate(unit).model_dump(mode="json")
            assert {k: event[k] for k in stored} == stored

    def test_the_cli_writes_json_lines(self, tmp_path: Path) -> None:
        out = tmp_path / "directory.jsonl"
        assert synthetic.main(["--units", "320", "--out", str(out)]) == 0
        lines = out.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 320
        UnitChangedV1.model_validate(json.loads(lines[0]))
        units_out = tmp_path / "units.jsonl"
        synthetic.main(["--units", "5", "--out", str(units_out), "--format", "units"])
        first = json.loads(units_out.read_text(encoding="utf-8").splitlines()[0])
        UnitCreate.model_validate(first["unit"])


class TestReportsUnderADutyToReport:
    """Issue 22: an LVM report goes to each kommun's adult investigation, an orosanmälan to
    its children-and-family function (or out-of-hours service) and never to an adult one —
    in the demo, in the directory's own validation and in routing."""

    def test_each_kommun_takes_lvm_reports_at_its_adult_investigation(self) -> None:
        for orgnr in (VAXJO, ALVESTA):
            takers = [u for u in load_demo_units()[orgnr] if "lvm_anmalan" in u["referral_kinds"]]
            assert [u["kind"] for u in takers] == ["myndighetsutovning_vuxna"], orgnr

    def test_only_childrens_functions_take_an_orosanmalan(self) -> None:
        takers = [(o, u) for o, u in all_demo_units() if "orosanmalan" in u["referral_kinds"]]
        assert {o for o, _ in takers} == {VAXJO, ALVESTA}
        assert {u["kind"] for _, u in takers} == {"barn_och_familj", "socialjour"}

    def test_the_directory_refuses_an_adult_function_taking_an_orosanmalan(self) -> None:
        (mynd,) = [u for u in load_demo_units()[VAXJO] if u["kind"] == "myndighetsutovning_vuxna"]
        with pytest.raises(ValidationError) as caught:
            UnitCreate.model_validate({**mynd, "referral_kinds": ["orosanmalan"]})
        [error] = caught.value.errors()
        assert (error["loc"], error["type"]) == (
            ("referral_kinds",),
            "not_received_by_this_unit_kind",
        )

    def test_routing_an_orosanmalan_never_falls_back_on_an_adult_intake(self) -> None:
        index = SearchIndex()
        rows = {entry["name"]: replica_row(orgnr, entry) for orgnr, entry in all_demo_units()}
        for row in rows.values():
            index.upsert(row)
        members = {REGION, VAXJO, ALVESTA}
        routes = resolve(
            index, kind=ReferralKind.OROSANMALAN, kommunkod="0764", needs=[], age=8,
            members_serving=members,
        )  # fmt: skip
        assert [r.doc.name for r in routes] == ["Barn och familj Alvesta"]
        # Without a children's function in the kommun: no route at all, not the intake.
        closed = rows["Barn och familj Alvesta"]
        closed.status = "inactive"
        index.upsert(closed)
        routes = resolve(
            index, kind=ReferralKind.OROSANMALAN, kommunkod="0764", needs=[], age=8,
            members_serving=members,
        )  # fmt: skip
        assert routes == []
        lvm = resolve(
            index, kind=ReferralKind.LVM_ANMALAN, kommunkod="0764", needs=[], age=40,
            members_serving=members,
        )  # fmt: skip
        assert lvm[0].doc.name == "Myndighetsutövning vuxna Alvesta"


FIELDS = ("name", "kind", "mission", "interventions", "kommunkoder", "contact_paths",
          "referral_kinds", "target_groups")  # fmt: skip


def replica_row(orgnr: str, entry: dict[str, Any]) -> ReplicaUnit:
    """A demo entry as the directory's replica holds it (active)."""
    fields = {k: entry.get(k, []) for k in FIELDS}
    return ReplicaUnit(
        unit_id=normalise_id(entry["name"]), owner_orgnr=orgnr, status="active", **fields
    )


def normalise_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower())[:64]
