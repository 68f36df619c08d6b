"""The kinds registry: every kind is described once, completely, and every table that
speaks of kinds derives from it (a new kind without an entry somewhere fails here)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from services.consent.codes import PURPOSE_LABELS, Category, Purpose
from services.directory.codes import UnitKind
from services.directory.routing import INTAKE_ORDER, NATURAL_RECEIVERS
from services.referral.details import DETAILS
from services.referral.schemas import ReferralCreate
from shared.config import ConsentSettings, ReferralSettings
from shared.domain.codes import LegalBasis
from shared.domain.kinds import (
    KIND_PATTERN,
    KINDS,
    OTHER_PURPOSES,
    REFERRAL_KIND_LABELS,
    URGENCIES,
    ReferralKind,
    spec,
)
from shared.messaging.events.payloads import ReferralReceivedV1, ReferralSentV1

ALL = list(ReferralKind)


@pytest.mark.parametrize("kind", ALL)
class TestEveryKindIsComplete:
    def test_it_has_a_spec_and_a_details_model(self, kind: ReferralKind) -> None:
        assert KINDS[kind].kind is kind
        assert kind in DETAILS
        assert KINDS[kind].details_field in ReferralCreate.model_fields
        assert ReferralCreate.model_fields[KINDS[kind].details_field].annotation is not None

    def test_its_purpose_and_categories_are_the_consent_services(self, kind: ReferralKind) -> None:
        assert Purpose(KINDS[kind].purpose) in Purpose
        assert PURPOSE_LABELS[KINDS[kind].purpose] == KINDS[kind].purpose_label
        assert {Category(c) for c in KINDS[kind].categories}

    def test_its_legal_bases_exist(self, kind: ReferralKind) -> None:
        assert {LegalBasis(b) for b in KINDS[kind].legal_bases}

    def test_it_has_a_deadline_for_every_urgency(self, kind: ReferralKind) -> None:
        assert set(KINDS[kind].acknowledge_working_days) == set(URGENCIES)
        assert set(ReferralSettings().acknowledge_working_days[kind]) == set(URGENCIES)

    def test_it_has_an_answer_deadline_for_every_urgency(self, kind: ReferralKind) -> None:
        """Accepting or declining once acknowledged: a table per kind, in the settings too,
        never sooner for a less urgent referral."""
        table = KINDS[kind].answer_working_days
        assert set(table) == set(URGENCIES)
        assert ReferralSettings().answer_working_days[kind] == dict(table)
        assert table["normal"] >= table["urgent"] >= table["acute"] >= 0

    def test_the_directory_routes_it_to_unit_kinds_it_knows(self, kind: ReferralKind) -> None:
        assert NATURAL_RECEIVERS[kind]
        assert all(isinstance(u, UnitKind) for u in NATURAL_RECEIVERS[kind])
        assert INTAKE_ORDER[kind]

    def test_the_events_accept_it_and_it_has_a_label(self, kind: ReferralKind) -> None:
        assert re.fullmatch(KIND_PATTERN, kind.value)
        assert REFERRAL_KIND_LABELS[kind]
        received = ReferralReceivedV1.model_json_schema()["properties"]["kind"]["pattern"]
        sent = ReferralSentV1.model_json_schema()["properties"]["kind"]["pattern"]
        assert re.fullmatch(received, kind.value)
        assert re.fullmatch(sent, kind.value)


def test_the_details_blocks_have_distinct_names() -> None:
    fields = [s.details_field for s in KINDS.values()]
    assert len(set(fields)) == len(fields) == len(ReferralKind)


def test_no_pattern_accepts_what_is_not_a_kind() -> None:
    for value in ("sip", "discharge", "kontaktbegaran ", "KONTAKTBEGARAN", ""):
        assert not re.fullmatch(KIND_PATTERN, value)


def test_the_purposes_are_the_kinds_and_the_others() -> None:
    assert set(Purpose) == {s.purpose for s in KINDS.values()} | {p.purpose for p in OTHER_PURPOSES}


def test_the_legal_bases_default_table_derives_from_the_kinds() -> None:
    table = ConsentSettings().legal_basis_purposes
    assert set(table) == set(LegalBasis)
    for kind, s in KINDS.items():
        for basis in LegalBasis:
            assert (s.purpose in table[basis]) == (basis in s.legal_bases), (kind, basis)
    # The table as it was before the registry, but for the reports under a duty to report,
    # which are kinds of their own now (issue 22) instead of riding on kontaktbegäran.
    assert {b: set(p) for b, p in table.items()} == {
        "osl_25_12": {
            "sip",
            "vardkedjeremiss",
            "kontaktbegaran",
            "utskrivningsplanering",
            "vardkedjesamordning",
        },
        "osl_26_9": {
            "sip",
            "vardkedjeremiss",
            "utskrivningsplanering",
            "hvb_underrattelse",
            "vardkedjesamordning",
        },
        "lvm_anmalan": {"lvm_anmalan"},
        "orosanmalan": {"orosanmalan"},
        "nodsituation": {"vardkedjeremiss", "kontaktbegaran", "utskrivningsplanering"},
    }


class TestOneDeadlinePolicy:
    # Monday 7 December 2026; Friday 11 December; the following Monday is the 14th.
    MONDAY = dt.date(2026, 12, 7)

    def test_working_days_by_urgency(self) -> None:
        kb = spec("kontaktbegaran")
        assert kb.acknowledge_by("normal", self.MONDAY, {}) == dt.date(2026, 12, 10)
        assert kb.acknowledge_by("urgent", self.MONDAY, {}) == dt.date(2026, 12, 8)
        assert kb.acknowledge_by("acute", self.MONDAY, {}) == self.MONDAY

    def test_weekends_do_not_count(self) -> None:
        friday = dt.date(2026, 12, 11)
        assert spec("utskrivningsplanering").acknowledge_by("normal", friday, {}) == dt.date(
            2026, 12, 14
        )

    def test_a_member_may_set_its_own_days(self) -> None:
        own = {"kontaktbegaran": {"normal": 1}}
        assert spec("kontaktbegaran").acknowledge_by("normal", self.MONDAY, own) == dt.date(
            2026, 12, 8
        )
        # An urgency the member left out keeps the registry's days.
        assert spec("kontaktbegaran").acknowledge_by("urgent", self.MONDAY, own) == dt.date(
            2026, 12, 8
        )

    def test_the_answer_is_due_working_days_after_the_acknowledgement(self) -> None:
        kb = spec("kontaktbegaran")  # 5/2/0
        assert kb.answer_by("normal", self.MONDAY, {}) == dt.date(2026, 12, 14)
        assert kb.answer_by("urgent", self.MONDAY, {}) == dt.date(2026, 12, 9)
        assert kb.answer_by("acute", self.MONDAY, {}) == self.MONDAY

    def test_holidays_and_eves_do_not_count_for_the_answer(self) -> None:
        # Acknowledged Tuesday 22 December 2026: julafton, juldagen, annandag jul, the
        # weekends, nyårsafton, nyårsdagen and trettondedag jul do not count.
        tuesday = dt.date(2026, 12, 22)
        sip = spec("sip_kallelse")  # 3/1/0
        assert sip.answer_by("urgent", tuesday, {}) == dt.date(2026, 12, 23)
        assert sip.answer_by("normal", tuesday, {}) == dt.date(2026, 12, 29)
        assert spec("vardkedjeremiss").answer_by("normal", tuesday, {}) == dt.date(2027, 1, 12)

    def test_a_member_may_set_its_own_answer_days(self) -> None:
        own = {"kontaktbegaran": {"normal": 1}}
        kb = spec("kontaktbegaran")
        assert kb.answer_by("normal", self.MONDAY, own) == dt.date(2026, 12, 8)
        assert kb.answer_by("urgent", self.MONDAY, own) == dt.date(2026, 12, 9)  # the registry's
        # The acknowledgement's table is another: the member's answer days do not touch it.
        assert kb.acknowledge_by("normal", self.MONDAY, own) == dt.date(2026, 12, 8)
        assert kb.acknowledge_by("normal", self.MONDAY, {}) == dt.date(2026, 12, 10)

    def test_a_day_the_sender_gave_wins(self) -> None:
        given = dt.date(2026, 12, 8)
        own = {"sip_kallelse": {"normal": 10}}
        assert spec("sip_kallelse").answer_by("normal", self.MONDAY, own, given=given) == given

    def test_an_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a valid"):
            spec("remiss")


class TestReportsUnderADutyToReport:
    """An LVM report and an orosanmälan are kinds of their own (issue 22): they travel on
    their legal basis only, an orosanmälan only to a children's function and within hours."""

    def test_they_travel_on_their_own_basis_never_on_consent(self) -> None:
        from shared.domain.kinds import legal_basis_only_purposes

        assert legal_basis_only_purposes() == {"lvm_anmalan", "orosanmalan"}
        assert spec("lvm_anmalan").legal_bases == ("lvm_anmalan",)
        assert spec("orosanmalan").legal_bases == ("orosanmalan",)
        assert "lvm_anmalan" not in spec("kontaktbegaran").legal_bases
        assert "orosanmalan" not in spec("kontaktbegaran").legal_bases

    def test_an_orosanmalan_is_due_within_hours_day_and_night(self) -> None:
        saturday_night = dt.datetime(2026, 12, 12, 23, 30, tzinfo=dt.UTC)
        oros = spec("orosanmalan")
        assert oros.acknowledge_due_at("acute", saturday_night) == saturday_night + dt.timedelta(
            hours=1
        )
        assert oros.acknowledge_due_at("normal", saturday_night) == saturday_night + dt.timedelta(
            hours=24
        )
        assert spec("kontaktbegaran").acknowledge_due_at("acute", saturday_night) is None

    def test_only_childrens_functions_receive_an_orosanmalan(self) -> None:
        assert set(spec("orosanmalan").receiver_unit_kinds) == {"barn_och_familj", "socialjour"}
        assert all(UnitKind(u) for u in spec("orosanmalan").receiver_unit_kinds)
        assert not spec("lvm_anmalan").receiver_unit_kinds
