"""Scenario 11 (reliability.md), consent: fuzzing the sharing decision.

``services/consent/decision.py`` decides, as a pure function, whether A may share these
categories about a person with B for a purpose at a moment. ``tests/unit`` holds its
decision table and the core properties on consents alone (deny by default, an allowance is
covered by its consent, fewer categories, a block or withdrawal never allows, a refusal of
the sender, record order). This goes beyond them, for a fixed budget each:

- no exception for any input: arbitrary ids, units, purposes and categories, moments in
  any UTC offset, lifts in any order, arbitrary legal-basis claims and policies;
- a legal basis is accepted only for the purposes the policy configures for it, with a
  justification, a ground exactly for OSL, the right direction and age — and only with
  the field-and-rule refusal otherwise;
- a decision on a legal basis: protected contact details and a block (unless the basis
  overrides blocks) still win; the allowance is for the asked categories and that day only;
- a refusal or a block of either side, member-wide or of the unit, always wins over a
  covering consent; a lift opens exactly ``[starts_at, ends_at)``; a refusal of other
  purposes or parties changes nothing;
- a consent naming a unit covers that unit only (not its sibling, not the whole member);
- the moment decides, not how it is written: the same instant in any UTC offset gets the
  same answer, and nothing is allowed after the consent's last day (as the consent service
  counts days: its expiry job and validity checks use the UTC date).

Figures (examples, crashes, property failures) go to ``var/security/fuzz.json`` under
``consent``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.consent.codes import (
    Category,
    ConsentStatus,
    Purpose,
    Verdict,
)
from services.consent.decision import (
    BASIS_DIRECTION,
    BlockTerms,
    ConsentTerms,
    Decision,
    LegalBasisClaim,
    Lift,
    Party,
    Policy,
    Question,
    RefusalTerms,
    age_on,
    check_legal_basis,
    decide,
)
from shared.config import ConsentSettings
from shared.domain.calendar import to_local
from shared.domain.codes import OSL_BASES, LegalBasis, OslGround
from shared.domain.kinds import legal_basis_only_purposes
from shared.web.errors import InvalidInput
from tests.conftest import ORG_ALVESTA, ORG_REGION, ORG_VAXJO
from tests.security._support import FuzzLog

EXAMPLES = 400
LEGAL_BASIS_RULES = frozenset(
    {"purpose_not_covered", "missing", "not_under_18", "not_applicable", "wrong_direction"}
)
DEFAULT_POLICY = Policy(
    basis_purposes=ConsentSettings().legal_basis_purposes,
    block_overridden_by=frozenset(ConsentSettings().block_overridden_by),
)


def budget(max_examples: int = EXAMPLES) -> settings:
    """A fixed, repeatable budget: no deadline, no example database, derandomized."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def log() -> Iterator[FuzzLog]:
    fuzz = FuzzLog("consent")
    yield fuzz
    fuzz.write()


# --- strategies ------------------------------------------------------------------------

ORGS = (ORG_REGION, ORG_VAXJO, ORG_ALVESTA)
# A consent never names a purpose reported under a duty to report (issue 22: those travel
# on their legal basis only, and are denied without one), so the consent properties below
# are about the purposes a consent can name.
PURPOSES = [str(p) for p in Purpose if str(p) not in legal_basis_only_purposes()]
CATEGORIES = [str(c) for c in Category]
BASES = [str(b) for b in LegalBasis]
units = st.none() | st.sampled_from(["u1", "u2"]) | st.text(max_size=8)
parties = st.builds(Party, st.sampled_from(ORGS), units)
purposes_any = st.sampled_from(PURPOSES) | st.text(max_size=12)
categories_any = st.sampled_from(CATEGORIES) | st.text(max_size=12)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2035, 12, 31),
    timezones=st.just(dt.UTC),
)
moments = st.builds(lambda instant, tz: instant.astimezone(tz), instants, offsets)
dates = st.dates(min_value=dt.date(2019, 12, 1), max_value=dt.date(2036, 1, 31))


@st.composite
def consents_any(draw: st.DrawFn) -> ConsentTerms:
    start = draw(dates)
    return ConsentTerms(
        id=draw(st.text(min_size=1, max_size=12)),
        status=draw(st.sampled_from([str(s) for s in ConsentStatus])),
        parties=tuple(draw(st.lists(parties, max_size=4))),
        purposes=draw(st.frozensets(purposes_any, max_size=4)),
        categories=draw(st.frozensets(categories_any, max_size=4)),
        valid_from=start,
        # Also an end before the start: the function must not trust its input.
        valid_to=start + dt.timedelta(days=draw(st.integers(-30, 400))),
        protected_identity=draw(st.booleans()),
    )


@st.composite
def lifts(draw: st.DrawFn) -> Lift:
    start = draw(moments)
    return Lift(start, start + dt.timedelta(minutes=draw(st.integers(-600, 20_000))))


blocks_any = st.builds(
    BlockTerms,
    id=st.text(max_size=6),
    party=parties,
    active=st.booleans(),
    lifts=st.lists(lifts(), max_size=3).map(tuple),
)
refusals_any = st.builds(
    RefusalTerms,
    id=st.text(max_size=6),
    parties=st.lists(parties, max_size=3).map(tuple),
    purposes=st.frozensets(purposes_any, max_size=3),
    active=st.booleans(),
)
questions_any = st.builds(
    Question,
    sender=parties,
    recipient=parties,
    purpose=purposes_any,
    categories=st.frozensets(categories_any, max_size=4),
    at=moments,
)
claims_any = st.builds(
    LegalBasisClaim,
    basis=st.sampled_from(BASES) | st.text(max_size=10),
    justification=st.text(max_size=40) | st.sampled_from(["", "   ", "\t\n"]),
    ground=st.none() | st.sampled_from([str(g) for g in OslGround]) | st.text(max_size=10),
)
policies = st.builds(
    Policy,
    basis_purposes=st.dictionaries(
        st.sampled_from(BASES), st.lists(st.sampled_from(PURPOSES), max_size=6)
    ),
    block_overridden_by=st.frozensets(st.sampled_from(BASES)),
)
kinds = st.none() | st.sampled_from(["region", "kommun"])
births = st.none() | st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2035, 1, 1))


def _decide(
    log: FuzzLog,
    name: str,
    q: Question,
    *,
    consents: Sequence[ConsentTerms] = (),
    refusals: Sequence[RefusalTerms] = (),
    blocks: Sequence[BlockTerms] = (),
    policy: Policy = DEFAULT_POLICY,
    legal_basis: LegalBasisClaim | None = None,
    protected: bool = False,
) -> Decision:
    """``decide``, counting the call and any exception (a crash) for ``name``."""
    target = log.target(name)
    try:
        decision = decide(
            q,
            consents=consents,
            refusals=refusals,
            blocks=blocks,
            policy=policy,
            legal_basis=legal_basis,
            protected_identity=protected,
        )
    except Exception as exc:
        target.crashed(exc, repr(q)[:300])
        raise
    target.outcomes[str(decision.verdict)] += 1
    return decision


def _accepts(log: FuzzLog, name: str, claim: LegalBasisClaim, **kw: Any) -> list[str] | None:
    """None if ``check_legal_basis`` accepts; else the rules it names. Other exceptions
    are crashes."""
    target = log.target(name)
    try:
        check_legal_basis(claim, **kw)
    except InvalidInput as exc:
        rules = [e.rule for e in exc.errors or []]
        fields = [e.field for e in exc.errors or []]
        assert rules
        assert set(rules) <= LEGAL_BASIS_RULES, rules
        assert all(f.startswith("legal_basis.") for f in fields), fields
        # The justification is free text (it may name the person): never echoed.
        secret = claim.justification.strip()
        if len(secret) >= 8 and secret not in f"{claim.basis} {kw['question'].purpose}":
            texts = [exc.detail or "", *(e.message for e in exc.errors or [])]
            assert not any(secret in t for t in texts), texts
        target.outcomes["refused"] += 1
        return rules
    except Exception as exc:
        target.crashed(exc, repr(claim)[:300])
        raise
    target.outcomes["accepted"] += 1
    return None


def covering_consent(q: Question, *, exact_units: bool = False) -> ConsentTerms:
    """A consent that covers ``q`` (member-wide parties unless ``exact_units``)."""
    day = q.at.astimezone(dt.UTC).date()
    sides = (
        (q.sender, q.recipient)
        if exact_units
        else (Party(q.sender.orgnr), Party(q.recipient.orgnr))
    )
    return ConsentTerms(
        id="c-covering",
        status="active",
        parties=sides,
        purposes=frozenset({q.purpose}),
        categories=frozenset(q.categories),
        valid_from=day - dt.timedelta(days=10),
        valid_to=day + dt.timedelta(days=10),
    )


questions_between_members = st.builds(
    Question,
    sender=st.builds(Party, st.just(ORG_REGION), st.none() | st.sampled_from(["u1", "u2"])),
    recipient=st.builds(Party, st.just(ORG_VAXJO), st.none() | st.sampled_from(["u1", "u2"])),
    purpose=st.sampled_from(PURPOSES),
    categories=st.frozensets(
        st.sampled_from([c for c in CATEGORIES if c != Category.CONTACT_DETAILS]), min_size=1
    ),
    at=moments,
)


# --- properties ------------------------------------------------------------------------


class TestNoInputCrashes:
    def test_decide_answers_for_any_input(self, log: FuzzLog) -> None:
        name = "decide.any_input"

        @budget(EXAMPLES * 2)
        @given(
            q=questions_any,
            consents=st.lists(consents_any(), max_size=4),
            refusals=st.lists(refusals_any, max_size=3),
            blocks=st.lists(blocks_any, max_size=3),
            policy=policies,
            claim=st.none() | claims_any,
            protected=st.booleans(),
        )
        def prop(
            q: Question,
            consents: list[ConsentTerms],
            refusals: list[RefusalTerms],
            blocks: list[BlockTerms],
            policy: Policy,
            claim: LegalBasisClaim | None,
            protected: bool,
        ) -> None:
            log.target(name).examples += 1
            d = _decide(
                log,
                name,
                q,
                consents=consents,
                refusals=refusals,
                blocks=blocks,
                policy=policy,
                legal_basis=claim,
                protected=protected,
            )
            assert d.verdict in set(Verdict)
            assert d.reasons
            assert all(r.code and r.text for r in d.reasons)
            if d.allowed:
                assert (d.consent_id is None) != (d.legal_basis is None)
                assert d.categories == q.categories
                assert d.valid_until is not None
                assert d.consent_id is None or d.consent_id in {c.id for c in consents}
            else:
                assert d.consent_id is None
                assert d.legal_basis is None
                assert not d.categories

        log.run(name, prop)

    def test_legal_basis_check_refuses_only_with_field_and_rule(self, log: FuzzLog) -> None:
        name = "check_legal_basis.any_input"

        @budget(EXAMPLES * 2)
        @given(
            claim=claims_any,
            q=questions_any,
            policy=policies,
            birth=births,
            sender_kind=kinds,
            recipient_kind=kinds,
        )
        def prop(
            claim: LegalBasisClaim,
            q: Question,
            policy: Policy,
            birth: dt.date | None,
            sender_kind: str | None,
            recipient_kind: str | None,
        ) -> None:
            log.target(name).examples += 1
            _accepts(
                log,
                name,
                claim,
                question=q,
                policy=policy,
                birth_date=birth,
                sender_kind=sender_kind,
                recipient_kind=recipient_kind,
            )

        log.run(name, prop)


@st.composite
def plausible_claims(draw: st.DrawFn) -> LegalBasisClaim:
    """Claims that often pass: a known basis, a ground exactly for OSL, a justification
    (sometimes blank), now and then one thing wrong."""
    basis = draw(st.sampled_from(BASES))
    ground = draw(st.sampled_from([str(g) for g in OslGround])) if basis in OSL_BASES else None
    if draw(st.integers(0, 5)) == 0:
        ground = draw(st.none() | st.sampled_from([str(g) for g in OslGround]))
    justification = draw(st.sampled_from(["Behövs för vården.", "Akut fara.", " "]))
    return LegalBasisClaim(basis, justification, ground)


class TestALegalBasisCoversOnlyWhatItMay:
    def test_an_accepted_claim_meets_every_condition(self, log: FuzzLog) -> None:
        name = "check_legal_basis.accepted_means_allowed"

        @budget()
        @given(
            claim=plausible_claims() | claims_any,
            q=questions_between_members,
            policy=st.just(DEFAULT_POLICY) | policies,
            birth=births,
            sender_kind=kinds,
            recipient_kind=kinds,
        )
        def prop(
            claim: LegalBasisClaim,
            q: Question,
            policy: Policy,
            birth: dt.date | None,
            sender_kind: str | None,
            recipient_kind: str | None,
        ) -> None:
            log.target(name).examples += 1
            rules = _accepts(
                log,
                name,
                claim,
                question=q,
                policy=policy,
                birth_date=birth,
                sender_kind=sender_kind,
                recipient_kind=recipient_kind,
            )
            configured = set(policy.basis_purposes.get(claim.basis, ()))
            if q.purpose not in configured:
                assert rules is not None
                assert "purpose_not_covered" in rules
            if rules is not None:
                return
            assert q.purpose in configured
            assert claim.justification.strip()
            assert (claim.basis in OSL_BASES) == (claim.ground is not None)
            if claim.ground == OslGround.UNDER_18 and birth is not None:
                assert age_on(birth, q.at.astimezone(dt.UTC).date()) < 18
            want_sender, want_recipient = BASIS_DIRECTION.get(claim.basis, (None, None))
            assert not (want_sender and sender_kind and want_sender != sender_kind)
            assert not (want_recipient and recipient_kind and want_recipient != recipient_kind)

        log.run(name, prop)

    def test_a_decision_on_a_basis_is_for_that_day_and_yields_to_protection_and_blocks(
        self, log: FuzzLog
    ) -> None:
        name = "decide.on_a_legal_basis"

        @budget()
        @given(
            q=questions_any,
            claim=claims_any,
            blocks=st.lists(blocks_any, max_size=3),
            consents=st.lists(consents_any(), max_size=2),
            refusals=st.lists(refusals_any, max_size=2),
            protected=st.booleans(),
        )
        def prop(
            q: Question,
            claim: LegalBasisClaim,
            blocks: list[BlockTerms],
            consents: list[ConsentTerms],
            refusals: list[RefusalTerms],
            protected: bool,
        ) -> None:
            log.target(name).examples += 1
            d = _decide(
                log,
                name,
                q,
                consents=consents,
                refusals=refusals,
                blocks=blocks,
                legal_basis=claim,
                protected=protected,
            )
            shielded = (protected or any(c.protected_identity for c in consents)) and (
                Category.CONTACT_DETAILS in q.categories
            )
            blocked = any(b.applies(q.recipient.orgnr, q.recipient.unit_id, q.at) for b in blocks)
            overrides = claim.basis in DEFAULT_POLICY.block_overridden_by
            assert d.allowed == (not shielded and (not blocked or overrides))
            if d.allowed:
                assert d.legal_basis == claim.basis
                assert d.consent_id is None
                assert d.categories == q.categories
                assert d.valid_until == to_local(q.at).date()  # the day in Sweden
            elif blocked and not shielded:
                assert [r.code for r in d.reasons] == ["blocked"]

        log.run(name, prop)


class TestRefusalsAndBlocksWinOverAConsent:
    def test_a_refusal_of_either_side_wins(self, log: FuzzLog) -> None:
        name = "decide.refusal_wins"

        @budget()
        @given(
            q=questions_between_members,
            side=st.sampled_from(["sender", "recipient"]),
            member_wide=st.booleans(),
            every_purpose=st.booleans(),
            other_purposes=st.frozensets(st.sampled_from(PURPOSES)),
        )
        def prop(
            q: Question,
            side: str,
            member_wide: bool,
            every_purpose: bool,
            other_purposes: frozenset[str],
        ) -> None:
            log.target(name).examples += 1
            consent = covering_consent(q)
            assert _decide(log, name, q, consents=[consent]).allowed
            who: Party = getattr(q, side)
            named = Party(who.orgnr) if member_wide else who
            purposes = frozenset() if every_purpose else other_purposes | {q.purpose}
            refusal = RefusalTerms("r", (named,), purposes)
            d = _decide(log, name, q, consents=[consent], refusals=[refusal])
            assert d.verdict is Verdict.REFUSED
            # A refusal of other purposes only, of a third member, or revoked: no effect.
            for harmless in (
                RefusalTerms("r2", (named,), other_purposes - {q.purpose} or frozenset({"x"})),
                RefusalTerms("r3", (Party(ORG_ALVESTA),), frozenset()),
                dataclasses.replace(refusal, active=False),
            ):
                assert _decide(log, name, q, consents=[consent], refusals=[harmless]).allowed

        log.run(name, prop)

    def test_a_block_of_the_recipient_wins_except_inside_a_lift(self, log: FuzzLog) -> None:
        name = "decide.block_wins"

        @budget()
        @given(
            q=questions_between_members,
            member_wide=st.booleans(),
            before=st.integers(0, 10_000),
            after=st.integers(0, 10_000),
        )
        def prop(q: Question, member_wide: bool, before: int, after: int) -> None:
            log.target(name).examples += 1
            consent = covering_consent(q)
            who = Party(q.recipient.orgnr) if member_wide else q.recipient
            block = BlockTerms("b", who)
            blocked = _decide(log, name, q, consents=[consent], blocks=[block])
            assert blocked.verdict is Verdict.DENIED
            assert [r.code for r in blocked.reasons] == ["blocked"]
            # A lift opens [starts_at, ends_at): inside it the consent applies again ...
            start = q.at - dt.timedelta(minutes=before)
            lifted = dataclasses.replace(
                block, lifts=(Lift(start, q.at + dt.timedelta(minutes=after + 1)),)
            )
            assert _decide(log, name, q, consents=[consent], blocks=[lifted]).allowed
            # ... and at its end, or before its start, the block is back.
            ended = dataclasses.replace(block, lifts=(Lift(start, q.at),))
            assert not _decide(log, name, q, consents=[consent], blocks=[ended]).allowed
            later = dataclasses.replace(
                block, lifts=(Lift(q.at + dt.timedelta(minutes=1), q.at + dt.timedelta(days=1)),)
            )
            assert not _decide(log, name, q, consents=[consent], blocks=[later]).allowed
            # A block of the sender, or of another unit of the recipient, does not apply.
            other = Party(q.recipient.orgnr, "not-" + str(q.recipient.unit_id))
            for harmless in (BlockTerms("s", Party(q.sender.orgnr, q.sender.unit_id)),):
                assert _decide(log, name, q, consents=[consent], blocks=[harmless]).allowed
            if q.recipient.unit_id is not None:
                assert _decide(
                    log, name, q, consents=[consent], blocks=[BlockTerms("o", other)]
                ).allowed

        log.run(name, prop)


class TestAConsentCoversWhatItNamesOnly:
    def test_a_unit_consent_covers_that_unit_only(self, log: FuzzLog) -> None:
        name = "decide.unit_scope"

        @budget()
        @given(q=questions_between_members, unit=st.sampled_from(["u1", "u2"]))
        def prop(q: Question, unit: str) -> None:
            log.target(name).examples += 1
            asked = dataclasses.replace(q, recipient=Party(q.recipient.orgnr, unit))
            consent = covering_consent(asked, exact_units=True)
            assert _decide(log, name, asked, consents=[consent]).allowed
            for elsewhere in (Party(q.recipient.orgnr, "u3"), Party(q.recipient.orgnr)):
                moved = dataclasses.replace(asked, recipient=elsewhere)
                assert not _decide(log, name, moved, consents=[consent]).allowed

        log.run(name, prop)

    def test_nothing_outside_the_named_categories_purpose_or_parties(self, log: FuzzLog) -> None:
        name = "decide.consent_scope"

        @budget()
        @given(
            q=questions_between_members,
            extra_category=st.sampled_from(CATEGORIES),
            other_purpose=st.sampled_from(PURPOSES),
        )
        def prop(q: Question, extra_category: str, other_purpose: str) -> None:
            log.target(name).examples += 1
            consent = covering_consent(q)
            assert _decide(log, name, q, consents=[consent]).allowed
            more = dataclasses.replace(q, categories=q.categories | {extra_category})
            assert _decide(log, name, more, consents=[consent]).allowed == (
                extra_category in q.categories
            )
            other = dataclasses.replace(q, purpose=other_purpose)
            assert _decide(log, name, other, consents=[consent]).allowed == (
                other_purpose == q.purpose
            )
            third = dataclasses.replace(q, recipient=Party(ORG_ALVESTA))
            assert not _decide(log, name, third, consents=[consent]).allowed

        log.run(name, prop)


class TestTheMomentDecidesNotItsNotation:
    def test_the_same_instant_in_any_offset_gets_the_same_answer(self, log: FuzzLog) -> None:
        name = "decide.offset_invariance"

        @budget()
        @given(
            q=questions_between_members,
            shift_days=st.integers(-12, 12),
            offset=offsets,
            basis=st.none() | st.sampled_from(BASES),
        )
        def prop(q: Question, shift_days: int, offset: dt.tzinfo, basis: str | None) -> None:
            log.target(name).examples += 1
            consent = covering_consent(q)
            at = q.at + dt.timedelta(days=shift_days)  # near or across the validity's ends
            claim = LegalBasisClaim(basis, "Behövs.") if basis else None
            answers = {}
            for tz in (dt.UTC, offset):
                written = at.astimezone(tz)
                d = _decide(
                    log,
                    name,
                    dataclasses.replace(q, at=written),
                    consents=[consent],
                    legal_basis=claim,
                )
                answers[written.isoformat()] = (str(d.verdict), d.valid_until)
            assert len(set(answers.values())) == 1, f"one instant, two answers: {answers}"

        log.run(name, prop)

    def test_nothing_is_allowed_after_the_last_day_of_the_consent(self, log: FuzzLog) -> None:
        name = "decide.never_after_validity"

        @budget()
        @given(q=questions_between_members, minutes_after=st.integers(0, 3 * 24 * 60))
        def prop(q: Question, minutes_after: int) -> None:
            log.target(name).examples += 1
            consent = covering_consent(q)
            # The first instant after the last day, as the consent service counts days.
            end = dt.datetime.combine(consent.valid_to + dt.timedelta(days=1), dt.time(), dt.UTC)
            at = (end + dt.timedelta(minutes=minutes_after)).astimezone(q.at.tzinfo)
            late = dataclasses.replace(q, at=at)
            assert not _decide(log, name, late, consents=[consent]).allowed, at.isoformat()

        log.run(name, prop)
