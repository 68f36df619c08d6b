"""Issue 19: an allowance given inside a temporary lift of a block reports the earlier of
the consent's end and the lift's as ``valid_until``."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from services.consent.decision import BlockTerms, Lift, Party
from tests.unit.test_consent_decision import ASK, NOON, REGION, SIP, run

# Midnight in Sweden, where a consent's days are counted.
MIDNIGHT = dt.datetime(2026, 12, 4, tzinfo=ZoneInfo("Europe/Stockholm"))


def lifted_until(ends_at: dt.datetime) -> BlockTerms:
    return BlockTerms(
        id="b-lift", party=Party(REGION), lifts=(Lift(NOON - dt.timedelta(hours=1), ends_at),)
    )


class TestValidUntilInsideALift:
    def test_a_lift_shorter_than_the_consent_ends_the_allowance(self) -> None:
        decision = run(consents=(SIP,), blocks=(lifted_until(NOON + dt.timedelta(days=2)),))
        assert decision.allowed
        assert decision.valid_until == (NOON + dt.timedelta(days=2)).date()

    def test_a_lift_ending_at_midnight_ends_on_the_day_before(self) -> None:
        # ends_at is exclusive: nothing of 4 December is inside the lift.
        decision = run(consents=(SIP,), blocks=(lifted_until(MIDNIGHT),))
        assert decision.valid_until == dt.date(2026, 12, 3)

    def test_a_lift_longer_than_the_consent_keeps_the_consents_end(self) -> None:
        decision = run(consents=(SIP,), blocks=(lifted_until(NOON + dt.timedelta(days=900)),))
        assert decision.valid_until == SIP.valid_to

    def test_without_a_block_the_consents_end(self) -> None:
        assert run(consents=(SIP,)).valid_until == SIP.valid_to
        assert ASK.at == NOON
