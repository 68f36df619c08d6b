"""HTTP API of consents this member records: record, read and withdraw a consent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from services.consent import records
from services.consent.api import Creating, IfMatch, ReadStep, RecordId, WriteStep
from services.consent.models import Consent
from services.consent.records import (
    ConsentNotActive,
    ConsentNotFound,
    ConsentVersionMismatch,
    RefusalInForce,
)
from services.consent.schemas import ConsentCreate, ConsentOut, WithdrawRequest
from services.consent.views import consent_out
from shared.data.work import Work
from shared.identity.audit import AuditUnavailable
from shared.web.app import IdempotencyInProgress
from shared.web.errors import Forbidden, problem_responses
from shared.web.etag import etag, if_match_version

consents_router = APIRouter(prefix="/v1", tags=["consents"])


def _with_etag(consent: Consent, response: Response) -> ConsentOut:
    response.headers["ETag"] = etag(consent.version)
    return consent_out(consent)


@consents_router.post(
    "/consents",
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentOut,
    summary="Record a consent",
    description=(
        "Records a consent (a secrecy waiver, OSL 12 kap. 2 §) given by the person or a "
        "legal representative: who gave it, how (written with the signed form's reference, "
        "oral with a note, or digital), the purposes, the parties (named members, optionally "
        "units, your own member among them and at least one other: never a blanket "
        "everyone), the information categories, and the validity (an end date is required, "
        "at most `VK_CONSENT__MAX_VALIDITY_DAYS` after the start). `person_informed` must "
        "confirm the person was told the purpose and what refusing means. Every party gets "
        "a copy on its inbound topic. `supersedes` replaces an active consent of the same "
        "person (its parties are told it ended). An active refusal covering the parties "
        "answers 409. Bad input answers 422 naming each field and rule; nothing is stored. "
        "Send an `Idempotency-Key` to retry safely. Scope `consent:write`."
    ),
    responses=problem_responses(
        Forbidden, ConsentNotActive, RefusalInForce, IdempotencyInProgress, AuditUnavailable
    ),
)
async def record_consent(body: ConsentCreate, creating: Creating) -> Any:
    async def make(work: Work) -> tuple[BaseModel, str]:
        consent = await records.record_consent(work, body)
        return _with_etag(consent, creating.response), consent.id

    return await creating.once("POST /v1/consents", "consent.record", body, make)


@consents_router.get(
    "/consents/{consent_id}",
    response_model=ConsentOut,
    summary="Read a consent your member recorded",
    description="The whole record, including who gave and who recorded it and, once "
    "withdrawn, by whom and why. Audited. Another member's consent answers 404 (see "
    "`/v1/consent-copies/{consent_id}` for copies you hold). Scope `consent:read`.",
    responses=problem_responses(Forbidden, ConsentNotFound, AuditUnavailable),
)
async def get_consent(consent_id: RecordId, step: ReadStep, response: Response) -> ConsentOut:
    consent = await records.get_own_consent(step.work, consent_id)
    await step.audited("consent.read", consent)
    return _with_etag(consent, response)


@consents_router.post(
    "/consents/{consent_id}/withdraw",
    response_model=ConsentOut,
    summary="Withdraw a consent, or some of its purposes",
    description=(
        "Withdraws the consent with a reason and by whom (the person, a representative with "
        "a reference, or staff recording the person's wish). Effective at once for every "
        "decision; an `se.vardkedja.consent.ended.v1` event goes to every party named in the "
        "consent, so their referral services stop and their notify services tell the units.\n\n"
        '**Some purposes only**: `purposes` names the purposes to withdraw (e.g. `["sip"]`: '
        "the person declines joint planning); the consent stays `active` for the rest. "
        "Refusing a SIP is not refusing the interventions: decisions refuse the withdrawn "
        "purposes (`purpose_withdrawn`) and still allow the others, and an "
        "`se.vardkedja.consent.narrowed.v1` event goes to every party. There, the referral "
        "services cancel only the open tasks whose kind's purpose was withdrawn (a SIP "
        "invitation; a kontaktbegäran the kommun registered as an application stays), close "
        "the plan copies shared for it, and tell each unit holding a task on the consent which "
        "kinds of referral it still covers. Naming every purpose still in force withdraws the "
        "whole consent. A purpose the consent does not have in force answers 422 "
        "(`not_in_consent`, `already_withdrawn`) naming `purposes.<i>`; nothing is stored.\n\n"
        "A consent that is no longer active answers 409; with `If-Match`, a consent changed "
        "since you read it answers 412 (without it, so does one changed while yours was "
        "being recorded). Audited as `consent.withdraw`. Scope `consent:write`."
    ),
    responses=problem_responses(
        Forbidden, ConsentNotFound, ConsentNotActive, ConsentVersionMismatch, AuditUnavailable
    ),
)
async def withdraw_consent(
    consent_id: RecordId,
    body: WithdrawRequest,
    step: WriteStep,
    response: Response,
    if_match: IfMatch = None,
) -> ConsentOut:
    consent = await records.get_own_consent(step.work, consent_id)
    consent = await records.withdraw_consent(
        step.work, consent, body, expected_version=if_match_version(if_match)
    )
    await step.audited("consent.withdraw", consent)
    return _with_etag(consent, response)
