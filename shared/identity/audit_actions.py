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


_A = AuditAction
ACTIONS: Final[dict[AuditAction, ActionSpec]] = {
    **_specs(
        "consent",
        {
            _A.PERSON_SEARCH: "sökte fram personens samtycken, nej och spärrar med historik",
            _A.PERSON_AUDIT_EXTRACT: "tog fram ett loggutdrag om personen",
            _A.CONSENT_RECORD: "registrerade ett samtycke",
            _A.CONSENT_RECORD_REPLAY: "skickade samma registrering av ett samtycke igen "
            "(inget nytt registrerades)",
            _A.CONSENT_READ: "läste ett samtycke",
            _A.CONSENT_WITHDRAW: "registrerade att ett samtycke återkallades",
            _A.CONSENT_DECISION: "kontrollerade om samtycke eller stöd i lag finns för att "
            "dela uppgifter",
            _A.CONSENT_COPY_READ: "läste sin kopia av ett samtycke lämnat hos en annan huvudman",
            _A.REFUSAL_RECORD: "registrerade att personen sagt nej till att uppgifter delas",
            _A.REFUSAL_RECORD_REPLAY: "skickade samma registrering av ett nej igen "
            "(inget nytt registrerades)",
            _A.REFUSAL_READ: "läste ett nej till att uppgifter delas",
            _A.REFUSAL_REVOKE: "registrerade att ett nej togs tillbaka",
            _A.BLOCK_RECORD: "registrerade en spärr av uppgifter",
            _A.BLOCK_RECORD_REPLAY: "skickade samma registrering av en spärr igen "
            "(inget nytt registrerades)",
            _A.BLOCK_READ: "läste en spärr",
            _A.BLOCK_LIFT: "hävde en spärr tillfälligt",
            _A.BLOCK_REMOVE: "tog bort en spärr",
        },
    ),
    **_specs(
        "referral",
        {
            _A.REFERRAL_SEND: "skickade en remiss",
            _A.REFERRAL_READ: "läste en skickad remiss",
            _A.REFERRAL_LIST: "såg en skickad remiss i enhetens arbetslista",
            _A.REFERRAL_WITHDRAW: "återkallade en remiss",
            _A.REFERRAL_INFORMATION: "kompletterade en remiss med de uppgifter mottagaren bad om",
            _A.REFERRAL_DISCHARGE: "registrerade att personen skrivits ut",
            _A.REFERRAL_HISTORY: "läste en remiss historik",
            _A.REFERRAL_PERSON_SEARCH: "sökte fram remisser om personen som enheten skickat",
            _A.REFERRAL_ATTACHMENTS_ADD: "lade till dokument i en skickad remiss",
            _A.REFERRAL_ATTACHMENT_DOWNLOAD: "öppnade ett dokument i en skickad remiss",
            _A.INCOMING_LIST: "såg en inkommen remiss i enhetens inkorg",
            _A.INCOMING_READ: "läste en inkommen remiss",
            _A.INCOMING_PERSON_SEARCH: "sökte fram remisser om personen som enheten tagit emot",
            _A.INCOMING_ATTACHMENT_DOWNLOAD: "öppnade ett dokument i en inkommen remiss",
            _A.INCOMING_ACKNOWLEDGED: "kvitterade en inkommen remiss",
            _A.INCOMING_RETURNED: "skickade tillbaka en remiss som kommit fel",
            _A.INCOMING_ACCEPTED: "tog emot en remiss",
            _A.INCOMING_DECLINED: "avböjde en remiss",
            _A.INCOMING_FORWARDED: "skickade en remiss vidare till en annan enhet",
            _A.INCOMING_INFORMATION_REQUESTED: "bad avsändaren komplettera en remiss",
            _A.INCOMING_IN_PROGRESS: "påbörjade arbetet med en remiss",
            _A.INCOMING_COMPLETED: "avslutade en remiss med ett resultat",
            _A.ATTACHMENT_UPLOAD: "laddade upp ett dokument till en remiss som inte skickats",
            _A.ATTACHMENT_LIST: "såg enhetens uppladdade dokument som väntar på en remiss",
            _A.ATTACHMENT_DELETE: "tog bort ett uppladdat dokument som inte skickats",
            _A.MEETING_CONVENE: "kallade till ett samordningsmöte",
            _A.MEETING_READ: "läste ett samordningsmöte",
            _A.PLAN_RECORD: "registrerade en samordnad individuell plan (SIP)",
            _A.PLAN_READ: "läste en samordnad individuell plan (SIP)",
            _A.PLAN_MIN_PLAN: "skrev ut personens egen plan (Min plan)",
            _A.PLAN_REVISE: "ändrade en samordnad individuell plan (SIP)",
            _A.PLAN_ACTION_STARTED: "påbörjade en insats i en plan",
            _A.PLAN_ACTION_ENDED: "avslutade en insats i en plan",
            _A.PLAN_ACTION_CANCELLED: "ställde in en insats i en plan",
            _A.PLAN_WORKLIST: "såg en plan i enhetens lista över insatser",
            _A.PLAN_COORDINATION: "såg en plan i den samordnande enhetens arbetslista",
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
