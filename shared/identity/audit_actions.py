"""The audit action registry: every action code the services pass to the auditor, the
service it belongs to, and what it means in plain Swedish for the person who reads the
audit extract (loggutdrag).

The :class:`~shared.identity.audit.Auditor` refuses a code that is not here, so no action
goes undocumented; ``vardkedja audit-actions`` writes the list as ``docs/audit-actions.md``.
A request refused by the audit middleware is recorded under its operation's name instead
(:data:`REFUSED_REQUEST_TEXT`): that record never names a person.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class AuditAction(enum.StrEnum):
    """An action code of an audit record (``<resource>.<what>``)."""

    # consent
    PERSON_SEARCH = "person.search"
    PERSON_AUDIT_EXTRACT = "person.audit_extract"
    CONSENT_RECORD = "consent.record"
    CONSENT_RECORD_REPLAY = "consent.record.replay"
    CONSENT_READ = "consent.read"
    CONSENT_WITHDRAW = "consent.withdraw"
    CONSENT_DECISION = "consent.decision"
    CONSENT_COPY_READ = "consent_copy.read"
    REFUSAL_RECORD = "refusal.record"
    REFUSAL_RECORD_REPLAY = "refusal.record.replay"
    REFUSAL_READ = "refusal.read"
    REFUSAL_REVOKE = "refusal.revoke"
    BLOCK_RECORD = "block.record"
    BLOCK_RECORD_REPLAY = "block.record.replay"
    BLOCK_READ = "block.read"
    BLOCK_LIFT = "block.lift"
    BLOCK_REMOVE = "block.remove"
    # referral: as the sender
    REFERRAL_SEND = "referral.send"
    REFERRAL_READ = "referral.read"
    REFERRAL_LIST = "referral.list"
    REFERRAL_WITHDRAW = "referral.withdraw"
    REFERRAL_INFORMATION = "referral.information"
    REFERRAL_DISCHARGE = "referral.discharge"
    REFERRAL_HISTORY = "referral.history"
    REFERRAL_PERSON_SEARCH = "referral.person_search"
    REFERRAL_ATTACHMENTS_ADD = "referral.attachments_add"
    REFERRAL_ATTACHMENT_DOWNLOAD = "referral.attachment_download"
    # referral: as the receiver
    INCOMING_LIST = "incoming.list"
    INCOMING_READ = "incoming.read"
    INCOMING_PERSON_SEARCH = "incoming.person_search"
    INCOMING_ATTACHMENT_DOWNLOAD = "incoming.attachment_download"
    INCOMING_ACKNOWLEDGED = "incoming.acknowledged"
    INCOMING_RETURNED = "incoming.returned"
    INCOMING_ACCEPTED = "incoming.accepted"
    INCOMING_DECLINED = "incoming.declined"
    INCOMING_FORWARDED = "incoming.forwarded"
    INCOMING_INFORMATION_REQUESTED = "incoming.information_requested"
    INCOMING_IN_PROGRESS = "incoming.in_progress"
    INCOMING_COMPLETED = "incoming.completed"
    # referral: documents not yet sent with a referral (they name nobody yet)
    ATTACHMENT_UPLOAD = "attachment.upload"
    ATTACHMENT_LIST = "attachment.list"
    ATTACHMENT_DELETE = "attachment.delete"
    # referral: coordination meetings and plans (SIP)
    MEETING_CONVENE = "meeting.convene"
    MEETING_READ = "meeting.read"
    PLAN_RECORD = "plan.record"
    PLAN_READ = "plan.read"
    PLAN_MIN_PLAN = "plan.min_plan"
    PLAN_REVISE = "plan.revise"
    PLAN_ACTION_STARTED = "plan.action_started"
    PLAN_ACTION_ENDED = "plan.action_ended"
    PLAN_ACTION_CANCELLED = "plan.action_cancelled"
    PLAN_WORKLIST = "plan.worklist"
    PLAN_COORDINATION = "plan.coordination"


@dataclass(frozen=True)
class ActionSpec:
    """Which service records an action, and what happened, in Swedish (a verb phrase
    that follows "who": "Anna på Hemtjänst Norr *läste remissen*")."""

    service: str
    text: str


def _specs(service: str, texts: dict[AuditAction, str]) -> dict[AuditAction, ActionSpec]:
    return {action: ActionSpec(service, text) for action, text in texts.items()}


A = AuditAction
ACTIONS: Final[dict[AuditAction, ActionSpec]] = {
    **_specs(
        "consent",
        {
            A.PERSON_SEARCH: "sökte fram personens samtycken, nej och spärrar med historik",
            A.PERSON_AUDIT_EXTRACT: "tog fram ett loggutdrag om personen",
            A.CONSENT_RECORD: "registrerade ett samtycke",
            A.CONSENT_RECORD_REPLAY: "skickade samma registrering av ett samtycke igen "
            "(inget nytt registrerades)",
            A.CONSENT_READ: "läste ett samtycke",
            A.CONSENT_WITHDRAW: "registrerade att ett samtycke återkallades",
            A.CONSENT_DECISION: "kontrollerade om samtycke eller stöd i lag finns för att "
            "dela uppgifter",
            A.CONSENT_COPY_READ: "läste sin kopia av ett samtycke lämnat hos en annan huvudman",
            A.REFUSAL_RECORD: "registrerade att personen sagt nej till att uppgifter delas",
            A.REFUSAL_RECORD_REPLAY: "skickade samma registrering av ett nej igen "
            "(inget nytt registrerades)",
            A.REFUSAL_READ: "läste ett nej till att uppgifter delas",
            A.REFUSAL_REVOKE: "registrerade att ett nej togs tillbaka",
            A.BLOCK_RECORD: "registrerade en spärr av uppgifter",
            A.BLOCK_RECORD_REPLAY: "skickade samma registrering av en spärr igen "
            "(inget nytt registrerades)",
            A.BLOCK_READ: "läste en spärr",
            A.BLOCK_LIFT: "hävde en spärr tillfälligt",
            A.BLOCK_REMOVE: "tog bort en spärr",
        },
    ),
    **_specs(
        "referral",
        {
            A.REFERRAL_SEND: "skickade en remiss",
            A.REFERRAL_READ: "läste en skickad remiss",
            A.REFERRAL_LIST: "såg en skickad remiss i enhetens arbetslista",
            A.REFERRAL_WITHDRAW: "återkallade en remiss",
            A.REFERRAL_INFORMATION: "kompletterade en remiss med de uppgifter mottagaren bad om",
            A.REFERRAL_DISCHARGE: "registrerade att personen skrivits ut",
            A.REFERRAL_HISTORY: "läste en remiss historik",
            A.REFERRAL_PERSON_SEARCH: "sökte fram remisser om personen som enheten skickat",
            A.REFERRAL_ATTACHMENTS_ADD: "lade till dokument i en skickad remiss",
            A.REFERRAL_ATTACHMENT_DOWNLOAD: "öppnade ett dokument i en skickad remiss",
            A.INCOMING_LIST: "såg en inkommen remiss i enhetens inkorg",
            A.INCOMING_READ: "läste en inkommen remiss",
            A.INCOMING_PERSON_SEARCH: "sökte fram remisser om personen som enheten tagit emot",
            A.INCOMING_ATTACHMENT_DOWNLOAD: "öppnade ett dokument i en inkommen remiss",
            A.INCOMING_ACKNOWLEDGED: "kvitterade en inkommen remiss",
            A.INCOMING_RETURNED: "skickade tillbaka en remiss som kommit fel",
            A.INCOMING_ACCEPTED: "tog emot en remiss",
            A.INCOMING_DECLINED: "avböjde en remiss",
            A.INCOMING_FORWARDED: "skickade en remiss vidare till en annan enhet",
            A.INCOMING_INFORMATION_REQUESTED: "bad avsändaren komplettera en remiss",
            A.INCOMING_IN_PROGRESS: "påbörjade arbetet med en remiss",
            A.INCOMING_COMPLETED: "avslutade en remiss med ett resultat",
            A.ATTACHMENT_UPLOAD: "laddade upp ett dokument till en remiss som inte skickats",
            A.ATTACHMENT_LIST: "såg enhetens uppladdade dokument som väntar på en remiss",
            A.ATTACHMENT_DELETE: "tog bort ett uppladdat dokument som inte skickats",
            A.MEETING_CONVENE: "kallade till ett samordningsmöte",
            A.MEETING_READ: "läste ett samordningsmöte",
            A.PLAN_RECORD: "registrerade en samordnad individuell plan (SIP)",
            A.PLAN_READ: "läste en samordnad individuell plan (SIP)",
            A.PLAN_MIN_PLAN: "skrev ut personens egen plan (Min plan)",
            A.PLAN_REVISE: "ändrade en samordnad individuell plan (SIP)",
            A.PLAN_ACTION_STARTED: "påbörjade en insats i en plan",
            A.PLAN_ACTION_ENDED: "avslutade en insats i en plan",
            A.PLAN_ACTION_CANCELLED: "ställde in en insats i en plan",
            A.PLAN_WORKLIST: "såg en plan i enhetens lista över insatser",
            A.PLAN_COORDINATION: "såg en plan i den samordnande enhetens arbetslista",
        },
    ),
}

REFUSED_REQUEST_TEXT: Final = "försökte göra något som nekades"
"""What a refused request (recorded under its operation's name) did, in Swedish."""


def check_action(action: str) -> AuditAction:
    """The registered action ``action``; ValueError (a programming error) if it is not."""
    try:
        return AuditAction(action)
    except ValueError:
        raise ValueError(f"audit action {action!r} is not in the registry") from None


def action_text(action: str) -> str:
    """What ``action`` did, in Swedish (a code not in the registry: a refused request)."""
    try:
        return ACTIONS[AuditAction(action)].text
    except ValueError:
        return REFUSED_REQUEST_TEXT


def audit_actions_markdown() -> str:
    """The registry as the Markdown page ``docs/audit-actions.md``."""
    lines = [
        "# Audit action codes",
        "",
        "<!-- Generated by `vardkedja audit-actions` from `shared/identity/audit_actions.py`;"
        " do not edit. -->",
        "",
        "Every action code a service writes into the audit log (ADR 0010), the service that",
        "writes it, and the plain-Swedish wording the person's audit extract (loggutdrag)",
        "shows. The auditor refuses a code that is not listed here.",
        "",
        "A request the audit middleware records as refused (403 `denied`, 404 `not_found`)",
        "carries its operation's name as the code instead; such a record never names a",
        f'person, and the extract would word it "{REFUSED_REQUEST_TEXT}".',
        "",
        "| Code | Service | Swedish wording |",
        "|---|---|---|",
    ]
    lines += [f"| `{a.value}` | {s.service} | {s.text} |" for a, s in ACTIONS.items()]
    return "\n".join(lines) + "\n"
