"""A SIP plan shared just before the person withdrew the consent's SIP purpose, arriving at
a party after its referral service heard the narrowing but before its consent service did,
is not kept there: the plans' own check at arrival (``plan_copies._allowed_viewers`` →
``plans.heard_ended``) asks the narrowing the referral service remembers
(``consent_narrowing``) for the plan's purpose, as an arriving referral of that purpose
does."""

from __future__ import annotations

from shared.messaging.events import topics
from shared.messaging.events.payloads import CONSENT_NARROWED_V1, PLAN_SHARED_V1
from tests.conftest import ORG_VAXJO
from tests.integration.test_basis_plans import copies_showing_a_person

from .conftest import Pair
from .test_referral_order import hold, records
from .test_referral_partial_withdrawal import (
    accepted_sip,
    narrow,
    record_plan,
    with_joint_consent,
)


class TestASipPlanInFlightAtAPartialWithdrawal:
    async def test_is_not_kept_at_the_party(self, members: Pair) -> None:
        region, vaxjo = members.region, members.vaxjo
        person, consent_id = await with_joint_consent(members, ["kontaktbegaran", "sip"])
        meeting_id, _ = await accepted_sip(members, person)
        await hold(vaxjo, "consent")  # Växjö's copy of the consent keeps SIP
        at_vaxjo = await hold(vaxjo, "referral")
        await record_plan(region, meeting_id)
        await narrow(region, consent_id, ["sip"])
        [narrowed] = await records(
            region.consent_app.state.ctx.db,
            "consent",
            topics.inbound(ORG_VAXJO),
            CONSENT_NARROWED_V1,
        )
        [shared] = await records(
            region.referral_db, "referral", topics.inbound(ORG_VAXJO), PLAN_SHARED_V1
        )
        assert await at_vaxjo.handle(narrowed) == "applied"
        await at_vaxjo.handle(shared)
        assert await copies_showing_a_person(vaxjo) == 0
