"""The walkthrough `vardkedja run` writes (vardkedja/walkthrough/): every value a step
uses is one an earlier step noted, the JSON a test takes is the walkthrough the user
reads, and the markdown names what the user must do at every step. That the steps work
against a running federation is tests/e2e/test_make_run.py."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest

from vardkedja.walkthrough import document, steps, taking
from vardkedja.walkthrough.document import from_json, render
from vardkedja.walkthrough.steps import ACTORS, Step, build
from vardkedja.walkthrough.taking import WalkthroughFailed

UNITS = {actor: f"00000000-0000-4000-8000-{i:012d}" for i, actor in enumerate(ACTORS)}
TOKENS = {actor: f"token-{i}" for i, actor in enumerate(ACTORS)}
PORTS = {
    orgnr: {"directory": base, "consent": base + 1, "referral": base + 2, "notify": base + 3}
    for orgnr, base in ((steps.REGION, 8010), (steps.VAXJO, 8020))
}
TODAY = dt.date(2026, 6, 15)


def _used(step: Step) -> set[str]:
    text = step.path + json.dumps(step.body or {}) + json.dumps(step.until)
    names = set(re.findall(r"\{([a-z_0-9]+)\}", text))
    return names | ({step.if_match} if step.if_match else set())


def test_every_value_a_step_uses_was_noted_by_an_earlier_step() -> None:
    noted: set[str] = set()
    for section in build(UNITS, TODAY):
        for step in section.steps:
            assert _used(step) <= noted, (step.method, step.path, _used(step) - noted)
            noted |= step.note.keys()
            assert (step.member, step.unit) in TOKENS


def test_the_json_holds_the_same_steps_and_tokens() -> None:
    sections = build(UNITS, TODAY)
    again, tokens = from_json(document.to_json(sections, TOKENS))
    assert again == sections
    assert tokens == TOKENS


def test_the_markdown_names_page_token_operation_body_and_notes() -> None:
    sections = build(UNITS, TODAY)
    text = render(sections, TOKENS, PORTS)
    for token in TOKENS.values():
        assert f"`{token}`" in text
    for section in sections:
        for step in section.steps:
            assert f"`{step.method} {step.path}`" in text
            assert f"<http://127.0.0.1:{PORTS[step.member][step.service]}/docs>" in text
            for name in step.note:
                assert f"as `{{{name}}}`" in text
            if step.body is not None:
                assert json.dumps(step.body, ensure_ascii=False, indent=2) in text
    # The demo's own unit ids and dates are filled in; the person is the test number.
    assert UNITS[(steps.VAXJO, steps.SOC)] in text
    assert (TODAY + dt.timedelta(days=10)).isoformat() in text
    assert "19121212-1212" in text


def test_the_drug_free_rule_is_shown_refused_before_it_is_met() -> None:
    [vkr] = [s for s in build(UNITS, TODAY) if s.title.startswith("A vårdkedjeremiss")]
    meetings = [s for s in vkr.steps if s.path == "/v1/meetings"]
    assert [m.status for m in meetings] == [422, 201]
    beroende = UNITS[(steps.REGION, steps.BEROENDE)]
    first, second = ([p["unit_id"] for p in (m.body or {})["participants"]] for m in meetings)
    assert beroende not in first
    assert beroende in second


async def test_a_step_answering_otherwise_fails_naming_the_step() -> None:
    step = Step("Send.", steps.REGION, steps.AVDELNING, "POST", "/x")
    section = steps.Section("One", "", (step,))

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKENS[ACTORS[0]]}"
        return httpx.Response(403, json={"title": "refused"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(
            WalkthroughFailed, match=r"step 1\.1 \(POST /x\): wanted 200, answered 403"
        ):
            await taking.perform([section], TOKENS, PORTS, client)


async def test_a_waiting_step_repeats_until_the_answer_is_as_described() -> None:
    send = Step(
        "Send.",
        steps.REGION,
        steps.AVDELNING,
        "POST",
        "/v1/referrals",
        body={"kind": "kontaktbegaran"},
        status=201,
        note={"rid": "id"},
    )
    follow = Step(
        "Follow.",
        steps.REGION,
        steps.AVDELNING,
        "GET",
        "/v1/referrals/{rid}",
        wait=True,
        until=("recipients.0.status", "acknowledged"),
        note={"etag": "ETag"},
    )
    answers = iter(
        [
            httpx.Response(201, json={"id": "r-1"}),
            httpx.Response(404),
            httpx.Response(200, json={"recipients": [{"status": "delivered"}]}),
            httpx.Response(
                200, json={"recipients": [{"status": "acknowledged"}]}, headers={"ETag": '"3"'}
            ),
        ]
    )
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.port}{request.url.path}")
        return next(answers)

    section = steps.Section("One", "", (send, follow))
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        noted = await taking.perform([section], TOKENS, PORTS, client, within=10)
    assert seen == ["POST 8012/v1/referrals"] + ["GET 8012/v1/referrals/r-1"] * 3
    assert noted == {"rid": "r-1", "etag": '"3"'}
