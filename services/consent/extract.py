"""The person's audit extract (loggutdrag): every access to the person's data in this
member's four services, and the page a person can print.

The consent service reads its own audit log; the other three services send theirs as
events on the member's internal topic, kept here as audit copies by the worker (ADR 0011).
Each entry is also put in words for the person: the action from the audit action registry,
the unit and its huvudman by name (:mod:`services.consent.known_units`), the time in
Swedish local time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

from services.consent.codes import PURPOSE_LABELS
from services.consent.known_units import names_of
from services.consent.person import key_of
from services.consent.repository import AuditCopyRepository, AuditLogRepository, CopyRepository
from services.consent.schemas import AuditEntry, AuditExtract
from shared.data.work import Work
from shared.domain import kinds
from shared.domain.swedish import time_sv
from shared.identity.audit_actions import action_text
from shared.identity.identifiers import IdentifierError
from shared.messaging.events import CloudEvent
from shared.messaging.events.payloads import AuditRecordedV1
from shared.messaging.inbox import Reject
from shared.web.templates import templates

SERVICE_LABELS: Final = {
    "consent": "Samtycken",
    "directory": "Katalog",
    "referral": "Remisser",
    "notify": "Aviseringar",
}
OUTCOME_LABELS: Final = {"allowed": "tillåten", "denied": "nekad", "not_found": "hittades inte"}
ENTRY_FIELDS: Final = (
    "occurred_at",
    "service",
    "action",
    "actor_sub",
    "actor_org",
    "actor_unit",
    "purpose",
    "outcome",
    "resource_type",
    "resource_id",
)
"""What an entry of the extract shows, from this service's records and the copies alike."""

_TEMPLATES: Final = templates(__file__)


async def apply_audit_recorded(work: Work, event: CloudEvent, payload: AuditRecordedV1) -> bool:
    """Keeps another service's audit record for the person's extract; True if stored."""
    return await apply_audit_records(work, [(event, payload)]) == 1


async def apply_audit_records(
    work: Work, arrived: Sequence[tuple[CloudEvent, AuditRecordedV1]]
) -> int:
    """Keeps other services' audit records for the persons' extracts (a consumed run of
    them: one look for those already kept, one insert); returns how many were stored. A
    record from another member, or naming an invalid person id, rejects the run (the inbox
    then takes its events one at a time)."""
    rows: dict[str, dict[str, Any]] = {}
    for event, payload in arrived:
        if event.sender_orgnr != work.settings.member.digits:
            raise Reject("sender_not_member", "only this member's services send audit records")
        if payload.service == "consent" or event.id in rows:
            continue  # read from this service's own audit log / a repeat in this run
        try:
            key = key_of(settings=work.settings, personnummer=payload.person_id)
        except IdentifierError as exc:
            raise Reject("invalid_personnummer", "the person id is not valid") from exc
        rows[event.id] = {
            "source_event_id": event.id,
            "person_key": key,
            **{f: getattr(payload, f) for f in ENTRY_FIELDS},
        }
    repo = AuditCopyRepository(work.session)
    for seen in await repo.seen_among(list(rows)):
        del rows[seen]
    await repo.add_rows(list(rows.values()))
    return len(rows)


async def audit_entries(
    work: Work,
    *,
    audit_table: Any,
    personnummer: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> list[dict[str, Any]]:
    """Every access to the person's data in this member's four services, oldest first."""
    session = work.session
    key = key_of(settings=work.settings, personnummer=personnummer)
    held = await CopyRepository(session).for_person(key)
    own = await AuditLogRepository(session, audit_table).for_person(
        personnummer, copy_ids=[c.consent_id for c in held], since=since, until=until
    )
    copies = await AuditCopyRepository(session).for_person(key, since=since, until=until)
    entries = [{f: getattr(r, f) for f in ENTRY_FIELDS} for r in [*own, *copies]]
    return sorted(entries, key=lambda e: e["occurred_at"])


def _purpose_text(purpose: str | None) -> str | None:
    """A consent purpose or a referral kind, as a person reads it."""
    if purpose is None or purpose in PURPOSE_LABELS:
        return PURPOSE_LABELS.get(purpose or "")
    try:
        return kinds.spec(purpose).purpose_label  # the referral service records the kind
    except ValueError:
        return purpose


async def in_words(work: Work, entries: list[dict[str, Any]]) -> list[AuditEntry]:
    """The entries with what a person reads beside each code: the action, service, purpose
    and outcome in Swedish, the unit's and its huvudman's names (when the directory has
    named them) and the time in Swedish local time."""
    names = await names_of(
        work,
        (e["actor_unit"] for e in entries if e["actor_unit"]),
        (e["actor_org"] for e in entries),
    )
    return [
        AuditEntry(
            **e,
            occurred_at_local=time_sv(e["occurred_at"]),
            service_text=SERVICE_LABELS.get(e["service"], e["service"]),
            action_text=action_text(e["action"]),
            org_name=names.member(e["actor_org"]),
            unit_name=names.unit(e["actor_unit"]),
            purpose_text=_purpose_text(e["purpose"]),
            outcome_text=OUTCOME_LABELS.get(e["outcome"], e["outcome"]),
        )
        for e in entries
    ]


def render_html(extract: AuditExtract) -> str:
    """The extract as a printable page (A4 print styles, autoescaped), in Swedish."""
    return _TEMPLATES.get_template("loggutdrag.html").render(
        ex=extract, services=SERVICE_LABELS, time_sv=time_sv
    )
