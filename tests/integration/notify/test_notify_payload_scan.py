"""Payload scan (reliability.md, scenario 12): every notification of every kind, as the inbox
API shows it, as the case system receives it (webhook body) and as the functional mailbox
receives it (e-mail), holds only allowed fields with allowed values — no personnummer, no
free text. And an event whose id is a personnummer is refused, not repeated."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.notify.content import (
    _DEADLINE_TITLES,
    _FATES,
    _TITLES,
    KINDS,
    looks_like_personnummer,
)
from services.notify.dispatch import Dispatcher
from services.notify.schemas import NotificationOut
from services.notify.timers import fire_due_timers
from shared.config import NotifySettings
from shared.data.db import Database, new_id, utcnow
from shared.domain.kinds import REFERRAL_KIND_LABELS
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    PLAN_ACTION_CHANGED_V1,
    REFERRAL_BASIS_NARROWED_V1,
    REFERRAL_DEADLINE_V1,
    REFERRAL_DISCHARGED_V1,
    REFERRAL_DOCUMENT_ADDED_V1,
    REFERRAL_STATUS_CHANGED_V1,
    UNIT_REVIEW_DUE_V1,
    ConsentEndedV1,
    ConsentPartyRef,
    PlanActionChangedV1,
    ReferralBasisNarrowedV1,
    ReferralDeadlineV1,
    ReferralDischargedV1,
    ReferralDocumentAddedV1,
    ReferralStatusChangedV1,
    UnitReviewDueV1,
)
from tests.conftest import ORG_REGION, ORG_VAXJO
from tests.helpers.harness import eventually
from tests.integration.notify.conftest import (
    ADMIN,
    COORDINATOR,
    INTAKE,
    MAILBOX,
    auth,
    handle,
    notify_settings,
    received,
    set_mailbox,
    subscribe,
    work_of,
)
from tests.integration.notify.servers import SmtpServer, WebhookReceiver

PERSONNUMMER = "19121212-1212"  # Skatteverket's test number: a valid personnummer

ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
WORD = re.compile(r"^[a-z_.]{1,40}$")
ORGNR = re.compile(r"^[0-9]{6}-[0-9]{4}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
LINK = re.compile(r"^https://notify\.vaxjo\.example/v1/notifications/[0-9a-f-]{36}$")
_LABEL = "|".join(
    re.escape(x)
    for x in [
        *REFERRAL_KIND_LABELS.values(),
        "Kallelse till SIP",
        "Planerad insats",
        "Samtycke",
        "Uppgifter i katalogen",
        "Remiss",
    ]
)
TITLE = re.compile(
    "^(?:"
    + "|".join(
        re.escape(t)
        .replace(r"\{what\}", f"(?:{_LABEL})")
        .replace(r"\{status\}", "[a-z_]*")
        .replace(r"\{due\}", r"(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2})?")
        .replace(r"\{fate\}", "(?:" + "|".join(map(re.escape, _FATES.values())) + ")")
        .replace(r"\{covers\}", f"(?:(?:{_LABEL})(?:, (?:{_LABEL}))*|ingen remisstyp)")
        for t in [*_TITLES.values(), *_DEADLINE_TITLES.values()]
    )
    + ")$"
)
# Which values each field may hold. A field not listed here is not allowed at all.
FIELDS: dict[str, re.Pattern[str]] = {
    "id": ID,
    "notification_id": ID,
    "kind": WORD,
    "type": WORD,
    "title": TITLE,
    "subject_type": WORD,
    "subject_id": ID,
    "unit_id": ID,
    "referral_kind": WORD,
    "urgency": WORD,
    "status": WORD,
    "deadline": WORD,
    "due_at": TIME,
    "counterpart_orgnr": ORGNR,
    "covers": WORD,  # a list of kinds
    "recipient_kind": WORD,
    "recipient": ID,
    "created_at": TIME,
    "timestamp": TIME,
    "read_at": TIME,
    "acknowledged_at": TIME,
    "link": LINK,
}
EMAIL_LINES = [
    re.compile(r"^(?P<title>.+)\.$"),
    re.compile(r"^$"),
    re.compile(r"^Inkorg: (?:[A-Za-z0-9._:-]+|Socialtjänstens mottagning vuxna)$"),
    re.compile(r"^Senast: \d{4}-\d{2}-\d{2} \d{2}:\d{2}$"),
    re.compile(r"^Brådskande: ja$"),
    re.compile(r"^Öppna: https://notify\.vaxjo\.example/v1/notifications/[0-9a-f-]{36}$"),
    re.compile(
        r"^Meddelandet innehåller inga personuppgifter\. Logga in i vårdkedjan för att läsa "
        r"ärendet\.$"
    ),
]


def scan_json(value: Any, path: str = "") -> list[str]:
    """Every field or value that is not allowed, as ``path: why``."""
    problems: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "data" and path == "":
                problems += scan_json(item, "data")
                continue
            if key not in FIELDS:
                problems.append(f"{path}.{key}: field not allowed")
                continue
            if item is None:
                continue
            if key == "covers" and isinstance(item, list):
                problems += [
                    f"{path}.{key}: value not allowed"
                    for kind in item
                    if not isinstance(kind, str) or not FIELDS[key].match(kind)
                ]
                continue
            if not isinstance(item, str) or not FIELDS[key].match(item):
                problems.append(f"{path}.{key}: value not allowed")
            elif looks_like_personnummer(item):
                problems.append(f"{path}.{key}: personnummer")
    else:
        problems.append(f"{path}: not an object")
    return problems


def scan_email(subject: str, text: str) -> list[str]:
    problems = []
    if not TITLE.match(subject.removeprefix("vårdkedja: ")):
        problems.append("subject: not a template")

    def allowed(line: str) -> bool:
        for pattern in EMAIL_LINES:
            m = pattern.match(line)
            if m is not None and ("title" not in m.groupdict() or TITLE.match(m["title"])):
                return True
        return False

    for line in text.splitlines():
        if not allowed(line):
            problems.append(f"line not from a template: {len(line)} characters")
    if looks_like_personnummer(subject + text):
        problems.append("personnummer")
    return problems


def every_event() -> list[tuple[str, Any]]:
    """One event of every type notify handles, every optional field filled."""
    now = utcnow()
    return [
        received(),
        (
            REFERRAL_STATUS_CHANGED_V1,
            ReferralStatusChangedV1(
                referral_id=new_id(),
                kind="vardkedjeremiss",
                unit_id=INTAKE,
                old_status="delivered",
                new_status="accepted",
                changed_at=now,
                version=3,
            ),
        ),
        *[
            (
                REFERRAL_DEADLINE_V1,
                ReferralDeadlineV1(
                    referral_id=new_id(),
                    kind="utskrivningsplanering",
                    unit_id=INTAKE,
                    deadline="discharge",
                    due_at=now + dt.timedelta(hours=5),
                    state=state,
                ),
            )
            for state in ("near", "overdue")
        ],
        (
            REFERRAL_DEADLINE_V1,
            ReferralDeadlineV1(
                referral_id=new_id(),
                kind="sip_kallelse",
                unit_id=INTAKE,
                deadline="answer",
                due_at=now - dt.timedelta(hours=5),
                state="overdue",
                audience="sender",
            ),
        ),
        *[
            (
                PLAN_ACTION_CHANGED_V1,
                PlanActionChangedV1(
                    plan_id=new_id(),
                    action_id=new_id(),
                    unit_id=INTAKE,
                    change=change,
                    owner_orgnr=ORG_REGION,
                    owner_unit_id="region-beroende",
                    outcome="interrupted" if change == "ended" else None,
                    at=now,
                ),
            )
            for change in ("assigned", "started", "ended", "cancelled")
        ],
        (
            CONSENT_ENDED_V1,
            ConsentEndedV1(
                consent_id=new_id(),
                owner_orgnr=ORG_REGION,
                reason="expired",
                ended_at=now,
                parties=[ConsentPartyRef(orgnr=ORG_VAXJO, unit_id=INTAKE)],
                purposes=["sip"],
                version=4,
            ),
        ),
        *[
            (
                REFERRAL_DISCHARGED_V1,
                ReferralDischargedV1(
                    referral_id=new_id(),
                    kind="utskrivningsplanering",
                    unit_id=INTAKE,
                    audience=audience,
                    sender_orgnr=ORG_REGION,
                    unplanned=True,
                    at=now,
                ),
            )
            for audience in ("recipient", "coordinator")
        ],
        (
            REFERRAL_DOCUMENT_ADDED_V1,
            ReferralDocumentAddedV1(
                referral_id=new_id(),
                kind="kontaktbegaran",
                unit_id=INTAKE,
                sender_orgnr=ORG_REGION,
                content_type="application/pdf",
                at=now,
            ),
        ),
        (
            REFERRAL_BASIS_NARROWED_V1,
            ReferralBasisNarrowedV1(
                referral_id=new_id(),
                kind="kontaktbegaran",
                unit_id=INTAKE,
                direction="incoming",
                counterpart_orgnr=ORG_REGION,
                covers=["kontaktbegaran", "vardkedjeremiss"],
                cancelled=False,
                narrowed_at=now,
            ),
        ),
        (
            UNIT_REVIEW_DUE_V1,
            UnitReviewDueV1(
                unit_id=INTAKE,
                unit_name="Socialtjänstens mottagning vuxna",
                due_since=dt.date(2026, 6, 1),
            ),
        ),
    ]


class TestPayloadScan:
    async def test_inbox_webhook_and_email_hold_only_allowed_fields_for_every_kind(
        self,
        db_url: str,
        db: Database,
        client: httpx.AsyncClient,
        receiver: WebhookReceiver,
        smtp: SmtpServer,
    ) -> None:
        settings = notify_settings(
            db_url,
            smtp={"host": "127.0.0.1", "port": smtp.port, "tls": "none"},
            coordinator_unit_ids=[COORDINATOR],
            escalate_after_s=0,
            remind_before_s=1,
            # The demo rules, every one on every channel, so every kind is rendered by each.
            rules=[
                r.model_copy(update={"channels": ["inbox", "webhook", "email"]})
                for r in NotifySettings().rules
            ],
        )
        await set_mailbox(client, INTAKE, MAILBOX)
        await set_mailbox(client, COORDINATOR, "vardkedjekoordinator@vaxjo.example")
        await subscribe(
            client, receiver.url, unit_id=None, event_types=list(KINDS), headers=auth(**ADMIN)
        )
        for event in every_event():
            await handle(db, settings, event)
        # Timers: a reminder, an overdue notice and an escalation.
        await handle(db, settings, received(acknowledge_by=utcnow() + dt.timedelta(seconds=1.2)))
        dispatcher = Dispatcher(settings, db)

        async def all_sent() -> bool:
            async with db.transaction() as session:
                await fire_due_timers(work_of(session, settings))
            await dispatcher.dispatch_batch()
            kinds = {json.loads(r.body)["type"] for r in receiver.received}
            return kinds == set(KINDS)

        try:
            await eventually(all_sent, within=30, what="a webhook of every kind")
        finally:
            await dispatcher.close()

        problems: list[str] = []
        inbox_items: list[dict[str, Any]] = []
        for unit in (INTAKE, COORDINATOR):
            page = (
                await client.get(f"/v1/units/{unit}/notifications?limit=500", headers=auth(**ADMIN))
            ).json()
            inbox_items += page["items"]
        assert {i["kind"] for i in inbox_items} == set(KINDS)
        assert set(NotificationOut.model_fields) <= set(FIELDS)
        for item in inbox_items:
            problems += scan_json(item, "inbox")
        for r in receiver.received:
            problems += scan_json(json.loads(r.body))
        assert smtp.messages
        for _env, message in smtp.messages:
            problems += scan_email(str(message["Subject"]), message.get_content())
        assert problems == []

    def test_the_scan_finds_what_it_looks_for(self) -> None:
        """The scan is not vacuous: a personnummer, a name or an extra field is found."""
        assert scan_json({"subject_id": PERSONNUMMER.replace("-", "")})
        assert scan_json({"title": "Ny kontaktbegäran för Anna Andersson"})
        assert scan_json({"note": "ring mamman"})
        assert scan_email("vårdkedja: Ny Kontaktbegäran i inkorgen", "Patienten Anna mår dåligt\n")
        assert scan_email("vårdkedja: Ny Kontaktbegäran i inkorgen", f"Inkorg: {PERSONNUMMER}\n")

    async def test_an_event_whose_id_is_a_personnummer_is_not_repeated(
        self, db: Database, db_url: str
    ) -> None:
        settings = notify_settings(db_url)
        with pytest.raises(ValidationError):
            await handle(db, settings, received(referral_id=PERSONNUMMER.replace("-", "")))
        with pytest.raises(ValidationError):
            await handle(db, settings, received(unit_id="121212-1212"))
