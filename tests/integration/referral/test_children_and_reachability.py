"""Children asked every time, and how to reach the person (issue 22): every referral and
meeting answers whether there are children in the household or close to the person (yes,
no, or unknown with why); a yes prompts both the sending and the receiving unit (support
for children as relatives, and the orosanmälan path). A kontaktbegäran carries how to reach
the person — to the holding unit only, never with protected identity. Bad requests store
nothing."""

from __future__ import annotations

from typing import Any

from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.helpers.problems import field_rules
from tests.integration.consent.helpers import new_person

from .conftest import REGION_BEROENDE, RW, VAXJO_SOC, Pair, auth
from .test_referral_flow import copy_arrived, counts, kontaktbegaran, record_consent

SENDER = auth(ORG_REGION, REGION_BEROENDE, RW)
RECEIVER = auth(ORG_VAXJO, VAXJO_SOC, RW)

REACH = {
    "phone": "070-174 06 50",
    "via_ward": {"ward": "Avdelning 12, Växjö", "phone": "0470-58 60 00", "until": "2027-01-15"},
    "best_time": "förmiddagar",
    "no_fixed_address": True,
}


async def post(members: Pair, path: str, body: dict[str, Any]) -> Any:
    async with members.region.referral() as c:
        return await c.post(path, json=body, headers=SENDER)


async def test_a_yes_prompts_both_units_and_the_holder_can_reach_the_person(
    members: Pair,
) -> None:
    region, vaxjo = members.region, members.vaxjo
    person = new_person()
    consent_id = await record_consent(region, person, ["kontaktbegaran"])
    await eventually(lambda: copy_arrived(vaxjo, consent_id), within=30, what="consent copy")
    body = kontaktbegaran(person, children_in_household="yes", reachability=REACH)
    r = await post(members, "/v1/referrals", body)
    assert r.status_code == 201, r.text
    sent = r.json()
    assert [p["code"] for p in sent["children_prompts"]] == ["barn_som_anhoriga", "orosanmalan"]
    assert sent["reachability"]["phone"] == "+46701740650"  # as the sender wrote it, in E.164

    async def arrived() -> list[dict[str, Any]]:
        async with vaxjo.referral() as c:
            items: list[dict[str, Any]] = (await c.get("/v1/incoming", headers=RECEIVER)).json()[
                "items"
            ]
        return items

    await eventually(arrived, within=30, what="the kontaktbegäran at the kommun")
    [item] = await arrived()
    assert item["children_in_household"] == "yes"
    assert [p["code"] for p in item["children_prompts"]] == ["barn_som_anhoriga", "orosanmalan"]
    assert item["reachability"] == {
        "phone": "+46701740650",
        "via_ward": {"ward": "Avdelning 12, Växjö", "phone": "+46470586000", "until": "2027-01-15"},
        "best_time": "förmiddagar",
        "no_fixed_address": True,
        "note": None,
    }


async def test_an_unknown_answer_says_why_and_brings_no_prompt(members: Pair) -> None:
    person = new_person()
    consent_id = await record_consent(members.region, person, ["kontaktbegaran"])
    await eventually(
        lambda: copy_arrived(members.vaxjo, consent_id), within=30, what="consent copy"
    )
    body = kontaktbegaran(
        person,
        children_in_household="unknown",
        children_unknown_reason="Personen ville inte svara.",
    )
    r = await post(members, "/v1/referrals", body)
    assert r.status_code == 201, r.text
    assert r.json()["children_prompts"] == []
    assert r.json()["children_unknown_reason"] == "Personen ville inte svara."
    # The indicators count the answer, unknowns included (aggregates only).
    async with members.region.referral() as c:
        figures = (await c.get("/v1/indicators", headers=SENDER)).json()
    assert figures["children"]["outgoing"]["kontaktbegaran"]["unknown"] >= 1
    assert person not in str(figures)


async def test_bad_answers_and_reachability_are_refused_with_nothing_stored(
    members: Pair,
) -> None:
    person = new_person()
    before = await counts(members.region)
    missing = kontaktbegaran(person)
    del missing["children_in_household"]
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        (missing, {"children_in_household": "missing"}),
        (
            kontaktbegaran(person, children_in_household="unknown"),
            {"children_unknown_reason": "reason_required"},
        ),
        (
            kontaktbegaran(person, children_in_household="no", children_unknown_reason="x"),
            {"children_unknown_reason": "only_when_unknown"},
        ),
        (
            {
                **kontaktbegaran(person, reachability=REACH),
                "person": {"personnummer": person, "protected_identity": True},
            },
            {"reachability": "reachability_with_protected_identity"},
        ),
        (
            kontaktbegaran(person, reachability={"note": "ring"}),
            {"reachability": "no_way_to_reach"},
        ),
    ]
    for body, rules in cases:
        r = await post(members, "/v1/referrals", body)
        assert r.status_code == 422, r.text
        assert field_rules(r.json()) == rules
    sip = {
        "kind": "sip",
        "person": {"personnummer": person},
        "at": "2027-01-20T10:00:00+01:00",
        "place": "Socialtjänsten",
        "participants": [{"orgnr": ORG_VAXJO, "unit_id": VAXJO_SOC}],
    }
    r = await post(members, "/v1/meetings", sip)
    assert r.status_code == 422, r.text
    assert "children_required" in field_rules(r.json()).values()
    assert await counts(members.region) == before
