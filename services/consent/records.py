"""Consents this member records: recording, reading, withdrawing and expiring a consent.

A consent lives until it is withdrawn, expires after its last day or is superseded by a
new one; each of those ends tells every party it names, as its recording did, through the
outbox of the same unit of work (each party keeps a copy, :mod:`services.consent.copies`).
The person may also withdraw some of its purposes: it then stays in force for the rest
(narrowed), and the parties are told that too; withdrawing the last purposes in force is a
withdrawal of the whole consent.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm.exc import StaleDataError

from services.consent.codes import ConsentForm, ConsentStatus, GiverKind, WithdrawerKind
from services.consent.decision import swedish_day
from services.consent.history import SYSTEM_USER, Actor, actor, log_change, recorder
from services.consent.models import Consent
from services.consent.parties import (
    check_parties,
    in_force,
    invalid,
    owned,
    party_dicts,
    party_refs,
)
from services.consent.person import key_of
from services.consent.repository import ConsentRepository, RefusalRepository
from services.consent.schemas import ConsentCreate, WithdrawRequest
from shared.data.work import Work
from shared.messaging.events import topics
from shared.messaging.events.payloads import (
    CONSENT_ENDED_V1,
    CONSENT_NARROWED_V1,
    CONSENT_RECORDED_V1,
    ConsentEndedV1,
    ConsentNarrowedV1,
    ConsentRecordedV1,
)
from shared.web.errors import Conflict, FieldProblem, InvalidInput, NotFound, PreconditionFailed
from shared.web.etag import etag

ConsentNotFound = NotFound.kind("consent-not-found", "No such consent recorded by this member")
ConsentNotActive = Conflict.kind(
    "consent-not-active", "The consent is no longer active (withdrawn, expired or superseded)"
)
RefusalInForce = Conflict.kind(
    "refusal-in-force", "An active refusal of the person covers these parties and purposes"
)
ConsentVersionMismatch = PreconditionFailed.kind(
    "consent-version-mismatch",
    "The consent has changed since you read it (If-Match does not match its ETag)",
)


def _check_validity(
    valid_from: dt.date, valid_to: dt.date, *, today: dt.date, max_days: int
) -> list[FieldProblem]:
    if valid_to < valid_from:
        return [
            FieldProblem(field="valid_to", rule="end_before_start", message="ends before it starts")
        ]
    problems = []
    if (valid_to - valid_from).days > max_days:
        problems.append(
            FieldProblem(
                field="valid_to",
                rule="beyond_max_validity",
                message=f"a consent may be valid for at most {max_days} days",
            )
        )
    if valid_to < today:
        problems.append(
            FieldProblem(field="valid_to", rule="in_the_past", message="the end date has passed")
        )
    return problems


def _check_form(data: ConsentCreate) -> list[FieldProblem]:
    """What a consent's form and giver require: (missing?, field, rule, message) each."""
    required = (
        (
            data.form is ConsentForm.ORAL and not data.form_note,
            "form_note",
            "required_for_oral",
            "an oral consent needs a note of how and when it was given",
        ),
        (
            data.form is ConsentForm.WRITTEN and not data.signed_form_reference,
            "signed_form_reference",
            "required_for_written",
            "say where the signed form is kept",
        ),
        (
            data.given_by.kind is not GiverKind.PERSON and not data.given_by.reference,
            "given_by.reference",
            "required_for_representative",
            "a representative's consent needs the reference it rests on",
        ),
        (
            not data.person_informed,
            "person_informed",
            "must_be_confirmed",
            "confirm the person was told the purpose and what refusing means",
        ),
    )
    return [
        FieldProblem(field=field, rule=rule, message=message)
        for missing, field, rule, message in required
        if missing
    ]


async def _to_parties(
    work: Work,
    consent: Consent,
    type_: str,
    payload: ConsentRecordedV1 | ConsentEndedV1 | ConsentNarrowedV1,
) -> None:
    """One event per named member, on its inbound topic (its own member's included)."""
    for orgnr in dict.fromkeys(p["orgnr"] for p in consent.parties):
        await work.publish(
            topics.inbound(orgnr),
            type_,
            payload,
            subject=consent.id,
            key=consent.id,
            aggversion=consent.version,
        )


async def _end(
    work: Work,
    consent: Consent,
    reason: ConsentStatus,
    *,
    by: Actor,
    superseded_by: str | None = None,
) -> None:
    """Ends a consent (withdrawn, expired or superseded) and tells every party."""
    consent.status = str(reason)
    consent.ended_at = work.now
    consent.superseded_by_id = superseded_by
    try:
        await ConsentRepository(work.session).save(consent)  # bumps the version sent
    except StaleDataError as exc:  # another request ended or changed it meanwhile
        raise ConsentNotActive("the consent changed meanwhile; read it again") from exc
    await _to_parties(
        work,
        consent,
        CONSENT_ENDED_V1,
        ConsentEndedV1(
            consent_id=consent.id,
            owner_orgnr=consent.owner_orgnr,
            reason=str(reason),
            ended_at=work.now,
            parties=party_refs(consent.parties),
            purposes=consent.purposes,
            superseded_by=superseded_by,
            version=consent.version,
        ),
    )
    await log_change(
        work,
        consent,
        str(reason),
        by=by,
        details={"version": consent.version, "superseded_by": superseded_by},
    )


async def _superseded(work: Work, data: ConsentCreate, key: str) -> Consent | None:
    """The active consent of the same person that ``data`` replaces, if it names one."""
    if data.supersedes is None:
        return None
    previous = await ConsentRepository(work.session).get_owned(data.supersedes, work.member)
    if previous is None or previous.person_key != key:
        raise InvalidInput.field(
            "supersedes", "unknown_consent", "no consent of this person recorded here"
        )
    if previous.status != ConsentStatus.ACTIVE:
        raise ConsentNotActive(f"the consent to supersede is {previous.status}")
    return previous


async def record_consent(work: Work, data: ConsentCreate) -> Consent:
    """Records a consent of this member and sends a copy to every party it names."""
    owner, settings = work.member, work.settings
    problems = [
        *check_parties(
            data.parties, owner_orgnr=owner, federation=settings.federation_members, field="parties"
        ),
        *_check_validity(
            data.valid_from,
            data.valid_to,
            today=swedish_day(work.now),
            max_days=settings.consent.max_validity_days,
        ),
        *_check_form(data),
    ]
    if problems:
        raise invalid(problems)
    key = key_of(settings=settings, personnummer=data.person.personnummer)
    previous = await _superseded(work, data, key)
    parties = party_dicts(data.parties)
    purposes = list(dict.fromkeys(str(p) for p in data.purposes))
    refusal = in_force(
        await RefusalRepository(work.session).for_person(key, owner), parties, purposes
    )
    if refusal is not None:
        raise RefusalInForce(
            f"refusal {refusal.id} covers these parties; revoke it first if the "
            "person has changed their mind"
        )
    by = recorder(work, data.recorded_by)
    consent = await ConsentRepository(work.session).add(
        Consent(
            owner_orgnr=owner,
            person_key=key,
            personnummer=data.person.personnummer,
            protected_identity=data.person.protected_identity,
            recorded_by_user=by.user,
            recorded_by_unit=by.unit,
            given_by_kind=str(data.given_by.kind),
            given_by_name=data.given_by.name,
            given_by_reference=data.given_by.reference,
            form=str(data.form),
            form_note=data.form_note,
            signed_form_reference=data.signed_form_reference,
            person_informed=data.person_informed,
            purposes=purposes,
            parties=parties,
            categories=list(dict.fromkeys(str(c) for c in data.categories)),
            valid_from=data.valid_from,
            valid_to=data.valid_to,
            status=str(ConsentStatus.ACTIVE),
            supersedes_id=data.supersedes,
        )
    )
    if previous is not None:
        await _end(
            work,
            previous,
            ConsentStatus.SUPERSEDED,
            by=by,
            superseded_by=consent.id,
        )
    await _to_parties(
        work,
        consent,
        CONSENT_RECORDED_V1,
        ConsentRecordedV1(
            consent_id=consent.id,
            owner_orgnr=owner,
            personnummer=consent.personnummer,
            protected_identity=consent.protected_identity,
            parties=party_refs(consent.parties),
            purposes=consent.purposes,
            categories=consent.categories,
            valid_from=consent.valid_from,
            valid_to=consent.valid_to,
            recorded_by_unit=consent.recorded_by_unit,
            recorded_at=consent.created_at,
            version=consent.version,
        ),
    )
    await log_change(
        work,
        consent,
        "recorded",
        by=by,
        details={
            "version": consent.version,
            "purposes": consent.purposes,
            "categories": consent.categories,
            "parties": consent.parties,
            "valid_from": consent.valid_from.isoformat(),
            "valid_to": consent.valid_to.isoformat(),
            "form": consent.form,
            "supersedes": consent.supersedes_id,
        },
    )
    return consent


async def get_own_consent(work: Work, consent_id: str) -> Consent:
    """Gets a consent this member recorded (ConsentNotFound otherwise)."""
    return await owned(work, Consent, consent_id, ConsentNotFound)


def _check_withdrawal(consent: Consent, data: WithdrawRequest) -> list[str] | None:
    """The purposes to withdraw (None: the whole consent), deduplicated; InvalidInput naming
    every problem: a representative without a reference, a purpose the consent does not
    have in force (``not_in_consent``, or ``already_withdrawn``)."""
    problems = []
    by = data.withdrawn_by
    if by.kind not in (WithdrawerKind.PERSON, WithdrawerKind.STAFF) and not by.reference:
        problems.append(
            FieldProblem(
                field="withdrawn_by.reference",
                rule="required_for_representative",
                message="a representative's withdrawal needs the reference it rests on",
            )
        )
    asked = None if data.purposes is None else [str(p) for p in data.purposes]
    for i, purpose in enumerate(asked or ()):
        if purpose in consent.purposes:
            continue
        withdrawn_before = purpose in consent.withdrawn_purposes
        problems.append(
            FieldProblem(
                field=f"purposes.{i}",
                rule="already_withdrawn" if withdrawn_before else "not_in_consent",
                message="the person withdrew this purpose before"
                if withdrawn_before
                else "the consent does not cover this purpose",
            )
        )
    if problems:
        raise invalid(problems)
    return None if asked is None else list(dict.fromkeys(asked))


async def withdraw_consent(
    work: Work, consent: Consent, data: WithdrawRequest, *, expected_version: int | None = None
) -> Consent:
    """Withdraws a consent, or only the purposes ``data`` names, at once and tells every
    party (409 if not active, 412 if stale, 422 for bad input with nothing stored). Naming
    every purpose still in force withdraws the whole consent."""
    if expected_version is not None and expected_version != consent.version:
        raise ConsentVersionMismatch(headers={"ETag": etag(consent.version)})
    if consent.status != ConsentStatus.ACTIVE:
        raise ConsentNotActive(f"the consent is {consent.status}")
    purposes = _check_withdrawal(consent, data)
    who = actor(work)
    if purposes is not None and set(consent.purposes) - set(purposes):
        await _narrow(work, consent, purposes, data, by=who)
        return consent
    by = data.withdrawn_by
    consent.withdrawn_by_kind = str(by.kind)
    consent.withdrawn_by_reference = by.reference
    consent.withdrawal_reason = data.reason
    consent.withdrawn_by_user = who.user
    await _end(work, consent, ConsentStatus.WITHDRAWN, by=who)
    return consent


async def _narrow(
    work: Work, consent: Consent, withdrawn: list[str], data: WithdrawRequest, *, by: Actor
) -> None:
    """Withdraws some of a consent's purposes (it stays in force for the rest), keeps who
    withdrew them and why, and tells every party (``consent.narrowed``)."""
    kept = [p for p in consent.purposes if p not in withdrawn]
    consent.purposes = kept
    consent.withdrawn_purposes = [*consent.withdrawn_purposes, *withdrawn]
    consent.purpose_withdrawals = [
        *consent.purpose_withdrawals,
        {
            "purposes": withdrawn,
            "at": work.now.isoformat(),
            "by_kind": str(data.withdrawn_by.kind),
            "by_reference": data.withdrawn_by.reference,
            "reason": data.reason,
            "recorded_by_user": by.user,
            "recorded_by_unit": by.unit,
        },
    ]
    # Bumps the version sent; a change meanwhile raises StaleDataError: 412, read it again.
    await ConsentRepository(work.session).save(consent)
    await _to_parties(
        work,
        consent,
        CONSENT_NARROWED_V1,
        ConsentNarrowedV1(
            consent_id=consent.id,
            owner_orgnr=consent.owner_orgnr,
            parties=party_refs(consent.parties),
            purposes=kept,
            withdrawn_purposes=consent.withdrawn_purposes,
            narrowed_at=work.now,
            version=consent.version,
        ),
    )
    await log_change(
        work,
        consent,
        "purposes_withdrawn",
        by=by,
        details={"version": consent.version, "purposes": withdrawn, "kept": kept},
    )


async def expire_due(work: Work, *, today: dt.date, batch: int = 500) -> int:
    """Expires active consents past their end date, tells their parties; returns how many
    (as the worker, :data:`~services.consent.history.SYSTEM_USER`)."""
    due = await ConsentRepository(work.session).due_to_expire(work.member, today, batch)
    for consent in due:
        await _end(work, consent, ConsentStatus.EXPIRED, by=Actor(SYSTEM_USER, None))
    return len(due)
