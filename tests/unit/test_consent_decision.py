"""The sharing decision as a pure function: a decision table over consent × refusal ×
block × legal basis × time × categories, and properties that hold for any input
(hypothesis): deny by default, an allowance is always covered by its basis, fewer
categories never turn an allowance into a denial, a block or withdrawal never allows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.consent.codes import Category, Purpose, Verdict
from services.consent.decision import (
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
from shared.web.errors import InvalidInput

REGION, VAXJO, ALVESTA = "232100-0065", "212000-0647", "212000-0613"
DAY = dt.date(2026, 12, 1)
NOON = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
POLICY = Policy(
    basis_purposes=ConsentSettings().legal_basis_purposes,
    block_overridden_by=frozenset(ConsentSettings().block_overridden_by),
)
SIP = ConsentTerms(
    id="c-sip",
    status="active",
    parties=(Party(VAXJO), Party(REGION)),
    purposes=frozenset({"sip"}),
    categories=frozenset({"needs_summary", "plan"}),
    valid_from=DAY,
    valid_to=DAY + dt.timedelta(days=90),
)
ASK = Question(
    sender=Party(VAXJO),
    recipient=Party(REGION),
    purpose="sip",
    categories=frozenset({"plan"}),
    at=NOON,
)
REFUSAL = RefusalTerms(id="r-1", parties=(Party(REGION),), purposes=frozenset({"sip"}))
BLOCK = BlockTerms(id="b-1", party=Party(REGION))
LIFTED = BlockTerms(
    id="b-2",
    party=Party(REGION),
    lifts=(Lift(NOON - dt.timedelta(hours=1), NOON + dt.timedelta(days=2)),),
)
LVM = LegalBasisClaim("lvm_anmalan", "Anmälan enligt 6 § LVM.")
EMERGENCY = LegalBasisClaim("nodsituation", "Akut fara för livet.")
OSL = LegalBasisClaim("osl_26_9", "Behövs för vården.", "persistent_misuse")


def run(
    *,
    consents: tuple[ConsentTerms, ...] = (),
    refusals: tuple[RefusalTerms, ...] = (),
    blocks: tuple[BlockTerms, ...] = (),
    basis: LegalBasisClaim | None = None,
    ask: Question = ASK,
    protected: bool = False,
) -> Decision:
    return decide(
        ask,
        consents=consents,
        refusals=refusals,
        blocks=blocks,
        policy=POLICY,
        legal_basis=basis,
        protected_identity=protected,
    )


def later(days: int) -> Question:
    return dataclasses.replace(ASK, at=NOON + dt.timedelta(days=days))


def withdrawn(c: ConsentTerms) -> ConsentTerms:
    return dataclasses.replace(c, status="withdrawn")


# name, inputs, expected verdict, expected first reason code
TABLE: list[tuple[str, dict[str, object], Verdict, str]] = [
    ("nothing at all", {}, Verdict.DENIED, "no_consent"),
    ("a covering consent", {"consents": (SIP,)}, Verdict.ALLOWED, "consent"),
    ("withdrawn consent", {"consents": (withdrawn(SIP),)}, Verdict.DENIED, "consent_withdrawn"),
    ("last valid day", {"consents": (SIP,), "ask": later(90)}, Verdict.ALLOWED, "consent"),
    (
        "day after the end",
        {"consents": (SIP,), "ask": later(91)},
        Verdict.DENIED,
        "consent_expired",
    ),
    (
        "before the start",
        {"consents": (SIP,), "ask": later(-1)},
        Verdict.DENIED,
        "consent_not_yet_valid",
    ),
    (
        "a category beyond",
        {
            "consents": (SIP,),
            "ask": dataclasses.replace(ASK, categories=frozenset({"plan", "diagnoses"})),
        },
        Verdict.DENIED,
        "categories_not_covered",
    ),
    (
        "another purpose",
        {"consents": (SIP,), "ask": dataclasses.replace(ASK, purpose="vardkedjeremiss")},
        Verdict.DENIED,
        "purpose_not_covered",
    ),
    (
        "a member not named",
        {"consents": (SIP,), "ask": dataclasses.replace(ASK, recipient=Party(ALVESTA))},
        Verdict.DENIED,
        "party_not_covered",
    ),
    (
        "consent and refusal",
        {"consents": (SIP,), "refusals": (REFUSAL,)},
        Verdict.REFUSED,
        "refused",
    ),
    (
        "refusal of another purpose",
        {
            "consents": (SIP,),
            "refusals": (dataclasses.replace(REFUSAL, purposes=frozenset({"kontaktbegaran"})),),
        },
        Verdict.ALLOWED,
        "consent",
    ),
    (
        "revoked refusal",
        {"consents": (SIP,), "refusals": (dataclasses.replace(REFUSAL, active=False),)},
        Verdict.ALLOWED,
        "consent",
    ),
    ("consent and block", {"consents": (SIP,), "blocks": (BLOCK,)}, Verdict.DENIED, "blocked"),
    ("block lifted now", {"consents": (SIP,), "blocks": (LIFTED,)}, Verdict.ALLOWED, "consent"),
    (
        "lift over",
        {"consents": (SIP,), "blocks": (LIFTED,), "ask": later(2)},
        Verdict.DENIED,
        "blocked",
    ),
    (
        "block of another unit",
        {"consents": (SIP,), "blocks": (BlockTerms("b-3", Party(REGION, "akut")),)},
        Verdict.ALLOWED,
        "consent",
    ),
    (
        "block and refusal",
        {"consents": (SIP,), "blocks": (BLOCK,), "refusals": (REFUSAL,)},
        Verdict.DENIED,
        "blocked",
    ),
    ("OSL without consent", {"basis": OSL}, Verdict.ALLOWED, "legal_basis"),
    (
        "OSL despite a refusal",
        {"basis": OSL, "refusals": (REFUSAL,)},
        Verdict.ALLOWED,
        "legal_basis",
    ),
    ("OSL and a block", {"basis": OSL, "blocks": (BLOCK,)}, Verdict.DENIED, "blocked"),
    (
        "emergency despite a block",
        {
            "basis": EMERGENCY,
            "blocks": (BLOCK,),
            "ask": dataclasses.replace(ASK, purpose="vardkedjeremiss"),
        },
        Verdict.ALLOWED,
        "legal_basis",
    ),
    (
        "LVM report despite a block",
        {
            "basis": LVM,
            "blocks": (BLOCK,),
            "ask": dataclasses.replace(ASK, purpose="kontaktbegaran"),
        },
        Verdict.ALLOWED,
        "legal_basis",
    ),
    (
        "protected identity, no contact details",
        {"consents": (SIP,), "protected": True},
        Verdict.ALLOWED,
        "consent",
    ),
    (
        "protected identity, contact details",
        {
            "consents": (dataclasses.replace(SIP, categories=frozenset(Category)),),
            "protected": True,
            "ask": dataclasses.replace(ASK, categories=frozenset({"contact_details"})),
        },
        Verdict.DENIED,
        "protected_identity",
    ),
    (
        "protected identity from a copy, even with a legal basis",
        {
            "consents": (dataclasses.replace(SIP, protected_identity=True),),
            "basis": OSL,
            "ask": dataclasses.replace(ASK, categories=frozenset({"contact_details"})),
        },
        Verdict.DENIED,
        "protected_identity",
    ),
    (
        "a withdrawn and a covering consent",
        {"consents": (withdrawn(SIP), dataclasses.replace(SIP, id="c-2"))},
        Verdict.ALLOWED,
        "consent",
    ),
    (
        "unit consent, unit asked",
        {
            "consents": (
                dataclasses.replace(SIP, parties=(Party(VAXJO), Party(REGION, "beroende"))),
            ),
            "ask": dataclasses.replace(ASK, recipient=Party(REGION, "beroende")),
        },
        Verdict.ALLOWED,
        "consent",
    ),
    (
        "unit consent, whole member asked",
        {
            "consents": (
                dataclasses.replace(SIP, parties=(Party(VAXJO), Party(REGION, "beroende"))),
            )
        },
        Verdict.DENIED,
        "party_not_covered",
    ),
]


class TestDecisionTable:
    @pytest.mark.parametrize(
        ("name", "inputs", "verdict", "code"), TABLE, ids=[r[0] for r in TABLE]
    )
    def test_row(self, name: str, inputs: dict[str, object], verdict: Verdict, code: str) -> None:
        decision = run(**inputs)  # type: ignore[arg-type]
        assert decision.verdict is verdict
        assert decision.reasons[0].code == code
        assert all(r.text for r in decision.reasons)
        if decision.allowed:
            assert decision.categories == inputs.get("ask", ASK).categories  # type: ignore[union-attr]
            assert decision.valid_until is not None
        else:
            assert decision.consent_id is None
            assert decision.legal_basis is None

    def test_the_allowance_names_the_consent_that_lasts_longest(self) -> None:
        longer = dataclasses.replace(
            SIP, id="c-long", valid_to=SIP.valid_to + dt.timedelta(days=30)
        )
        decision = run(consents=(SIP, longer))
        assert (decision.consent_id, decision.valid_until) == ("c-long", longer.valid_to)

    @pytest.mark.parametrize(
        ("consent", "refusal", "block", "basis", "days", "categories"),
        list(
            itertools.product(
                ("none", "covering", "withdrawn"),
                ("none", "recipient", "other_purpose"),
                ("none", "recipient", "lifted"),
                ("none", "osl", "emergency"),
                (0, 91),
                ("within", "beyond"),
            )
        ),
    )
    def test_the_whole_product(
        self, consent: str, refusal: str, block: str, basis: str, days: int, categories: str
    ) -> None:
        """Every combination, against the rules written as a table of precedence."""
        ask = dataclasses.replace(
            later(days),
            purpose="vardkedjeremiss" if basis == "emergency" else "sip",
            categories=frozenset({"plan"} if categories == "within" else {"plan", "diagnoses"}),
        )
        consents = {
            "none": (),
            "covering": (dataclasses.replace(SIP, purposes=frozenset({"sip", "vardkedjeremiss"})),),
            "withdrawn": (withdrawn(SIP),),
        }[consent]
        refusals = {
            "none": (),
            "recipient": (dataclasses.replace(REFUSAL, purposes=frozenset()),),
            "other_purpose": (
                dataclasses.replace(REFUSAL, purposes=frozenset({"kontaktbegaran"})),
            ),
        }[refusal]
        lifted_now = dataclasses.replace(
            LIFTED,
            lifts=(Lift(ask.at - dt.timedelta(hours=1), ask.at + dt.timedelta(hours=1)),),
        )
        blocks = {"none": (), "recipient": (BLOCK,), "lifted": (lifted_now,)}[block]
        claim = {"none": None, "osl": OSL, "emergency": EMERGENCY}[basis]

        decision = run(consents=consents, refusals=refusals, blocks=blocks, basis=claim, ask=ask)

        blocked = block == "recipient"
        if claim is not None:
            expected = Verdict.DENIED if blocked and basis == "osl" else Verdict.ALLOWED
        elif blocked:
            expected = Verdict.DENIED
        elif refusal == "recipient":
            expected = Verdict.REFUSED
        elif consent == "covering" and days == 0 and categories == "within":
            expected = Verdict.ALLOWED
        else:
            expected = Verdict.DENIED
        assert decision.verdict is expected


class TestLegalBasisRules:
    def _check(self, claim: LegalBasisClaim, **kw: object) -> list[tuple[str, str]]:
        args: dict[str, object] = {
            "question": ASK,
            "policy": POLICY,
            "birth_date": dt.date(1980, 1, 1),
            "sender_kind": "kommun",
            "recipient_kind": None,
            **kw,
        }
        try:
            check_legal_basis(claim, **args)  # type: ignore[arg-type]
        except InvalidInput as exc:
            return [(e.field, e.rule) for e in exc.errors or []]
        return []

    def test_a_good_osl_claim(self) -> None:
        assert self._check(OSL) == []

    def test_purposes_come_from_the_configured_table(self) -> None:
        assert self._check(LVM) == [
            ("legal_basis.basis", "purpose_not_covered"),
            ("legal_basis.basis", "wrong_direction"),
        ]
        wide = Policy({"lvm_anmalan": ["sip"]}, frozenset())
        assert self._check(LVM, policy=wide, sender_kind="region") == []
        assert self._check(OSL, policy=wide) == [("legal_basis.basis", "purpose_not_covered")]

    def test_under_18_is_checked_against_the_birth_date(self) -> None:
        claim = dataclasses.replace(OSL, ground="under_18")
        day = ASK.at.date()
        seventeen = day.replace(year=day.year - 17)
        eighteen = day.replace(year=day.year - 18)
        assert self._check(claim, birth_date=seventeen) == []
        assert self._check(claim, birth_date=eighteen) == [("legal_basis.ground", "not_under_18")]
        assert age_on(dt.date(2008, 2, 29), dt.date(2026, 2, 28)) == 17

    def test_direction_is_known_from_the_own_member_side(self) -> None:
        wrong = LegalBasisClaim("osl_25_12", "x", "persistent_misuse")
        assert self._check(wrong) == [("legal_basis.basis", "wrong_direction")]
        assert self._check(wrong, sender_kind=None, recipient_kind="kommun") == []
        assert self._check(wrong, sender_kind=None, recipient_kind="region") == [
            ("legal_basis.basis", "wrong_direction")
        ]

    def test_a_blank_justification(self) -> None:
        assert self._check(dataclasses.replace(OSL, justification="  ")) == [
            ("legal_basis.justification", "missing")
        ]


# --- properties --------------------------------------------------------------------------

ORGS = (REGION, VAXJO, ALVESTA)
parties = st.builds(Party, st.sampled_from(ORGS), st.sampled_from((None, "u1", "u2")))
purposes = st.frozensets(st.sampled_from([str(p) for p in Purpose]), min_size=1)
categories = st.frozensets(st.sampled_from([str(c) for c in Category]), min_size=1)
days = st.integers(min_value=-40, max_value=40)
moments = days.map(lambda d: NOON + dt.timedelta(days=d, minutes=d * 37))


@st.composite
def consents(draw: st.DrawFn) -> ConsentTerms:
    start = DAY + dt.timedelta(days=draw(days))
    return ConsentTerms(
        id=f"c-{draw(st.integers(0, 10_000))}",
        status=draw(st.sampled_from(("active", "active", "withdrawn", "expired", "superseded"))),
        parties=tuple(draw(st.lists(parties, min_size=1, max_size=4))),
        purposes=draw(purposes),
        categories=draw(categories),
        valid_from=start,
        valid_to=start + dt.timedelta(days=draw(st.integers(0, 60))),
        protected_identity=draw(st.booleans()),
    )


@st.composite
def blocks(draw: st.DrawFn) -> BlockTerms:
    lifts = []
    for start in draw(st.lists(moments, max_size=2)):
        lifts.append(Lift(start, start + dt.timedelta(days=draw(st.integers(1, 7)))))
    return BlockTerms(id="b", party=draw(parties), active=draw(st.booleans()), lifts=tuple(lifts))


refusals = st.builds(
    RefusalTerms,
    id=st.just("r"),
    parties=st.lists(parties, min_size=1, max_size=3).map(tuple),
    purposes=st.frozensets(st.sampled_from([str(p) for p in Purpose])),
    active=st.booleans(),
)


@st.composite
def questions(draw: st.DrawFn) -> Question:
    sender = draw(parties)
    recipient = draw(parties.filter(lambda p: p.orgnr != sender.orgnr))
    return Question(
        sender=sender,
        recipient=recipient,
        purpose=draw(st.sampled_from([str(p) for p in Purpose])),
        categories=draw(categories),
        at=draw(moments),
    )


world = st.fixed_dictionaries(
    {
        # Ids are unique, as stored consents' are.
        "consents": st.lists(consents(), max_size=4, unique_by=lambda c: c.id).map(tuple),
        "refusals": st.lists(refusals, max_size=2).map(tuple),
        "blocks": st.lists(blocks(), max_size=2).map(tuple),
        "protected": st.booleans(),
    }
)


def covers(c: ConsentTerms, q: Question) -> bool:
    return (
        c.status == "active"
        and c.valid_from <= q.at.date() <= c.valid_to
        and any(p.covers(q.sender.orgnr, q.sender.unit_id) for p in c.parties)
        and any(p.covers(q.recipient.orgnr, q.recipient.unit_id) for p in c.parties)
        and q.purpose in c.purposes
        and q.categories <= c.categories
    )


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(q=questions(), w=world)
    def test_deny_by_default(self, q: Question, w: dict[str, object]) -> None:
        decision = run(ask=q, refusals=w["refusals"], blocks=w["blocks"])  # type: ignore[arg-type]
        assert not decision.allowed

    @settings(max_examples=400, deadline=None)
    @given(q=questions(), w=world)
    def test_an_allowance_is_covered_by_its_consent_and_nothing_stands_in_the_way(
        self, q: Question, w: dict[str, object]
    ) -> None:
        decision = run(ask=q, **w)  # type: ignore[arg-type]
        if not decision.allowed:
            return
        [basis] = [c for c in w["consents"] if c.id == decision.consent_id]  # type: ignore[attr-defined]
        assert covers(basis, q)
        assert decision.categories == q.categories
        assert decision.valid_until == basis.valid_to >= q.at.date()
        assert not any(
            b.applies(q.recipient.orgnr, q.recipient.unit_id, q.at)
            for b in w["blocks"]  # type: ignore[attr-defined]
        )
        assert not (w["protected"] or any(c.protected_identity for c in w["consents"])) or (  # type: ignore[attr-defined]
            "contact_details" not in q.categories
        )

    @settings(max_examples=300, deadline=None)
    @given(q=questions(), w=world, data=st.data())
    def test_fewer_categories_never_turn_an_allowance_into_a_denial(
        self, q: Question, w: dict[str, object], data: st.DataObject
    ) -> None:
        if not run(ask=q, **w).allowed:  # type: ignore[arg-type]
            return
        fewer = data.draw(st.frozensets(st.sampled_from(sorted(q.categories)), min_size=1))
        assert run(ask=dataclasses.replace(q, categories=fewer), **w).allowed  # type: ignore[arg-type]

    @settings(max_examples=300, deadline=None)
    @given(q=questions(), w=world)
    def test_blocking_the_recipient_or_withdrawing_every_consent_never_allows(
        self, q: Question, w: dict[str, object]
    ) -> None:
        block = BlockTerms("b-new", q.recipient)
        blocked = {**w, "blocks": (*w["blocks"], block)}  # type: ignore[misc]
        assert not run(ask=q, **blocked).allowed  # type: ignore[arg-type]
        gone = {**w, "consents": tuple(withdrawn(c) for c in w["consents"])}  # type: ignore[attr-defined]
        assert not run(ask=q, **gone).allowed  # type: ignore[arg-type]

    @settings(max_examples=300, deadline=None)
    @given(q=questions(), w=world)
    def test_a_refusal_of_either_side_for_the_purpose_is_never_allowed(
        self, q: Question, w: dict[str, object]
    ) -> None:
        refusal = RefusalTerms("r-new", (q.sender,), frozenset())
        refused = {**w, "refusals": (*w["refusals"], refusal)}  # type: ignore[misc]
        assert run(ask=q, **refused).verdict is not Verdict.ALLOWED  # type: ignore[arg-type]

    @settings(max_examples=200, deadline=None)
    @given(q=questions(), w=world)
    def test_the_answer_does_not_depend_on_the_order_of_the_records(
        self, q: Question, w: dict[str, object]
    ) -> None:
        forward = run(ask=q, **w)  # type: ignore[arg-type]
        backward = run(
            ask=q,
            consents=tuple(reversed(w["consents"])),  # type: ignore[call-overload]
            refusals=tuple(reversed(w["refusals"])),  # type: ignore[call-overload]
            blocks=tuple(reversed(w["blocks"])),  # type: ignore[call-overload]
            protected=w["protected"],  # type: ignore[arg-type]
        )
        assert (forward.verdict, forward.valid_until) == (backward.verdict, backward.valid_until)


def narrowed(c: ConsentTerms, *gone: str) -> ConsentTerms:
    """``c`` after the person withdrew the purposes ``gone`` and kept the rest; withdrawing
    the last purposes in force withdraws the whole consent (as the consent service does)."""
    kept = c.purposes - set(gone)
    if not kept:
        return withdrawn(c)
    return dataclasses.replace(
        c, purposes=kept, withdrawn_purposes=c.withdrawn_purposes | set(gone)
    )


JOINT = ConsentTerms(
    id="c-joint",
    status="active",
    parties=(Party(VAXJO), Party(REGION)),
    purposes=frozenset({"sip", "kontaktbegaran"}),
    categories=frozenset({"contact_details", "needs_summary", "plan"}),
    valid_from=DAY,
    valid_to=DAY + dt.timedelta(days=90),
)
KONTAKT = Question(
    sender=Party(REGION),
    recipient=Party(VAXJO),
    purpose="kontaktbegaran",
    categories=frozenset({"contact_details", "needs_summary"}),
    at=NOON,
)


class TestAPartialWithdrawal:
    """The person declines joint planning (SIP) but not the kontaktbegäran on the same
    consent: "att avstå från gemensam planering behöver inte innebära att individen tackar
    nej till insatser"."""

    def test_the_withdrawn_purpose_is_refused_and_named_as_withdrawn(self) -> None:
        decision = run(consents=(narrowed(JOINT, "sip"),))
        assert decision.verdict is Verdict.DENIED
        [reason] = decision.reasons
        assert reason.code == "purpose_withdrawn"
        assert "återkallat" in reason.text
        assert "samordnad individuell plan" in reason.text

    def test_the_kept_purpose_is_still_allowed_on_the_same_consent(self) -> None:
        decision = run(consents=(narrowed(JOINT, "sip"),), ask=KONTAKT)
        assert decision.allowed
        assert decision.consent_id == JOINT.id
        assert decision.valid_until == JOINT.valid_to

    def test_a_purpose_never_given_is_still_named_as_not_covered(self) -> None:
        ask = dataclasses.replace(ASK, purpose="vardkedjeremiss")
        decision = run(consents=(narrowed(JOINT, "sip"),), ask=ask)
        assert [r.code for r in decision.reasons] == ["purpose_not_covered"]

    def test_another_consent_covering_the_withdrawn_purpose_still_allows(self) -> None:
        decision = run(consents=(narrowed(JOINT, "sip"), SIP))
        assert decision.allowed
        assert decision.consent_id == SIP.id

    def test_withdrawing_the_last_purpose_in_force_withdraws_the_consent(self) -> None:
        decision = run(consents=(narrowed(narrowed(JOINT, "sip"), "kontaktbegaran"),), ask=KONTAKT)
        assert [r.code for r in decision.reasons] == ["consent_withdrawn"]

    @settings(max_examples=300, deadline=None)
    @given(q=questions(), w=world, other=st.sampled_from([str(p) for p in Purpose]))
    def test_it_refuses_the_withdrawn_purpose_and_changes_nothing_for_the_others(
        self, q: Question, w: dict[str, object], other: str
    ) -> None:
        gone = {**w, "consents": tuple(narrowed(c, q.purpose) for c in w["consents"])}  # type: ignore[attr-defined]
        assert not run(ask=q, **gone).allowed  # type: ignore[arg-type]
        if other == q.purpose:
            return
        kept = dataclasses.replace(q, purpose=other)
        before, after = run(ask=kept, **w), run(ask=kept, **gone)  # type: ignore[arg-type]
        assert (after.verdict, after.consent_id, after.valid_until) == (
            before.verdict,
            before.consent_id,
            before.valid_until,
        )
