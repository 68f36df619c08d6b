"""The walkthrough's steps (:mod:`vardkedja.walkthrough`): what a user does, one operation
on one member's docs page at a time, built for the demo's unit ids and dates."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PERSON = "19121212-1212"
REGION, VAXJO = "232100-0065", "212000-0647"
MEMBER_NAMES = {REGION: "Region Kronoberg", VAXJO: "Växjö kommun"}

# The demo units the walkthrough acts as (services/directory/demo/kronoberg.yaml).
AVDELNING = "Beroendeavdelningen, heldygnsvård Växjö"
BEROENDE = "Beroendemottagningen Växjö"
PORT = "Psykiatrins remissport"
SOC = "Socialtjänstens mottagning vuxna Växjö"
BOENDE = "Boendestöd Växjö, inriktning skadligt bruk och beroende"
MYNDIGHET = "Myndighetsutövning vuxna, missbruk och beroende Växjö"
BARN = "Barn och familj Växjö, mottagningen"
ACTORS: tuple[tuple[str, str], ...] = (
    (REGION, AVDELNING),
    (REGION, BEROENDE),
    (REGION, PORT),
    (VAXJO, SOC),
    (VAXJO, BOENDE),
    (VAXJO, MYNDIGHET),
    (VAXJO, BARN),
)
CHILD = "20180315-2386"


@dataclass(frozen=True)
class Step:
    """One operation on one member's docs page, as one unit.

    ``path`` and the strings of ``body`` may name values noted earlier (``{task_id}``).
    ``wait``: the answer follows an event over Kafka, so the user repeats the call until it
    answers ``status`` (and ``until``: a field of the answer has the value). ``note``: the
    values to carry forward, each a dotted path into the answer's JSON or ``ETag``.
    """

    says: str
    member: str
    unit: str
    method: str
    path: str
    service: str = "referral"
    body: dict[str, Any] | None = None
    if_match: str | None = None
    status: int = 200
    wait: bool = False
    until: tuple[str, Any] | None = None
    note: dict[str, str] = field(default_factory=dict)


def _action_step(
    says: str, body: dict[str, Any], *, until: tuple[str, Any] | None
) -> tuple[Step, Step]:
    """Växjö's housing support reads the SIP's plan (its ``ETag``) and takes a step on its
    action with ``If-Match``."""
    read = Step(
        "Read the plan (its `ETag` is the version the step is taken on).",
        VAXJO,
        BOENDE,
        "GET",
        "/v1/plans/{sip_plan_id}",
        wait=True,
        until=until,
        note={"sip_plan_etag": "ETag"},
    )
    take = Step(
        says,
        VAXJO,
        BOENDE,
        "POST",
        "/v1/plans/{sip_plan_id}/actions/{sip_action_id}/transitions",
        body=body,
        if_match="sip_plan_etag",
        status=202,
    )
    return read, take


@dataclass(frozen=True)
class Section:
    title: str
    says: str
    steps: tuple[Step, ...]


def _follow(
    says: str,
    member: str,
    unit: str,
    path: str,
    *,
    service: str = "referral",
    until: tuple[str, Any] | None = None,
    note: dict[str, str] | None = None,
) -> Step:
    """A read the user repeats until what an event brings has arrived."""
    return Step(
        says, member, unit, "GET", path, service=service, wait=True, until=until,
        note=note or {},
    )  # fmt: skip


def _transition(member: str, unit: str, task: str, says: str, **body: Any) -> tuple[Step, ...]:
    """Read a task (for its ETag), then take one step with it."""
    etag = f"{task}_etag"
    return (
        Step(
            says=f"Read the task for its `ETag` (the version the step is based on). {says}",
            member=member,
            unit=unit,
            service="referral",
            method="GET",
            path=f"/v1/incoming/{{{task}}}",
            wait=True,
            note={etag: "ETag"},
        ),
        Step(
            says=f"Take the step `{body['to']}`, with `If-Match` set to the `ETag` just read.",
            member=member,
            unit=unit,
            service="referral",
            method="POST",
            path=f"/v1/incoming/{{{task}}}/transitions",
            body=body,
            if_match=etag,
        ),
    )


def _answer(member: str, unit: str, task: str) -> tuple[Step, ...]:
    """An invited unit acknowledges its invitation to a meeting, then accepts it."""
    return (
        *_transition(member, unit, task, "The invitation, in the unit's inbox.", to="acknowledged"),
        *_transition(member, unit, task, "", to="accepted"),
    )


def build(units: Mapping[tuple[str, str], str], today: dt.date) -> tuple[Section, ...]:
    """The walkthrough for a federation whose demo units have these ids
    (``(orgnr, name) → id``), dated from ``today``."""

    def ref(orgnr: str, name: str) -> dict[str, str]:
        return {"orgnr": orgnr, "unit_id": units[(orgnr, name)]}

    def remissmote(participants: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "kind": "remissmote",
            "origin_task_id": "{vkr_task_id}",
            "at": meeting_at.isoformat(),
            "video_link": "https://mote.example/remissmote",
            "participants": participants,
        }

    person = {"personnummer": PERSON}
    discharge = today + dt.timedelta(days=10)
    sip_at = dt.datetime.combine(discharge - dt.timedelta(days=2), dt.time(9), tzinfo=dt.UTC)
    follow_up = discharge + dt.timedelta(days=30)
    follow_up_at = dt.datetime.combine(follow_up, dt.time(9), tzinfo=dt.UTC)
    meeting_at = dt.datetime.combine(today + dt.timedelta(days=7), dt.time(12), tzinfo=dt.UTC)

    consent = Section(
        "The person's consent",
        "The person has signed a consent to sharing between Region Kronoberg and Växjö "
        "kommun for all five processes. The region's ward records it; within a second or "
        "two every party holds a copy, and each member's consent service decides from it.",
        (
            Step(
                says="Record the written consent.",
                member=REGION,
                unit=AVDELNING,
                service="consent",
                method="POST",
                path="/v1/consents",
                body={
                    "person": person,
                    "form": "written",
                    "signed_form_reference": "Journal dok 2026-4711",
                    "purposes": [
                        "kontaktbegaran",
                        "vardkedjeremiss",
                        "sip",
                        "utskrivningsplanering",
                        "hvb_underrattelse",
                        "vardkedjesamordning",
                    ],
                    "parties": [{"orgnr": REGION}, {"orgnr": VAXJO}],
                    "categories": ["contact_details", "needs_summary", "plan", "social_situation"],
                    "valid_from": today.isoformat(),
                    "valid_to": (today + dt.timedelta(days=180)).isoformat(),
                    "person_informed": True,
                },
                status=201,
                note={"consent_id": "id"},
            ),
            _follow(
                "Växjö's copy of the consent (404 until the event has arrived).",
                VAXJO,
                SOC,
                "/v1/consent-copies/{consent_id}",
                service="consent",
            ),
        ),
    )

    kontaktbegaran = Section(
        "A kontaktbegäran acknowledged by the kommun",
        "The ward asks the person's kommun to make contact about housing support. It names "
        "no recipient: the directory resolves Växjö's intake from the kommun of residence "
        "(0780) and the need.",
        (
            Step(
                says="Send the kontaktbegäran, with how to reach the person (no fixed "
                "address: through the ward until the discharge day) and children in the "
                "household. The answer names the recipient the directory chose, the consent "
                "it was sent on, and — because of the children — two prompts: support for "
                "children as relatives, and the orosanmälan path.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "kontaktbegaran",
                    "person": person,
                    "needs": ["boendestod"],
                    "summary": "Skrivs ut från beroendeavdelningen inom två veckor och saknar "
                    "bostad.",
                    "urgency": "urgent",
                    "children_in_household": "yes",
                    "reachability": {
                        "phone": "070-174 06 90",
                        "via_ward": {
                            "ward": AVDELNING,
                            "phone": "070-174 06 91",
                            "until": discharge.isoformat(),
                        },
                        "best_time": "förmiddagar",
                        "no_fixed_address": True,
                    },
                    "persons_wish": "Jag vill ha hjälp med boende i Växjö.",
                    "resolve": {"kommunkod": "0780"},
                    "kontaktbegaran": {"kommunkod": "0780"},
                },
                status=201,
                note={"kb_referral_id": "id", "kb_task_id": "recipients.0.task_id"},
            ),
            _follow(
                "The intake's notification inbox shows it: the kind, the urgency, the "
                "deadline for acknowledging and a link, never who it is about.",
                VAXJO,
                SOC,
                f"/v1/units/{units[(VAXJO, SOC)]}/notifications",
                service="notify",
                until=("items.0.subject_id", "{kb_task_id}"),
            ),
            *_transition(
                VAXJO,
                SOC,
                "kb_task_id",
                "It is in the intake's own inbox (`GET /v1/incoming` lists it).",
                to="acknowledged",
                case_reference="VX-2026-1234",
            ),
            _follow(
                "Back at the region, the sender follows its recipient: acknowledged, "
                "with the kommun's case reference.",
                REGION,
                AVDELNING,
                "/v1/referrals/{kb_referral_id}",
                until=("recipients.0.status", "acknowledged"),
            ),
            *_transition(
                VAXJO,
                SOC,
                "kb_task_id",
                "The intake needs more before it decides: it asks the ward (komplettering) "
                "instead of declining. Its own clock pauses while it waits.",
                to="information_requested",
                question="Har personen någon bostad alls i dag, eller ett andrahandskontrakt "
                "som löper ut?",
            ),
            _follow(
                "The question is back at the region, with the ward's own deadline to answer "
                "(`information_by`); note the recipient's version.",
                REGION,
                AVDELNING,
                "/v1/referrals/{kb_referral_id}",
                until=("recipients.0.status", "information_requested"),
                note={"kb_recipient_etag": "etag:recipients.0.version"},
            ),
            Step(
                says="The ward uploads a document to go with its answer (a PDF, a PNG, a JPEG "
                "or plain text; the type is told from the bytes). It is the unit's draft "
                "until a referral takes it (`GET /v1/attachments` lists the drafts).",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/attachments",
                body={
                    "title": "Boendesituation 2026",
                    "content_type": "text/plain",
                    "content": base64.b64encode(
                        "Andrahandskontrakt till och med oktober; därefter ingen bostad.\n".encode()
                    ).decode(),
                },
                status=201,
                note={"kb_document_id": "id"},
            ),
            Step(
                says="The ward answers the question, with the document.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals/{kb_referral_id}/recipients/{kb_task_id}/information",
                body={
                    "text": "Ingen bostad; andrahandskontraktet gick ut i oktober.",
                    "attachment_ids": ["{kb_document_id}"],
                },
                if_match="kb_recipient_etag",
            ),
            _follow(
                "The intake has the answer in the task's komplettering rounds and holds it "
                "again (acknowledged), its answer day moved on by the days it waited. The "
                "document crossed sealed for Växjö alone and is listed under `documents`: "
                "the intake downloads it at its `href` (audited); no other unit can.",
                VAXJO,
                SOC,
                "/v1/incoming/{kb_task_id}",
                until=("documents.0.title", "Boendesituation 2026"),
            ),
            *_transition(
                VAXJO, SOC, "kb_task_id", "The intake accepts the kontaktbegäran.", to="accepted"
            ),
            *_transition(
                VAXJO,
                SOC,
                "kb_task_id",
                "Housing support is granted and started: the intake completes the task with "
                "its structured result (decision, intervention, the day it started) and the "
                "words the ward reads.",
                to="completed",
                outcome="Boendestöd beviljat och påbörjat.",
                result={
                    "decision": "granted",
                    "intervention": "boendestod",
                    "started_on": today.isoformat(),
                    "text": "Beviljat enligt 4 kap. 1 § SoL.",
                },
            ),
            _follow(
                "The ward sees the result on its recipient.",
                REGION,
                AVDELNING,
                "/v1/referrals/{kb_referral_id}",
                until=("recipients.0.status", "completed"),
            ),
        ),
    )

    vardkedjeremiss = Section(
        "A vårdkedjeremiss, its remissmöte and the ordered plan",
        "Växjö's intake sends the combined needs to psychiatry's referral port. The person "
        "is not drug-free and the planned treatment requires it, so the remissmöte must "
        "invite the unit for drug-free interventions (the rule is enforced).",
        (
            Step(
                says="Send the vårdkedjeremiss to the referral port.",
                member=VAXJO,
                unit=SOC,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "vardkedjeremiss",
                    "children_in_household": "no",
                    "person": person,
                    "needs": ["abstinensbehandling", "boendestod"],
                    "summary": "Beroende, psykisk ohälsa och bostadslöshet samtidigt.",
                    "drug_free": "no",
                    "recipients": [ref(REGION, PORT)],
                    "vardkedjeremiss": {"treatment_requires_drug_free": True},
                },
                status=201,
                note={"vkr_task_id": "recipients.0.task_id"},
            ),
            *_transition(
                REGION,
                PORT,
                "vkr_task_id",
                "The referral port acknowledges it.",
                to="acknowledged",
            ),
            Step(
                says="Convene the remissmöte inviting only Växjö's housing support: refused "
                "(422), because the drug-free unit is missing.",
                member=REGION,
                unit=PORT,
                method="POST",
                path="/v1/meetings",
                body=remissmote([ref(VAXJO, BOENDE)]),
                status=422,
            ),
            Step(
                says="Convene it again with the beroendemottagning invited too. Note each "
                "participant's invitation task.",
                member=REGION,
                unit=PORT,
                method="POST",
                path="/v1/meetings",
                body=remissmote([ref(REGION, BEROENDE), ref(VAXJO, BOENDE)]),
                status=201,
                note={
                    "meeting_id": "id",
                    "beroende_invitation": "participants.0.task_id",
                    "boende_invitation": "participants.1.task_id",
                },
            ),
            *_answer(REGION, BEROENDE, "beroende_invitation"),
            *_answer(VAXJO, BOENDE, "boende_invitation"),
            _follow(
                "The port sees both answers.",
                REGION,
                PORT,
                "/v1/meetings/{meeting_id}",
                until=("participants.1.status", "accepted"),
            ),
            Step(
                says="Record the meeting's outcome: the ordered plan, each intervention owned "
                "by a unit, and the coordinating function.",
                member=REGION,
                unit=PORT,
                method="PUT",
                path="/v1/meetings/{meeting_id}/plan",
                body={
                    "goals": ["Drogfrihet", "Eget boende"],
                    "actions": [
                        {"intervention": "abstinensbehandling", "owner": ref(REGION, BEROENDE)},
                        {
                            "intervention": "boendestod",
                            "owner": ref(VAXJO, BOENDE),
                            "start_by": (today - dt.timedelta(days=1)).isoformat(),
                        },
                    ],
                    "coordinators": [ref(VAXJO, SOC)],
                    "follow_up_date": (today + dt.timedelta(days=60)).isoformat(),
                },
                note={"vkr_plan_id": "id"},
            ),
            _follow(
                "The sender, at Växjö, sees the plan in its order.",
                VAXJO,
                SOC,
                "/v1/plans/{vkr_plan_id}",
                until=("actions.1.intervention", "boendestod"),
            ),
        ),
    )

    discharge_sip = Section(
        "A utskrivningsplanering and a SIP before discharge",
        "The ward plans the person's discharge in ten days. The home kommun confirms, and "
        "a SIP for the planning is held on the ward two days before discharge. When the "
        "housing support ends its action, every other party is told; the ward records the "
        "discharge and the kommun sees it; on the follow-up date the SIP is followed up.",
        (
            Step(
                says="Send the utskrivningsplanering to Växjö's intake.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "utskrivningsplanering",
                    "children_in_household": "no",
                    "person": person,
                    "summary": "Utskrivning efter abstinensbehandling.",
                    "recipients": [ref(VAXJO, SOC)],
                    "discharge": {"expected_discharge_date": discharge.isoformat()},
                },
                status=201,
                note={"up_referral_id": "id", "up_task_id": "recipients.0.task_id"},
            ),
            *_transition(
                VAXJO,
                SOC,
                "up_task_id",
                "The home kommun confirms by acknowledging it.",
                to="acknowledged",
                case_reference="VX-2026-1235",
            ),
            _follow(
                "The ward sees the kommun's confirmation (`discharge.all_confirmed`).",
                REGION,
                AVDELNING,
                "/v1/referrals/{up_referral_id}",
                until=("discharge.all_confirmed", True),
            ),
            Step(
                says="Convene the SIP on the ward, before discharge, with the person and the "
                "relative the person chose (whose phone number only the convener holds). It "
                "answers the utskrivningsplanering (`for_referral_id`): the ward follows it "
                "there (`linked_sip`), and the planning is ready for discharge once the "
                "kommun's actions in its plan have started.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/meetings",
                body={
                    "kind": "sip",
                    "for_referral_id": "{up_referral_id}",
                    "children_in_household": "no",
                    "person": person,
                    "at": sip_at.isoformat(),
                    "place": "Beroendeavdelningen, Centrallasarettet Växjö",
                    "participants": [ref(VAXJO, SOC), ref(VAXJO, BOENDE)],
                    "relatives": [{"name": "Mamma", "phone": "070-123 45 67"}],
                },
                status=201,
                note={
                    "sip_id": "id",
                    "soc_invitation": "participants.0.task_id",
                    "boende_sip_invitation": "participants.1.task_id",
                },
            ),
            *_answer(VAXJO, SOC, "soc_invitation"),
            *_answer(VAXJO, BOENDE, "boende_sip_invitation"),
            Step(
                says="Record the SIP: the person's own goal, the action with its owner and "
                "the dates to start and end it by, the coordinating function, the follow-up "
                "date, who took part and that the person agrees.",
                member=REGION,
                unit=AVDELNING,
                method="PUT",
                path="/v1/meetings/{sip_id}/plan",
                body={
                    "own_goals": ["Jag vill ha stöd hemma från första dagen."],
                    "goals": ["Trygg utskrivning"],
                    "actions": [
                        {
                            "intervention": "boendestod",
                            "owner": ref(VAXJO, BOENDE),
                            "start_by": discharge.isoformat(),
                        }
                    ],
                    "coordinators": [ref(VAXJO, SOC)],
                    "follow_up_date": follow_up.isoformat(),
                    "attendance": {
                        "units": [ref(REGION, AVDELNING), ref(VAXJO, SOC), ref(VAXJO, BOENDE)],
                        "person": True,
                        "relatives": 1,
                    },
                    "person_agrees": True,
                },
                note={"sip_plan_id": "id", "sip_action_id": "actions.0.id"},
            ),
            *_action_step(
                "The housing support sees its action in the plan, and starts it on the day "
                "of discharge (the region owns the plan: the step goes there, 202).",
                {"to": "started"},
                until=None,
            ),
            *_action_step(
                "When the support is in place, the housing support ends its action with its "
                "outcome.",
                {"to": "ended", "outcome": "completed"},
                until=("actions.0.status", "started"),
            ),
            _follow(
                "The ward, the convener, is told: the action is ended.",
                REGION,
                AVDELNING,
                "/v1/plans/{sip_plan_id}",
                until=("actions.0.status", "ended"),
            ),
            Step(
                says="The kommun's support was in place before the person left "
                "(`discharge.ready_for_discharge` on the planning): the ward records the "
                "discharge. The kommun's intake and the plan's coordinator are told at once.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals/{up_referral_id}/discharge",
                body={"discharged_on": today.isoformat(), "unplanned": False},
                status=201,
            ),
            _follow(
                "Växjö's intake sees the actual discharge on its task.",
                VAXJO,
                SOC,
                "/v1/incoming/{up_task_id}",
                until=("discharge.discharged_on", today.isoformat()),
            ),
            Step(
                says="On the plan's follow-up date, the ward convenes the follow-up SIP.",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/meetings",
                body={
                    "kind": "sip",
                    "children_in_household": "no",
                    "person": person,
                    "follow_up_of": "{sip_id}",
                    "at": follow_up_at.isoformat(),
                    "video_link": "https://mote.example/sip-uppfoljning",
                    "participants": [ref(VAXJO, SOC)],
                },
                status=201,
                note={"follow_up_invitation": "participants.0.task_id"},
            ),
            _follow(
                "The intake's invitation to the follow-up.",
                VAXJO,
                SOC,
                "/v1/incoming/{follow_up_invitation}",
                until=("kind", "sip_kallelse"),
            ),
        ),
    )

    coordination = Section(
        "After the meeting: the coordinator and the person's own plan",
        "Nothing may end or fail to start without the others knowing. The coordinating "
        "function — Växjö's intake, named in both plans — sees the plans it coordinates and "
        "every action overdue in them, convenes a meeting of the professionals without the "
        "person when actions do not start, and revises the plan from its own member; the "
        "person gets a plan of their own, in plain Swedish.",
        (
            _follow(
                "The coordinator's worklist: the plans it coordinates, actions overdue, "
                "follow-ups due.",
                VAXJO,
                SOC,
                "/v1/coordination",
            ),
            Step(
                says="Convene a samordningsmöte — the professionals, without the person — "
                "about the vårdkedjeremiss's plan, which the region owns.",
                member=VAXJO,
                unit=SOC,
                method="POST",
                path="/v1/meetings",
                body={
                    "kind": "samordningsmote",
                    "children_in_household": "no",
                    "follow_up_of": "{vkr_plan_id}",
                    "at": follow_up_at.isoformat(),
                    "video_link": "https://mote.example/samordning",
                    "participants": [ref(VAXJO, BOENDE)],
                    "summary": "Stämma av att insatserna har kommit igång.",
                },
                status=201,
                note={"samordning_invitation": "participants.0.task_id"},
            ),
            _follow(
                "The housing support's invitation (purpose: samordning av vårdkedjan).",
                VAXJO,
                BOENDE,
                "/v1/incoming/{samordning_invitation}",
                until=("kind", "samordningsmote"),
            ),
            Step(
                says="Read the plan the coordinator will revise (its `ETag`).",
                member=VAXJO,
                unit=SOC,
                method="GET",
                path="/v1/plans/{vkr_plan_id}",
                note={"vkr_plan_etag": "ETag"},
            ),
            Step(
                says="Revise the plan from Växjö: the person's own goal added, a new "
                "follow-up date. The region owns the plan, so the revision goes there (202).",
                member=VAXJO,
                unit=SOC,
                method="PUT",
                path="/v1/plans/{vkr_plan_id}",
                body={
                    "own_goals": ["Jag vill ha ett eget boende."],
                    "goals": ["Drogfrihet", "Eget boende"],
                    "actions": [
                        {"intervention": "abstinensbehandling", "owner": ref(REGION, BEROENDE)},
                        {
                            "intervention": "boendestod",
                            "owner": ref(VAXJO, BOENDE),
                            "start_by": (today - dt.timedelta(days=1)).isoformat(),
                        },
                    ],
                    "coordinators": [ref(VAXJO, SOC)],
                    "follow_up_date": (today + dt.timedelta(days=45)).isoformat(),
                },
                if_match="vkr_plan_etag",
                status=202,
            ),
            _follow(
                "The revision is back at Växjö from the region, the plan's owner.",
                VAXJO,
                SOC,
                "/v1/plans/{vkr_plan_id}",
                until=("own_goals.0", "Jag vill ha ett eget boende."),
            ),
            _follow(
                "The housing support's own worklist: its action should have started "
                "yesterday (`overdue: start`). The referral worker's deadline check reminds "
                "it, and alerts every coordinating unit of the plan — each at its own member "
                "(notify: `deadline.escalated`); the indicators count such escalations by "
                "the member owning the late action.",
                VAXJO,
                BOENDE,
                "/v1/plan-actions?overdue=true",
                until=("0.overdue", "start"),
            ),
            _follow(
                "The coordinator sees it too, among the actions overdue in its plans, and "
                "who has not answered the samordningsmöte yet (`invitations_unanswered`).",
                VAXJO,
                SOC,
                "/v1/coordination",
                until=("actions_overdue.0.overdue", "start"),
            ),
            Step(
                says="Print the person's own plan (Min plan) from the SIP: their goal first, "
                "who does what and how to reach them, the coordinator, the next follow-up. "
                "Add `format=pdf` for a PDF.",
                member=VAXJO,
                unit=SOC,
                method="GET",
                path="/v1/plans/{sip_plan_id}/min-plan",
            ),
        ),
    )

    hvb = Section(
        "An HVB notification",
        "Växjö places the person at an HVB and notifies the region's beroendemottagning.",
        (
            Step(
                says="Send the HVB underrättelse.",
                member=VAXJO,
                unit=SOC,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "hvb_underrattelse",
                    "children_in_household": "no",
                    "person": person,
                    "recipients": [ref(REGION, BEROENDE)],
                    "hvb": {
                        "placement_form": "sol_bistand",
                        "placement_date": discharge.isoformat(),
                        "expected_end_date": (discharge + dt.timedelta(days=90)).isoformat(),
                        "hvb_name": "Novus",
                    },
                },
                status=201,
                note={"hvb_referral_id": "id", "hvb_task_id": "recipients.0.task_id"},
            ),
            _follow(
                "It is in the beroendemottagning's own inbox.",
                REGION,
                BEROENDE,
                "/v1/incoming/{hvb_task_id}",
                until=("kind", "hvb_underrattelse"),
            ),
            Step(
                says="The region is not only told but called to an individual plan: Växjö "
                "convenes the SIP that answers the notification (`for_referral_id`) before "
                "its `sip_by` (the placement day at the latest); until then it is reminded, "
                "then alerted.",
                member=VAXJO,
                unit=SOC,
                method="POST",
                path="/v1/meetings",
                body={
                    "kind": "sip",
                    "for_referral_id": "{hvb_referral_id}",
                    "children_in_household": "no",
                    "person": person,
                    "at": dt.datetime.combine(
                        discharge - dt.timedelta(days=1), dt.time(13), tzinfo=dt.UTC
                    ).isoformat(),
                    "place": "Socialtjänsten Växjö, Västra Esplanaden 18",
                    "participants": [ref(REGION, BEROENDE)],
                },
                status=201,
            ),
            _follow(
                "The notification shows its linked SIP (`linked_sip`) and that the SIP owed "
                "is convened (`hvb.sip_convened`).",
                VAXJO,
                SOC,
                "/v1/referrals/{hvb_referral_id}",
                until=("hvb.sip_convened", True),
            ),
            Step(
                says="The region's follow-up indicators count it all, with no personal data.",
                member=REGION,
                unit=AVDELNING,
                method="GET",
                path="/v1/indicators",
            ),
        ),
    )
    reports = Section(
        "Reports under a duty to report: an LVM report and an orosanmälan",
        "Neither is asked of the person: each travels on its own legal basis, stated with a "
        "justification, and goes only to the function that handles it. The children the "
        "kontaktbegäran mentioned are the reason for the second.",
        (
            Step(
                says="The ward reports under 6 § LVM to Växjö's adult investigation, on the "
                "basis `lvm_anmalan` (no consent: sending it without the basis is refused).",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "lvm_anmalan",
                    "person": person,
                    "needs": ["utredning_sol"],
                    "summary": "Upprepade intoxikationer under vårdtiden; avböjer frivillig vård.",
                    "urgency": "urgent",
                    "children_in_household": "yes",
                    "recipients": [ref(VAXJO, MYNDIGHET)],
                    "legal_basis": {
                        "basis": "lvm_anmalan",
                        "justification": "Anmälan enligt 6 § LVM från beroendeavdelningen.",
                    },
                    "lvm": {
                        "kommunkod": "0780",
                        "grounds": ["halsa_i_fara", "forstora_livet"],
                        "reporter_role": "läkare",
                    },
                },
                status=201,
                note={"lvm_task_id": "recipients.0.task_id"},
            ),
            _follow(
                "It is in the investigation's inbox, with the grounds.",
                VAXJO,
                MYNDIGHET,
                "/v1/incoming/{lvm_task_id}",
                until=("kind", "lvm_anmalan"),
            ),
            Step(
                says="The ward reports concern for the person's child (the person is the "
                "child; basis `orosanmalan`), letting the directory route it: only a "
                "children's function or socialjour can receive it, so it goes to Växjö's "
                "barn och familj, never an adult intake. Urgent: the protection assessment "
                "is due within four hours, day and night (`acknowledge_due_at`).",
                member=REGION,
                unit=AVDELNING,
                method="POST",
                path="/v1/referrals",
                body={
                    "kind": "orosanmalan",
                    "person": {"personnummer": CHILD},
                    "summary": "Förälder inlagd efter intoxikation; barnet bor hos förälderns "
                    "syster tills vidare.",
                    "urgency": "urgent",
                    "children_in_household": "yes",
                    "resolve": {"kommunkod": "0780", "age": 8},
                    "legal_basis": {
                        "basis": "orosanmalan",
                        "justification": "Anmälningsskyldighet: oro för ett barn.",
                    },
                    "orosanmalan": {
                        "kommunkod": "0780",
                        "concerns": ["foralders_bruk"],
                        "immediate_danger": False,
                        "guardians_informed": "yes",
                    },
                },
                status=201,
                note={"oros_task_id": "recipients.0.task_id"},
            ),
            _follow(
                "Barn och familj has it, with the hour it is due.",
                VAXJO,
                BARN,
                "/v1/incoming/{oros_task_id}",
                until=("kind", "orosanmalan"),
            ),
        ),
    )
    return (consent, kontaktbegaran, vardkedjeremiss, discharge_sip, coordination, hvb, reports)
